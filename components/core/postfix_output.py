"""What Postfix's own tools print, read without I/O: the staged check's report.

The staged check runs `postconf -n` and `postfix check` twice on the host, once on the
live main.cf and once on the staged copy (each alone, see remote/postfix_host.py). A
warning the live file already gives is the host's business, not the change's: only
warnings that the staged copy adds count. Line numbers move with any edit, so they are
left out of the comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_NUMBER_RE = re.compile(r", line \d+")
_PROGRAM_PATH_RE = re.compile(r"^/\S*/(?=[^/\s]+: )")
_FAILURE_RE = re.compile(r"\b(fatal|panic|error):")


@dataclass(frozen=True)
class CheckRun:
    lines: tuple[str, ...]
    rc: int


@dataclass(frozen=True)
class StagedCheck:
    live: CheckRun
    staged: CheckRun


def parse_staged_check(text: str) -> StagedCheck:
    """The report printed by the staged-check script: `--- live`, lines, `--- rc N`, then the same for `staged`."""
    runs: dict[str, CheckRun] = {}
    current: str | None = None
    lines: list[str] = []
    for raw in text.replace("\r", "").split("\n"):
        if raw in ("--- live", "--- staged"):
            current, lines = raw[4:], []
        elif raw.startswith("--- rc ") and current is not None:
            rc = raw[7:].strip()
            runs[current] = CheckRun(tuple(lines), int(rc) if rc.lstrip("-").isdigit() else -1)
            current = None
        elif current is not None and raw.strip():
            lines.append(raw.strip())
    missing = [name for name in ("live", "staged") if name not in runs]
    if missing:
        raise ValueError(f"the staged check's report lacks its {' and '.join(missing)} part")
    return StagedCheck(runs["live"], runs["staged"])


def comparable(line: str) -> str:
    """A message with what an unrelated edit changes taken out: line numbers, the program's folder."""
    return _PROGRAM_PATH_RE.sub("", _LINE_NUMBER_RE.sub("", line))


def new_messages(check: StagedCheck) -> list[str]:
    """Messages of the staged run that the live run did not give, once each, in order."""
    known = {comparable(line) for line in check.live.lines}
    seen: set[str] = set()
    fresh: list[str] = []
    for line in check.staged.lines:
        key = comparable(line)
        if key not in known and key not in seen:
            seen.add(key)
            fresh.append(line)
    return fresh


def rejection(check: StagedCheck) -> str | None:
    """Why the staged main.cf must not go live, in Postfix's own words; None when it may.

    A failing check is quoted by its fatal lines (or, lacking those, everything it said that
    the live file does not); a passing one is refused for each warning the change introduces.
    """
    fresh = new_messages(check)
    if check.staged.rc != 0:
        failures = [ln for ln in _unique(check.staged.lines) if _FAILURE_RE.search(ln)]
        quoted = failures or fresh or list(_unique(check.staged.lines))
        return (
            "; ".join(quoted) if quoted else f"`postfix check` failed with exit code {check.staged.rc} and no message"
        )
    warnings = [ln for ln in fresh if "warning:" in ln]
    return "; ".join(warnings) if warnings else None


def _unique(lines: tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    return [ln for ln in lines if not (ln in seen or seen.add(ln))]
