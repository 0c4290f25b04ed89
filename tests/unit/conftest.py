"""Settings every test shares.

Hypothesis's per-example deadline is a timed assertion: on a loaded two-core machine a single
example may take far longer than on an idle one, and a property test would then fail for the
machine's sake, not the code's. Speed is measured in benchmarks, so no test has a deadline.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("sampan", deadline=None)
settings.load_profile("sampan")
