"""The console's own error, apart so that the package can name it without loading the
web libraries."""


class ConsoleError(Exception):
    """The console cannot start (its address is taken or cannot be bound)."""
