"""The one error type the CLI turns into a one-line message and exit status 2."""


class BenchError(ValueError):
    """A bad user input: the message names the bad value and the valid ones."""
