"""How the ONNX files are laid out in the cache: weights in a data file onnxruntime maps, and a folder
exported by the first (one-file) recipe brought to that layout without exporting again.

A small graph stands in for the model (a word-embedding lookup, as the model's first op): what is tested
is where the weights go and which files are reused, not the model (`test_embedder_contract` runs it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from index.embedders import onnx as export

ROWS, DIM = 3000, 64  # 768 kB: large enough for the data file, at an offset of its own


def _graph(weights: np.ndarray) -> onnx.ModelProto:
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", DIM])
    nodes = [helper.make_node("Gather", ["words", "input_ids"], ["gathered"]),
             helper.make_node("Mul", ["gathered", "scale"], ["last_hidden_state"])]
    init = [numpy_helper.from_array(weights, "words"),
            numpy_helper.from_array(np.full(DIM, 0.5, dtype=np.float32), "scale")]
    graph = helper.make_graph(nodes, "words", [ids], [out], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", export.OPSET)])


def _run(model_file: Path) -> np.ndarray:
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": np.array([[0, 7, ROWS - 1]], dtype=np.int64)})[0]


@pytest.fixture
def v1_folder(tmp_path: Path) -> Path:
    """A model folder exported by the first recipe: `onnx/model.onnx` with its weights inside."""
    folder = tmp_path / "model"
    (folder / export.EXPORT_DIR).mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    weights = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    onnx.save_model(_graph(weights), str(folder / export.EXPORT_DIR / export.V1_FILES[export.FLOAT_FILE]))
    fingerprint = export._fingerprint(folder, version=1)
    (folder / export.EXPORT_DIR / export.V1_META_FILE).write_text(json.dumps(fingerprint))
    return folder


def test_a_first_recipe_export_is_resaved_with_mapped_weights_without_exporting(
    v1_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(*args: object) -> None:
        raise AssertionError("exported again: the graph of the first recipe was not reused")

    monkeypatch.setattr(export, "_export_float", no_export)
    old = v1_folder / export.EXPORT_DIR / export.V1_FILES[export.FLOAT_FILE]
    model_file = export.ensure_onnx_model(v1_folder, quantized=False)

    assert model_file == v1_folder / export.EXPORT_DIR / export.FLOAT_FILE
    data = model_file.with_name(model_file.name + export.DATA_SUFFIX)
    assert model_file.stat().st_size < 10_000  # the graph alone; the weights are in the data file
    np.testing.assert_array_equal(_run(model_file), _run(old))
    # every tensor of the data file where onnxruntime can map it
    graph = onnx.load(str(model_file), load_external_data=False).graph
    offsets = [int(next(e.value for e in t.external_data if e.key == "offset")) for t in graph.initializer
               if t.data_location == TensorProto.EXTERNAL]
    assert offsets and all(o % export.DATA_ALIGNMENT == 0 for o in offsets)
    assert data.stat().st_size >= ROWS * DIM * 4
    # current now: a second call changes nothing
    before = data.stat().st_mtime_ns
    assert export.ensure_onnx_model(v1_folder, quantized=False) == model_file
    assert data.stat().st_mtime_ns == before
    # no temporary file left; the first recipe's files stay for processes still running older code
    files = {p.name for p in model_file.parent.iterdir() if not p.name.startswith(".")}
    assert files == {export.FLOAT_FILE, data.name, export.META_FILE, old.name, export.V1_META_FILE}


def test_a_first_recipe_export_of_other_weights_is_not_reused(
    v1_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old files are reused only when they were made from this very folder: changed weights export."""
    (v1_folder / "config.json").write_text('{"changed": true}')
    exported = []

    def export_float(model_dir: Path, out: Path) -> None:
        exported.append(model_dir)
        onnx.save_model(_graph(np.ones((ROWS, DIM), dtype=np.float32)), str(out))

    monkeypatch.setattr(export, "_export_float", export_float)
    monkeypatch.setattr(export, "_fuse", lambda src, out, model_dir: out.write_bytes(src.read_bytes()))
    model_file = export.ensure_onnx_model(v1_folder, quantized=False)
    assert exported == [v1_folder]
    assert np.all(_run(model_file) == 0.5)
