"""The contract every embedder backend keeps (parametrised over `factory.BACKENDS`).

Each backend is loaded once per session (`create_embedder` caches it); the ONNX backends export the
model on their first use on a machine (a minute or two, cached beside the model folder afterwards).
"""

from __future__ import annotations

import numpy as np
import pytest

from index.config import EmbedderSettings
from index.embedders.base import Embedder
from index.embedders.factory import BACKENDS, create_embedder

REFERENCE = "torch"
# Cosine to the float32 torch reference that each backend must reach on every text below: onnx runs the
# same float32 graph (differences are summation order); int8 rounds weights and activations.
MIN_COSINE = {"torch": 0.99999, "onnx": 0.9999, "onnx-int8": 0.99}

SHORT = [
    "国务院常务会议部署进一步优化营商环境的政策措施。",
    "北京",
    "How much protein should an adult eat per day?",
    "新能源汽车(NEV)销量突破1000万辆, market share reached 35.7%.",
    "臺灣地區的半導體產業在全球供應鏈中佔有重要地位。",
    "  多余的   空格\t和\n换行  ",
]
# Longer than the model's 512 tokens: every backend must truncate it the same way. Only where that is
# the point: a 512-token row makes a batch several times slower.
LONG = "近年来，我国持续推进科技体制改革，加快建设科技强国，不断加大研发投入，完善科技成果转化机制。" * 20
TEXTS = [*SHORT, LONG]

# (question, answering passage, unrelated passage): Chinese, English and both directions across them.
RETRIEVAL_CASES = {
    "zh": (
        "中国的首都是哪座城市？",
        "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
        "猫是一种常见的家养宠物，喜欢晒太阳和睡觉。",
    ),
    "en": (
        "What is the capital of France?",
        "Paris is the capital and largest city of France.",
        "Photosynthesis converts light energy into chemical energy in plants.",
    ),
    "zh->en": (
        "植物如何把光能转化为化学能？",
        "Photosynthesis converts light energy into chemical energy in plants.",
        "Paris is the capital and largest city of France.",
    ),
    "en->zh": (
        "How many people live in Shanghai?",
        "上海是中国人口最多的城市，常住人口约两千五百万。",
        "光合作用是植物利用阳光把二氧化碳和水转化为有机物的过程。",
    ),
}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def embedder(backend: str) -> Embedder:
    return create_embedder(EmbedderSettings(backend=backend))


@pytest.fixture(scope="module")
def reference() -> Embedder:
    return create_embedder(EmbedderSettings(backend=REFERENCE))


@pytest.fixture(scope="module")
def reference_vectors(reference: Embedder) -> dict[str, np.ndarray]:
    """The torch vectors of TEXTS, computed once for all backends."""
    return {"queries": reference.encode_queries(TEXTS), "passages": reference.encode_passages(TEXTS)}


def test_is_an_embedder_of_the_same_model(embedder: Embedder, reference: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    # One model, one name: indexes and the embedding cache stay valid across backends.
    assert embedder.name == reference.name
    assert embedder.dim == reference.dim
    assert embedder.max_tokens == reference.max_tokens


@pytest.mark.parametrize("side", ["queries", "passages"])
def test_shapes_dtype_and_unit_norm(embedder: Embedder, side: str) -> None:
    encode = embedder.encode_queries if side == "queries" else embedder.encode_passages
    vectors = encode(SHORT)
    assert vectors.shape == (len(SHORT), embedder.dim)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_empty_input(embedder: Embedder) -> None:
    for encode in (embedder.encode_queries, embedder.encode_passages):
        vectors = encode([])
        assert vectors.shape == (0, embedder.dim)
        assert vectors.dtype == np.float32
    assert embedder.count_tokens([]) == []


def test_deterministic(embedder: Embedder) -> None:
    first = embedder.encode_passages(SHORT)
    second = embedder.encode_passages(SHORT)
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_order_and_batching_do_not_matter(embedder: Embedder, backend: str) -> None:
    """Results come back in input order; a text alone or in a batch gets (nearly) the same vector.

    Length sorting must not scramble rows. int8 quantises activations per batch, so its vectors may
    move a little with their neighbours; float32 only by summation order.
    """
    together = embedder.encode_passages(SHORT)
    reversed_ = embedder.encode_passages(SHORT[::-1])[::-1]
    alone = np.vstack([embedder.encode_passages([t]) for t in SHORT])
    floor = MIN_COSINE.get(backend, 0.99)
    assert np.min(np.sum(together * reversed_, axis=1)) >= floor
    assert np.min(np.sum(together * alone, axis=1)) >= floor


def test_query_and_passage_prompts_differ(embedder: Embedder) -> None:
    as_query = embedder.encode_queries(SHORT[:3])
    as_passage = embedder.encode_passages(SHORT[:3])
    assert np.max(np.sum(as_query * as_passage, axis=1)) < 0.999


@pytest.mark.parametrize("case", list(RETRIEVAL_CASES))
def test_question_is_closest_to_its_answer(embedder: Embedder, case: str) -> None:
    question, answer, unrelated = RETRIEVAL_CASES[case]
    q = embedder.encode_queries([question])[0]
    answer_vec, unrelated_vec = embedder.encode_passages([answer, unrelated])
    assert float(q @ answer_vec) > float(q @ unrelated_vec) + 0.02


def test_count_tokens_matches_the_tokenizer(embedder: Embedder, reference: Embedder) -> None:
    tokenizer = reference.tokenizer  # type: ignore[attr-defined]  # the torch backend's HF tokenizer
    expected = [len(tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"]) for t in TEXTS]
    assert embedder.count_tokens(TEXTS) == expected
    assert expected[-1] > embedder.max_tokens  # counted in full, not truncated: the chunker splits it
    assert all(n > 0 for n in expected)


@pytest.mark.parametrize("side", ["queries", "passages"])
def test_agrees_with_the_torch_reference(
    embedder: Embedder, reference_vectors: dict[str, np.ndarray], backend: str, side: str
) -> None:
    encode = embedder.encode_queries if side == "queries" else embedder.encode_passages
    cosines = np.sum(encode(TEXTS) * reference_vectors[side], axis=1)
    floor = MIN_COSINE.get(backend, 0.99)
    assert np.min(cosines) >= floor, f"{backend} {side}: cosines to torch {np.round(cosines, 5)}"


def test_auto_backend_is_onnx_for_a_folder_and_torch_for_a_hub_name(tmp_path) -> None:
    """The default backend runs the bundled model on onnxruntime; a hub name (which only
    sentence-transformers can fetch) falls back to torch instead of failing."""
    from index.config import EmbedderSettings
    from index.embedders.factory import resolve_backend

    assert EmbedderSettings().backend == "auto"
    assert resolve_backend(EmbedderSettings()) == "onnx"
    assert resolve_backend(EmbedderSettings(model=str(tmp_path))) == "onnx"
    assert resolve_backend(EmbedderSettings(model="BAAI/bge-m3")) == "torch"
    assert resolve_backend(EmbedderSettings(backend="onnx-int8")) == "onnx-int8"


def test_a_new_process_cuts_its_queries_without_the_whole_tokenizer_and_the_same_way() -> None:
    """The cold CLI: a few queries are cut by a tokenizer of only the vocabulary pieces they can use (the
    whole 250k-piece one takes half a second to build); the ids and vectors are the whole tokenizer's."""
    from index.embedders.onnx import SMALL_BATCH, OnnxEmbedder

    fresh = OnnxEmbedder(EmbedderSettings(), quantized=False)  # a new instance, as in a new process
    texts = [*TEXTS, "<s>北京</s> <mask>x<unk>", "𠀾𡈼𡋗 a\u0301 ｶﾞ \u200d", ""]
    small = fresh._small.encode(["query: " + t for t in texts], fresh.max_tokens)
    vectors = fresh.encode_queries(SHORT[:3])
    assert "_fast" not in fresh.__dict__, "the whole tokenizer was loaded for a few queries"

    whole = create_embedder(EmbedderSettings(backend="onnx"))
    assert small == [e.ids for e in whole._fast.encode_batch(["query: " + t for t in texts])]
    assert len(small[len(TEXTS) - 1]) == fresh.max_tokens  # LONG: truncated alike
    np.testing.assert_array_equal(vectors, whole.encode_queries(SHORT[:3]))
    fresh.encode_passages(SHORT * (SMALL_BATCH // len(SHORT) + 1))  # a batch: the whole tokenizer
    assert "_fast" in fresh.__dict__
