"""Weights trained on this machine that ship in `search/weights/` (the span reader, the query tower):
each file beside a JSON description holding its sha256, which is checked before the weights are used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from index.errors import SemsearchError


def checked_meta(
    weights: Path, weights_file: str, meta_file: str, *, what: str, remake: str, error: type[SemsearchError]
) -> dict[str, Any]:
    """The description of `weights/weights_file`, after checking the file against the sha256 it records;
    `error` naming the file and `remake` (the command that trains it again) when either is missing or the
    file does not match."""
    meta_path, file = weights / meta_file, weights / weights_file
    if not meta_path.is_file() or not file.is_file():
        raise error(f"{what} weights are not at {weights}; restore them from git or run `{remake}`")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if digest != meta.get("sha256"):
        raise error(
            f"{file} does not match its checksum in {meta_path} (sha256 {digest[:12]}…, expected "
            f"{str(meta.get('sha256'))[:12]}…); restore it from git or run `{remake}`"
        )
    return meta
