"""The query tower: e5 with its upper layers trained for questions, for queries across languages.

An English question over Chinese text (or a Chinese one over English text) shares almost no word with the
passages, so keyword search covers under `search.hybrid.MIN_COVERAGE` of it and hybrid search rests on the
dense side alone. There e5's query vector is replaced by the tower's: the same network with its upper six
layers trained by `bench/query_tower.py` (`make tower`) against e5's own passage and sentence vectors, on
CMRC 2018 dev and DRCD dev with a share of their questions glossed in English (CC-CEDICT). Every index,
its vectors and the embedding cache stay as they are; only the query side differs. On the development
sets it lifts Chinese questions over English text by 10 points at rank 1 and English ones over Chinese
text by 2.4 (docs/fusion.md); on questions keyword search covers it gained nothing and cost PAWS-X 0.8
points of recall@5, so it is not used there.

Only the trained layers ship, in float16 with their sha256, in `search/weights/`. At first use a model
folder, e5 with those layers, is written beside the e5 model in the cache and loaded by the index's own
embedder backend (exported to ONNX by it, as e5 is).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from index.config import EmbedderSettings
from index.embedders.base import Embedder
from index.embedders.sbert import E5_ALIASES
from search.errors import TowerUnavailable
from search.shipped import checked_meta, note_superseded, save_float16

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "query_tower.safetensors"
META_FILE = "query_tower.json"
FOLDER_VERSION = 1
_BASE_WEIGHTS = "model.safetensors"
# Files of the e5 folder the tower's folder does not copy: the weights it writes itself, e5's own ONNX
# export and the record of e5's conversion.
_NOT_COPIED = {_BASE_WEIGHTS, "onnx", "semsearch_model.json"}


def tower_meta(weights: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The shipped tower's description, its weights checked against their sha256."""
    return checked_meta(weights, WEIGHTS_FILE, META_FILE, what="the query tower's", remake="make tower",
                        error=TowerUnavailable)


def save_tower(
    state: dict[str, Any], layers: list[int], folder: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write the trained `layers` of an e5 state dict (transformers' names, `encoder.layer.N.…`) to
    `folder` in float16 with a description and its sha256: what ships."""
    prefixes = tuple(f"encoder.layer.{i}." for i in layers)
    trained = {k: v for k, v in state.items() if k.startswith(prefixes)}
    return save_float16(trained, folder, WEIGHTS_FILE, META_FILE, {"trained_layers": layers, **meta})


def ensure_tower_model(weights: Path = WEIGHTS_DIR) -> Path:
    """The tower's model folder (e5's, with the shipped layers in place), written once into the cache for
    these weights and this e5 folder (numpy only: no torch is imported into a search process)."""
    from safetensors.numpy import load_file, save_file

    from index.embedders.base import exclusive
    from index.embedders.e5_model import default_cache_dir, ensure_e5_model

    meta = tower_meta(weights)
    base = ensure_e5_model()
    built = (base / _BASE_WEIGHTS).stat()  # e5 converted again: the tower is built again on it
    key = hashlib.sha256(f"{meta['sha256']} {built.st_size} {built.st_mtime_ns}".encode()).hexdigest()[:16]
    target = default_cache_dir() / f"{base.name}-query-tower-{key}-v{FOLDER_VERSION}"
    if (target / _BASE_WEIGHTS).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.parent / f".{target.name}.lock"):
        if (target / _BASE_WEIGHTS).is_file():
            return target
        log.info("building the query tower's model in %s (once)", target)
        state = load_file(str(base / _BASE_WEIGHTS))
        trained = load_file(str(weights / WEIGHTS_FILE))
        unknown = sorted(set(trained) - set(state))
        if unknown:
            raise TowerUnavailable(f"{weights / WEIGHTS_FILE} holds tensors e5 has not ({unknown[0]} …)")
        for name, value in trained.items():
            state[name] = value.astype(state[name].dtype)
        with tempfile.TemporaryDirectory(prefix=f".{target.name}.tmp-", dir=target.parent) as tmp:
            staged = Path(tmp) / target.name
            shutil.copytree(base, staged, ignore=lambda _dir, names: [n for n in names if n in _NOT_COPIED])
            save_file(state, str(staged / _BASE_WEIGHTS))
            os.replace(staged, target)
    note_superseded(target, f"{base.name}-query-tower-*", what="a query tower")
    return target


_towers: dict[tuple[str, str | None], Embedder] = {}
_failed: set[tuple[str, str | None]] = set()
_lock = threading.Lock()


def query_tower(settings: EmbedderSettings) -> Embedder | None:
    """The tower as an embedder on the index's own backend, or None: when the index was not embedded by
    e5 (the tower was trained against e5's passage vectors), when `SEMSEARCH_QUERY_TOWER` is off, or when
    it cannot be prepared (said once in the log; e5's query vector is used instead)."""
    from index import settings as env
    from index.embedders.factory import create_embedder

    if settings.model not in E5_ALIASES or not env.value("SEMSEARCH_QUERY_TOWER"):
        return None
    key = (settings.backend, settings.query_prompt)
    with _lock:
        if key in _towers:
            return _towers[key]
        if key in _failed:
            return None
        try:
            folder = ensure_tower_model(WEIGHTS_DIR)  # read now: tests point it elsewhere
            tower = create_embedder(replace(settings, model=str(folder)))
        except Exception as exc:  # a search must not fail for want of it: e5 still answers
            _failed.add(key)
            log.warning("the query tower is not used: %s: %s (cross-lingual questions use e5's query vector)",
                        type(exc).__name__, exc)
            return None
        _towers[key] = tower
        return tower


def main() -> int:
    """`python -m search.query_tower`: build the tower's model and its ONNX export now (`make model` does),
    failing loudly where a search would only log that it uses e5 instead."""
    from index.config import IndexSettings
    from index.embedders.factory import create_embedder

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = ensure_tower_model()
    create_embedder(replace(IndexSettings.from_env().embedder, model=str(folder)))
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
