"""The compliance report as text: a short table for the CLI, Markdown per host, one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from secure_postfix.core.compliance import RULES, RULES_BY_ID, Finding, Status

# One colour per status; the HTML matrix and its test agree on these.
COLOURS: dict[Status, str] = {
    Status.PASS: "#1b873f",
    Status.FAIL: "#d1242f",
    Status.NOT_APPLICABLE: "#8c959f",
    Status.NOT_MANAGED: "#d4a72c",
    Status.NOT_CHECKED: "#0969da",
}

# One mark per status, drawn under each cell's colour and in the legend: a reader who cannot tell red from green
# (about one man in twelve) reads the mark.
MARKS: dict[Status, str] = {
    Status.PASS: "\u2713",  # ✓
    Status.FAIL: "\u2717",  # ✗
    Status.NOT_APPLICABLE: "\u2013",  # en dash
    Status.NOT_MANAGED: "\u25cb",  # ○
    Status.NOT_CHECKED: "?",
}

Report = Mapping[str, Sequence[Finding]]


def counts(findings: Sequence[Finding]) -> str:
    tally = {s: sum(1 for f in findings if f.status is s) for s in Status}
    return ", ".join(f"{n} {s.value}" for s, n in tally.items() if n)


def cli_table(host: str, findings: Sequence[Finding], width: int = 70) -> str:
    """A few aligned lines for the preview/up output: rule ID, status, value seen."""
    id_width = max((len(f.rule.id) for f in findings), default=0)
    lines = [f"compliance of {host}: {counts(findings)}"]
    for f in findings:
        value = f.value if len(f.value) <= width else f.value[: width - 3] + "..."
        lines.append(f"  {f.rule.id:<{id_width}}  {f.status.value:<14}  {value}")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: Report) -> str:
    """One table per host; fits a pull-request comment."""
    parts = ["## Compliance report", ""]
    for host, findings in report.items():
        parts += [f"### {_md(host)}", "", counts(findings), ""]
        parts += ["| rule | status | value seen | source |", "|---|---|---|---|"]
        parts += [
            f"| `{_md(f.rule.id)}` | {f.status.value} | {_md(f.value)} | {_md(f.rule.source)} |" for f in findings
        ]
        parts.append("")
    return "\n".join(parts)


_STYLE = """
body { font: 14px/1.4 sans-serif; margin: 24px; color: #1f2328; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
table.matrix td.cell, table.matrix th.rule { width: 28px; min-width: 28px; max-width: 28px; padding: 0; }
table.matrix td.cell { vertical-align: top; }
/* The colour: a fixed square, so a screenshot shows each status as a known area. */
table.matrix .swatch { width: 28px; height: 28px; }
/* The mark under it, in the text colour: the status without the colour. */
table.matrix .mark { height: 18px; line-height: 18px; text-align: center; font-size: 15px; font-weight: bold; }
table.matrix th.rule { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; font-weight: normal;
  padding: 4px 0; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 6px; color: #fff; }
"""


def html(report: Report, title: str = "Compliance report") -> str:
    """A matrix of hosts x rules, each cell coloured by status (its value in the tooltip), then the details."""
    rule_ids = [r.id for r in RULES if any(f.rule.id == r.id for fs in report.values() for f in fs)]
    head = "".join(f'<th class="rule" title="{escape(RULES_BY_ID[i].title)}">{escape(i)}</th>' for i in rule_ids)
    rows = []
    for host, findings in report.items():
        by_id = {f.rule.id: f for f in findings}
        cells = []
        for rule_id in rule_ids:
            f = by_id.get(rule_id)
            if f is None:
                cells.append('<td class="cell"></td>')
                continue
            tip = escape(f"{rule_id}: {f.status.value}: {f.value}")
            cells.append(
                f'<td class="cell" data-rule="{escape(rule_id)}" data-status="{f.status.value}" title="{tip}">'
                f'<div class="swatch" style="background:{COLOURS[f.status]}"></div>'
                f'<div class="mark">{MARKS[f.status]}</div></td>'
            )
        rows.append(f'<tr><th class="host">{escape(host)}</th>{"".join(cells)}</tr>')
    legend = "".join(f'<span style="background:{c}">{MARKS[s]} {s.value}</span>' for s, c in COLOURS.items())
    details = []
    for host, findings in report.items():
        lines = "".join(
            f"<tr><td><code>{escape(f.rule.id)}</code></td><td>{MARKS[f.status]} {f.status.value}</td>"
            f"<td>{escape(f.value)}</td>"
            f"<td>{escape(f.rule.title)}</td><td>{escape(f.rule.source)}</td></tr>"
            for f in findings
        )
        details.append(
            f"<h2>{escape(host)}</h2><p>{escape(counts(findings))}</p><table><tr><th>rule</th><th>status</th>"
            f"<th>value seen</th><th>title</th><th>source</th></tr>{lines}</table>"
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="legend">{legend}</p>'
        f'<table class="matrix"><tr><th>host</th>{head}</tr>{"".join(rows)}</table>'
        f"{''.join(details)}</body></html>\n"
    )
