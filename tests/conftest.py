"""Shared fixtures: the real model and an index of the default corpus, built once per test run.

Every test gets one tier marker (`pytest -m unit` is `make test-fast`):

* ``browser`` -- the page in Chromium (tests/api/test_browser.py);
* ``integration`` -- the real model, an index built with it, a live server or a subprocess: a test that
  uses one of `INTEGRATION_FIXTURES` (directly or through another fixture), or is marked so explicitly;
* ``unit`` -- the rest: plain functions and stores, no model. A unit test that reaches for the model
  fails (`no_model_in_unit_tests`), so the fast tier stays fast and a mistier test is found at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
EVAL = ROOT.parent / "shared" / "eval"
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (install it with `make browser`)"
)


def print_to_pdf(html: str, pdf: Path, *, margins: bool = True) -> Path:
    """`pdf`, printed from the page `html` by headless Chromium, as a reader saves a web page as PDF;
    `margins` keeps the header (time printed, title) and footer (address, "1/5") it prints by default."""
    page = pdf.with_suffix(".html")
    page.write_text(html, encoding="utf-8")
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={pdf.parent / ('.chromium-' + pdf.stem)}", f"--print-to-pdf={pdf}"]
    if not margins:
        command.append("--no-pdf-header-footer")
    subprocess.run([*command, page.as_uri()], check=True, capture_output=True, timeout=120)
    return pdf

TIERS = ("unit", "integration", "browser")
# Fixtures that load the model or start a server: whatever uses one is an integration test.
INTEGRATION_FIXTURES = {"seed_index", "engine", "server", "client"}
# Tests that build an index, load a model or start a subprocess by themselves (no fixture says so):
# a test file, or a test file::name prefix. `no_model_in_unit_tests` fails a unit test missing here.
INTEGRATION_TESTS = (
    "tests/api/test_bad_input.py",
    "tests/api/test_cli.py",
    "tests/api/test_damaged_index.py",
    "tests/api/test_failures.py",
    "tests/api/test_security.py",
    "tests/index/test_builder.py",
    "tests/index/test_corruption.py",
    "tests/index/test_document_formats.py",
    "tests/index/test_dump.py",
    "tests/index/test_e5_model.py",
    "tests/index/test_embedder_contract.py",
    "tests/index/test_failures.py",
    "tests/index/test_watch.py",
    "tests/index/test_analysis.py::test_jieba_is_loaded_lazily_and_quietly",
    "tests/index/test_memory.py::test_chunking_a_one_line_file_takes_bounded_memory",
    "tests/index/test_sentence_store.py::test_every_passage_gets_its_sentences",
    "tests/index/test_sentence_store.py::test_an_index_without_sentence_vectors",
    "tests/index/test_sentence_store.py::test_a_damaged_sentence_file",
    "tests/index/test_sentence_store.py::test_the_dense_side_scores",
    "tests/search/test_engine.py::test_many_copies_of_a_passage_fold_into_one",
    "tests/search/test_identifiers.py::test_the_exact_identifier_outranks_its_scattered_pieces",
    "tests/search/test_query_tower.py::test_the_tower_is_e5_with_only_its_upper_layers_changed",
    "tests/search/test_identifiers.py::test_an_index_of_an_older_analyser_works_until_reindexed",
)

# Tests must never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def seed_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of data/ that tests may read (never modify data/ itself)."""
    folder = tmp_path_factory.mktemp("corpus")
    for f in DATA.iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture(scope="session")
def seed_index(seed_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default corpus indexed with the real model (read-only for tests)."""
    from index.builder import IndexBuilder

    folder = tmp_path_factory.mktemp("index")
    IndexBuilder(folder).index_paths([seed_corpus])
    return folder


@pytest.fixture(scope="session")
def engine(seed_index: Path):
    from search.engine import Engine

    return Engine.open(seed_index)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        if item.path.name == "test_browser.py":
            item.add_marker(pytest.mark.browser)
        elif (INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
              or item.nodeid.startswith(INTEGRATION_TESTS)):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def no_model_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test must not load the model or start a process: building or constructing an embedder, or
    starting a subprocess (a CLI or a server, which would load it), fails it."""
    if request.node.get_closest_marker("unit") is None:
        return
    from index.embedders import e5_model, onnx, sbert

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{request.node.nodeid} loads the model: mark it integration, or use no model")

    # __init__, not __new__: a __new__ set on a class and removed again breaks its construction
    monkeypatch.setattr(onnx.OnnxEmbedder, "__init__", refuse)
    monkeypatch.setattr(sbert.SentenceTransformerEmbedder, "__init__", refuse)
    monkeypatch.setattr(e5_model, "ensure_e5_model", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
