"""The one shape of an input problem, shared by every rule in core and every resource."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, tied to the field the user wrote."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InputError(ValueError):
    """A resource's or a stack's input is wrong; the message names the field and the host.

    `problems` holds each problem found, one a line, so that one refused field does not hide the others.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems) if problems else [message]
