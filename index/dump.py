"""Export an index's published generation to a portable dump, and import one without embedding.

A dump is an uncompressed tar of files any tool can read:

    manifest.json      format ("semsearch-dump"), format_version, model, dim, settings, counts, generation,
                       roots (the folders indexed and their doc_id prefixes; absent in older dumps)
    documents.jsonl    one document a line: doc_id, title, date, author, source, url, categories, path,
                       text (cleaned), paragraphs ([start, end] offsets into text), content_hash, pages
                       (where each page of a PDF starts in text; [] otherwise, and absent in older dumps)
    passages.jsonl     one passage a line, in passage-id order: passage_id, doc_id, ordinal, paragraph,
                       start, end (offsets into the document's text), text, hash
    vectors.npy        float32 (passages × dim) unit vectors, row i belongs to ids.npy[i]
    ids.npy            int64 passage ids, ascending
    sentence_offsets.npy  int64, len(ids) + 1: the sentence vectors of ids.npy[i] are rows
                       offsets[i]:offsets[i+1] of sentence_vectors.npy (`index.stores.sentence_store`)
    sentence_vectors.npy  float16 (sentences × dim) unit vectors
    checksums.json     sha256 of every other member

The two sentence members are there only when the generation has sentence vectors; a dump without them
(one of an index built without, or written before they existed) imports as an index without sentence
vectors. The format version is the same either way: a reader that predates them refuses the members it
does not know rather than misreading them, and this one reads both kinds.

The keyword index is not in the dump: it is rebuilt from the passage texts on import, which is exact
(it is a function of the texts). Vectors are the stored ones (passages' and sentences'), so an import
embeds nothing and never loads the model; they also fill the new index's embedding cache, so a later
re-index of the same documents re-embeds nothing either.

Export reads one published generation, which never changes once published. Its files are opened (and
the vectors read) before anything is written, so a generation pruned by a concurrent build while the
dump is written is still read whole; if it is pruned even before it could be opened, the then current
one is taken.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from index.config import DEFAULT_MODEL, FORMAT_VERSION, IndexSettings
from index.documents import text_hash
from index.embedding_cache import EmbeddingCache
from index.generations import IndexDir, IndexFolderError, IndexLocked, IndexNotFound, WriteLock, now_iso
from index.manifest import Manifest
from index.stores.factory import create_keyword_store, create_vector_store, load_vector_store
from index.stores.passages import DOCUMENT_COLUMNS, PassageStore, pack_bounds
from index.stores.sentence_store import SentenceStore, passage_sentences

DUMP_FORMAT = "semsearch-dump"
DUMP_VERSION = 1
MEMBERS = ("manifest.json", "documents.jsonl", "passages.jsonl", "vectors.npy", "ids.npy")
# Present only for a generation with sentence vectors, and then both (see the module doc).
SENTENCE_MEMBERS = ("sentence_offsets.npy", "sentence_vectors.npy")
CHECKSUMS = "checksums.json"
PASSAGE_COLUMNS = ("passage_id", "doc_id", "ordinal", "paragraph", "start", "end", "text", "hash")
OPEN_ATTEMPTS = 5
VECTOR_BATCH = 50_000


class DumpError(IndexFolderError):
    """A dump that cannot be imported (damaged, another model, a non-empty target); the message says why."""


# --- export ---------------------------------------------------------------------------------------------
def _open_generation(index: IndexDir) -> tuple[str, Manifest, PassageStore, Any, SentenceStore | None]:
    """The current generation's manifest, passage store, vector store and sentence store (None when it
    has none), all opened (files held)."""
    for _ in range(OPEN_ATTEMPTS):
        name = index.current()
        if name is None:
            raise IndexNotFound(f"no index at {index.root}: nothing to export")
        store = None
        try:
            manifest = index.manifest(name)
            store = PassageStore.open(index.path(name))
            store.count_documents()  # the file is open from here on, even if the folder is pruned
            vectors = load_vector_store(manifest.settings["vector_store"], index.path(name))
            return name, manifest, store, vectors, _load_sentences(index, name)
        except (FileNotFoundError, sqlite3.OperationalError, RuntimeError):
            # pruned between reading CURRENT and opening it: two builds published meanwhile
            if store is not None:
                store.close()
            time.sleep(0.05)
    raise IndexFolderError(f"the index at {index.root} changed faster than it could be read; try again")


def _load_sentences(index: IndexDir, name: str) -> SentenceStore | None:
    """The generation's sentence store, memory-mapped (so held like the other files), or None.

    Not `open_sentence_store`: that reports any failure as damage, while a FileNotFoundError here is
    the generation being pruned under us, which the caller retries with the then current one."""
    folder = index.path(name)
    if not SentenceStore.exists(folder):
        return None
    try:
        return SentenceStore.load(folder)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:  # what numpy raises for a damaged .npy
        raise IndexFolderError(f"the sentence vectors of generation {name} cannot be read ({exc}); rebuild "
                               f"them with `semsearch index` before exporting") from None


def export_index(index_dir: Path | str, out: Path | str) -> dict[str, Any]:
    """Write the current generation of `index_dir` to the tar `out`; returns the dump's manifest.

    The tar is written beside `out` and renamed into place when complete, so `out` is never a partial
    dump."""
    index = IndexDir(index_dir)
    out = Path(out)
    if out.is_dir():
        raise DumpError(f"{out} is a folder; give the dump's file name, e.g. {out / 'index.tar'}")
    if not out.parent.is_dir():
        raise DumpError(f"cannot write {out}: the folder {out.parent} does not exist")
    name, manifest, store, vstore, sentences = _open_generation(index)
    try:
        with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as tmp_name:
            tmp = Path(tmp_name)
            docs = _write_jsonl(tmp / "documents.jsonl", _documents(store))
            ids = np.asarray([r[0] for r in store.conn.execute(
                "SELECT passage_id FROM passages ORDER BY passage_id")], dtype=np.int64)
            _write_jsonl(tmp / "passages.jsonl", _passages(store))
            if len(vstore) != len(ids):
                raise IndexFolderError(f"generation {name} holds {len(ids)} passages but {len(vstore)} "
                                       f"vectors; rebuild it with `semsearch index` before exporting")
            vectors = np.lib.format.open_memmap(tmp / "vectors.npy", mode="w+", dtype=np.float32,
                                                shape=(len(ids), int(manifest.dim)))
            for lo in range(0, len(ids), VECTOR_BATCH):
                vectors[lo : lo + VECTOR_BATCH] = vstore.vectors(ids[lo : lo + VECTOR_BATCH])
            vectors.flush()
            del vectors
            np.save(tmp / "ids.npy", ids)
            members = MEMBERS
            if sentences is not None:
                _write_sentences(tmp, name, sentences, ids)
                members = (*MEMBERS, *SENTENCE_MEMBERS)
            dump_manifest = {
                "format": DUMP_FORMAT,
                "format_version": DUMP_VERSION,
                "exported": now_iso(),
                "generation": name,
                "created": manifest.created,
                "model": manifest.model,
                "dim": manifest.dim,
                "settings": manifest.settings,
                "documents": docs,
                "passages": len(ids),
                # informational (and cross-checked on import): the members themselves say it too
                **({"sentences": sentences.sentence_count} if sentences is not None else {}),
                "next_passage_id": (manifest.next_passage_id if manifest.next_passage_id is not None
                                    else int(ids.max(initial=0)) + 1),
                # the folders the index reads and their doc_id prefixes, so that indexing them again
                # after an import keeps every id (a device is this machine's: not carried over)
                **({"roots": [{k: v for k, v in r.items() if k != "device"} for r in manifest.roots]}
                   if manifest.roots is not None else {}),
            }
            (tmp / "manifest.json").write_text(json.dumps(dump_manifest, ensure_ascii=False, indent=2))
            sums = {m: _sha256(tmp / m) for m in members}
            (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=2))
            partial = tmp / "dump.tar"
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                for member in (*members, CHECKSUMS):
                    tar.add(tmp / member, arcname=member, recursive=False)
            partial.replace(out)
    finally:
        store.close()
    return dump_manifest


def _write_sentences(folder: Path, name: str, sentences: SentenceStore, ids: np.ndarray) -> None:
    """The sentence members. The store holds every passage of the generation in id order, so its offsets
    are aligned with ids.npy as they are, and the dump needs no ids of its own for them."""
    if not np.array_equal(np.asarray(sentences.ids), ids):
        raise IndexFolderError(f"generation {name} holds sentence vectors of {len(sentences.ids)} passages "
                               f"that are not its {len(ids)} passages; rebuild it with `semsearch index` "
                               f"before exporting")
    np.save(folder / "sentence_offsets.npy", np.asarray(sentences.offsets, dtype=np.int64))
    # copied in batches from the memory-mapped store, so a large one is never read into memory whole
    out = np.lib.format.open_memmap(folder / "sentence_vectors.npy", mode="w+", dtype=np.float16,
                                    shape=(sentences.sentence_count, sentences.dim))
    for lo in range(0, sentences.sentence_count, VECTOR_BATCH):
        out[lo : lo + VECTOR_BATCH] = sentences.vectors[lo : lo + VECTOR_BATCH]
    out.flush()
    del out


def _documents(store: PassageStore) -> Iterator[dict[str, Any]]:
    names = DOCUMENT_COLUMNS + ("pages",)
    columns = ", ".join(DOCUMENT_COLUMNS) + (", pages" if store.has_pages() else ", NULL")
    for row in store.conn.execute(f"SELECT {columns} FROM documents ORDER BY doc_id"):
        doc = dict(zip(names, row, strict=True))
        doc["categories"] = json.loads(doc["categories"])
        doc["paragraphs"] = json.loads(doc["paragraphs"])
        doc["pages"] = json.loads(doc["pages"]) if doc["pages"] else []
        yield doc


def _passages(store: PassageStore) -> Iterator[dict[str, Any]]:
    columns = ", ".join(f'"{c}"' for c in PASSAGE_COLUMNS)
    for row in store.conn.execute(f"SELECT {columns} FROM passages ORDER BY passage_id"):
        yield dict(zip(PASSAGE_COLUMNS, row, strict=True))


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- import ---------------------------------------------------------------------------------------------
def read_dump_manifest(dump: Path | str) -> dict[str, Any]:
    """The manifest of a dump (checked to be one), without reading the rest."""
    if not Path(dump).is_file():
        raise DumpError(f"{dump} does not exist or is not a file; give a dump written by `semsearch export`")
    try:
        with tarfile.open(dump, "r:") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            manifest = json.loads(member.read())
    except (tarfile.TarError, EOFError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DumpError(f"{dump} is not a semsearch dump or is damaged ({exc}); export it again with "
                        f"`semsearch export`") from None
    if manifest.get("format") != DUMP_FORMAT:
        raise DumpError(f"{dump} is not a semsearch dump (its manifest has no format {DUMP_FORMAT!r})")
    if manifest.get("format_version") != DUMP_VERSION:
        raise DumpError(f"{dump} has dump format version {manifest.get('format_version')}; this semsearch "
                        f"reads version {DUMP_VERSION}")
    return manifest


class TargetTaken(DumpError):
    """The target folder of an import is not empty: an import never merges into an index."""


def _refuse_unless_empty(root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(p.name != "write.lock" for p in root.iterdir())):
        if root.is_dir() and any(root.glob(".import-*")) and not IndexDir(root).published():
            raise TargetTaken(f"{root} holds what an interrupted import left (no index was published there); "
                              f"remove it (`rm -r {root}`) and import again")
        raise TargetTaken(f"{root} is not empty; import into a new folder (an import never merges into an "
                          f"existing index)")


@contextmanager
def _locked_empty(root: Path) -> Iterator[None]:
    """The target's write lock, and the target checked empty again under it: another import of the same
    new folder may have taken it since it was first checked."""
    with WriteLock(root):
        _refuse_unless_empty(root)
        yield


def import_index(dump: Path | str, index_dir: Path | str, model: str | None = None) -> dict[str, Any]:
    """Restore the dump into the new, empty index folder `index_dir`; nothing is embedded.

    `model` is the model the target is configured for (`--model`, else $SEMSEARCH_MODEL, else the
    default); a dump made with another one is refused. Returns a summary."""
    started = time.perf_counter()
    dump, index = Path(dump), IndexDir(index_dir)
    _refuse_unless_empty(index.root)
    manifest = read_dump_manifest(dump)
    wanted = model or IndexSettings.from_env().embedder.model
    settings = IndexSettings.from_dict(manifest["settings"])
    if _canonical(settings.embedder.model) != _canonical(wanted):
        raise DumpError(f"{dump} was made with model {settings.embedder.model!r}, but this index is "
                        f"configured for {wanted!r}: its queries would not match the dump's vectors. "
                        f"Import with --model {settings.embedder.model!r} (or SEMSEARCH_MODEL) instead")
    created = not index.root.exists()
    index.root.mkdir(parents=True, exist_ok=True)
    try:
        name, generation = _restore(dump, index, manifest, settings)
    except BaseException as exc:
        # A refused or failed import leaves nothing behind; but a folder another writer took meanwhile
        # (another import of the same new folder) is that writer's to keep.
        if created and not isinstance(exc, (IndexLocked, TargetTaken)):
            shutil.rmtree(index.root, ignore_errors=True)
        raise
    return {"generation": name, "documents": generation.documents, "passages": generation.passages,
            "sentences": generation.vector_index.get("sentences", 0), "model": manifest["model"],
            "from_generation": manifest["generation"], "embedded": 0,
            "seconds": round(time.perf_counter() - started, 3)}


def _restore(dump: Path, index: IndexDir, manifest: dict[str, Any],
             settings: IndexSettings) -> tuple[str, Manifest]:
    """Extract and check the dump, publish its generation and fill the embedding cache."""
    with _locked_empty(index.root), tempfile.TemporaryDirectory(prefix=".import-", dir=index.root) as tmp:
        files = _extract_checked(dump, Path(tmp))
        ids = np.load(files["ids.npy"], allow_pickle=False)
        vectors = np.load(files["vectors.npy"], mmap_mode="r", allow_pickle=False)
        dim = int(manifest["dim"])
        if vectors.shape != (len(ids), dim) or vectors.dtype != np.float32 or ids.dtype != np.int64:
            raise DumpError(f"{dump} is damaged: vectors {vectors.shape} {vectors.dtype} do not fit "
                            f"{len(ids)} ids of dimension {dim}")
        sentences = _checked_sentences(dump, manifest, files, ids, dim)
        # The settings say what the generation holds: a later build (an API write) embeds sentences only
        # when they do, so an import without them must not claim them, whatever the exported index had.
        settings = replace(settings, sentence_vectors=sentences is not None)
        name, gen = index.begin()
        try:
            generation = _write_generation(gen, name, manifest, settings, files, ids, vectors, sentences,
                                           dump)
            # the cache before the switch: a published import always has its vectors cached
            cache = EmbeddingCache(index.root, manifest["model"], dim)
            try:
                # Sentences first: a sentence whose text is also a whole passage's has the same key, and
                # the passage's float32 vector, put after, is the one kept (the sentence's is float16).
                if sentences is not None:
                    _cache_sentences(cache, files["passages.jsonl"], sentences)
                hashes = [p["hash"] for p in _read_jsonl(files["passages.jsonl"])]
                for lo in range(0, len(hashes), VECTOR_BATCH):
                    cache.put(hashes[lo : lo + VECTOR_BATCH], np.asarray(vectors[lo : lo + VECTOR_BATCH]))
            finally:
                cache.close()
            index.publish(name, gen, generation)
        except BaseException:
            shutil.rmtree(gen, ignore_errors=True)
            raise
        del vectors, sentences
    return name, generation


def _checked_sentences(dump: Path, manifest: dict[str, Any], files: dict[str, Path], ids: np.ndarray,
                       dim: int) -> SentenceStore | None:
    """The dump's sentence vectors, checked to fit its passages; None for a dump without them.

    The checksums only say the members are as exported; these checks catch a dump whose members were
    written wrongly (or edited), which would otherwise be published and fail, or mislead, every search."""
    present = [m for m in SENTENCE_MEMBERS if m in files]
    if not present:
        return None
    if len(present) != len(SENTENCE_MEMBERS):
        missing = next(m for m in SENTENCE_MEMBERS if m not in files)
        raise DumpError(f"{dump} is damaged: it holds {present[0]} but not {missing}; export it again")
    try:
        offsets = np.load(files["sentence_offsets.npy"], allow_pickle=False)
        vectors = np.load(files["sentence_vectors.npy"], mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise DumpError(f"{dump} is damaged: its sentence vectors cannot be read ({exc}); export it again") \
            from None
    problem = None
    if np.any(np.diff(ids) <= 0):  # the store finds a passage's rows by binary search
        problem = "ids.npy is not ascending"
    elif offsets.dtype != np.int64 or offsets.ndim != 1:
        problem = f"sentence_offsets.npy is {offsets.dtype} {offsets.shape}, not a row of int64"
    elif vectors.dtype != np.float16 or vectors.ndim != 2 or vectors.shape[1] != dim:
        problem = f"sentence_vectors.npy is {vectors.dtype} {vectors.shape}, not float16 (sentences × {dim})"
    elif len(offsets) != len(ids) + 1:
        problem = (f"sentence_offsets.npy has {len(offsets)} offsets, not aligned with the {len(ids)} "
                   f"passages of ids.npy (that takes {len(ids) + 1})")
    elif offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        problem = "sentence_offsets.npy does not start at 0 and only rise"
    elif int(offsets[-1]) != len(vectors):
        problem = (f"sentence_offsets.npy ends at {int(offsets[-1])}, not at the {len(vectors)} rows of "
                   f"sentence_vectors.npy")
    elif manifest.get("sentences", len(vectors)) != len(vectors):
        problem = (f"its manifest says {manifest['sentences']} sentences, sentence_vectors.npy holds "
                   f"{len(vectors)}")
    if problem is not None:
        raise DumpError(f"{dump} is damaged: {problem}; export it again")
    return SentenceStore(dim, ids, offsets, vectors)


def _cache_sentences(cache: EmbeddingCache, passages: Path, sentences: SentenceStore) -> None:
    """Put the sentence vectors into the embedding cache, by the hash of the sentence texts this version
    cuts from each passage, so a re-index that embeds a passage's sentences again finds them there.

    A passage whose sentences are not as many as the dump stored was cut by another sentence rule (an
    older or newer semsearch): which vector belongs to which sentence is then unknown, so it is left
    out of the cache (its store rows are still imported: they are the exported index's own)."""
    hashes: list[str] = []
    rows: list[np.ndarray] = []
    waiting = 0
    for i, p in enumerate(_read_jsonl(passages)):
        lo, hi = int(sentences.offsets[i]), int(sentences.offsets[i + 1])
        texts = passage_sentences(p["text"])
        if not texts or len(texts) != hi - lo:
            continue
        hashes += [text_hash(t) for t in texts]
        rows.append(np.arange(lo, hi))
        waiting += hi - lo
        if waiting >= VECTOR_BATCH:
            cache.put(hashes, np.asarray(sentences.vectors[np.concatenate(rows)], dtype=np.float32))
            hashes, rows, waiting = [], [], 0
    if hashes:
        cache.put(hashes, np.asarray(sentences.vectors[np.concatenate(rows)], dtype=np.float32))


def _canonical(model: str) -> str:
    """One name for the bundled model's aliases (as the embedders name it in a manifest)."""
    from index.embedders.sbert import E5_ALIASES  # light: the model library is imported on first use

    return DEFAULT_MODEL if model in E5_ALIASES else model


def _extract_checked(dump: Path, folder: Path) -> dict[str, Path]:
    """Extract the expected members (nothing else, no links, no paths) and verify their checksums.

    The sentence members may be absent (a dump of an index without them, or an older one), but not when
    checksums.json lists them: then the dump lost them on the way."""
    wanted = {*MEMBERS, *SENTENCE_MEMBERS, CHECKSUMS}
    files: dict[str, Path] = {}
    try:
        with tarfile.open(dump, "r:") as tar:
            for member in tar:
                if member.name not in wanted or not member.isfile():
                    raise DumpError(f"{dump} holds an unexpected member {member.name!r}; it is not a dump "
                                    f"written by `semsearch export`")
                source = tar.extractfile(member)
                assert source is not None
                target = folder / member.name
                with target.open("wb") as fh:
                    shutil.copyfileobj(source, fh, 1 << 20)
                files[member.name] = target
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError) and exc.errno is not None:
            raise  # disk full, permissions: the target's problem, not the dump's
        raise DumpError(f"{dump} is damaged (truncated or corrupt: {exc}); export it again") from None
    missing = sorted({*MEMBERS, CHECKSUMS} - set(files))
    if missing:
        raise DumpError(f"{dump} is damaged or truncated: {', '.join(missing)} missing; export it again")
    try:
        sums = json.loads(files[CHECKSUMS].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DumpError(f"{dump} is damaged: {CHECKSUMS} cannot be read ({exc}); export it again") from None
    if not isinstance(sums, dict):
        raise DumpError(f"{dump} is damaged: {CHECKSUMS} is not a table of checksums; export it again")
    lost = sorted(m for m in SENTENCE_MEMBERS if m in sums and m not in files)
    if lost:
        raise DumpError(f"{dump} is damaged or truncated: {', '.join(lost)} missing; export it again")
    for member in [*MEMBERS, *(m for m in SENTENCE_MEMBERS if m in files)]:
        if sums.get(member) != _sha256(files[member]):
            raise DumpError(f"{dump} is damaged: the checksum of {member} does not match; export it again")
    return files


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def _write_generation(
    folder: Path, name: str, manifest: dict[str, Any], settings: IndexSettings, files: dict[str, Path],
    ids: np.ndarray, vectors: np.ndarray, sentences: SentenceStore | None, dump: Path,
) -> Manifest:
    """The files of one generation from the dump's members; returns its manifest."""
    store = PassageStore.create(folder)
    documents = 0
    for doc in _read_jsonl(files["documents.jsonl"]):
        row = [doc[c] for c in DOCUMENT_COLUMNS]
        row[6] = json.dumps(doc["categories"], ensure_ascii=False)
        row[9] = json.dumps(doc["paragraphs"])
        row.append(json.dumps(doc["pages"]) if doc.get("pages") else None)  # older dumps have none
        store.conn.execute(f"INSERT INTO documents VALUES ({','.join('?' * len(row))})", row)
        store.conn.executemany("INSERT INTO categories VALUES (?, ?)",
                               [(doc["doc_id"], c) for c in dict.fromkeys(doc["categories"])])
        documents += 1
    texts = []
    columns = ", ".join(f'"{c}"' for c in PASSAGE_COLUMNS)
    for i, p in enumerate(_read_jsonl(files["passages.jsonl"])):
        if i >= len(ids) or p["passage_id"] != ids[i]:
            raise DumpError(f"{dump} is damaged: passages.jsonl and ids.npy disagree at row {i}")
        store.conn.execute(f"INSERT INTO passages ({columns}, bounds) VALUES (?,?,?,?,?,?,?,?,?)",
                           [*(p[c] for c in PASSAGE_COLUMNS), pack_bounds(p["text"])])
        texts.append(p["text"])
    if len(texts) != len(ids):
        raise DumpError(f"{dump} is damaged: {len(texts)} passages for {len(ids)} vectors")
    store.conn.commit()

    vstore = create_vector_store(settings.vector_store, int(manifest["dim"]), settings.faiss)
    for lo in range(0, len(ids), VECTOR_BATCH):
        vstore.add(ids[lo : lo + VECTOR_BATCH], np.asarray(vectors[lo : lo + VECTOR_BATCH]))
    vstore.save(folder)
    kstore = create_keyword_store(settings.keyword_store)
    if kstore is not None:
        kstore.build(ids, texts)
        kstore.save(folder)
    vector_index = dict(vstore.describe()) if hasattr(vstore, "describe") else {}
    if sentences is not None:
        # in the folder before `publish`, so the manifest's file table covers it as a build's does
        sentences.save(folder)
        vector_index["sentences"] = sentences.sentence_count
    store.finish()
    return Manifest(
        format_version=FORMAT_VERSION,
        generation=name,
        created=now_iso(),
        model=manifest["model"],
        dim=manifest["dim"],
        settings=settings.to_dict(),
        documents=documents,
        passages=len(ids),
        next_passage_id=int(manifest.get("next_passage_id") or int(ids.max(initial=0)) + 1),
        vector_index=vector_index,
        roots=manifest.get("roots"),
        extra={"imported_from": {"dump": str(dump.name), "generation": manifest["generation"],
                                 "exported": manifest.get("exported")}},
    )


def describe_dump(manifest: dict[str, Any]) -> str:
    return (f"{manifest['documents']} documents, {manifest['passages']} passages, model {manifest['model']} "
            f"({manifest['dim']} dimensions), generation {manifest['generation']}")

