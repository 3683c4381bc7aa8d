"""Loaders: files, folders, uploads and JSON bodies in, `Document`s out."""

from index.loaders.base import Loader, Origin, decode_bytes, parse_date
from index.loaders.factory import (
    IGNORE_FILE,
    SUPPORTED_EXTENSIONS,
    IgnoreRules,
    LoaderFactory,
    documents_from_records,
    load_bytes,
    load_documents,
)

__all__ = [
    "IGNORE_FILE",
    "SUPPORTED_EXTENSIONS",
    "IgnoreRules",
    "Loader",
    "LoaderFactory",
    "Origin",
    "decode_bytes",
    "documents_from_records",
    "load_bytes",
    "load_documents",
    "parse_date",
]
