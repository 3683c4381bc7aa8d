"""The rules of Chinese (and mixed) text, in one place: what a CJK character is, what ends a sentence, how
text splits into paragraphs, and the one jieba dictionary of the process.

Repair, loaders, chunking, analysis, answers, generation and evaluation all use these; a rule changed
here changes for all of them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from pathlib import Path
from typing import Any

# --- invisible characters -------------------------------------------------------------------------------
# Zero-width space, non-joiner and joiner, word joiner, byte-order mark: characters that show nothing and
# that pasted or scraped text carries inside words. Text and queries lose them, so "区\u200b域" is "区域".
# So do control characters (NUL, ESC, DEL, the C1 block …), but not tab, line ends (NEL too) and the form
# feed that parts pages, which are white space: a text of control characters alone is no text.
INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def drop_invisible(text: str) -> str:
    """`text` without its invisible characters (`INVISIBLE`)."""
    return INVISIBLE.sub("", text)


# --- CJK characters -------------------------------------------------------------------------------------
# CJK unified ideographs: extension A, the basic block, compatibility ideographs, extensions B-F and the
# compatibility supplement (U+20000-U+2FA1F), extensions G-H (U+30000-U+323AF).
CJK_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2FA1F),
    (0x30000, 0x323AF),
)
# Kana and hangul: not ideographs, but like them written without spaces between words.
_KANA_HANGUL = ((0x3040, 0x30FF), (0xAC00, 0xD7AF))

CJK_CHARS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES)  # the body of a regex class
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")


def is_cjk(char: str) -> bool:
    """A CJK ideograph (any block, extensions included)."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in CJK_RANGES)


def is_spaceless(char: str) -> bool:
    """An ideograph, kana or hangul syllable: text written without spaces between words."""
    code = ord(char)
    return is_cjk(char) or any(lo <= code <= hi for lo, hi in _KANA_HANGUL)


def count_cjk(text: str) -> int:
    return sum(1 for c in text if is_cjk(c))


def has_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None


# --- sentences ----------------------------------------------------------------------------------------
# End a sentence wherever they stand (Chinese text puts no space after them, and often uses the ASCII
# forms of ! ? ; between CJK characters).
SENTENCE_FINAL = "。！？；…．!?;"
# Closing quotes and brackets stay with the sentence they close.
CLOSERS = "”’」』）)》〉】］]\"'"
OPENERS = "“‘「『（(《〈【［[\"'"
# Clause punctuation inside a sentence (full-width and ASCII).
CLAUSE_MARKS = "，,；;、：:"
# A sentence ends at a run of sentence-final punctuation (closers included), at a period followed by
# white space or the end (so 3.5 and U.S.A stay whole; abbreviations are the caller's to judge), or at a
# line break (headings and list items stand on their own lines).
SENTENCE_END = re.compile(
    rf"\n+|[{re.escape(SENTENCE_FINAL)}]+[{re.escape(CLOSERS)}]*|\.+[{re.escape(CLOSERS)}]*(?=\s|$)"
)

MAX_SENTENCE_CHARS = 400  # longer "sentences" (lists, tables) are cut at commas to stay readable
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc no inc co ltd mt ft fig al gen col lt sgt rev "  # noqa: SIM905
    "u.s e.g i.e a.m p.m".split()
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence of `text`, white space trimmed; `text[start:end]` is the sentence.

    A period ends an English sentence only when white space follows and the word before it is not an
    abbreviation or an initial ("U.S. President", "J. Smith"), so decimals and names stay whole.
    """
    spans: list[tuple[int, int]] = []
    at = 0
    for m in SENTENCE_END.finditer(text):
        if m.group().startswith(".") and _is_abbreviation(text, m.start()):
            continue
        _add_trimmed(text, at, m.end(), spans)
        at = m.end()
    _add_trimmed(text, at, len(text), spans)
    out: list[tuple[int, int]] = []
    for start, end in spans:
        out.extend(_cut_long(text, start, end))
    return out


def _is_abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"([A-Za-z.]+)$", text[max(0, dot - 12) : dot])
    if word is None:
        return False
    w = word.group(1)
    return (len(w) == 1 and w.isupper()) or w.lower().rstrip(".") in _ABBREVIATIONS


def _add_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def _cut_long(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A run-on "sentence" (a list, a table flattened into text) cut at clause marks into readable parts."""
    if end - start <= MAX_SENTENCE_CHARS:
        return [(start, end)]
    parts: list[tuple[int, int]] = []
    at = start
    while end - at > MAX_SENTENCE_CHARS:
        window = text[at : at + MAX_SENTENCE_CHARS]
        cut = max(window.rfind(c) for c in "，,；;、 ")
        cut = at + cut + 1 if cut > MAX_SENTENCE_CHARS // 3 else at + MAX_SENTENCE_CHARS
        _add_trimmed(text, at, cut, parts)
        at = cut
    _add_trimmed(text, at, end, parts)
    return parts


# --- paragraphs -----------------------------------------------------------------------------------------
# A blank line (white space allowed on it, full-width and no-break spaces included) separates paragraphs.
BLANK_LINE = re.compile(r"\n[ \t\u3000\u00a0]*\n")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of plain text: blocks between blank lines, or lines if there is no blank line.

    Text without blank lines usually has one paragraph per line; wrapped lines of one paragraph are
    joined again by the repair, which sees that a line stops mid-sentence. Blank blocks are dropped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    blocks = BLANK_LINE.split(text) if BLANK_LINE.search(text) else text.split("\n")
    return [block for block in blocks if block.strip()]


# --- jieba ----------------------------------------------------------------------------------------------
_lock = threading.Lock()
_jieba: Any = None
# The prefix dictionary (word -> frequency; 0 for a prefix that is no word) is also kept in parts by its
# first characters (`index.parts`): every word jieba looks up while cutting a text starts at a character of
# it, so a query reads a few dozen small parts instead of the whole dictionary (~0.4 s).
_PARTS_FORMAT = 1


def jieba_cache_file() -> Path:
    """jieba's prefix dictionary, cached (marshal) in semsearch's cache folder: ~0.3 s to load, not ~1 s."""
    from index import settings

    return settings.cache_dir() / "jieba" / "jieba.cache"


def jieba_parts_file() -> Path:
    """The same dictionary in parts, beside it."""
    return jieba_cache_file().with_name("jieba.parts")


def _dictionary_key() -> list[Any]:
    """What the parts were made from: jieba's version and its dictionary file."""
    import jieba

    stat = Path(jieba.__file__).with_name("dict.txt").stat()
    return [_PARTS_FORMAT, jieba.__version__, stat.st_size, stat.st_mtime_ns]


def _open_parts(path: Path, tokenizer: Any) -> bool:
    """Give `tokenizer` the parted dictionary of `path`; False when the file is missing, damaged or stale."""
    from index.parts import open_parts

    parted = open_parts(path)
    if parted is None or not isinstance(parted.header, list) or parted.header[:-1] != _dictionary_key():
        return False
    tokenizer.FREQ = parted
    tokenizer.total = parted.header[-1]
    tokenizer.initialized = True
    # jieba reads `self.FREQ` at every lookup: once the parts add up to the whole, it gets the plain dict
    parted.on_whole = lambda whole: setattr(tokenizer, "FREQ", whole)
    return True


def jieba_tokenizer() -> Any:
    """The process's one jieba tokenizer with its dictionary (lazily, once, thread-safe): read by parts
    where the parts file is current, else loaded whole and the parts file written for the next process."""
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import jieba

                # jieba logs the dictionary loading at DEBUG to a stderr handler of its own.
                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                if not _open_parts(jieba_parts_file(), tokenizer):
                    cache = jieba_cache_file()
                    writable = True
                    try:
                        cache.parent.mkdir(parents=True, exist_ok=True)
                        tokenizer.tmp_dir = str(cache.parent)
                        tokenizer.cache_file = cache.name
                    except OSError:  # a read-only home: jieba's own cache in the temporary folder
                        writable = False
                    tokenizer.initialize()
                    if writable:
                        from index.parts import write_parts

                        with contextlib.suppress(OSError):  # a full disk: the next process loads it whole
                            header = [*_dictionary_key(), tokenizer.total]
                            write_parts(jieba_parts_file(), tokenizer.FREQ, header)
                _jieba = tokenizer
    return _jieba
