"""PDF: the text layer (read by PDFium, Chromium's PDF engine), its lines put back into paragraphs by
where they stand on the page.

A PDF has no paragraphs, only positioned lines. A line starts a paragraph when it is indented (Chinese
text indents each paragraph by two characters), when the line before it ended early (the first word or
character of this line would have fit at its end: a line inside a paragraph breaks only where the next
piece does not fit), when the gap above it is clearly wider than the line pitch, or when its type size
changes (a heading). A paragraph whose page ends on a full line goes on into the next page. Running
headers and footers (a line that comes back at the top or bottom of most pages, its numbers aside) and
page numbers ("- 3 -", "第3页", "3/12", "Page 3 of 12") are dropped. Scanned pages have no text layer:
such a file is skipped with a message saying to run OCR first.
"""

from __future__ import annotations

import re
import statistics
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from index.documents import Document, LoadError
from index.loaders.base import Loader, Metadata, Origin, ParsedBody, SkipFile, article_document
from index.repair import clean_line, collapse_whitespace, ends_sentence, is_wide, join_lines

_PAGE_NUMBER = re.compile(
    r"[-—–－_\s]*(?:第\s*)?\d{1,4}\s*(?:页)?\s*(?:(?:/|／|of)\s*\d{1,4}|共\s*\d{1,4}\s*页)?[-—–－_\s]*"
    r"|(?:page|p\.)\s*\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?",
    re.I,
)
_DIGITS = re.compile(r"\d+")
# What a browser or word processor prints in the margin beside the page number: "3/12" at a line's
# end, the address of the page, the time it was printed ("12/3/26, 10:28 AM").
_PRINT_MARKS = re.compile(
    r"(?:^|\s)\d{1,4}\s*/\s*\d{1,4}$|://|^\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4},?\s+\d{1,2}:\d{2}", re.I
)
# Title fields that name a file or a program rather than the document.
_JUNK_TITLE = re.compile(
    r"^(?:untitled|无标题|新建\s*microsoft\s*word\s*文档|document\d*|文档\d*|slide\s*\d+)$"
    r"|\.(?:docx?|wps|pdf|xlsx?|pptx?|rtf|txt|html?|md|indd|tmp|jpe?g|png|tiff?)$",
    re.I,
)
_PROGRAM_PREFIX = re.compile(r"^(?:microsoft\s+(?:word|powerpoint|excel)\s*-\s*)", re.I)
# A line counts as header or footer only among the first or last lines of a page.
_EDGE_LINES = 2
MIN_TEXT_CHARS = 20  # fewer characters in the whole file: a scan, or a PDF of pictures
# PDFium is not thread-safe: two uploads read at once (the server's thread pool, a folder sync beside a
# write) take turns.
_PDFIUM = threading.Lock()


@dataclass
class _Line:
    text: str
    x0: float
    x1: float
    top: float  # distance from the page's top edge, growing down the page
    size: float  # the type size of its first character, as set on the page
    page: int
    lead: float = 0.0  # width of its first unbreakable piece: a word, a number, a character and its mark


# Marks a line may not start with (they stay with the character before) or end with (with the one after):
# the line-breaking rule a typesetter follows, wider than repair.NO_START (marks that cannot open a
# sentence), since "…" and "—" may open a sentence but not a line.
_NO_LINE_START = set("，。、；：？！）》」』】〕〉”’…—·,.;:?!)]}%")
_NO_LINE_END = set("（《「『【〔〈“‘([{")


def _breaks_before(char: str) -> bool:
    return char.isspace() or is_wide(char)


def _lead_width(chars: list[tuple[str, float, float]]) -> float:
    """How wide the first piece of a line is that could not have been split from it: a Latin word or
    number, or a wide character with the marks that cannot be parted from it."""
    if not chars:
        return 0.0
    first = chars[0]
    if not is_wide(first[0]) and first[0] not in _NO_LINE_END:
        end = first
        for char in chars[1:]:
            if _breaks_before(char[0]):
                break
            end = char
        return end[2] - first[1]
    end_at = 0
    while end_at + 1 < len(chars) and (
        chars[end_at][0] in _NO_LINE_END or chars[end_at + 1][0] in _NO_LINE_START
    ):
        end_at += 1
    if end_at:  # a closing mark holds on to a Latin word written right after it: 弱。”BBC
        while end_at + 1 < len(chars) and not _breaks_before(chars[end_at + 1][0]):
            end_at += 1
    return chars[end_at][2] - first[1]


def _spaced(handle: Any, index: int, before: tuple[str, float, float], box: Any) -> bool:
    """Whether the gap PDFium filled with a space at `index`, between two wide characters, is a space's
    width (a quarter to half a character): a space the author typed. Narrower is justification, wider
    is letter-spacing (a title set "通 知")."""
    import pypdfium2.raw as pdfium_c

    if not pdfium_c.FPDFText_GetLooseCharBox(handle, index + 1, box):
        return False
    em = before[2] - before[1]
    return em > 0 and 0.2 * em <= box.left - before[2] <= 0.5 * em


def _page_lines(textpage: Any, height: float, number: int) -> list[_Line]:
    """The text lines of a PDFium text page, in its reading order (PDFium marks each line's end with a
    generated line break). A line spans its characters' advance boxes, not their ink: a line ending in
    "、" or "。" fills the line though the mark's ink stops half a character short. A space PDFium
    made up for a gap between two wide characters is kept only where the gap is a space's width
    (`_spaced`)."""
    import pypdfium2.raw as pdfium_c

    handle = textpage.raw
    box = pdfium_c.FS_RECTF()
    matrix = pdfium_c.FS_MATRIX()
    lines: list[_Line] = []
    text: list[str] = []
    placed: list[tuple[str, float, float]] = []  # (character, left, right) of the characters with a box
    top = 0.0
    size = 0.0

    def flush() -> None:
        line = clean_line("".join(text))
        while placed and placed[-1][0] == " ":
            placed.pop()
        if line and placed:
            lines.append(_Line(line, placed[0][1], placed[-1][2], height - top, size, number,
                               _lead_width(placed)))
        text.clear()
        placed.clear()

    count = pdfium_c.FPDFText_CountChars(handle)
    for index in range(count):
        code = pdfium_c.FPDFText_GetUnicode(handle, index)
        if code in (0x0A, 0x0D):
            flush()
            continue
        if code in (0x02, 0xFFFE):  # PDFium's marks for a hyphen ending a line (no line break follows)
            text.append("-")
            flush()
            continue
        char = chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else "\ufffd"
        if char.isspace():
            if pdfium_c.FPDFText_IsGenerated(handle, index) == 1 and placed and index + 1 < count:
                after = pdfium_c.FPDFText_GetUnicode(handle, index + 1)
                between_wide = is_wide(placed[-1][0]) and 0 < after < 0x110000 and is_wide(chr(after))
                if between_wide and not _spaced(handle, index, placed[-1], box):
                    continue
            text.append(" ")
            if placed:  # where a word ends, for the width of a line's first word
                placed.append((" ", placed[-1][2], placed[-1][2]))
            continue
        text.append(char)
        if pdfium_c.FPDFText_GetLooseCharBox(handle, index, box):
            if not placed:
                top = box.top
                # The size the type is set in on the page: its font size scaled by its text matrix.
                size = pdfium_c.FPDFText_GetFontSize(handle, index)
                if pdfium_c.FPDFText_GetMatrix(handle, index, matrix):
                    size *= abs(matrix.a * matrix.d - matrix.b * matrix.c) ** 0.5 or 1.0
            placed.append((char, box.left, box.right))
            top = max(top, box.top)
    flush()
    return _same_line_pieces_joined(lines)


def _same_line_pieces_joined(lines: list[_Line]) -> list[_Line]:
    """Lines PDFium broke where one line of the page goes on in another font (a quotation mark set in
    a fallback font), joined again: a piece that stands on the same baseline right after the line
    before it belongs to it."""
    out: list[_Line] = []
    for line in lines:
        last = out[-1] if out else None
        if (
            last is not None
            and last.page == line.page
            and abs(line.top - last.top) < 0.3 * max(line.size, last.size)
            and last.x1 - 0.5 <= line.x0 <= last.x1 + 1.5 * max(line.size, last.size)
        ):
            gap = line.x0 - last.x1
            joiner = "" if is_wide(last.text[-1]) or is_wide(line.text[0]) or gap < 0.15 * line.size else " "
            last.text = last.text + joiner + line.text
            last.x1 = line.x1
            continue
        out.append(line)
    return out


def _is_page_number(text: str) -> bool:
    return _PAGE_NUMBER.fullmatch(text) is not None


def _body_size(lines: list[_Line]) -> float:
    """The type size most of these lines' characters are set in: the body text's."""
    sizes = Counter(round(line.size, 1) for line in lines for _ in line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _edge(lines: list[_Line]) -> list[_Line]:
    """The lines nearest the top and the bottom of a page, where headers and footers stand (wherever
    the content stream put them)."""
    by_height = sorted(lines, key=lambda line: line.top)
    return by_height[:_EDGE_LINES] + by_height[-_EDGE_LINES:]


def _running_lines(pages: list[list[_Line]]) -> set[str]:
    """Texts (numbers masked) that stand among the first or last lines of at least half the pages, in
    type no larger than the body text's."""
    if len(pages) < 2:
        return set()
    body = _body_size([line for lines in pages for line in lines])
    seen: Counter[str] = Counter()
    for lines in pages:
        # A heading larger than the text may stand at the top of two pages; a running header is not set
        # larger than the text.
        seen.update({_DIGITS.sub("#", line.text) for line in _edge(lines) if line.size <= 1.1 * body})
    return {text for text, count in seen.items() if count >= max(2, len(pages) / 2)}


def _body(pages: list[list[_Line]]) -> list[list[_Line]]:
    """Each page's lines without running headers and footers: page numbers, lines that come back on
    most pages, and print marks (the page's address, the time printed, "3/12") in type smaller than the
    page's text."""
    running = _running_lines(pages)

    def margin_mark(line: _Line, largest: float) -> bool:
        return (
            _is_page_number(line.text)
            or _DIGITS.sub("#", line.text) in running
            or (line.size < 0.85 * largest and _PRINT_MARKS.search(line.text) is not None)
        )

    kept: list[list[_Line]] = []
    for lines in pages:
        edge = {id(line) for line in _edge(lines)}
        largest = max((line.size for line in lines), default=0.0)
        kept.append([line for line in lines if id(line) not in edge or not margin_mark(line, largest)])
    return kept


@dataclass
class _Layout:
    """Where the body text of a page (or the whole document) stands, and how its paragraphs are set."""

    left: float  # the usual left edge of a line
    right: float  # the right edge of the longest lines
    pitch: float  # the usual distance from one line of a paragraph to the next
    size: float  # the body text's type size

    def indented(self, line: _Line) -> bool:
        return line.x0 > self.left + 0.8 * self.size

    def ended(self, line: _Line, after: _Line) -> bool:
        """`line` ended its paragraph: the first piece of the line `after` it would have fit at its end
        (a line inside a paragraph is broken only where the next word or character does not fit,
        justified or ragged, Chinese or Latin)."""
        space = 0.0 if is_wide(line.text[-1]) or is_wide(after.text[0]) else 0.25 * after.size
        return line.x1 + space + after.lead <= self.right + 0.01  # `right` is where a line reached: no more


def _layout(lines: list[_Line], fallback: _Layout | None) -> _Layout | None:
    """The layout of these lines; a page with too few lines to tell borrows the document's, and a page
    whose lines all stop short (a last page of short paragraphs) the document's width of text."""
    if len(lines) < 4:
        return fallback
    size = _body_size(lines)
    body = [line for line in lines if abs(line.size - size) < 0.15 * size] or lines
    left = float(Counter(round(line.x0) for line in body).most_common(1)[0][0])
    right = max(line.x1 for line in body)
    steps = [
        b.top - a.top
        for a, b in zip(lines, lines[1:], strict=False)
        if 0 < b.top - a.top < 3 * size and abs(a.size - b.size) < 0.15 * size
    ]
    pitch = statistics.median(steps) if steps else 1.5 * size
    if fallback is not None:  # mirrored margins move the text, not its width
        right = max(right, left + fallback.right - fallback.left)
    return _Layout(left, right, pitch, size)


def _indents_paragraphs(pages: list[list[_Line]], layouts: list[_Layout]) -> bool:
    """Whether the document marks a paragraph by indenting its first line (Chinese text does): lines of
    the body text that start one to four characters in and still run to the right margin (a centred
    title or a short quote does not)."""
    indented = [
        line
        for lines, layout in zip(pages, layouts, strict=True)
        for line in lines
        if abs(line.size - layout.size) < 0.15 * layout.size
        and 0.8 * layout.size < line.x0 - layout.left <= 4 * layout.size
        and line.x1 > layout.right - 3 * layout.size
    ]
    return len(indented) >= 2


def _paragraphs(pages: list[list[_Line]]) -> tuple[list[str], set[int], str | None]:
    """Paragraphs, the indices of those set larger than the body text, and the largest line of page 1."""
    everything = [line for lines in pages for line in lines]
    document = _layout(everything, None)
    if document is None:  # a few lines in all: one paragraph each
        return [line.text for line in everything], set(), None
    layouts = [_layout(lines, document) or document for lines in pages]
    indents = _indents_paragraphs(pages, layouts)
    groups: list[list[_Line]] = []
    previous: _Line | None = None
    previous_layout = document
    for lines, layout in zip(pages, layouts, strict=True):
        for line in lines:
            if previous is None:
                starts = True
            elif previous.page != line.page:
                # Nothing but the text says whether a page's last full line ends its paragraph: the
                # next page's indent where paragraphs are indented, else the end of a sentence.
                starts = (
                    previous_layout.ended(previous, line)
                    or abs(line.size - previous.size) > 0.15 * layout.size
                    or (layout.indented(line) if indents else ends_sentence(previous.text))
                )
            else:
                gap = line.top - previous.top
                starts = (
                    layout.indented(line)
                    or layout.ended(previous, line)
                    or gap > 1.45 * layout.pitch * max(1.0, previous.size / layout.size)
                    or gap < 0  # a new column or box
                    or abs(line.size - previous.size) > 0.15 * layout.size
                )
            if starts:
                groups.append([line])
            else:
                groups[-1].append(line)
            previous, previous_layout = line, layout
    # The programs news and policy papers are saved as PDF with (Word, WPS, a browser) do not hyphenate:
    # a hyphen ending a line is the text's own ("second-" + "busiest").
    texts = [join_lines([line.text for line in group], hyphenated=False) for group in groups]
    large = {i for i, group in enumerate(groups) if group[0].size > 1.15 * document.size}
    first_page = [i for i in large if groups[i][0].page == 0 and texts[i]]
    title = texts[max(first_page, key=lambda i: groups[i][0].size)] if first_page else None
    return texts, large, title


def _info_metadata(info: dict[str, Any]) -> Metadata:
    """The title of the file's information dictionary, when it names the document."""

    def text(key: str) -> str | None:
        value = info.get(key)
        if not isinstance(value, str):
            return None
        value = collapse_whitespace(value.replace("\x00", ""))
        return value or None

    title = text("Title")
    if title:
        title = _PROGRAM_PREFIX.sub("", title).strip()
        if _JUNK_TITLE.search(title) or not title:
            title = None
    return Metadata(title=title)


def _open(data: bytes, doc_id: str) -> Any:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    if b"%PDF-" not in data[:1024]:
        raise SkipFile(f"{doc_id} is not a PDF file (no %PDF- header)", "not a PDF")
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise SkipFile(
                f"{doc_id} is password-protected; save a copy without the password to index it",
                "password-protected PDF: save a copy without the password",
            ) from None
        raise SkipFile(f"{doc_id} is a damaged PDF: {exc}", f"damaged PDF: {exc}") from None


def parse_pdf(data: bytes, doc_id: str) -> ParsedBody:
    """Paragraphs, headings and title of a PDF's text layer; SkipFile for a file with none."""
    with _PDFIUM:
        document = _open(data, doc_id)
        try:
            info = document.get_metadata_dict(skip_empty=True)
            pages: list[list[_Line]] = []
            for number in range(len(document)):
                page = document[number]
                pages.append(_page_lines(page.get_textpage(), page.get_height(), number))
        except Exception as exc:  # PDFium's errors on a broken page carry no type of their own
            raise SkipFile(f"{doc_id} is a damaged PDF: {exc}", f"damaged PDF: {exc}") from None
        finally:
            document.close()
    characters = sum(len(line.text) for lines in pages for line in lines)
    unmapped = sum(line.text.count("\ufffd") for lines in pages for line in lines)
    if characters < MIN_TEXT_CHARS:
        raise SkipFile(
            f"{doc_id} has no text layer ({len(pages)} page(s) of pictures: a scan?); run OCR on it "
            "(for example `ocrmypdf in.pdf out.pdf`) and index the result",
            "no text layer (a scanned PDF?): run OCR on it first",
        )
    if unmapped > characters / 2:  # U+FFFD: a glyph whose font has no Unicode value for it
        raise SkipFile(
            f"{doc_id} uses fonts without a Unicode map, so its text cannot be read; export it again "
            "with embedded Unicode fonts, or run OCR on it",
            "PDF text not readable (fonts without a Unicode map): export it again or run OCR",
        )
    body = _body(pages)
    paragraphs, headings, title = _paragraphs(body)
    leads = [lines[0].text if lines else "" for lines in body]
    return ParsedBody(paragraphs, headings, title, _info_metadata(info), page_leads=leads)


class PDFLoader(Loader):
    """.pdf files with a text layer (not scans)."""

    extensions = (".pdf",)

    def read(
        self, data: bytes, origin: Origin, *, on_error: Callable[[LoadError], None] | None = None
    ) -> list[Document]:
        return [article_document(parse_pdf(data, origin.doc_id), origin)]
