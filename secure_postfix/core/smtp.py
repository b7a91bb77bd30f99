"""Reading SMTP replies (RFC 5321 section 4.2), for the post-reload probe."""

from __future__ import annotations

from dataclasses import dataclass


class SmtpProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class Reply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return " / ".join(self.lines)


def take_reply(buffer: bytes) -> tuple[Reply | None, bytes]:
    """Split one complete reply off the front of `buffer`; (None, buffer) if incomplete."""
    lines: list[str] = []
    rest = buffer
    while b"\n" in rest:
        raw, rest = rest.split(b"\n", 1)
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
            raise SmtpProtocolError(f"not an SMTP reply line: {line[:80]!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return Reply(int(line[:3]), lines), rest
    return None, buffer
