"""ONNX Runtime embedders: the same model as `sbert`, exported locally, run without PyTorch at query time.

Backends:

* ``onnx`` -- float32; agrees with the torch reference to ~1e-6 (cosine >= 0.9999).
* ``onnx-int8`` -- dynamic int8 quantisation (per-channel int8 weights, uint8 activations quantised per
  batch) of the matrix products except the two that feed the residual stream (`FLOAT_MATMUL_SUFFIXES`);
  the fastest on CPUs (1.3x `onnx`). Recall@5 stays within 0.2 points of float32 on monolingual sets but
  drops 2 points on Chinese questions over English text (figures in docs/performance.md).

The ONNX files are made once from the sentence-transformers folder and cached beside it in
``<model folder>/onnx/`` (or, when that folder is read-only, under ``$SEMSEARCH_CACHE/onnx``):

1. ``torch.onnx.export`` (the TorchScript exporter: it needs no extra package, and optimum's exporter
   does not support transformers 5) of the bare transformer -> ``last_hidden_state``. Exported with
   eager attention, whose subgraph onnxruntime's BERT fusions recognise (the SDPA one they do not).
2. ``onnxruntime.transformers.optimizer`` fuses attention, GELU, layer norms and embeddings into
   onnxruntime's CPU kernels.
3. Saved as ``float32.onnx``, the graph, and ``float32.onnx.data``, its weights, each large tensor at
   an offset aligned for mapping: onnxruntime then maps the file instead of reading and copying it,
   so a process that runs one query never reads most of the 250k-row word-embedding matrix (a session
   is ready in under a tenth of the time it took with the weights inside the graph; the same numbers).
4. ``quantize_dynamic`` of that, saved the same way -> ``int8.onnx`` (+ ``.data``).

Each model is written into a temporary folder beside it and moved into place, its data file before its
graph, under a file lock, so concurrent processes (test workers, API and indexer) never see a half-written
model. `recipe.json` records what the files were made from; a re-converted model folder (or a new export
recipe) makes them again. A folder exported by the first recipe (one file, ``model.onnx``, recorded in
``export.json``) already holds the fused graph: it is re-saved in the mapped layout, without torch; its
files are left for processes still running the older code (they may be deleted).

Pooling (mean over the attention mask, prompt tokens included, as e5 and sentence-transformers do)
and L2 normalisation run in numpy on the exported ``last_hidden_state``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index import settings
from index.config import DEFAULT_MODEL, EmbedderSettings
from index.embedders.base import EmbedderError, PromptedEmbedder, exclusive
from index.embedders.sbert import E5_ALIASES, resolve_model_path

if TYPE_CHECKING:
    from index.parts import PartedDict

log = logging.getLogger(__name__)

# Bump when the export recipe changes (opset, fusions, quantisation options, layout): cached files made by
# an older recipe are then made again.
EXPORT_VERSION = 2
OPSET = 17
EXPORT_DIR = "onnx"
FLOAT_FILE = "float32.onnx"
INT8_FILE = "int8.onnx"
META_FILE = "recipe.json"
DATA_SUFFIX = ".data"  # the weights of `X.onnx` are in `X.onnx.data`
# onnxruntime maps a tensor of a data file only when its offset is a multiple of the allocation granularity
# (the page size; 64 KiB on Windows, the most onnx lets a writer pad).
DATA_ALIGNMENT = 64 * 1024
# Export version 1 wrote the same fused graph with its weights inside, under these names.
V1_META_FILE = "export.json"
V1_FILES = {FLOAT_FILE: "model.onnx", INT8_FILE: "model_qint8.onnx"}

# Batches are cut by padded size (rows x longest row), not by count: with the texts sorted by length
# each batch pads to nearly its own length, and short texts get large batches, long texts small ones,
# so every onnxruntime call does about the same work (4096 tokens: 32 passages of 128 tokens, 8 of 512).
# Larger batches gain little on 2 cores (the matrix products are already large), they only hold more
# memory and, for int8, widen the range each batch's activations are quantised over.
TOKEN_BUDGET = 4096
MAX_BATCH = 128

# Quantisation choices, measured as the cosine to float32 on 96 cmrc2018 passages and 98 questions:
# one scale per tensor gives min 0.982 / mean 0.987; per-channel weight scales min 0.995 / mean 0.997;
# adding reduce_range (7-bit weights, which avoids the int16 saturation of the u8s8 AVX2 kernel,
# vpmaddubsw, that machines without VNNI use) min 0.995 / mean 0.997 for passages and lifts the worst
# question from 0.991 to 0.995. Keeping the embeddings, or the first and last layers, in float32 moved
# the cosines by under 0.002 and left a ~410 MB file instead of 118 MB.
QUANT_OPTIONS: dict[str, Any] = {"per_channel": True, "reduce_range": True}
# Matrix products kept in float32: the two that project back into the residual stream (attention output
# and feed-forward output, `.../output/dense/MatMul` in the exported graph). Their inputs (the GELU output
# above all) have the outlier channels that per-batch uint8 activations flatten. Measured on XQuAD
# (recall@5 of 1,190 questions over the 240 paragraphs, both sides int8): all products in int8 lost 1.5
# (zh2en) and 2.0 (en2zh) points against float32; keeping these two float32 loses 0.2 and 0.3. On
# bench/embed.py's sets it is 1.26x float32's passages/s (all-int8 was 1.66x) and -2.0 points on zh2en
# (all-int8 -4.4). The query and QKV / feed-forward input products stay int8.
FLOAT_MATMUL_SUFFIXES = ("output/dense/MatMul",)

# sentence-transformers modules this backend reproduces; anything else (Dense, another pooling) would
# be silently dropped, so such models are refused.
_TRANSFORMER = "sentence_transformers.models.Transformer"
# Tokenizer classes that are tokenizer.json run as it is (others, e.g. slow sentencepiece ones, add rules).
_VERBATIM_TOKENIZERS = {"PreTrainedTokenizerFast", "XLMRobertaTokenizerFast",
                        "BertTokenizerFast", "TokenizersBackend"}
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def onnx_threads() -> int:
    """Threads for one onnxruntime call: every core, unless `SEMSEARCH_THREADS` says otherwise."""
    return settings.threads()


def session_options() -> Any:
    """The options of every onnxruntime session here: the embedder's and the reader's."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = onnx_threads()
    options.inter_op_num_threads = 1  # one model call at a time: parallelism is inside the ops
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # onnxruntime's own warnings about unused initializers etc.
    # Workers spin between the ops of a call instead of sleeping: a 16-token query is ~110 small ops, and
    # waking a sleeping worker for each cost ~2.5 ms of an HTTP search's ~19.5 ms p50. They stop spinning
    # as soon as the call returns, so the reader that runs after the embedder in one /ask (or another
    # process) gets the cores: spinning on after a call took /ask from ~70 to ~110 ms. docs/performance.md,
    # Query latency, has the side-by-side figures.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


# ----------------------------------------------------------------------------------------------------
# Reading the sentence-transformers folder
# ----------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _transformer_folder(folder: Path) -> Path:
    """The transformers model inside a sentence-transformers folder, after checking the pipeline.

    Only Transformer -> mean Pooling (-> Normalize) is supported: that is what is exported plus the
    numpy pooling here. Other pipelines must use the torch backend.
    """
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        # A bare transformers folder: sentence-transformers itself would add mean pooling.
        return folder
    modules = _read_json(modules_file)
    transformer: Path | None = None
    for module in modules:
        kind, path = module.get("type", ""), folder / module.get("path", "")
        if kind == _TRANSFORMER and transformer is None:
            transformer = path
        elif kind == _POOLING:
            config = _read_json(path / "config.json")
            modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
            if modes != ["pooling_mode_mean_tokens"] or not config.get("include_prompt", True):
                raise EmbedderError(
                    f"the onnx backends support mean pooling only; {folder} uses {modes}: use backend 'torch'"
                )
        elif kind != _NORMALIZE:
            raise EmbedderError(
                f"the onnx backends cannot run module {kind} of {folder}: use backend 'torch'"
            )
    if transformer is None:
        raise EmbedderError(f"{folder} has no Transformer module: use backend 'torch'")
    return transformer


def _fingerprint(model_dir: Path, version: int = EXPORT_VERSION) -> dict[str, Any]:
    """What the export depends on: the weight and config files (size, mtime) and the recipe."""
    files = {}
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and (path.suffix in {".json", ".safetensors", ".bin"}):
            st = path.stat()
            files[path.name] = [st.st_size, st.st_mtime_ns]
    quant = QUANT_OPTIONS | {"float_matmuls": list(FLOAT_MATMUL_SUFFIXES)}
    return {"export_version": version, "opset": OPSET, "quant": quant, "files": files}


def _export_dir(model_dir: Path) -> Path:
    """`<model>/onnx` when the model folder is writable, else a per-model folder in the user's cache."""
    if os.access(model_dir, os.W_OK):
        return model_dir / EXPORT_DIR
    root = settings.cache_dir()
    key = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:16]
    return root / "onnx" / f"{model_dir.name}-{key}"



def _atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """Let `write` save `target` (a file, or an ONNX graph and its data file) in a temporary folder next to
    it, then move what it wrote into place, the graph last: a graph in place always finds its data."""
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.tmp-", dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        write(staged)
        for path in sorted(Path(tmp).iterdir(), key=lambda p: p == staged):
            path.chmod(0o644)  # temporary files are private; the cache is meant to be shared
            os.replace(path, target.parent / path.name)


def _complete(model_file: Path) -> bool:
    """The graph and its data file are both in place."""
    return model_file.is_file() and model_file.with_name(model_file.name + DATA_SUFFIX).is_file()


def _save_mapped(src: Path, out: Path) -> None:
    """Re-save the model `src` as the graph `out` and its weights in `out` + DATA_SUFFIX, every tensor of
    the data file at an offset onnxruntime can map (see the module docstring)."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data, set_external_data

    model = onnx.load(str(src))
    location = out.name + DATA_SUFFIX
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location=location)
    offset = 0
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL and tensor.HasField("raw_data"):
            offset = -(-offset // DATA_ALIGNMENT) * DATA_ALIGNMENT
            set_external_data(tensor, location, offset, len(tensor.raw_data))
            offset += len(tensor.raw_data)
    onnx.save_model(model, str(out))


# ----------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------


def _export_float(model_dir: Path, out: Path) -> None:
    """torch.onnx.export of the transformer (input_ids, attention_mask -> last_hidden_state)."""
    import torch
    from transformers import AutoModel

    # Eager attention: its MatMul/Softmax subgraph is what onnxruntime's Attention fusion matches.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class HiddenStates(torch.nn.Module):
        """Returns a plain tensor, so the graph has exactly one named output."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    pad = int(getattr(model.config, "pad_token_id", None) or 0)
    # A padded example: traced without padding, transformers may drop the mask from the graph.
    ids = torch.tensor([[0, 100, 200, 300, 2], [0, 100, 2, pad, pad]], dtype=torch.long)
    mask = (torch.arange(ids.shape[1])[None, :] < torch.tensor([[5], [3]])).long()
    with torch.inference_mode(), _quiet_export_warnings():
        torch.onnx.export(
            HiddenStates(model),
            (ids, mask),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
        )


@contextlib.contextmanager
def _quiet_export_warnings() -> Iterator[None]:
    """The TorchScript exporter warns about its own deprecation and about traced Python branches
    in transformers that are constant for this model; none of it is actionable here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """onnxruntime's optimizer and quantizer log a line per node (the quantizer on the root logger);
    hundreds of lines that say nothing to a user indexing documents."""
    names = ("onnx_model", "fusion_base", "fusion_utils", "onnx_model_bert")
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _fuse(src: Path, out: Path, model_dir: Path) -> None:
    """onnxruntime's transformer fusions (Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm)."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = _read_json(model_dir / "config.json")
    with _quiet_logs():
        optimized = optimize_model(
            str(src),
            model_type="bert",  # BERT's fusions also cover (XLM-)RoBERTa encoders
            num_heads=int(config.get("num_attention_heads", 0)),
            hidden_size=int(config.get("hidden_size", 0)),
            opt_level=0,  # the fusions only; onnxruntime applies its own graph optimisations at load time
        )
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(out))
    log.info("onnx fusions: %s", fused)


def _quantize(src: Path, out: Path) -> None:
    """Dynamic int8: weights quantised now, activations per batch at run time (no calibration set)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    keep_float = [
        n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith(FLOAT_MATMUL_SUFFIXES)
    ]
    with _quiet_logs():
        quantize_dynamic(
            str(src),
            str(out),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            # The fused contrib ops have no ONNX shape inference; their outputs are float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            **QUANT_OPTIONS,
        )


def ensure_onnx_model(model_dir: Path | str, *, quantized: bool) -> Path:
    """The cached ONNX file of this transformers folder, exported (and quantised) first if needed."""
    model_dir = Path(model_dir)
    target_dir = _export_dir(model_dir)
    target = target_dir / (INT8_FILE if quantized else FLOAT_FILE)
    fingerprint = _fingerprint(model_dir)

    def current() -> bool:
        try:
            return _complete(target) and _read_json(target_dir / META_FILE) == fingerprint
        except (OSError, ValueError):
            return False

    if current():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(target_dir / ".export.lock"):
        if current():  # another process exported while this one waited for the lock
            return target
        started = time.perf_counter()
        float_file = target_dir / FLOAT_FILE
        meta_ok = False
        with contextlib.suppress(OSError, ValueError):
            meta_ok = _read_json(target_dir / META_FILE) == fingerprint
        v1 = _v1_files(model_dir, target_dir)
        if not (meta_ok and _complete(float_file)):
            # The files of another fingerprint go first, so a crash cannot leave them marked current.
            (target_dir / META_FILE).unlink(missing_ok=True)
            for name in (INT8_FILE, INT8_FILE + DATA_SUFFIX):
                (target_dir / name).unlink(missing_ok=True)
            if FLOAT_FILE in v1:
                log.info("re-saving %s with its weights in a mapped file", v1[FLOAT_FILE])
                _atomic_write(float_file, lambda path: _save_mapped(v1[FLOAT_FILE], path))
            else:
                log.info("exporting %s to ONNX (once; cached in %s)", model_dir, target_dir)
                with tempfile.TemporaryDirectory(dir=target_dir, prefix=".export-") as tmp:
                    raw, fused = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
                    _export_float(model_dir, raw)
                    _fuse(raw, fused, model_dir)
                    _atomic_write(float_file, lambda path: _save_mapped(fused, path))
            _atomic_write(target_dir / META_FILE, lambda path: _write_json(path, fingerprint))
        if quantized:
            if INT8_FILE in v1:
                log.info("re-saving %s with its weights in a mapped file", v1[INT8_FILE])
                _atomic_write(target, lambda path: _save_mapped(v1[INT8_FILE], path))
            else:
                log.info("quantising %s to int8", float_file)
                with tempfile.TemporaryDirectory(dir=target_dir, prefix=".quantize-") as tmp:
                    quantized_file = Path(tmp) / "int8.onnx"
                    _quantize(float_file, quantized_file)
                    _atomic_write(target, lambda path: _save_mapped(quantized_file, path))
        log.info("ONNX model ready in %.1fs: %s", time.perf_counter() - started, target)
    return target


def _v1_files(model_dir: Path, target_dir: Path) -> dict[str, Path]:
    """The models export version 1 made of this very folder (by the names of this version), if any:
    the same graphs with their weights inside, which only need saving in the mapped layout."""
    try:
        if _read_json(target_dir / V1_META_FILE) != _fingerprint(model_dir, version=1):
            return {}
    except (OSError, ValueError):
        return {}
    found = {name: target_dir / old for name, old in V1_FILES.items()}
    return {name: path for name, path in found.items() if path.is_file()}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------------
# Queries without the whole vocabulary
# ----------------------------------------------------------------------------------------------------

# Building `tokenizers`' Unigram model of a 250k-piece vocabulary takes half a second, most of what a cold
# `semsearch search` spends besides imports. A Unigram tokenizer only ever uses the pieces that occur in
# the pre-tokenized text, plus the unknown token, whose score is the lowest piece score minus a constant:
# a tokenizer of exactly those pieces (the lowest-scoring one and the added tokens kept) cuts the text as
# the whole one does, and its ids map back. The vocabulary is kept in parts (`index.parts`) beside the
# ONNX files, so a few queries read a few kilobytes of it; batches and counting use the whole tokenizer.
VOCAB_FILE = "vocab.parts"
_VOCAB_FORMAT = 1
SMALL_BATCH = 8  # texts per call that may use a small tokenizer
SMALL_CALLS = 32  # calls before the process loads the whole tokenizer (a server, after its first queries)
# Texts the small tokenizer must cut exactly as the whole one before its vocabulary is written.
_VOCAB_CHECKS = (
    "query: 到2025年长三角研发投入强度的目标是多少",
    "passage: 臺灣地區的半導體產業 ＡＢＣ全角１２３ emoji 🎉 ©®™ ½ ①②③ 東京都は新たな防災計画を発表した。",
    "How much protein should an adult eat per day? Der Bundestag hat das Gesetz verabschiedet.",
    "<s>特殊</s> <mask> <unk>x<pad> 𠀾𡈼𡋗 \u0001 a\u0301 \u200d ぱ ｶﾞ  多余的   空格\t和\n换行  ",
)


def _vocab_key(tokenizer_file: Path) -> list[Any]:
    stat = tokenizer_file.stat()
    return [_VOCAB_FORMAT, stat.st_size, stat.st_mtime_ns]


class _SmallTokenizers:
    """Makes, for a few texts, the tokenizer of only the vocabulary pieces they can use (see above)."""

    def __init__(self, vocab: PartedDict) -> None:
        header = vocab.header
        self._vocab = vocab
        self._skeleton: dict[str, Any] = json.loads(header["skeleton"])
        self._fixed: list[list[Any]] = header["fixed"]  # [piece, id, score]: kept in every small vocabulary
        self._longest: int = header["longest"]
        self._added: list[str] = [t["content"] for t in self._skeleton["added_tokens"]]
        # The normaliser and pre-tokenizer of tokenizer.json, to find the words the model cuts.
        self._base = self._make([])[0]
        longest_first = sorted(self._added, key=len, reverse=True)
        self._splitter = re.compile("|".join(map(re.escape, longest_first))) if self._added else None

    def id_of(self, piece: str) -> int | None:
        for fixed_piece, fixed_id, _ in self._fixed:
            if fixed_piece == piece:
                return int(fixed_id)
        hit = self._vocab.get(piece)
        return None if hit is None else int(hit[0])

    def _words(self, text: str) -> Iterator[str]:
        """What the Unigram model sees of `text`: pre-tokens of the normalised text between added tokens,
        and of the whole text too (a superset is harmless: pieces that do not occur are never used)."""
        normalizer, pre_tokenizer = self._base.normalizer, self._base.pre_tokenizer
        segments = self._splitter.split(text) if self._splitter is not None else []
        for segment in [text, *segments]:
            normalized = normalizer.normalize_str(segment) if normalizer is not None else segment
            if pre_tokenizer is None:
                yield normalized
            else:
                yield from (word for word, _ in pre_tokenizer.pre_tokenize_str(normalized))

    def _make(self, pieces: list[list[Any]]) -> tuple[Any, np.ndarray]:
        """A tokenizer of the fixed pieces and `pieces`, and the whole vocabulary's id of each of its ids."""
        from tokenizers import Tokenizer

        entries = self._fixed + pieces
        position = {int(real): i for i, (_, real, _) in enumerate(entries)}
        config = json.loads(json.dumps(self._skeleton))  # a deep copy
        config["model"]["vocab"] = [[piece, score] for piece, _, score in entries]
        if config["model"].get("unk_id") is not None:
            config["model"]["unk_id"] = position[int(config["model"]["unk_id"])]
        for token in config["added_tokens"]:
            token["id"] = position[int(token["id"])]
        for special in ((config.get("post_processor") or {}).get("special_tokens") or {}).values():
            special["ids"] = [position[int(i)] for i in special["ids"]]
        return Tokenizer.from_str(json.dumps(config)), np.array([real for _, real, _ in entries], np.int64)

    def encode(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        found: dict[str, list[Any]] = {}
        fixed = {piece for piece, _, _ in self._fixed}
        for text in texts:
            for word in self._words(text):
                for i in range(len(word)):
                    for j in range(i + 1, min(len(word), i + self._longest) + 1):
                        piece = word[i:j]
                        if piece not in found and piece not in fixed and (hit := self._vocab.get(piece)):
                            found[piece] = [piece, hit[0], hit[1]]
        tokenizer, real = self._make(sorted(found.values(), key=lambda entry: entry[1]))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_tokens)
        return [real[e.ids].tolist() for e in tokenizer.encode_batch(list(texts))]


def _write_vocab(tokenizer_file: Path, out: Path) -> bool:
    """Write the parted vocabulary of a Unigram tokenizer.json (after checking that its small tokenizers cut
    `_VOCAB_CHECKS` as it does); False when the tokenizer is not one this applies to."""
    from tokenizers import Tokenizer

    from index.parts import open_parts, write_parts

    config = _read_json(tokenizer_file)
    model = config.get("model") or {}
    processor = config.get("post_processor")
    if (model.get("type") != "Unigram" or model.get("byte_fallback")
            or (processor is not None and processor.get("type") != "TemplateProcessing")):
        return False
    vocab = model.pop("vocab")
    config["truncation"] = config["padding"] = None
    whole = {piece: (i, score) for i, (piece, score) in enumerate(vocab)}
    lowest = min(range(len(vocab)), key=lambda i: vocab[i][1])
    keep = sorted({int(t["id"]) for t in config.get("added_tokens", [])} | {lowest})
    header = {
        "key": _vocab_key(tokenizer_file),
        "skeleton": json.dumps(config),
        "fixed": [[vocab[i][0], i, vocab[i][1]] for i in keep],
        "longest": max(len(piece) for piece, _ in vocab),
    }
    write_parts(out, whole, header)
    full = Tokenizer.from_file(str(tokenizer_file))
    reopened = open_parts(out)
    assert reopened is not None
    small = _SmallTokenizers(reopened)
    for text in _VOCAB_CHECKS:
        if small.encode([text], 10**6) != [full.encode(text).ids]:
            log.warning("small tokenizers do not cut like %s; queries use the whole one", tokenizer_file)
            out.unlink(missing_ok=True)
            return False
    return True


def _small_tokenizers(transformer_dir: Path) -> _SmallTokenizers | None:
    """The small tokenizers of this model, its parted vocabulary written first if it is missing or stale;
    None where they do not apply (another kind of tokenizer) or the cache cannot be written."""
    from index.parts import open_parts

    tokenizer_file = transformer_dir / "tokenizer.json"
    out = _export_dir(transformer_dir) / VOCAB_FILE
    key = _vocab_key(tokenizer_file)
    vocab = open_parts(out)
    if vocab is None or not isinstance(vocab.header, dict) or vocab.header.get("key") != key:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            if not _write_vocab(tokenizer_file, out):
                return None
        except Exception as exc:  # a read-only cache, a tokenizer.json of another shape: only slower
            log.info("no parted vocabulary for %s (%s): queries use the whole tokenizer", tokenizer_file, exc)
            return None
        vocab = open_parts(out)
        if vocab is None:
            return None
    return _SmallTokenizers(vocab)


# ----------------------------------------------------------------------------------------------------
# The embedder
# ----------------------------------------------------------------------------------------------------


class OnnxEmbedder(PromptedEmbedder):
    """A sentence-transformers model (Transformer + mean pooling) on onnxruntime, float32 or int8."""

    def __init__(self, settings: EmbedderSettings, *, quantized: bool) -> None:
        self.settings = settings
        self.quantized = quantized
        # The model name, not the backend: int8 and float32 vectors of one model are interchangeable
        # (cosine >= 0.99, recall within a point), so an index and its embedding cache stay usable
        # when the backend changes. The backend itself is recorded in the manifest's settings.
        self.name = DEFAULT_MODEL if settings.model in E5_ALIASES else settings.model
        folder = Path(resolve_model_path(settings.model))
        if not folder.is_dir():
            raise EmbedderError(
                f"the onnx backends need a local model folder; {settings.model!r} is not one. Use backend "
                f"'torch' for hub names, or give the folder."
            )
        try:
            transformer_dir = _transformer_folder(folder)
            model_file = ensure_onnx_model(transformer_dir, quantized=quantized)
            self._load(folder, transformer_dir, model_file)
        except EmbedderError:
            raise
        except Exception as exc:  # export and runtime raise many types; the user needs one message
            raise EmbedderError(
                f"could not prepare the ONNX model of {settings.model!r} ({type(exc).__name__}: {exc}). "
                f"Delete {_export_dir(folder)} to export again, or use backend 'torch'."
            ) from exc

    def _load(self, folder: Path, transformer_dir: Path, model_file: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            str(model_file), session_options(), providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}

        tokenizer_config: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            tokenizer_config = _read_json(transformer_dir / "tokenizer_config.json")
        if tokenizer_config.get("tokenizer_class", "PreTrainedTokenizerFast") not in _VERBATIM_TOKENIZERS:
            raise EmbedderError(
                f"the onnx backends read tokenizer.json as it is; {transformer_dir} uses "
                f"{tokenizer_config['tokenizer_class']}: use backend 'torch'"
            )
        self._tokenizer_file = transformer_dir / "tokenizer.json"
        # A query in a new process is cut by a small tokenizer (see `_SmallTokenizers`); the whole one is
        # loaded when a batch, a count or many queries need it.
        self._small = _small_tokenizers(transformer_dir)
        self._small_calls = 0
        st_config: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            st_config = _read_json(folder / "sentence_bert_config.json")
        model_config = _read_json(transformer_dir / "config.json")
        self.max_tokens = int(
            st_config.get("max_seq_length")
            or min(int(tokenizer_config.get("model_max_length", 512)),
                   model_config.get("max_position_embeddings", 512))
        )
        self.dim = int(model_config["hidden_size"])
        pad_token = str(tokenizer_config.get("pad_token", "<pad>"))
        pad = self._small.id_of(pad_token) if self._small is not None else self._fast.token_to_id(pad_token)
        self.pad_id = int(pad if pad is not None else 0)

        prompts: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
        e5 = "e5" in self.name.lower()
        self.query_prompt = self.settings.query_prompt
        if self.query_prompt is None:
            self.query_prompt = prompts.get("query", "query: " if e5 else "")
        self.passage_prompt = self.settings.passage_prompt
        if self.passage_prompt is None:
            self.passage_prompt = prompts.get("passage", prompts.get("document", "passage: " if e5 else ""))

    # --- encoding ----------------------------------------------------------------------------------
    @functools.cached_property
    def _fast(self) -> Any:
        """The whole tokenizer.json, read by `tokenizers` itself (about half a second): the token ids of
        sentence-transformers' fast tokenizer, without importing transformers (and torch)."""
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(self._tokenizer_file))
        # Truncated like sentence-transformers (max_seq_length, special tokens included), never padded:
        # padding is done per batch below.
        fast.no_padding()
        fast.enable_truncation(self.max_tokens)
        return fast

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        if (self._small is not None and "_fast" not in self.__dict__ and len(texts) <= SMALL_BATCH
                and self._small_calls < SMALL_CALLS):
            self._small_calls += 1
            return self._small.encode(texts, self.max_tokens)
        return [e.ids for e in self._fast.encode_batch(texts)]

    @functools.cached_property
    def tokenizer(self) -> Any:
        """The tokenizer without truncation: it counts as the Hugging Face tokenizer of the other backends."""
        from tokenizers import Tokenizer

        counting = Tokenizer.from_str(self._fast.to_str())
        counting.no_truncation()
        return counting

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def _batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Indices grouped longest first into batches of at most TOKEN_BUDGET padded tokens."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batch: list[int] = []
        for i in order:
            # Sorted descending, so the first row of a batch is its longest: the padded size is
            # rows x lengths[batch[0]].
            if batch and ((len(batch) + 1) * lengths[batch[0]] > TOKEN_BUDGET or len(batch) >= MAX_BATCH):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._token_ids([prompt + t for t in texts])
        lengths = [len(x) for x in ids]
        for idx in self._batches(lengths):
            width = lengths[idx[0]]
            input_ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, : lengths[i]] = ids[i]
                mask[row, : lengths[i]] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self.session.run(None, feeds)[0]
            # Mean over real tokens (prompt and special tokens included, as sentence-transformers does).
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.maximum(norms, 1e-12)
        return out



def main(argv: Sequence[str] | None = None) -> int:
    """`python -m index.embedders.onnx [--int8]`: export the configured model at set-up, not first use."""
    import argparse

    from index.config import IndexSettings

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--int8", action="store_true", help="also the int8 model of backend onnx-int8")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = IndexSettings.from_env().embedder.model
    folder = Path(resolve_model_path(model))
    if not folder.is_dir():
        print(f"{model!r} is not a local folder: the onnx backends do not apply (backend torch is used)")
        return 0
    transformer_dir = _transformer_folder(folder)
    print(ensure_onnx_model(transformer_dir, quantized=False))
    _small_tokenizers(transformer_dir)
    if args.int8:
        print(ensure_onnx_model(transformer_dir, quantized=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
