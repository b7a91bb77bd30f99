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
