"""The rules of Chinese (and mixed) text, in one place: what a CJK character is, what ends a sentence, how
text splits into paragraphs, and the one jieba dictionary of the process.

Repair, loaders, chunking, analysis, answers, generation and evaluation all use these; a rule changed
here changes for all of them.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import mmap
import os
import re
import struct
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

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
# A sentence ends at a run of sentence-final punctuation (closers included), at a period followed by
# white space or the end (so 3.5 and U.S.A stay whole; abbreviations are the caller's to judge), or at a
# line break (headings and list items stand on their own lines).
SENTENCE_END = re.compile(
    rf"\n+|[{re.escape(SENTENCE_FINAL)}]+[{re.escape(CLOSERS)}]*|\.+[{re.escape(CLOSERS)}]*(?=\s|$)"
)

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

# The prefix dictionary (word -> frequency; 0 for a prefix that is no word) is also kept in parts, by the
# first character of the word: a query, whose words start with a few dozen characters, reads a few dozen
# kilobytes instead of the whole dictionary (~0.4 s of marshal.load). Every word jieba looks up in one
# call to `cut` starts at a character of the text, so the parts of those characters answer it exactly.
DICTIONARY_PARTS = 512
# Once this many parts were read (a process that segments many texts: indexing, a busy server), the rest
# are read too and jieba gets the whole dictionary as a plain dict, its fastest form.
_WHOLE_AFTER = DICTIONARY_PARTS // 4
_PARTS_FORMAT = 1
_HEADER = struct.Struct("<Q")  # the length of the marshalled header that follows it


def jieba_cache_file() -> Path:
    """jieba's prefix dictionary, cached (marshal) in semsearch's cache folder: ~0.3 s to load, not ~1 s."""
    from index import settings

    return settings.cache_dir() / "jieba" / "jieba.cache"


def jieba_parts_file() -> Path:
    """The same dictionary in parts (`DICTIONARY_PARTS`), beside it."""
    return jieba_cache_file().with_name("jieba.parts")


def _part_of(word: str) -> int:
    return ord(word[0]) % DICTIONARY_PARTS if word else 0


def _dictionary_key() -> list[Any]:
    """What the parts were made from: jieba's version and its dictionary file."""
    import jieba

    stat = Path(jieba.__file__).with_name("dict.txt").stat()
    return [_PARTS_FORMAT, DICTIONARY_PARTS, jieba.__version__, stat.st_size, stat.st_mtime_ns]


def _write_parts(path: Path, freq: dict[str, int], total: int) -> None:
    """Split the whole dictionary into the parts file, written to a temporary name and renamed into place."""
    parts: list[dict[str, int]] = [{} for _ in range(DICTIONARY_PARTS)]
    for word, count in freq.items():
        parts[_part_of(word)][word] = count
    blobs = [marshal.dumps(part) for part in parts]
    spans, offset = [], 0
    for blob in blobs:
        spans.append((offset, offset + len(blob)))
        offset += len(blob)
    header = marshal.dumps((_dictionary_key(), total, spans))
    fd, tmp = tempfile.mkstemp(prefix=".jieba.parts-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_HEADER.pack(len(header)) + header)
            for blob in blobs:
                out.write(blob)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _PartedDictionary(Mapping[str, int]):
    """jieba's `FREQ` read from the parts file a part at a time, as words are looked up; the same answers as
    the whole dictionary. After `_WHOLE_AFTER` parts it reads the rest and hands `owner` the plain dict."""

    def __init__(self, data: mmap.mmap, start: int, spans: list[tuple[int, int]], owner: Any) -> None:
        self._data, self._start, self._spans, self._owner = data, start, spans, owner
        self._parts: dict[int, dict[str, int]] = {}
        self._whole: dict[str, int] | None = None
        self._lock = threading.Lock()

    def _read(self, index: int) -> dict[str, int]:
        begin, end = self._spans[index]
        return marshal.loads(self._data[self._start + begin : self._start + end])

    def _part(self, word: str) -> dict[str, int]:
        if self._whole is not None:
            return self._whole
        index = _part_of(word)
        part = self._parts.get(index)
        if part is None:
            with self._lock:
                if self._whole is not None:
                    return self._whole
                part = self._parts.get(index)
                if part is None:
                    part = self._parts[index] = self._read(index)
                    if len(self._parts) >= _WHOLE_AFTER:
                        self._read_all()
        return part

    def _read_all(self) -> None:
        whole: dict[str, int] = {}
        for index in range(len(self._spans)):
            whole.update(self._parts.get(index) or self._read(index))
        self._whole = whole
        self._parts = {}
        self._data.close()
        self._owner.FREQ = whole  # jieba reads `self.FREQ` on every lookup: from now on the plain dict

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self._part(word)

    def __getitem__(self, word: str) -> int:
        return self._part(word)[word]

    def get(self, word: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._part(word).get(word, default)

    def _complete(self) -> dict[str, int]:
        with self._lock:
            if self._whole is None:
                self._read_all()
        assert self._whole is not None
        return self._whole

    def __iter__(self) -> Iterator[str]:
        return iter(self._complete())

    def __len__(self) -> int:
        return len(self._complete())


def _open_parts(path: Path, tokenizer: Any) -> bool:
    """Give `tokenizer` the parted dictionary of `path`; False when the file is missing, damaged or stale."""
    try:
        with open(path, "rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        (length,) = _HEADER.unpack_from(data, 0)
        start = _HEADER.size + length
        key, total, spans = marshal.loads(data[_HEADER.size : start])
        if key != _dictionary_key() or len(spans) != DICTIONARY_PARTS or start + spans[-1][1] != len(data):
            data.close()
            return False
    except (OSError, ValueError, EOFError, TypeError, struct.error):
        return False
    tokenizer.FREQ = _PartedDictionary(data, start, spans, tokenizer)
    tokenizer.total = total
    tokenizer.initialized = True
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
                cache = jieba_cache_file()
                if not _open_parts(jieba_parts_file(), tokenizer):
                    writable = True
                    try:
                        cache.parent.mkdir(parents=True, exist_ok=True)
                        tokenizer.tmp_dir = str(cache.parent)
                        tokenizer.cache_file = cache.name
                    except OSError:  # a read-only home: jieba's own cache in the temporary folder
                        writable = False
                    tokenizer.initialize()
                    if writable:
                        with contextlib.suppress(OSError):  # a full disk: the next process loads it whole
                            _write_parts(jieba_parts_file(), tokenizer.FREQ, tokenizer.total)
                _jieba = tokenizer
    return _jieba
