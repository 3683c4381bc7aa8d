"""The one settings table (`index.settings`): read when needed, validated, and the README's table."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from api import cli
from index import settings
from index.config import ChunkSettings, IndexSettings
from index.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_configuration_table_is_the_settings_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in readme
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `SEMSEARCH_")}
    assert documented == set(settings.BY_ENV)


def test_every_setting_read_in_the_code_has_a_row() -> None:
    read = set()
    for path in [*ROOT.glob("index/**/*.py"), *ROOT.glob("search/**/*.py"), *ROOT.glob("api/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value.startswith("SEMSEARCH_") and node.value.replace("_", "").isalnum()):
                read.add(node.value)
    assert read - set(settings.BY_ENV) == set()


def test_nothing_reads_the_environment_at_import_time() -> None:
    """Module-level code (outside functions) never touches os.environ / os.getenv: a process, or a test,
    that sets a variable later must see it."""
    found = []
    for path in [*ROOT.glob("index/**/*.py"), *ROOT.glob("search/**/*.py"), *ROOT.glob("api/**/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = {id(n) for f in ast.walk(tree)
                     if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(f)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                    and isinstance(node.value, ast.Name) and node.value.id == "os"
                    and id(node) not in functions):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_a_wrong_value_is_a_clear_error_naming_it(monkeypatch) -> None:
    monkeypatch.setenv("SEMSEARCH_MAX_TOKENS", "abc")
    with pytest.raises(ConfigError, match="^SEMSEARCH_MAX_TOKENS must be a whole number, not 'abc'$"):
        IndexSettings.from_env()
    for env, bad in [("SEMSEARCH_BACKEND", "gpu"), ("SEMSEARCH_THREADS", "0"), ("SEMSEARCH_RESCAN", "-1"),
                     ("SEMSEARCH_ANSWER_THRESHOLD", "2"), ("SEMSEARCH_READS_NEED_KEY", "maybe"),
                     ("SEMSEARCH_MAX_BODY", "lots"), ("SEMSEARCH_LLM_TIMEOUT", "soon")]:
        with pytest.raises(ConfigError, match=f"^{env} must be "):
            settings.value(env, {env: bad})


def test_semsearch_index_with_max_tokens_abc_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("长三角地区的研发投入强度目标。", encoding="utf-8")
    monkeypatch.setenv("SEMSEARCH_MAX_TOKENS", "abc")
    code = cli.main(["index", str(docs), "--index", str(tmp_path / "index")])  # was a ValueError traceback
    assert code == 1
    err = capsys.readouterr().err
    assert err == "semsearch: error: SEMSEARCH_MAX_TOKENS must be a whole number, not 'abc'\n"
    assert not (tmp_path / "index").exists()


def test_every_chunking_option_can_be_set(monkeypatch) -> None:
    for field in dataclasses.fields(ChunkSettings):
        assert f"SEMSEARCH_{field.name.upper()}" in settings.BY_ENV, field.name
    monkeypatch.setenv("SEMSEARCH_MAX_TOKENS", "200")
    monkeypatch.setenv("SEMSEARCH_TARGET_TOKENS", "90")
    monkeypatch.setenv("SEMSEARCH_OVERLAP_SENTENCES", "1")
    expected = ChunkSettings(max_tokens=200, target_tokens=90, overlap_sentences=1)
    assert IndexSettings.from_env().chunks == expected
    monkeypatch.setenv("SEMSEARCH_TARGET_TOKENS", "300")
    with pytest.raises(ConfigError, match="SEMSEARCH_TARGET_TOKENS"):
        IndexSettings.from_env()
    monkeypatch.delenv("SEMSEARCH_TARGET_TOKENS")
    monkeypatch.setenv("SEMSEARCH_MAX_TOKENS", "64")  # the target follows a smaller budget, as before
    assert IndexSettings.from_env().chunks.target_tokens == 64


def test_a_manifest_without_a_newer_chunk_option_holds_its_default() -> None:
    recorded = IndexSettings().to_dict()
    del recorded["chunks"]["overlap_sentences"]
    assert IndexSettings.from_dict(recorded).chunks == IndexSettings().chunks


def test_threads_and_cache_are_parsed_in_one_place(monkeypatch) -> None:
    monkeypatch.setenv("SEMSEARCH_THREADS", "3")
    monkeypatch.setenv("SEMSEARCH_CACHE", "~/elsewhere")
    from index.embedders import e5_model, onnx

    assert settings.threads() == onnx.onnx_threads() == 3
    assert e5_model.default_cache_dir() == Path("~/elsewhere").expanduser() / "models"
    monkeypatch.delenv("SEMSEARCH_THREADS")
    assert settings.threads() >= 1
