"""HTML building blocks of the report page: escaping, the Markdown subset the report's text uses, tables and the
stylesheet. Every string that reaches the page passes through ``esc`` (or ``inline``, which escapes first), so an
arm, experiment or message holding markup shows as text and never becomes markup."""

from __future__ import annotations

import html
import re
from typing import Callable, Iterable, Sequence

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def esc(value: object) -> str:
    """``value`` as HTML text, quotes included (safe in element content and in quoted attributes)."""
    return html.escape(str(value), quote=True)


def inline(text: str) -> str:
    """Escape ``text``, then turn its Markdown code spans and bold into ``<code>`` and ``<strong>``."""
    out = esc(text.replace("\\|", "|"))
    out = _CODE.sub(r"<code>\1</code>", out)
    return _BOLD.sub(r"<strong>\1</strong>", out)


def bullet_list(items: Sequence[tuple[int, str]]) -> str:
    """Nested ``<ul>`` from (indent, text) items: two spaces of indent per level, as in the Markdown report."""
    out: list[str] = []
    levels = 0
    for indent, text in items:
        level = indent // 2
        while levels > level + 1:
            out.append("</li></ul>")
            levels -= 1
        if levels == level + 1:
            out.append("</li>")
        while levels < level + 1:
            out.append("<ul>")
            levels += 1
        out.append(f"<li>{inline(text)}")
    out.append("</li></ul>" * levels)
    return "".join(out)


def markdown_blocks(md: str, table: Callable[[list[str]], str] | None = None, shift: int = 1) -> str:
    """HTML of the Markdown subset the report writes: ``#`` headings (one level deeper by ``shift``), ``-``
    lists nested by two spaces, ``|`` tables (rendered by ``table`` from their lines, else as plain tables)
    and paragraphs, with code spans and bold inside."""
    lines, out, i = md.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")) + shift)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append((table or plain_markdown_table)(lines[i:j]))
            i = j
        elif line.lstrip().startswith("- "):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                items.append((len(lines[i]) - len(lines[i].lstrip()), lines[i].lstrip()[2:]))
                i += 1
            out.append(bullet_list(items))
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ")):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(' '.join(para))}</p>")
    return "\n".join(out)


def _md_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip() for c in cells]


def plain_markdown_table(lines: list[str]) -> str:
    head, rows = _md_cells(lines[0]), [_md_cells(x) for x in lines[2:]]
    return html_table(head, [[inline(c) for c in r] for r in rows], raw=True)


def html_table(head: Sequence[str], rows: Iterable[Sequence[object]], *, raw: bool = False, cls: str = "",
               numeric: Iterable[int] = (), table_id: str = "") -> str:
    """A ``<table>``: ``head`` escaped; cells escaped unless ``raw`` (already HTML); columns ``numeric`` right
    aligned in tabular figures."""
    num = set(numeric)
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (f' class="{esc(cls)}"' if cls else "")
    th = "".join(f'<th{" class=num" if k in num else ""} scope="col">{esc(h)}</th>' for k, h in enumerate(head))
    body = []
    for r in rows:
        tds = "".join(f'<td{" class=num" if k in num else ""}>{c if raw else esc(c)}</td>' for k, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return (f'<div class="scroll"><table{attrs}><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#dde1e8; --soft:#f5f7fa; --accent:#2f5d8a;
  --better:#00795a; --better-bg:#e3f4ee; --worse:#b44a00; --worse-bg:#fbebe0;
  --incon:#4d4d4d; --incon-bg:#eceef1; --untested:#7a7a7a; }
* { box-sizing: border-box; }
html { background: #fff; }
body { margin: 0; color: var(--ink); font: 15px/1.55 -apple-system, "Segoe UI", "Helvetica Neue", Arial,
  "Liberation Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 32px 60px; }
nav { font-size: 13px; margin: 10px 0 0; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 8px; }
h1 { font-size: 28px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
.subtitle { font-size: 16px; color: var(--muted); margin: 0 0 6px; }
.meta { color: var(--muted); font-size: 13px; margin: 0; }
p, li { max-width: 78em; }
.fine { font-size: 12.5px; color: var(--muted); }
code { font: 0.92em/1.3 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: var(--soft);
  padding: 0.05em 0.3em; border-radius: 3px; }
pre { background: #1f2633; color: #e8edf5; padding: 12px 14px; border-radius: 6px; overflow-x: auto;
  font: 13px/1.5 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre code { background: none; padding: 0; color: inherit; }
.scroll { overflow-x: auto; margin: 10px 0 14px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--soft); border-bottom: 2px solid #c5ccd6; font-weight: 600; vertical-align: bottom; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
#comparison th, #comparison td { padding: 5px 7px; }
#comparison td { white-space: nowrap; background: #fff; }
#comparison th.nw { white-space: nowrap; }
#results > p { font-size: 13px; color: #3b4352; }
#comparison tr.cmp td { border-bottom: none; padding-top: 8px; }
#comparison tr.verdict-row td { white-space: normal; padding: 1px 7px 9px 9px; }
#comparison tr > td:first-child { border-left: 4px solid #d3d7de; }
#comparison tr.better > td:first-child { border-left-color: var(--better); }
#comparison tr.worse > td:first-child { border-left-color: var(--worse); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; }
.badge.better { color: var(--better); background: var(--better-bg); }
.badge.worse { color: var(--worse); background: var(--worse-bg); }
.badge.inconclusive { color: var(--incon); background: var(--incon-bg); }
.badge.not-tested { color: var(--untested); background: #fff; border: 1px dashed #bbb; }
.why { color: var(--muted); font-size: 12px; }
.status-complete, .status-stopped { color: var(--better); font-weight: 600; }
.status-bad { color: var(--worse); font-weight: 600; }
.grid td { min-width: 11em; }
.grid .delta { display: block; font-variant-numeric: tabular-nums; font-size: 12.5px; color: var(--muted); }
dl.spec { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 8px 0; }
dl.spec dt { font-weight: 600; color: var(--muted); }
dl.spec dd { margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-start; }
figure { display: table; margin: 12px 0 18px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px;
  background: #fff; }
figcaption { display: table-caption; caption-side: bottom; font-size: 13px; color: var(--muted); margin-top: 6px; }
figcaption b { color: var(--ink); }
.warn { color: var(--worse); }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); border-top: 1px solid var(--line);
  padding-top: 8px; }
@media print { main { max-width: none; padding: 0; } .scroll { overflow: visible; } h2 { break-after: avoid; }
  figure { break-inside: avoid; } }
"""
