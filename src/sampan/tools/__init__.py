"""Tools outside the process packages: the demo, the venue supervisor, benchmarks, audit."""
