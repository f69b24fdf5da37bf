"""Errors shared by every method."""


class AllocationFailed(Exception):
    """A method cannot keep exactly ``k`` weights: a result to store, never a crash of the grid."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownMethod(ValueError):
    """A method name, or an option of a method, that is not registered."""
