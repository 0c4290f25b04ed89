"""Errors an operator or user can cause and act on; each carries a message fit to print.

Programmer errors are assertions instead (house style rule 5).
"""


class SampanError(Exception):
    """An operator-facing error: printed as one line, exit status 2, no traceback."""


class ConfigError(SampanError):
    """A setting in the environment or on the command line is missing or invalid."""


class StackError(SampanError):
    """The local stack could not be started, reached or stopped."""
