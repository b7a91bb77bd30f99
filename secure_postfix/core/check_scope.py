"""Which of `postfix check`'s two halves a staged main.cf needs (pure).

`postfix check` is Postfix's front end (it reads main.cf and refuses a value no daemon could start with)
followed by two parts of postfix-script: `check-fatal` (queue directories, master.cf, the postlog service,
`postsuper`'s scan of the queue) and `check-warn`, which only walks the host's files for owners and
permissions (and, where Postfix runs chrooted, compares every copied file, each CA certificate too, with its
original). check-warn reads nothing of main.cf but where those files are, who owns them and where its
warnings go. A change that defines none of that leaves its report as it was, and it costs about half of the
whole check's CPU: on a fleet applied at once, the largest single cost of an apply. Such a change is judged by
the front end and `check-fatal`; any other (and every master.cf change) by the whole `postfix check`.
"""

from __future__ import annotations

import re

from secure_postfix.core.maincf import MainCf
from secure_postfix.core.postfix_expand import references

WHOLE = "check"
FATAL_ONLY = "check-fatal"

# What check-warn's commands read (directories, owners, groups, the multi-instance list) and what decides where
# and under which name its warnings are written (postlog; syslog_name's default names multi_instance_name).
_WARN_INPUT = re.compile(
    r"(_directory|_directories|_owner|_group|_path)$"
    r"|^(syslog_|maillog_|postlog_|multi_instance_|import_environment$|export_environment$)"
)


def check_command(live: str, staged: str) -> str:
    """`check` when the staged main.cf changes anything check-warn reads, directly or through a `$name` that
    one of those definitions refers to; `check-fatal` otherwise."""
    before, after = _definitions(live), _definitions(staged)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    return WHOLE if changed & _warn_inputs(before, after) else FATAL_ONLY


def _definitions(text: str) -> dict[str, str]:
    """Each name's effective definition (the last one wins, as in Postfix)."""
    parsed = MainCf.parse(text)
    return {e.name: e.value or "" for e in parsed.entries if e.name is not None}


def _warn_inputs(*files: dict[str, str]) -> set[str]:
    """check-warn's inputs as named in either file, and every name their values refer to, however deep."""
    wanted = {name for f in files for name in f if _WARN_INPUT.search(name)}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        for f in files:
            for ref in references(f.get(name, "")):
                if ref not in wanted:
                    wanted.add(ref)
                    todo.append(ref)
    return wanted
