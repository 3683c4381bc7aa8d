"""JSON Lines: one document per line, and the same record format for JSON bodies of the API.

A record is `{"text": ..., "doc_id"?, "title"?, "date"?, "source"?, "author"?, "url"?, "categories"?}`;
other fields are ignored. An upload with one bad line is refused as a whole (the client gets the error
at once and sends it again); `semsearch index` indexes the good lines of a file and reports each bad one
by file and line, keeping what the index held from the file (see `index.loaders.factory`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from index.documents import Document, LoadError
from index.loaders.base import Origin, TextFormatLoader, headline_title, parse_date
from index.repair import repair_paragraphs
from index.text import drop_invisible, split_paragraphs

_OPTIONAL_TEXT_FIELDS = ("title", "source", "author", "url")


def _optional_text(record: dict[str, Any], key: str, where: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LoadError(f"{where}: field {key!r} must be a string, not {type(value).__name__}")
    return value.strip() or None


def _categories(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise LoadError(f"{where}: field 'categories' must be a string or a list of strings")


def record_to_document(
    record: Any, *, where: str, default_id: str | None = None, path: Path | None = None
) -> Document:
    """A validated record as a document; LoadError names `where` ("line 3 of docs.jsonl") and the field.

    Without a `doc_id` the document gets `default_id`, or else an id derived from its text, so that
    sending the same text twice replaces it instead of adding a copy.
    """
    if not isinstance(record, dict):
        raise LoadError(f"{where} is not a JSON object")
    text = record.get("text")
    if not isinstance(text, str) or not drop_invisible(text).strip():
        raise LoadError(f"{where}: field 'text' is required and must hold text (not only white space or "
                        "control characters)")
    doc_id = record.get("doc_id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if doc_id is not None and (not isinstance(doc_id, str) or not doc_id.strip()):
        raise LoadError(f"{where}: field 'doc_id' must be a non-empty string")
    if doc_id is None:
        doc_id = default_id or hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    fields = {key: _optional_text(record, key, where) for key in _OPTIONAL_TEXT_FIELDS}
    try:
        day = parse_date(record.get("date"))
    except ValueError as exc:
        raise LoadError(f"{where}: field 'date' {exc}") from None
    paragraphs = repair_paragraphs(split_paragraphs(text))
    return Document.from_paragraphs(
        doc_id.strip(),
        paragraphs,
        repair=False,
        title=fields["title"] or headline_title(paragraphs) or "",
        date=day,
        author=fields["author"],
        source=fields["source"],
        url=fields["url"],
        categories=_categories(record.get("categories"), where),
        path=str(path) if path else None,
    )


def records_to_documents(
    records: list[tuple[str, Any]],
    default_ids: list[str | None] | None = None,
    path: Path | None = None,
    on_error: Callable[[LoadError], None] | None = None,
) -> list[Document]:
    """Documents of (where, record) pairs; a doc_id used twice is an error naming both places.

    Errors are raised, or with `on_error` reported and the record left out.
    """
    documents: list[Document] = []
    seen: dict[str, str] = {}
    for i, (where, record) in enumerate(records):
        default_id = default_ids[i] if default_ids else None
        try:
            document = record_to_document(record, where=where, default_id=default_id, path=path)
            if document.doc_id in seen:
                raise LoadError(
                    f"{where}: doc_id {document.doc_id!r} was already used by {seen[document.doc_id]}"
                )
        except LoadError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        seen[document.doc_id] = where
        documents.append(document)
    return documents


class JSONLLoader(TextFormatLoader):
    """.jsonl files: every non-blank line a JSON object with at least `text`."""

    extensions = (".jsonl",)

    def load(
        self, text: str, origin: Origin, *, on_error: Callable[[LoadError], None] | None = None
    ) -> list[Document]:
        name = origin.doc_id
        records: list[tuple[str, Any]] = []
        default_ids: list[str | None] = []
        errors: list[LoadError] = []

        def bad(exc: LoadError) -> None:
            if on_error is None:
                raise exc
            errors.append(exc)
            on_error(exc)

        # split on "\n" only: str.splitlines would also cut at U+2028, which JSON strings may contain raw
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            where = f"line {number} of {name}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                bad(LoadError(f"{where} is not valid JSON: {exc.msg} (column {exc.colno})"))
                continue
            records.append((where, record))
            default_ids.append(f"{name}#{number}")
        if not records:
            raise LoadError(f"{name} has no valid records" if errors else f"{name} has no records")
        documents = records_to_documents(records, default_ids, path=origin.path, on_error=bad)
        if not documents:
            raise LoadError(f"{name} has no valid records")
        return documents
