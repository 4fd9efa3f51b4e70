"""Errors of commands: what the API maps to 4xx (the caller's mistakes) and 409 (conflicts)."""

from __future__ import annotations


class CommandError(Exception):
    """A command the caller got wrong; `field` names the part of the request at fault."""

    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(CommandError):
    status = 404


class Conflict(CommandError):
    status = 409


class OutcomeUnknown(Exception):
    """The exchange did not answer and could not be asked: the order may or may not exist. Nothing was
    re-sent; the intent stays recorded, and the tracker will pick the order up if it exists."""
