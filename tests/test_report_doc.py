"""One report, two renderings: the HTML page says what the Markdown says and needs no other file."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

from nerfprune.experiments.report_doc import Doc

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


class Links(HTMLParser):
    """Every src / href attribute of a page, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [(k, v) for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data):
        self.text.append(data)


def external_refs(page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    return [v for _, v in parser.refs if not v.startswith("data:")]


def sample(tmp_path) -> Doc:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(PNG)
    doc = Doc()
    doc.heading(1, "Title with `code`")
    doc.para("Pruning **helps** by +0.12 dB; <script>alert(1)</script> stays text")
    doc.bullets(["one `x`", "two"])
    doc.table(["model", "PSNR"], [["dense", "23.62 ± 0.10 dB (3 seeds)"], ["pruned | a", "pending (needs dense-5)"]])
    doc.image("a plot", "plots/a.png")
    doc.code("nerfprune study --scale 0.1")
    return doc


def test_markdown_and_html_carry_the_same_text(tmp_path):
    doc = sample(tmp_path)
    md, page = doc.markdown(), doc.html(tmp_path, "t")
    parser = Links()
    parser.feed(page)
    text = " ".join(parser.text)
    for needle in ("23.62 ± 0.10 dB (3 seeds)", "pending (needs dense-5)", "nerfprune study --scale 0.1", "helps", "one"):
        assert needle in md and needle in text, needle
    assert "| pruned \\| a |" in md  # a pipe in a cell does not split the Markdown table
    assert "<strong>helps</strong>" in page and "<code>code</code>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # text is escaped, never markup
    assert "![a plot](plots/a.png)" in md


def test_html_is_self_contained(tmp_path):
    page = sample(tmp_path).html(tmp_path, "t")
    assert external_refs(page) == []
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == PNG


def test_a_missing_image_is_named_not_linked(tmp_path):
    doc = Doc()
    doc.image("gone", "plots/gone.png")
    page = doc.html(tmp_path, "t")
    assert "gone.png missing" in page and external_refs(page) == []
