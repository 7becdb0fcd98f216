"""``rankseg evaluate --report``: a one-page Markdown or HTML report.

The report is a list of blocks (headings, paragraphs, tables, an image) rendered by
:func:`render` as Markdown (``.md``) or a self-contained HTML page (``.html``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: report file endings and their kind
REPORT_KINDS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}


def report_kind(path: str | os.PathLike[str]) -> str | None:
    """``'md'`` or ``'html'`` from the file name, or None for another ending."""
    return REPORT_KINDS.get(Path(path).suffix.lower())


@dataclass
class Report:
    """The blocks of a report, in order."""

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str) -> None:
        """Add a section heading."""
        self.blocks.append(("h", text))

    def para(self, text: str) -> None:
        """Add a paragraph (plain text)."""
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Add a table of strings (numbers right-aligned)."""
        self.blocks.append(("t", list(header), [list(r) for r in rows]))

    def image(self, path: str, alt: str) -> None:
        """Add an image (``path`` relative to the report)."""
        self.blocks.append(("i", path, alt))


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return s in ("", "nan", "–")
    return True


def render(report: Report, kind: str) -> str:
    """Render the report as ``'md'`` or ``'html'``."""
    if kind == "md":
        out = [f"# {report.title}", ""]
        for b in report.blocks:
            if b[0] == "h":
                out += [f"## {b[1]}", ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "t":
                header, rows = b[1], b[2]
                align = [
                    "---:" if rows and all(_numeric(r[j]) for r in rows) else "---"
                    for j in range(len(header))
                ]
                out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
                out.append("|" + "|".join(align) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
                out.append("")
            else:
                out += [f"![{b[2]}]({b[1]})", ""]
        return "\n".join(out)
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(report.title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f3f3f3}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>{e(report.title)}</h1>",
    ]
    for b in report.blocks:
        if b[0] == "h":
            out.append(f"<h2>{e(b[1])}</h2>")
        elif b[0] == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif b[0] == "t":
            header, rows = b[1], b[2]
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            for r in rows:
                cells = "".join(
                    f'<td class="n">{e(c)}</td>' if _numeric(c) else f"<td>{e(c)}</td>" for c in r
                )
                out.append(f"<tr>{cells}</tr>")
            out.append("</table>")
        else:
            out.append(f'<p><img src="{e(b[1])}" alt="{e(b[2])}"></p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"
