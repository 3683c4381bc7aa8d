"""Documents from files, folders, uploads and JSON bodies; the loader is chosen by file extension."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from index.config import max_file_bytes
from index.documents import Document, LoadError, SkippedFile, doc_id_problem
from index.loaders.base import Loader, Origin, SkipFile, decode_bytes
from index.loaders.docx import DocxLoader
from index.loaders.html import HTMLLoader
from index.loaders.jsonl import JSONLLoader, records_to_documents
from index.loaders.markdown import MarkdownLoader
from index.loaders.pdf import PDFLoader
from index.loaders.text import TextLoader

logger = logging.getLogger(__name__)

LOADERS: tuple[type[Loader], ...] = (
    TextLoader,
    MarkdownLoader,
    HTMLLoader,
    JSONLLoader,
    PDFLoader,
    DocxLoader,
)
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(ext for loader in LOADERS for ext in loader.extensions)


class LoaderFactory:
    """Creates the loader for a file name."""

    @staticmethod
    def create(name: str | Path) -> Loader | None:
        """Loader for the extension of `name` (case-insensitive), None if the type is not supported."""
        extension = PurePosixPath(str(name)).suffix.lower()
        for loader in LOADERS:
            if extension in loader.extensions:
                return loader()
        return None


# Document formats that are not read, and what to save them as instead.
_CONVERTIBLE = {
    ".doc": "Word 97-2003",
    ".wps": "WPS",
    ".rtf": "RTF",
    ".odt": "OpenDocument",
    ".pages": "Pages",
}


def _unsupported(name: str) -> str:
    extension = PurePosixPath(name).suffix
    if not extension:
        return "unsupported file type (no extension)"
    if kind := _CONVERTIBLE.get(extension.lower()):
        return f"unsupported file type {extension} ({kind}); save it as .docx or PDF to index it"
    return f"unsupported file type {extension}"


def _hidden(name: str) -> bool:
    return name.startswith(".")


IGNORE_FILE = ".semsearchignore"


@dataclass(frozen=True)
class IgnoreRules:
    """The patterns of a folder's `.semsearchignore`: files and folders under it that are not indexed, as
    if they were not there (a file indexed before is then removed, as a deleted one is).

    One shell pattern a line (`*`, `?`, `[…]`; `*` also crosses `/`); blank lines and `#` comments are
    passed over. A pattern without `/` matches a file or folder of that name at any depth (`*.tmp`,
    `drafts`); one with `/` matches the path from the folder (`archive/2019/*.pdf`, `/scans`); a trailing
    `/` matches folders only; a leading `!` takes back what an earlier line left out (not inside a folder
    left out). The last line that matches decides."""

    # (pattern, taken back, from the folder, folders only)
    rules: tuple[tuple[str, bool, bool, bool], ...] = ()

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        rules = []
        for line in text.splitlines():
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            negated = pattern.startswith("!")
            pattern = pattern.removeprefix("!")
            folders_only = pattern.endswith("/")
            pattern = pattern.rstrip("/")
            anchored = "/" in pattern
            if pattern := pattern.lstrip("/"):
                rules.append((pattern, negated, anchored, folders_only))
        return cls(tuple(rules))

    def excludes(self, relative: PurePosixPath, is_folder: bool) -> bool:
        left_out = False
        for pattern, negated, anchored, folders_only in self.rules:
            if folders_only and not is_folder:
                continue
            if fnmatchcase(str(relative) if anchored else relative.name, pattern):
                left_out = not negated
        return left_out


def _walk(folder: Path, on_error: Callable[[OSError], None], rules: IgnoreRules) -> tuple[list[Path], int]:
    """Supported files under `folder`, recursively, hidden ones and those `rules` leave out left out,
    sorted by relative path; and documents in a format that is not read (`_CONVERTIBLE`: a .doc among
    .docx files), which the caller reports rather than leave out in silence. Also how many files and
    folders `rules` left out.

    A sub-folder that cannot be listed goes to `on_error`: left out silently, its files would look
    deleted.
    """
    found: list[Path] = []
    left_out = 0
    for current, dirs, files in os.walk(folder, onerror=on_error):
        here = PurePosixPath(Path(current).relative_to(folder).as_posix())
        kept = [d for d in dirs if not _hidden(d) and not rules.excludes(here / d, True)]
        left_out += sum(1 for d in dirs if not _hidden(d)) - len(kept)
        dirs[:] = kept
        for name in files:
            if _hidden(name):
                continue
            if LoaderFactory.create(name) is not None or PurePosixPath(name).suffix.lower() in _CONVERTIBLE:
                if rules.excludes(here / name, False):
                    left_out += 1
                else:
                    found.append(Path(current, name))
    return sorted(found, key=lambda p: p.relative_to(folder).parts), left_out


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def _not_regular(mode: int, doc_id: str) -> SkipFile | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return SkipFile(f"{doc_id} is {kind}, not a regular file", f"not a regular file ({kind[2:]})")


def _too_large(doc_id: str, limit: int) -> SkipFile:
    return SkipFile(
        f"{doc_id} is larger than {limit:,} bytes; raise SEMSEARCH_MAX_FILE_BYTES to index it",
        f"larger than {limit:,} bytes (SEMSEARCH_MAX_FILE_BYTES)",
    )


def read_file(file: Path, doc_id: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; SkipFile for anything else.

    Only regular files are read: a FIFO would block the run until something writes to it, and a
    device (a symlink to /dev/zero) never ends. The type is checked before opening (opening some
    devices has effects) and again on the open descriptor, which is opened without blocking so a FIFO
    swapped in meanwhile cannot hang us; the read stops at `limit` + 1 bytes whatever the file claims.
    """

    def unreadable(exc: OSError) -> SkipFile:
        reason = exc.strerror or str(exc)
        return SkipFile(f"{doc_id} cannot be read: {reason}", f"unreadable: {reason}")

    try:
        if refused := _not_regular(os.stat(file).st_mode, doc_id):
            raise refused
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise unreadable(exc) from exc
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(fd)
            if refused := _not_regular(info.st_mode, doc_id):
                raise refused
            if info.st_size > limit:
                raise _too_large(doc_id, limit)
            data = handle.read(limit + 1)
        except OSError as exc:
            raise unreadable(exc) from exc
    if len(data) > limit:
        raise _too_large(doc_id, limit)
    return data


def relative_id(root: Path, file: Path) -> str:
    """The default doc_id of a file: its posix path relative to the folder given."""
    return file.relative_to(root).as_posix()


DocIdRule = Callable[[Path, Path], str]  # (root given, file) -> doc_id of the file


def load_documents(
    paths: Iterable[str | Path],
    *,
    on_skip: Callable[[SkippedFile], None] | None = None,
    doc_id_of: DocIdRule = relative_id,
) -> Iterator[tuple[Path, Document]]:
    """(root, document) for every document in these files and folders.

    Folders are read recursively in sorted order, skipping hidden files and folders and files of other
    types; `root` is the folder given (for a file given on its own: its folder), and each doc_id is
    `doc_id_of(root, file)`, by default the file's path relative to the root (the builder passes its own
    rule, which keeps ids unique across folders). Files that cannot be read as documents are reported to
    `on_skip` and logged; the run goes on. A bad line of a JSONL file is reported naming the file and
    line, and the file's other lines are read. Only regular files of at most SEMSEARCH_MAX_FILE_BYTES
    are read.
    """

    def skip(path: Path | str, reason: str, failed: bool = True, rest_read: bool = False) -> None:
        skipped = SkippedFile(str(path), reason, failed, rest_read)
        logger.warning("%s", skipped.describe())
        if on_skip is not None:
            on_skip(skipped)

    def unlisted(exc: OSError) -> None:
        skip(exc.filename, f"folder cannot be read: {exc.strerror or exc}")

    limit = max_file_bytes()
    for given in paths:
        # Absolute, resolved folders: the builder compares document paths against resolved folders.
        path = Path(given).expanduser()
        if path.is_dir():
            root = path.resolve()
            try:
                rules = IgnoreRules.parse((root / IGNORE_FILE).read_text(encoding="utf-8"))
            except FileNotFoundError:
                rules = IgnoreRules()
            except (OSError, UnicodeDecodeError) as exc:  # indexing what it would leave out loses nothing
                skip(root / IGNORE_FILE, f"cannot be read, so nothing was left out by it: {exc}")
                rules = IgnoreRules()
            files, left_out = _walk(root, unlisted, rules)
            if left_out:
                skip(root / IGNORE_FILE, f"left out {left_out} file(s) and folder(s) matching its patterns",
                     failed=False)
        elif os.path.lexists(path):  # a file, or a FIFO, device or dangling link that read_file refuses
            root = path.absolute().parent.resolve()  # the folder resolved, not a symlinked file
            files = [root / path.name]
        else:
            skip(path, "no such file or folder")
            continue
        for file in files:
            loader = LoaderFactory.create(file.name)
            if loader is None:  # a file given on its own, or a document format that is not read
                skip(file, _unsupported(file.name), failed=False)
                continue
            doc_id = doc_id_of(root, file)
            if (problem := doc_id_problem(doc_id)) is not None:
                # its id could be stored but never fetched or deleted again; and a name that is not UTF-8
                # would fail the whole build where the id is written
                skip(file, f"rename it: its name cannot be a document id ({problem})")
                continue
            bad_lines: list[LoadError] = []
            failure: tuple[str, bool] | None = None
            try:
                data = read_file(file, doc_id, limit)
                documents = loader.read(data, Origin(doc_id, file), on_error=bad_lines.append)
            except SkipFile as exc:
                failure = exc.reason, exc.failed
            except LoadError as exc:
                failure = str(exc), True
            except Exception as exc:  # a parser bug or a pathological file must not stop the whole run
                logger.exception("failed to read %s", file)
                failure = f"could not be read: {type(exc).__name__}: {exc}", True
            for error in bad_lines:
                skip(file, str(error), rest_read=failure is None)
            if failure is not None:
                skip(file, *failure)
                continue
            for document in documents:
                yield root, document


def _upload_id(name: str) -> str:
    """A safe relative posix doc_id for an uploaded file name (no leading '/', no '..')."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "..", ".")]
    return "/".join(parts)


def load_bytes(name: str, data: bytes) -> list[Document]:
    """Documents of an uploaded file; LoadError with a message for the user if it cannot be read.

    The doc_id is the file name (for JSONL: each record's doc_id, else `name#line`); `path` is None.
    """
    doc_id = _upload_id(name)
    if not doc_id:
        raise LoadError(f"{name!r} is not a usable file name")
    loader = LoaderFactory.create(doc_id)
    if loader is None:
        decode_bytes(data, doc_id)  # first: "docs.bin is binary" says more than "unsupported .bin"
        raise LoadError(f"{doc_id}: {_unsupported(doc_id)} (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    return loader.read(data, Origin(doc_id))


def documents_from_records(records: list[dict[str, Any]]) -> list[Document]:
    """Documents of JSON records (the fields of a JSONL line); LoadError names the record and field.

    A record without doc_id gets an id derived from its text.
    """
    if not isinstance(records, list):
        raise LoadError("expected a list of records")
    return records_to_documents([(f"records[{i}]", record) for i, record in enumerate(records)])
