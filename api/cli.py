"""`semsearch`: index documents, search them, and serve the HTTP API.

Heavy libraries (torch, faiss) are imported inside the commands, so `semsearch --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from index import settings
from index.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_SKIPPED, EXIT_USAGE, ConfigError, classify


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    if (name := _undecodable_argument(args)) is not None:
        # bytes that are not UTF-8 arrive as lone surrogates, which the tokenizer and SQLite refuse deep down
        return fail(f"{name} is not valid UTF-8 text", EXIT_USAGE)
    try:
        settings.validate()  # a wrong setting stops the command before it starts working
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; the index is unchanged unless a generation was published", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `semsearch ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except Exception as exc:  # every error the user can cause is reported in one line, no traceback
        info = classify(exc)
        if args.verbose or info is None:
            raise
        return fail(info.message, info.exit)


def fail(message: str, code: int = EXIT_ERROR) -> int:
    """Print `message` as the one line of a failed command; the exit status to return."""
    print(f"semsearch: error: {message}", file=sys.stderr)
    return code


def _undecodable_argument(args: argparse.Namespace) -> str | None:
    """The name of a text argument that cannot be encoded as UTF-8 (paths may hold any bytes)."""
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return name.replace("_", "-")
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semsearch",
        description="Semantic search and question answering over document collections.",
        epilog="The index folder is --index, else $SEMSEARCH_INDEX, else ./.index",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(title="commands")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--index", type=Path, help="index folder (default $SEMSEARCH_INDEX or ./.index)")
        p.add_argument("--store", choices=["faiss", "milvus"],
                       help="where the index lives (default $SEMSEARCH_STORE or faiss: the --index folder)")
        p.add_argument("--milvus-uri", help="Milvus server, http://HOST:19530 ($SEMSEARCH_MILVUS_URI)")
        p.add_argument("--milvus-token", help="Milvus token, user:password ($SEMSEARCH_MILVUS_TOKEN)")
        p.add_argument("--collection", help="Milvus collection ($SEMSEARCH_MILVUS_COLLECTION or semsearch)")
        return p

    p = command("index", "index files and folders (.txt .md .html .jsonl .pdf .docx), incrementally")
    p.add_argument("paths", nargs="+", type=Path, help="files or folders, read recursively")
    p.add_argument("--model", help="sentence-transformers model name or folder (new indexes, or --rebuild)")
    p.add_argument("--rebuild", action="store_true",
                   help="build a fresh generation from exactly these paths (documents added through the API "
                        "are dropped), reusing the embedding cache")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="embed on this Ray cluster (host:port of its head; $SEMSEARCH_RAY_ADDRESS)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--strict", action="store_true",
                   help="if any file cannot be read, change nothing and exit 1 (default: index the rest, "
                        f"keep what the index had from that file, exit {EXIT_SKIPPED})")
    p.set_defaults(func=cmd_index)

    p = command("search", "rank passages for a query")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=10, help="number of results (1-100)")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--mode", choices=["dense", "keyword", "hybrid"], help="retrieval mode")
    _filter_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_search)

    p = command("similar", "passages most like a text or a stored passage")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--text")
    group.add_argument("--passage", type=_passage_id, help="passage id")
    p.add_argument("--k", type=int, default=10)
    _filter_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)

    p = command("ask", "answer a question with a sentence of the documents, cited [n]")
    p.add_argument("question")
    p.add_argument("--k", type=int, default=5,
                   help="passages retrieved and listed with the answer (1-100; the reader reads 3)")
    _filter_args(p)
    p.add_argument("--generate", action="store_true",
                   help="let an LLM write the answer ($SEMSEARCH_LLM_BASE_URL, _MODEL, _API_KEY)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_ask)

    p = command("migrate", "copy a folder index into Milvus as it is: its passages and vectors, nothing "
                           "embedded again (the destination is --milvus-uri / --collection)")
    p.add_argument("source", type=Path, help="the index folder to copy")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_migrate)

    p = command("info", "documents, passages, model and size of the index")
    p.add_argument("--verify", action="store_true",
                   help="also check every file against the checksums written when it was published")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval", help="quality figures on a development set (see ../shared/eval/README.md)")
    p.add_argument("folder", type=Path, help="a set folder: corpus.jsonl + queries.jsonl and/or pairs.jsonl")
    p.add_argument("--mode", choices=["dense", "keyword", "hybrid"], help="retrieval mode")
    p.add_argument("--k", type=int, default=10, help="ranking depth scored (at least 10)")
    p.add_argument("--limit", type=int, help="only the first N queries (quick checks)")
    p.add_argument("--model", help="sentence-transformers model name or folder")
    p.add_argument("--answers", action="store_true", help="also answer_hit, em, f1, withheld (semsearch ask)")
    p.add_argument("--skip", type=int, default=0, help="leave out the first N queries (a fitted slice)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = command("export", "write the current generation to a portable dump (a tar; see README)")
    p.add_argument("out", type=Path, help="the dump file to write, e.g. index.tar")
    p.add_argument("--json", action="store_true", help="print the dump's manifest as JSON")
    p.set_defaults(func=cmd_export)

    p = command("import", "restore a dump into a new index folder, without embedding anything")
    p.add_argument("dump", type=Path, help="a dump written by `semsearch export`")
    p.add_argument("--model", help="the model the new index is for (default $SEMSEARCH_MODEL or e5-small); "
                                   "must be the dump's")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_import)

    p = command("watch", "keep the index in sync with folders: changes are indexed within seconds")
    p.add_argument("paths", nargs="+", type=Path, help="folders to follow, recursively")
    p.add_argument("--model", help="sentence-transformers model name or folder (new indexes only)")
    _watch_args(p)
    p.set_defaults(func=cmd_watch)

    p = command("serve", "serve the HTTP API and the search page")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but loopback needs SEMSEARCH_API_KEY")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--watch", nargs="+", type=Path, default=[], metavar="PATH",
                   help="also keep the index in sync with these folders")
    _watch_args(p)
    p.set_defaults(func=cmd_serve)
    return parser


def _watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rescan", type=float,
                   help="seconds between full rescans, the safety net for lost events "
                        "(default $SEMSEARCH_RESCAN, else 60)")


def _watch_options(args: argparse.Namespace) -> dict[str, float]:
    rescan = args.rescan if args.rescan is not None else settings.value("SEMSEARCH_RESCAN")
    if rescan <= 0:
        raise ConfigError(f"--rescan must be more than 0 seconds, not {rescan}")
    # what changed goes to the log (INFO); the rest of semsearch stays at WARNING
    logging.getLogger("semsearch.watch").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    return {"rescan": rescan}


def _passage_id(value: str) -> int:
    """A passage id as argparse checks it: a whole number SQLite can hold (larger ones cannot exist)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"passage id must be a whole number, not {value!r}") from None
    if not 0 <= number < 2**63:
        raise argparse.ArgumentTypeError(f"no passage can have id {value}")
    return number


def _filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--doc-id", action="append", default=[], help="only this document (repeatable)")
    p.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    p.add_argument("--category", action="append", default=[], help="only this category (repeatable)")
    p.add_argument("--date-from", help="YYYY-MM-DD, inclusive")
    p.add_argument("--date-to", help="YYYY-MM-DD, inclusive")


def _filters(args: argparse.Namespace) -> Any:
    from search.filters import parse_filters

    return parse_filters(
        doc_ids=args.doc_id,
        sources=args.source,
        categories=args.category,
        date_from=args.date_from,
        date_to=args.date_to,
    )


def _index_dir(args: argparse.Namespace) -> Path:
    from index.config import default_index_dir

    return args.index or default_index_dir()


def _store(args: argparse.Namespace) -> Any:
    """The store settings: flags over the environment (`index.backends.StoreConfig`)."""
    from index.backends import StoreConfig

    given = ("store", "index", "milvus_uri", "milvus_token", "collection")
    return StoreConfig.from_env(**{name: getattr(args, name, None) for name in given})


def _location(args: argparse.Namespace) -> Any:
    from index.backends import open_index

    return open_index(_store(args))


def _engine(args: argparse.Namespace) -> Any:
    from search.engine import Engine

    return Engine.open(_location(args))


def cmd_index(args: argparse.Namespace) -> int:
    from index.config import IndexSettings

    for path in args.paths:
        if not path.exists():
            return fail(f"{path} does not exist")
    ray = args.ray or settings.value("SEMSEARCH_RAY_ADDRESS")
    chosen = None
    if args.model:
        chosen = IndexSettings.from_env()
        chosen.embedder.model = args.model
    builder = _location(args).builder(
        chosen, progress=not args.quiet and sys.stderr.isatty(), rebuild=args.rebuild, ray=ray
    )
    summary = builder.index_paths(args.paths, strict=args.strict)
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        print(summary.describe())
    return 0 if summary.clean else EXIT_SKIPPED


def cmd_migrate(args: argparse.Namespace) -> int:
    from index.backends import FolderIndex, open_index
    from index.config import IndexSettings
    from index.generations import IndexFolderError

    source = FolderIndex(args.source)
    pointer = source.pointer()
    if pointer is None:
        raise IndexFolderError(f"no index at {args.source} to copy")
    generation = source.open_generation(pointer)
    config = _store(args)
    config.store = "milvus"
    settings = IndexSettings.from_dict(generation.manifest.settings)
    summary = open_index(config).builder(settings).copy_from(generation)
    print(json.dumps(summary.to_dict(), ensure_ascii=False) if args.json else summary.describe())
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    response = _engine(args).search(
        args.query, k=args.k, mode=args.mode, filters=_filters(args), offset=args.offset
    )
    if args.json:  # the body GET /search answers, so a program can use either face
        print(response.model_dump_json())
    else:
        print_results(response.results)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    results = _engine(args).similar(text=args.text, passage_id=args.passage, k=args.k, filters=_filters(args))
    if args.json:
        print(json.dumps({"results": [r.model_dump() for r in results]}, ensure_ascii=False))
    else:
        print_results(results)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    engine = _engine(args)
    info = engine.info()
    checked = engine.verify() if args.verify else None
    if checked is not None:
        info["verified"] = checked["verified"]
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    for key in ("index", "generation", "created", "documents", "passages", "model", "dim"):
        print(f"{key:>10}: {info[key]}")
    print(f"{'size':>10}: {info['size_bytes'] / 1e6:.1f} MB")
    if checked is not None:
        # A Milvus collection has no files of ours: its passage and document counts are what is checked.
        what = "every file matches its checksum" if checked["files"] else "counts match the manifest"
        print(f"{'verified':>10}: {what}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from index.config import IndexSettings
    from search.evaluate import evaluate

    settings = IndexSettings.from_env()
    if args.model:
        settings.embedder.model = args.model
    figures = evaluate(
        args.folder,
        mode=args.mode,
        k=args.k,
        limit=args.limit,
        settings=settings,
        progress=sys.stderr.isatty(),
        answers=args.answers,
        skip=args.skip,
        store=_store(args),
    )
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        reliability = figures.pop("reliability", None)
        for key, value in figures.items():
            print(f"{key:>22}: {value}")
        if reliability:
            print(f"{'reliability':>22}: confidence bin, answers, mean confidence, share right")
            for row in reliability:
                print(f"{'':>22}  {row['bin']}  {row['n']:>5}  {row['predicted']:.3f}  {row['observed']:.3f}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    engine = _engine(args)
    filters = _filters(args)
    filters = filters if filters.active() else None
    if args.generate and not args.json and sys.stdout.isatty():
        return _ask_streamed(engine, args.question, args.k, filters)
    mode = "generate" if args.generate else "extract"
    response = engine.ask(args.question, k=args.k, filters=filters, mode=mode)
    if args.json:  # the body POST /ask answers
        print(response.model_dump_json())
    else:
        print_answer(response)
    return 0


def _ask_streamed(engine: Any, question: str, k: int, filters: Any) -> int:
    """A generated answer printed as it is written, then its citations and checks."""
    from search.models import AskResponse

    final = None
    for event in engine.ask_stream(question, k=k, filters=filters):
        if event["type"] == "token":
            print(event["text"], end="", flush=True)
        elif event["type"] == "done":
            final = AskResponse.model_validate(event["response"])
        elif event["type"] == "error":  # the LLM failed midway: what was printed is no answer
            print()
            return fail(event["message"])
    print()
    if final is not None:
        print_answer(final, answer_printed=True)
    return 0


def print_answer(response: Any, *, answer_printed: bool = False) -> None:
    """The answer (its span highlighted on a terminal), its citations [n], then the passages."""
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if not answer_printed:
        if response.answer is None:
            print(response.message or "no answer")
        else:
            spans = [tuple(response.answer_span)] if response.answer_span else []
            shown = highlight_text(response.answer, spans, colour)
            if not colour and response.answer_span:  # mark the span without colour too
                s, e = response.answer_span
                shown = f"{response.answer[:s]}【{response.answer[s:e]}】{response.answer[e:]}"
            marks = "".join(f"[{c.n}]" for c in response.citations) if response.mode == "extract" else ""
            print(f"{shown}{marks}")
    if response.confidence is not None:
        print(f"confidence {response.confidence:.2f}")
    for flag, what in (("unknown_citations", "no such passage"), ("unsupported_citations", "not supported")):
        marks = getattr(response, flag, None)
        if marks:
            print(f"warning: {what}: " + ", ".join(f"[{n}]" for n in marks))
    if response.citations:
        print()
        for c in response.citations:
            meta = " · ".join(x for x in (c.source, c.date) if x)
            where = f"{c.doc_id}" + (f" p. {c.page}" if c.page else "") + f":{c.start}-{c.end}"
            print(f"[{c.n}] {c.title}" + (f"  ({meta})" if meta else "") + f"  {where}")
    if response.passages:
        print("\npassages:\n")
        print_results(response.passages)


def _folder_store_only(args: argparse.Namespace, what: str) -> None:
    """export and import work on folder indexes: with the Milvus store, --index is only the local folder
    of its caches, so an export would be an old or empty copy that lacks every write made to Milvus."""
    from index.generations import IndexFolderError

    if _store(args).store != "faiss":
        raise IndexFolderError(
            f"{what} reads and writes folder indexes, and this index is in Milvus (--store or "
            f"$SEMSEARCH_STORE): the folder {_index_dir(args)} does not hold it. Back a collection up "
            "with Milvus's own tools; to move a dump into Milvus, import it into a folder with --store "
            "faiss, then `semsearch migrate FOLDER`"
        )


def cmd_export(args: argparse.Namespace) -> int:
    from index.dump import describe_dump, export_index

    _folder_store_only(args, "export")
    manifest = export_index(_index_dir(args), args.out)
    if args.json:
        print(json.dumps(manifest, ensure_ascii=False))
    else:
        print(f"exported {describe_dump(manifest)} to {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from index.dump import import_index

    _folder_store_only(args, "import")
    summary = import_index(args.dump, _index_dir(args), model=args.model)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"imported {summary['documents']} documents, {summary['passages']} passages "
              f"(generation {summary['from_generation']} of the dump) into {_index_dir(args)} as generation "
              f"{summary['generation']}; nothing embedded, {summary['seconds']:.1f}s")
    return 0


def _check_watched(paths: list[Path]) -> None:
    """Typos fail at once; a folder that exists but goes away later is only 'unavailable'."""
    for path in paths:
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise FileNotFoundError(f"{path} {what}; watch takes folders")


def cmd_watch(args: argparse.Namespace) -> int:
    import time

    from index.builder import IndexBuilder
    from index.config import IndexSettings
    from index.watch import FolderWatcher

    _check_watched(args.paths)
    options = _watch_options(args)
    settings = None
    if args.model:
        settings = IndexSettings.from_env()
        settings.embedder.model = args.model
    builder = IndexBuilder(_index_dir(args), settings)
    watcher = FolderWatcher(args.paths, builder.index_paths, index_dir=_index_dir(args), **options)
    watcher.start()
    print(f"watching {', '.join(map(str, args.paths))} into {_index_dir(args)}; Ctrl-C stops",
          file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # the normal way to stop: a sync under way finishes first
        watcher.stop()
        print("stopped watching", file=sys.stderr)
        return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.security import SecuritySettings, check_bind
    from api.server import create_app

    security = SecuritySettings.from_env().serving(args.host)
    check_bind(args.host, security)  # before the model loads: refuse at once, with the reason
    _check_watched(args.watch)
    options = _watch_options(args) if args.watch else {}
    if args.watch:
        from index.builder import IndexBuilder
        from index.generations import IndexDir

        if IndexDir(_index_dir(args)).current() is None:  # a new index: build it before serving it
            print(IndexBuilder(_index_dir(args)).index_paths(args.watch).describe(), file=sys.stderr)
    app = create_app(_location(args), security=security, watch=args.watch, watch_options=options)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def print_results(results: list[Any]) -> None:
    """Human-readable results; matched terms in colour on a terminal."""
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if not results:
        print("no results")
    for r in results:
        where = _place(r)
        meta = " · ".join(x for x in (r.source, r.date) if x)
        print(f"{r.rank:>2}. [{r.score:.3f}] {r.title}" + (f"  ({meta})" if meta else ""))
        print(f"    {where}  passage {r.passage_id}")
        print("    " + highlight_text(r.text, r.highlights, colour).replace("\n", "\n    "))
        for other in r.also_in:
            print(f"    also in: {other.title} ({_place(other)}, passage {other.passage_id})")
        print()


def _place(cited: Any) -> str:
    """Where a result or one of its copies stands: `doc_id[ p. N]:start-end`."""
    return f"{cited.doc_id}" + (f" p. {cited.page}" if cited.page else "") + f":{cited.start}-{cited.end}"


def highlight_text(text: str, spans: list[tuple[int, int]], colour: bool) -> str:
    if not colour or not spans:
        return text
    out, at = [], 0
    for start, end in sorted(spans):
        if start < at:
            continue
        out += [text[at:start], "\x1b[1;33m", text[start:end], "\x1b[0m"]
        at = end
    out.append(text[at:])
    return "".join(out)


if __name__ == "__main__":
    sys.exit(main())
