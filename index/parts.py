"""A large dict of str keys kept on disk in parts, by the first two characters of the key, and read a part
at a time: a process that looks up the words of one query reads a few dozen kilobytes, not the whole dict.

Used for jieba's dictionary (`index.text`) and the model's vocabulary (`index.embedders.onnx`), whose full
loads are most of a cold `semsearch search`. A lookup of a key reads the one part its first two
characters fall in (two, not one: a quarter of the model's pieces start with the word-start mark); after
`whole_after` parts the rest are read too and the owner is handed the whole dict, the fastest form for a
process that looks up a lot (indexing, a busy server).

The file: an 8-byte length, a marshalled header (`FORMAT`, the caller's value, the spans of the parts),
then the parts, each a marshalled dict. Written to a temporary name and renamed into place.
"""

from __future__ import annotations

import marshal
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

PARTS = 4096
FORMAT = 1  # bump when `part_of` or the layout changes: older files are then refused (and written again)
_LENGTH = struct.Struct("<Q")


def part_of(key: str) -> int:
    if len(key) > 1:
        return (ord(key[0]) * 7919 + ord(key[1])) % PARTS
    return ord(key[0]) % PARTS if key else 0


def write_parts(path: Path, whole: Mapping[str, Any], header: Any) -> None:
    """Write `whole` in parts to `path`, with `header` (any marshal-able value) for `open_parts` to return."""
    parts: list[dict[str, Any]] = [{} for _ in range(PARTS)]
    for key, value in whole.items():
        parts[part_of(key)][key] = value
    blobs = [marshal.dumps(part) for part in parts]
    spans, offset = [], 0
    for blob in blobs:
        spans.append((offset, offset + len(blob)))
        offset += len(blob)
    head = marshal.dumps((FORMAT, header, spans))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_LENGTH.pack(len(head)) + head)
            for blob in blobs:
                out.write(blob)
        os.chmod(tmp, 0o644)  # the cache is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PartedDict(Mapping[str, Any]):
    """The dict of a parts file, read as keys are looked up; the same answers as the whole dict.

    `on_whole(whole)` is called once when the whole dict has been read (after `whole_after` parts, or when
    the mapping is iterated); lookups then answer from it.
    """

    def __init__(self, data: mmap.mmap, start: int, spans: list[tuple[int, int]], header: Any) -> None:
        self.header = header
        self.whole_after = PARTS // 4
        self.on_whole: Callable[[dict[str, Any]], None] | None = None
        self._data, self._start, self._spans = data, start, spans
        self._parts: dict[int, dict[str, Any]] = {}
        self._whole: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def parts_read(self) -> int:
        return PARTS if self._whole is not None else len(self._parts)

    def _read(self, index: int) -> dict[str, Any]:
        begin, end = self._spans[index]
        return marshal.loads(self._data[self._start + begin : self._start + end])

    def _part(self, key: str) -> dict[str, Any]:
        if self._whole is not None:
            return self._whole
        index = part_of(key)
        part = self._parts.get(index)
        if part is None:
            with self._lock:
                if self._whole is not None:
                    return self._whole
                part = self._parts.get(index)
                if part is None:
                    part = self._parts[index] = self._read(index)
                    if len(self._parts) >= self.whole_after:
                        self._read_whole()
        return part

    def _read_whole(self) -> dict[str, Any]:
        if self._whole is None:
            whole: dict[str, Any] = {}
            for index in range(len(self._spans)):
                whole.update(self._parts.get(index) or self._read(index))
            self._whole, self._parts = whole, {}
            self._data.close()
            if self.on_whole is not None:
                self.on_whole(whole)
        return self._whole

    def whole(self) -> dict[str, Any]:
        """The whole dict (read now if it was not yet)."""
        with self._lock:
            return self._read_whole()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._part(key)

    def __getitem__(self, key: str) -> Any:
        return self._part(key)[key]

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._part(key).get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.whole())

    def __len__(self) -> int:
        return len(self.whole())


def open_parts(path: Path) -> PartedDict | None:
    """The parts file at `path`, or None when it is missing or not a complete parts file."""
    try:
        with open(path, "rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # missing, or empty (mmap cannot map an empty file)
        return None
    try:
        (length,) = _LENGTH.unpack_from(data, 0)
        start = _LENGTH.size + length
        form, header, spans = marshal.loads(data[_LENGTH.size : start])
        if form == FORMAT and len(spans) == PARTS and start + spans[-1][1] == len(data):
            return PartedDict(data, start, spans, header)
    except (ValueError, EOFError, TypeError, struct.error):
        pass
    data.close()
    return None
