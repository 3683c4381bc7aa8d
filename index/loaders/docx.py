"""Word (.docx): the body's paragraphs and tables in order; headings by their style; the title and author
of the document's properties where they name the document.

A .docx is a zip of XML; python-docx reads it. The old binary .doc and WPS formats are not read: such a
file is reported as unsupported, to be saved as .docx or PDF.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

from index.documents import Document, LoadError
from index.loaders.base import Loader, Metadata, Origin, ParsedBody, SkipFile, article_document
from index.repair import collapse_whitespace, join_lines

# Word's built-in heading styles in English and Chinese installations ("Heading 1", "标题 1", "Title").
_HEADING_STYLE = re.compile(r"^(?:heading|标题|title|subtitle|副标题)\s*\d*$", re.I)
# Properties a template or a program fills in, not the document's own.
_JUNK_TITLE = re.compile(r"^(?:untitled|无标题|文档\d*|document\d*|新建\s*microsoft\s*word\s*文档)$", re.I)
_JUNK_AUTHOR = re.compile(
    r"^(?:administrator|admin|users?\d*|owner|微软用户|微软中国|作者|lenovo|hp|dell|python-docx)$", re.I
)


def _paragraph_text(paragraph: Any) -> str:
    # Word breaks a line inside a paragraph with <w:br/>, which python-docx gives as "\n"; a space the
    # author typed between Chinese words stays, as in a text file.
    return join_lines(paragraph.text.split("\n"))


def _is_heading(paragraph: Any) -> bool:
    style = paragraph.style
    while style is not None:  # a custom style based on "Heading 2" is a heading too
        if _HEADING_STYLE.match(style.name or ""):
            return True
        style = style.base_style
    return False


def _blocks(document: Any) -> Iterator[tuple[str, bool]]:
    """(text, is_heading) of each paragraph and table row of the body, in document order."""
    from docx.table import Table

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = collapse_whitespace(" ".join(_paragraph_text(p) for p in cell.paragraphs))
                    if text and (not cells or cells[-1] != text):  # a merged cell repeats per column
                        cells.append(text)
                if cells:
                    yield " | ".join(cells), False
        else:
            yield _paragraph_text(block), _is_heading(block)


def _properties(document: Any) -> Metadata:
    core = document.core_properties

    def kept(value: str | None, junk: re.Pattern[str]) -> str | None:
        value = collapse_whitespace(value or "")
        return value if value and not junk.match(value) else None

    return Metadata(title=kept(core.title, _JUNK_TITLE), author=kept(core.author, _JUNK_AUTHOR))


def parse_docx(data: bytes, doc_id: str) -> ParsedBody:
    """Paragraphs, headings and metadata of a .docx file."""
    import docx

    if not data.startswith(b"PK"):
        if data.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: a Word 97-2003 .doc renamed .docx
            raise SkipFile(
                f"{doc_id} is a Word 97-2003 document, not .docx; save it as .docx or PDF to index it",
                "Word 97-2003 file under a .docx name: save it as .docx or PDF",
            )
        raise SkipFile(f"{doc_id} is not a .docx file (not a zip archive)", "not a .docx file")
    paragraphs: list[str] = []
    headings: set[int] = set()
    try:
        document = docx.Document(io.BytesIO(data))
        for text, heading in _blocks(document):
            if text:
                if heading:
                    headings.add(len(paragraphs))
                paragraphs.append(text)
        meta = _properties(document)
    # A damaged archive fails wherever it is first read, with the error of that layer (zip, zlib, XML,
    # a missing part): any of them means the same to the user.
    except Exception as exc:
        raise SkipFile(f"{doc_id} is a damaged .docx file: {exc}", f"damaged .docx: {exc}") from None
    first_heading = next((paragraphs[i] for i in sorted(headings)), None)
    return ParsedBody(paragraphs, headings, first_heading, meta)


class DocxLoader(Loader):
    """.docx files (Word 2007 and later, WPS and LibreOffice saving as .docx)."""

    extensions = (".docx",)

    def read(
        self, data: bytes, origin: Origin, *, on_error: Callable[[LoadError], None] | None = None
    ) -> list[Document]:
        return [article_document(parse_docx(data, origin.doc_id), origin)]
