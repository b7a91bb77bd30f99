"""What Postfix's own tools print, read without I/O: the staged check's report.

The staged check runs `postconf -n`, `postconf -M` and `postfix check` twice on the host, once
on the live config and once with the staged copy of main.cf or master.cf in its place (see
remote/postfix_host.py). A warning the live config already gives is the host's business, not the
change's: only warnings that the staged copy adds count. Line numbers move with any edit, so they are
left out of the comparison.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from secure_postfix.core import maincf

_FAILURE_RE = re.compile(r"\b(fatal|panic|error):")


@dataclass(frozen=True)
class CheckRun:
    lines: tuple[str, ...]
    rc: int


@dataclass(frozen=True)
class StagedCheck:
    live: CheckRun
    staged: CheckRun
    entries: tuple[str, ...] = ()  # a staged master.cf's entries as `postconf -M` prints them
    # The mail log's size when the check ended (asked with a log file): where the change's own lines will start.
    log_size: int | None = None


def parse_staged_check(text: str) -> StagedCheck:
    """The report printed by the staged-check script: `--- staged`, lines, `--- rc N`, then the same for `live`;
    for master.cf, the staged entries between `--- entries` and `--- end`; with a log file, `--- log SIZE` last."""
    runs: dict[str, CheckRun] = {}
    log_size: int | None = None
    current: str | None = None
    lines: list[str] = []
    for raw in text.replace("\r", "").split("\n"):
        if raw in ("--- live", "--- staged", "--- entries"):
            current, lines = raw[4:], []
        elif raw.startswith("--- rc ") and current in ("live", "staged"):
            rc = raw[7:].strip()
            runs[current] = CheckRun(tuple(lines), int(rc) if rc.lstrip("-").isdigit() else -1)
            current = None
        elif raw.startswith("--- log ") and current is None and raw[8:].strip().isdigit():
            log_size = int(raw[8:].strip())
        elif raw == "--- end" and current == "entries":
            runs[current] = CheckRun(tuple(lines), 0)
            current = None
        elif current is not None and raw.strip():
            lines.append(raw.strip())
    missing = [name for name in ("live", "staged") if name not in runs]
    if missing:
        raise ValueError(f"the staged check's report lacks its {' and '.join(missing)} part")
    entries = runs["entries"].lines if "entries" in runs else ()
    return StagedCheck(runs["live"], runs["staged"], entries, log_size)


def rejection(check: StagedCheck, restored: Iterable[str] = ()) -> str | None:
    """Why the staged file must not go live, in Postfix's own words; None when it may.

    A failing check is quoted by its fatal lines (or, lacking those, all it said); a passing one
    is refused for each warning the change introduces (see maincf.new_warnings).
    """
    if check.staged.rc != 0:
        said = _unique(check.staged.lines)
        quoted = [ln for ln in said if _FAILURE_RE.search(ln)] or said
        return (
            "; ".join(quoted) if quoted else f"`postfix check` failed with exit code {check.staged.rc} and no message"
        )
    warnings = _unique(maincf.new_warnings(list(check.staged.lines), list(check.live.lines), restored))
    return "; ".join(warnings) if warnings else None


def _unique(lines: Iterable[str]) -> list[str]:
    """Each message once, in order: postfix-script runs postconf many times and each repeats it."""
    seen: set[str] = set()
    return [ln for ln in lines if not (ln in seen or seen.add(ln))]
