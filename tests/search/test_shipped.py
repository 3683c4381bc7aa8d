"""The weights trained here and shipped in search/weights/ (`search.shipped`): a damaged or missing file
is named with the command that makes it again, never loaded."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from search import query_tower as QT
from search import reader as R
from search.errors import ReaderUnavailable, TowerUnavailable

SHIPPED = [
    pytest.param(R.WEIGHTS_DIR, R.WEIGHTS_FILE, R.ensure_reader_model, ReaderUnavailable, "make reader",
                 id="reader"),
    pytest.param(QT.WEIGHTS_DIR, QT.WEIGHTS_FILE, QT.ensure_tower_model, TowerUnavailable, "make tower",
                 id="query tower"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("folder", "name", "prepare", "error", "remake"), SHIPPED)
def test_damaged_or_missing_weights_are_named(
    tmp_path: Path, folder: Path, name: str, prepare: Callable[[Path], Any], error: type, remake: str
) -> None:
    copy = tmp_path / "weights"
    shutil.copytree(folder, copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(error, match=rf"{name.replace('.', r'[.]')} does not match its checksum.*{remake}"):
        prepare(copy)
    (copy / name).unlink()
    with pytest.raises(error, match=f"weights are not at .*{remake}"):
        prepare(copy)


@pytest.mark.unit
def test_folders_of_other_weights_are_named_with_their_size_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from search.shipped import note_superseded

    built, old, other_kind = tmp_path / "reader-aaaa-v1", tmp_path / "reader-bbbb-v1", tmp_path / "e5-x"
    for folder in (built, old, other_kind, tmp_path / ".reader-cccc-v1.tmp"):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"\0" * 3_000_000)
    with caplog.at_level("WARNING", logger="search.shipped"):
        named = note_superseded(built, "reader-*", what="a span reader")
    assert named == [old]
    assert "reader-bbbb-v1 (3 MB)" in caplog.text and f"rm -rf {old}" in caplog.text
    assert "reader-aaaa" not in caplog.text and "e5-x" not in caplog.text
    assert old.is_dir()  # another checkout may still use it
