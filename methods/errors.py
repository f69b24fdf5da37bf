"""Errors of the methods: a failed allocation (a result) versus a broken method (a crash)."""


class AllocationFailed(Exception):
    """A method cannot keep exactly ``k`` weights: a result to store, never a crash of the grid."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MethodContractError(RuntimeError):
    """A method broke the interface (wrong count, masks not matching the layers): a bug in the
    method, never a result to store as a failed allocation."""


class UnknownMethod(ValueError):
    """A method name, an option of a method or an option value that the registry does not accept."""


class OptionOutOfRange(UnknownMethod):
    """An option value outside the range its method declares (``methods.options.Range``)."""
