"""What every loader shares: decoding bytes, front matter, metadata fields, dates, the article pipeline.

A `Loader` turns the bytes of one file (or upload) into documents; a `TextFormatLoader` decodes them
first. `ArticleLoader` is the loader for one article per text file (.txt, .md, .html): front matter
first, then the body in its format, then the paragraph repair and metadata from wherever it was found
(`article_document`, which the PDF and Word loaders share).
"""

from __future__ import annotations

import codecs
import email.utils
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from index.documents import Document, LoadError
from index.repair import is_heading_like, repair_paragraphs

logger = logging.getLogger(__name__)

# Headline lines of plain text are shorter than this and carry no sentence-final punctuation.
HEADLINE_MAX = 40


class SkipFile(LoadError):
    """A file that is not a document at all (binary, empty, unknown encoding).

    `reason` is the short form `load_documents` reports ("binary file"); the message is the long form an
    upload gets back ("docs.bin is binary, not text"). `failed` as in `SkippedFile`: False only for a
    file that is empty on purpose.
    """

    def __init__(self, message: str, reason: str, *, failed: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.failed = failed


@dataclass(frozen=True)
class Origin:
    """Where a text comes from: the doc_id its document gets, and the file if there is one."""

    doc_id: str
    path: Path | None = None

    @property
    def stem(self) -> str:
        """File name without extension: the title of last resort."""
        return PurePosixPath(self.doc_id).stem


class Loader(ABC):
    """Turns the bytes of one file (or upload) into documents."""

    extensions: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def read(
        self, data: bytes, origin: Origin, *, on_error: Callable[[LoadError], None] | None = None
    ) -> list[Document]:
        """Documents of a file's bytes; raises LoadError (naming `origin.doc_id`) on bad input, and
        SkipFile for a file that is not a document at all (binary, empty, a scan without text).

        A loader of many documents a file (JSONL) reports a bad record to `on_error`, when given, and
        goes on with the others; without it the whole file is refused.
        """


class TextFormatLoader(Loader):
    """A format that is text: the bytes are decoded (`decode_bytes`), then `load` reads the text."""

    def read(
        self, data: bytes, origin: Origin, *, on_error: Callable[[LoadError], None] | None = None
    ) -> list[Document]:
        return self.load(decode_bytes(data, origin.doc_id), origin, on_error=on_error)

    @abstractmethod
    def load(
        self, text: str, origin: Origin, *, on_error: Callable[[LoadError], None] | None = None
    ) -> list[Document]:
        """Documents of the decoded `text` (see `Loader.read`)."""


# --- decoding ---------------------------------------------------------------------------------------

# Byte-order marks, longest first (the UTF-32 LE mark begins with the UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
# What text that is not UTF-8 may be in: the legacy encodings of Chinese (mainland, then Taiwan and
# Hong Kong), Japanese and Korean. Which one is decided by charset-normalizer's language statistics, since
# Big5 or Shift-JIS bytes mostly decode as GB18030 too, into gibberish. Single-byte encodings (Latin-1,
# cp1252, ...) are not guessed: any bytes decode in all of them and nothing tells them apart reliably.
_LEGACY = ("gb18030", "big5", "cp932", "euc_jp", "cp949")
_LEGACY_NAMES = "UTF-8, GB18030, Big5, Shift-JIS, EUC-JP or EUC-KR"
MESS_THRESHOLD = 0.5  # charset-normalizer's "chaos" above which a decoding is not text
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _control_share(text: str) -> float:
    return len(_CONTROL.findall(text)) / max(1, len(text))


def _legacy_encoding(data: bytes) -> str | None:
    """The legacy CJK encoding `data` is confidently in, else None.

    A tie between GB18030 and another encoding (a few characters valid in both) goes to GB18030: the
    documents this engine is for are mainland Chinese first.
    """
    from charset_normalizer import from_bytes

    # The default mess threshold (0.2) refuses short texts dense with CJK punctuation (“”、) that are
    # plainly Chinese; the ranking still puts the right encoding first there.
    matches = list(from_bytes(data, cp_isolation=list(_LEGACY), threshold=MESS_THRESHOLD))
    if not matches:
        return None
    best = matches[0]
    tied = {m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    return "gb18030" if "gb18030" in tied else best.encoding


def decode_bytes(data: bytes, name: str) -> str:
    """Text of a file: by its byte-order mark (UTF-8, UTF-16, UTF-32), else UTF-8, else the legacy CJK
    encoding it is confidently in (GB18030, Big5, Shift-JIS, ...); newlines normalised to "\\n".

    Raises SkipFile for binary data (NUL bytes, or mostly control characters and undecodable bytes),
    empty files, and text in no encoding that can be told with confidence.
    """
    text: str | None = None
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                raise SkipFile(
                    f"{name} starts with a {label} byte-order mark but is not valid {label}",
                    f"invalid {label}",
                ) from None
            break
    if text is None and b"\x00" in data:
        raise SkipFile(f"{name} is binary, not text", "binary file")
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":  # UTF-8 cut inside its last character (head -c)
                text = data[: exc.start].decode("utf-8") if exc.start else None
                logger.warning("%s: ends inside a UTF-8 character; read without it", name)
        if text is None:
            encoding = _legacy_encoding(data)
            try:
                text = data.decode(encoding) if encoding else None
            except UnicodeDecodeError:  # detected on samples; a later part does not fit
                text = None
            if text is None:
                garbled = data.decode("utf-8", errors="replace")
                share = (garbled.count("\ufffd") + len(_CONTROL.findall(garbled))) / max(1, len(garbled))
                if share > 0.3:
                    raise SkipFile(f"{name} is binary, not text", "binary file") from None
                raise SkipFile(
                    f"{name} is not text in an encoding that can be told apart with confidence "
                    f"({_LEGACY_NAMES}); save it as UTF-8",
                    f"not {_LEGACY_NAMES}",
                ) from None
            if encoding != "gb18030":
                logger.info("%s: read as %s", name, encoding)
    # Legacy decoders accept many byte soups without error; text has hardly any control characters.
    if _control_share(text) > 0.05:
        raise SkipFile(f"{name} is binary, not text", "binary file")
    if not text.strip():
        raise SkipFile(f"{name} is empty", "empty", failed=False)
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- dates --------------------------------------------------------------------------------------------

_CJK_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
_NUMERIC_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def _ymd(year: str, month: str, day: str) -> str:
    return date(int(year), int(month), int(day)).isoformat()


def parse_date(value: object) -> str | None:
    """ISO 'YYYY-MM-DD' of a date in any reasonable form; None for no value, ValueError for garbage.

    Accepts date/datetime objects, ISO 8601, RFC 2822 ('Mon, 29 Nov 2021 13:05:00 GMT'), '2021/11/29',
    '2021年11月29日', '20211129', Unix timestamps, and what dateutil reads ('Nov 29, 2021'), as long as
    year, month and day are all given. The date is the one written, not converted to another time zone.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # milliseconds, as JavaScript writes them
        if seconds < 1e8:
            raise ValueError(f"{value!r} is not a date")
        return datetime.fromtimestamp(seconds, tz=UTC).date().isoformat()
    text = str(value).strip()
    if not text:
        return None
    try:
        if m := _CJK_DATE.match(text):
            return _ymd(*m.groups())
        if m := _NUMERIC_DATE.match(text):
            return _ymd(*m.groups())
        if m := _COMPACT_DATE.fullmatch(text):
            return _ymd(*m.groups())
    except ValueError as exc:  # 2021-13-45
        raise ValueError(f"{text!r} is not a date: {exc}") from None
    try:
        return email.utils.parsedate_to_datetime(text).date().isoformat()
    except (TypeError, ValueError, IndexError):
        pass
    from dateutil import parser

    # Parsed against two different defaults: a field that changes with the default was not in the text.
    try:
        first = parser.parse(text, default=datetime(2000, 1, 1))
        second = parser.parse(text, default=datetime(2001, 2, 2))
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a date") from None
    if first.date() != second.date():
        raise ValueError(f"{text!r} is not a full date (year, month and day)")
    return first.date().isoformat()


# --- metadata -----------------------------------------------------------------------------------------

# Front matter keys, first match wins; lower-cased before lookup.
TITLE_KEYS = ("title", "headline")
DATE_KEYS = ("date", "published", "pubdate", "publish_date", "published_at", "created", "time")
AUTHOR_KEYS = ("author", "authors", "byline", "writer")
SOURCE_KEYS = ("source", "publisher", "outlet", "media", "site_name")
URL_KEYS = ("url", "link", "source_url", "sourceurl", "permalink", "canonical_url", "original_url", "origin")
CATEGORY_KEYS = ("categories", "category")


def _text_of(value: Any) -> str | None:
    """A metadata value as one string: lists joined, blanks to None."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        parts = [str(v).strip() for v in value if v is not None and str(v).strip()]
        return ", ".join(parts) or None
    text = str(value).strip()
    return text or None


def _categories_of(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


@dataclass
class Metadata:
    """Document fields other than the text, gathered from front matter, markup and the text itself."""

    title: str | None = None
    date: str | None = None
    author: str | None = None
    source: str | None = None
    url: str | None = None
    categories: list[str] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any], name: str) -> Metadata:
        """Fields of front matter (lenient: a date that cannot be read is dropped with a warning)."""
        lower = {str(k).lower(): v for k, v in mapping.items()}

        def first(keys: tuple[str, ...]) -> Any:
            return next((lower[k] for k in keys if lower.get(k) not in (None, "", [])), None)

        meta = cls(
            title=_text_of(first(TITLE_KEYS)),
            author=_text_of(first(AUTHOR_KEYS)),
            source=_text_of(first(SOURCE_KEYS)),
            url=_text_of(first(URL_KEYS)),
            categories=_categories_of(first(CATEGORY_KEYS)),
        )
        raw_date = first(DATE_KEYS)
        try:
            meta.date = parse_date(raw_date)
        except ValueError as exc:
            logger.warning("%s: ignoring date %r: %s", name, raw_date, exc)
        return meta

    def fill(self, other: Metadata) -> None:
        """Take the fields of `other` that are still missing here."""
        for name in ("title", "date", "author", "source", "url"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))
        if not self.categories:
            self.categories = list(other.categories)


# --- front matter ------------------------------------------------------------------------------------


def split_front_matter(text: str, name: str) -> tuple[dict[str, Any], str]:
    """YAML front matter and the body after it; ({}, text) if the text does not start with `---`.

    Leading blank lines are allowed (the seed articles have one). Front matter that is not valid YAML
    is dropped with a warning rather than showing up as text.
    """
    stripped = text.lstrip()
    if not re.match(r"---[ \t]*\n", stripped):
        return {}, text
    import frontmatter

    try:
        post = frontmatter.loads(stripped)
    except Exception as exc:  # yaml raises many types; any of them means "not usable metadata"
        logger.warning("%s: front matter is not valid YAML (%s); ignoring it", name, exc)
        match = re.match(r"---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|$)", stripped, re.S)
        return {}, stripped[match.end() :] if match else text
    if not isinstance(post.metadata, dict):
        return {}, text
    return dict(post.metadata), post.content


# --- plain-text conventions -------------------------------------------------------------------------

_BYLINES = (
    # 据新华社, 据新华社报道, （据人民日报）, 来源：新华网
    re.compile(
        r"[（(]?\s*(?:据|(?:文章|消息|信息|稿件)?来源\s*[:：]|来自\s*[:：]|稿源\s*[:：])\s*"
        r"(?P<source>[^（）()]+?)\s*(?:报道|消息|电|供稿)?\s*[)）]?\s*[。.]?"
    ),
    # （新华社）
    re.compile(r"[（(]\s*(?P<source>[^（）()\s:：]{2,20}?)\s*(?:报道|消息|电|供稿)?\s*[)）]"),
    # Source: Reuters
    re.compile(r"(?:source|via)\s*:\s*(?P<source>[^:]+?)\.?", re.I),
)
_NOT_A_SOURCE = re.compile(r"^(?:全文)?完|^终$|待续|^记者|^编辑|^责编|^作者|^通讯员|^实习生|^摄|^图")


def trailing_source(paragraphs: list[str]) -> str | None:
    """The outlet named by a final short byline line ("据新华社", "（新华社）", "来源：…", "Source: …")."""
    if not paragraphs:
        return None
    last = paragraphs[-1].strip()
    if len(last) > 30:
        return None
    for pattern in _BYLINES:
        if (m := pattern.fullmatch(last)) and not _NOT_A_SOURCE.search(m["source"].strip()):
            return m["source"].strip()
    return None


def _is_headline(paragraph: str) -> bool:
    return len(paragraph) < HEADLINE_MAX and is_heading_like(paragraph)


def headline_title(paragraphs: list[str]) -> str | None:
    """Title of plain text: the last of the short lines standing before the first real paragraph.

    A banner or kicker often precedes the headline ("习近平新时代中国特色社会主义思想" above
    "多点支撑，国家区域协同创新高地加快崛起"); the headline is the line right above the text.
    """
    leading: list[str] = []
    for paragraph in paragraphs[:6]:
        if not _is_headline(paragraph):
            break
        leading.append(paragraph)
    if not leading:
        return None
    # all short lines: a list rather than an article; its first line is the best name
    return leading[-1] if len(leading) < len(paragraphs) else leading[0]


# --- the article pipeline ---------------------------------------------------------------------------


@dataclass
class ParsedBody:
    """A body taken apart by its format."""

    paragraphs: list[str]
    headings: set[int] = field(default_factory=set)  # indices of paragraphs the markup marks as headings
    title: str | None = None  # from the markup (<title>, first heading)
    meta: Metadata = field(default_factory=Metadata)  # from the markup (<meta> tags)
    page_leads: list[str] = field(default_factory=list)  # a paginated file's pages: the text each begins with


# The start of a page's first line that is looked for in the document's text: long enough to be found
# once, short enough to stay inside the line.
PAGE_LEAD_CHARS = 40


def page_starts(text: str, leads: list[str]) -> list[int]:
    """Where each page starts in `text`, found by the text it begins with, page after page; a page whose
    beginning is not found (or that has no text) starts where the page before it does."""
    starts: list[int] = []
    position = 0
    for number, lead in enumerate(leads):
        probe = lead[:PAGE_LEAD_CHARS]
        found = text.find(probe, position) if probe and number else -1
        if found >= 0:
            position = found
        starts.append(position)
    return starts


def article_document(
    parsed: ParsedBody, origin: Origin, front_matter: dict[str, Any] | None = None
) -> Document:
    """The document of one article: metadata from front matter, then the markup; paragraphs repaired; a
    final byline taken as the source; the title from the metadata, the markup, the headline or the file
    name. Raises SkipFile when no text is left."""
    meta = Metadata.from_mapping(front_matter or {}, origin.doc_id)
    meta.source = meta.source or meta.author  # a news outlet is often given as the author
    meta.fill(parsed.meta)
    paragraphs = repair_paragraphs(parsed.paragraphs, headings=parsed.headings)
    if paragraphs and (byline := trailing_source(paragraphs)):
        paragraphs = paragraphs[:-1]  # metadata, not content
        meta.source = meta.source or byline
    if not paragraphs:
        raise SkipFile(f"{origin.doc_id} has no text", "empty", failed=False)
    title = meta.title or parsed.title or headline_title(paragraphs) or origin.stem
    document = Document.from_paragraphs(
        origin.doc_id,
        paragraphs,
        repair=False,
        title=title,
        date=meta.date,
        author=meta.author,
        source=meta.source,
        url=meta.url,
        categories=meta.categories,
        path=str(origin.path) if origin.path else None,
    )
    document.pages = page_starts(document.text, parsed.page_leads)
    return document


class ArticleLoader(TextFormatLoader):
    """One article per text file: front matter, a body in some format, metadata."""

    @abstractmethod
    def parse(self, body: str, *, front_matter: bool) -> ParsedBody:
        """Paragraphs (and what the markup says) of the body; `front_matter` tells if there was some."""

    def load(
        self, text: str, origin: Origin, *, on_error: Callable[[LoadError], None] | None = None
    ) -> list[Document]:
        mapping, body = split_front_matter(text, origin.doc_id)
        return [article_document(self.parse(body, front_matter=bool(mapping)), origin, mapping)]
