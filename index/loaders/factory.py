"""Documents from files, folders, uploads and JSON bodies; the loader is chosen by file extension."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from index.documents import Document, LoadError, SkippedFile
from index.loaders.base import Loader, Origin, SkipFile, decode_bytes
from index.loaders.html import HTMLLoader
from index.loaders.jsonl import JSONLLoader, records_to_documents
from index.loaders.markdown import MarkdownLoader
from index.loaders.text import TextLoader

logger = logging.getLogger(__name__)

LOADERS: tuple[type[Loader], ...] = (TextLoader, MarkdownLoader, HTMLLoader, JSONLLoader)
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


def _unsupported(name: str) -> str:
    extension = PurePosixPath(name).suffix
    return f"unsupported file type {extension}" if extension else "unsupported file type (no extension)"


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(folder: Path) -> list[Path]:
    """Supported files under `folder`, recursively, hidden ones left out, sorted by relative path."""
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        for name in files:
            if not _hidden(name) and LoaderFactory.create(name) is not None:
                found.append(Path(current, name))
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _load_file(file: Path, root: Path, loader: Loader) -> list[Document]:
    doc_id = file.relative_to(root).as_posix()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise SkipFile(
            f"{doc_id} cannot be read: {exc.strerror or exc}", f"unreadable: {exc.strerror or exc}"
        ) from exc
    return loader.load(decode_bytes(data, doc_id), Origin(doc_id, file))


def load_documents(
    paths: Iterable[str | Path], *, on_skip: Callable[[SkippedFile], None] | None = None
) -> Iterator[tuple[Path, Document]]:
    """(root, document) for every document in these files and folders.

    Folders are read recursively in sorted order, skipping hidden files and folders and files of other
    types; `root` is the folder given (for a file given on its own: its folder), and each doc_id is the
    file's path relative to it. Files that cannot be read as documents are reported to `on_skip` and
    logged; the run goes on. All documents of a file are read before any is yielded, so a JSONL file
    with a bad line yields nothing.
    """

    def skip(path: Path, reason: str) -> None:
        logger.warning("skipping %s: %s", path, reason)
        if on_skip is not None:
            on_skip(SkippedFile(str(path), reason))

    for given in paths:
        # Absolute, resolved folders: the builder compares document paths against resolved folders.
        path = Path(given).expanduser()
        if path.is_dir():
            root = path.resolve()
            files = _walk(root)
        elif path.is_file():
            root = path.absolute().parent.resolve()  # the folder resolved, not a symlinked file
            files = [root / path.name]
        else:
            skip(path, "no such file or folder")
            continue
        for file in files:
            loader = LoaderFactory.create(file.name)
            if loader is None:  # only a file given on its own gets here
                skip(file, _unsupported(file.name))
                continue
            try:
                documents = _load_file(file, root, loader)
            except SkipFile as exc:
                skip(file, exc.reason)
                continue
            except LoadError as exc:
                skip(file, str(exc))
                continue
            except Exception as exc:  # a parser bug or a pathological file must not stop the whole run
                logger.exception("failed to read %s", file)
                skip(file, f"could not be read: {type(exc).__name__}: {exc}")
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
    text = decode_bytes(data, doc_id)  # first: "docs.bin is binary" says more than "unsupported .bin"
    loader = LoaderFactory.create(doc_id)
    if loader is None:
        raise LoadError(f"{doc_id}: {_unsupported(doc_id)} (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    return loader.load(text, Origin(doc_id))


def documents_from_records(records: list[dict[str, Any]]) -> list[Document]:
    """Documents of JSON records (the fields of a JSONL line); LoadError names the record and field.

    A record without doc_id gets an id derived from its text.
    """
    if not isinstance(records, list):
        raise LoadError("expected a list of records")
    return records_to_documents([(f"records[{i}]", record) for i, record in enumerate(records)])
