"""Domain errors: each carries a stable id, and says what went wrong and where in one line."""

from __future__ import annotations


class BurgernetError(Exception):
    """Base of all errors that the CLI and the web layer turn into one clear message."""

    error_id = "burgernet_error"


class ConfigError(BurgernetError):
    """A setting or configuration file is missing or wrong."""

    error_id = "config_error"


class DatabaseError(BurgernetError):
    """The database cannot be reached, or its schema does not match this version."""

    error_id = "database_error"


class DataError(BurgernetError):
    """A row of an input file is wrong; names the file and line."""

    error_id = "data_error"

    def __init__(self, path: object, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class PhoneNumberError(BurgernetError, ValueError):
    """A phone number that cannot be read as a valid E.164 number."""

    error_id = "invalid_phone_number"
