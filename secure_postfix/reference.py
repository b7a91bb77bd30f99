"""The reference page of every argument (docs/reference.md), made from the Args declarations.

    python -m secure_postfix.reference docs/reference.md
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from secure_postfix.args import PUBLIC_ARGS, docs_of
from secure_postfix.mail_site import MailSiteArgs

CLASSES: tuple[type, ...] = (*PUBLIC_ARGS, MailSiteArgs)


def reference_markdown(classes: Sequence[type] = CLASSES) -> str:
    """docs/reference.md: every field of every public Args, its type, default and doc, from the declarations."""
    lines = [
        "# Reference: every argument",
        "",
        "Made from the declarations in `secure_postfix` (`make reference`); a test keeps the two the same.",
        "",
    ]
    for cls in classes:
        doc = " ".join((cls.__doc__ or "").split())
        lines += [f"## {cls.__name__}", "", doc, "", "| field | type | default | what it is |", "|---|---|---|---|"]
        docs = docs_of(cls)
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f"`{f.default!r}`"
            elif f.default_factory is not dataclasses.MISSING:
                default = "empty"
            else:
                default = "required"
            kind = str(f.type).replace("|", "\\|")
            lines.append(f"| `{f.name}` | `{kind}` | {default} | {docs.get(f.name, '')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference.md")
    target.write_text(reference_markdown())
    print(f"wrote {target}")
