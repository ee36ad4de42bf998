"""One report, two renderings: Markdown, and a self-contained HTML page with the same content.

The report is built as a list of blocks (headings, paragraphs, bullet lists, tables, images, code);
`Doc.markdown()` and `Doc.html()` render the same blocks, so the two cannot drift apart. The HTML
inlines every image as base64 and has no external `src` or `href`: one file to mail or archive.
Inline markup in text: `code` and **bold**, nothing else.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")
_STYLE = """body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
th{background:#f3f3f3}code,pre{background:#f6f6f6;padding:0 .2rem}pre{padding:.6rem;overflow-x:auto}
img{max-width:100%;margin:.5rem 0}figure{margin:0}figcaption{font-size:.8rem;color:#555}
.pending{color:#a60}"""


class Doc:
    """An ordered list of report blocks."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", list(header), [list(r) for r in rows]))

    def image(self, alt: str, path: str) -> None:
        """An image file, `path` relative to the report's folder."""
        self.blocks.append(("image", alt, path))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    # -- renderings ------------------------------------------------------------------------------
    def markdown(self) -> str:
        out: list[str] = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                out.append("#" * block[1] + " " + block[2])
            elif kind == "para":
                out.append(block[1])
            elif kind == "bullets":
                out.append("\n".join(f"- {item}" for item in block[1]))
            elif kind == "table":
                header, rows = block[1], block[2]
                cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
                lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "image":
                out.append(f"![{block[1]}]({block[2]})")
            elif kind == "code":
                out.append(f"```\n{block[1]}\n```")
        return "\n\n".join(out) + "\n"

    def html(self, base: Path, title: str) -> str:
        """The page, images read from `base` / path and inlined (a missing one is named, not linked)."""
        body: list[str] = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                body.append(f"<h{block[1]}>{_inline(block[2])}</h{block[1]}>")
            elif kind == "para":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                head = "".join(f"<th>{_inline(h)}</th>" for h in block[1])
                rows = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in block[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "image":
                body.append(_figure(base / block[2], block[1]))
            elif kind == "code":
                body.append(f"<pre><code>{html.escape(block[1])}</code></pre>")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    parts, last = [], 0
    for m in _INLINE.finditer(text):
        parts.append(html.escape(text[last:m.start()]))
        parts.append(f"<code>{html.escape(m.group(1))}</code>" if m.group(1) is not None
                     else f"<strong>{html.escape(m.group(2))}</strong>")
        last = m.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def _cell(text: str) -> str:
    inner = _inline(str(text))
    return f'<span class="pending">{inner}</span>' if str(text).startswith("pending") else inner


def _figure(path: Path, alt: str) -> str:
    if not path.exists():
        return f'<p class="pending">(image {html.escape(path.name)} missing)</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>")
