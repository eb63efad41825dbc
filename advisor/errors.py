"""Domain errors raised by services; views and the API map them to responses in one place."""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, *, fields: Mapping[str, str | list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


class InvalidInputError(DomainError):
    status_code = 400


class NotAllowedError(DomainError):
    status_code = 403


class InvalidStateError(DomainError):
    status_code = 409
