"""One exception tree for everything the engine refuses; the web layer maps it to HTTP."""

from __future__ import annotations

from collections.abc import Mapping


class LotsenError(Exception):
    """Base of every refusal the engine raises on purpose."""

    status = 400

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = message or (self.__class__.__doc__ or "").strip()
        self.details = details


class NotFound(LotsenError):
    """The object does not exist, or the actor may not know that it does."""

    status = 404


class Forbidden(LotsenError):
    """The actor may see the object but not do this with it."""

    status = 403


class Conflict(LotsenError):
    """Somebody else changed the object first (a stale version or a task already done)."""

    status = 409


class ValidationFailed(LotsenError):
    """The submitted data breaks the form's rules; ``field_errors`` says where."""

    status = 422

    def __init__(self, field_errors: Mapping[str, list[str]], message: str = "") -> None:
        super().__init__(message or "The submitted data is invalid.")
        self.field_errors = dict(field_errors)


class AuthenticationFailed(LotsenError):
    """Login or token check failed (the message never says which part was wrong)."""

    status = 401
