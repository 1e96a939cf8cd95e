"""The .html/.htm reader: a saved web page's visible article text, with its structure kept as lines.

Scraped pages are most of the knowledge base; navigation, scripts and the site's header and footer
are dropped here, and headings become Markdown `#` lines so the chunker sees the same structure as
in a .md file. Needs beautifulsoup4 (the `formats` extra), imported only when a page is read.
"""

from __future__ import annotations

import re

from coopbot.ingest.loaders.encoding import decode
from coopbot.ingest.loaders.registry import Extracted, missing_package, reader

_DROPPED = ["head", "script", "style", "noscript", "template", "nav", "aside"]
_PAGE_CHROME = ["header", "footer"]  # the site's, not an <article>'s own header with its <h1>
_HEADINGS = re.compile(r"h[1-6]")
_BLOCKS = [
    "p", "div", "section", "article", "main", "blockquote", "pre", "ul", "ol", "dl", "table", "figure",
    "figcaption", "form", "fieldset", "address", "hr",
]  # fmt: skip
_LINES = ["li", "tr", "dt", "dd", "caption"]
_CELLS = ["td", "th"]
# " - 站点名", " | 站点名", "_站点名" after a page title. A separator is tried only where a run of blanks starts:
# tried inside the run too, it takes quadratic time on a title full of spaces.
_TITLE_SITE_SUFFIX = re.compile(r"(?<!\s)\s+[-|–—]\s+|_")


@reader("html", ".html", ".htm", heading_levels=1)
def read_html(data: bytes, name: str) -> Extracted:
    """Visible article text with block structure kept as lines, and the page's <title> as its fallback title.

    Headings become Markdown `#` lines so the chunker sees the structure; paragraphs are separated
    by blank lines; source line breaks inside a paragraph are only whitespace, as in a browser.
    """
    markup, codec = decode(data, name)
    try:
        from bs4 import BeautifulSoup
        from bs4.element import NavigableString
    except ImportError as exc:
        raise missing_package("beautifulsoup4", ".html") from exc

    soup = BeautifulSoup(markup, "html.parser")
    page_title = None
    if soup.title is not None:
        page_title = _TITLE_SITE_SUFFIX.split(soup.title.get_text(" ", strip=True))[0].strip() or None
    for tag in soup.find_all(_DROPPED):
        tag.decompose()
    for tag in soup.find_all(_PAGE_CHROME):
        if tag.find_parent(["article", "main"]) is None:
            tag.decompose()
    for node in list(soup.find_all(string=True)):
        if type(node) is NavigableString:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
        else:  # comments, doctype, CDATA, processing instructions
            node.extract()
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    for tag in soup.find_all(_HEADINGS):
        heading = " ".join(tag.get_text(" ").split())
        tag.replace_with(f"\n\n{'#' * int(tag.name[1])} {heading}\n\n" if heading else "")
    for names, before, after in (
        (_BLOCKS, "\n\n", "\n\n"),
        (_LINES, "\n", "\n"),
        (_CELLS, " ", " "),
    ):
        for tag in soup.find_all(names):
            tag.insert_before(before)
            tag.insert_after(after)
    lines = (" ".join(line.split()) for line in soup.get_text().split("\n"))
    return Extracted("\n".join(lines), codec, title=page_title)
