"""The weights commands of `taskzoo`: export, download, verify, weights."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("export", help="turn a run directory into a release asset or ONNX",
                       description="Write NAME.safetensors and its card NAME.json from a finished "
                                   "run directory; the card's figures are measured on the "
                                   "exported weights (real data through the hub). With --format "
                                   "onnx: the predictor's networks as ONNX graphs (a run "
                                   "directory or released weights), each checked against torch.")
    e.add_argument("run_dir", metavar="DIR", help="run directory of `taskzoo run` (with "
                   "--format onnx also a released weights name)")
    e.add_argument("--format", default="safetensors", choices=("safetensors", "onnx"),
                   help="safetensors: weights and card (a release asset); onnx: the "
                        "predictor's networks as ONNX graphs for onnxruntime, with the manifest "
                        "its predictor needs, into OUT/NAME/")
    e.add_argument("--name", help="arch.tag (default: the model and the dataset or env)")
    e.add_argument("--dtype", default="float16", choices=("float16", "float32"),
                   help="storage of floating tensors (default float16)")
    e.add_argument("--out", help="output folder (default DIR/export)")
    e.add_argument("--no-evaluate", action="store_true",
                   help="copy the run's figures instead of measuring the exported weights")
    e.add_argument("--default", action="store_true", help="mark as the task's default weights")
    e.add_argument("--url", default="", help="canonical URL of the file, if not under the hub URL")
    e.add_argument("--notes", default="", help="what a user should know, written into the card")
    e.add_argument("--delta-rank", type=int, default=0, metavar="R",
                   help="fine-tunes over a pretrained base: store each changed matrix as a "
                        "rank-R factorisation of its change (smaller file; figures measured on it)")
    e.add_argument("--overwrite", action="store_true",
                   help="replace NAME.safetensors / NAME.json in the output folder even when "
                        "they are not an earlier export of this run")

    d = sub.add_parser("download", help="fetch and verify released weights",
                       description="Fetch weights by name or task (its default weights) into the "
                                   "cache, verified by sha256.")
    d.add_argument("names", nargs="+", metavar="NAME", help="weights name (bilstm.sst2) or task")

    v = sub.add_parser("verify", help="rehash the download cache; delete corrupt files",
                       description="Rehash every file in the cache (TASKZOO_HOME) against its "
                                   "sha256 and delete the ones that do not match.")
    v.add_argument("--keep", action="store_true", help="report corrupt files without deleting them")

    w = sub.add_parser("weights", help="list released weights",
                       description="Released weights: name, task, headline metric, size and "
                                   "whether the file is packaged, cached or remote.")
    for parser, handler in ((e, cmd_export), (d, cmd_download), (v, cmd_verify),
                            (w, cmd_weights)):
        parser.set_defaults(handler=handler)


def cmd_export(args: argparse.Namespace) -> int:
    from taskzoo.weights.export import export

    if args.format == "onnx":
        return _export_onnx(args)

    weights, card = export(args.run_dir, name=args.name, dtype=args.dtype, out=args.out,
                           evaluate=not args.no_evaluate, default=args.default, url=args.url,
                           notes=args.notes, delta_rank=args.delta_rank,
                           overwrite=args.overwrite)
    import json

    data = json.loads(card.read_text(encoding="utf-8"))
    figures = ", ".join(f"{k} {v:.4f}" for k, v in data["metrics"].items())
    print(f"wrote {weights} ({data['size']:,} bytes, sha256 {data['sha256']})")
    print(f"wrote {card}: {figures}")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from pathlib import Path

    from taskzoo.deploy import MANIFEST, export_onnx, read_manifest
    from taskzoo.errors import UsageError

    for flag, value in (("--dtype", args.dtype != "float16"), ("--default", args.default),
                        ("--delta-rank", args.delta_rank), ("--url", args.url),
                        ("--notes", args.notes), ("--overwrite", args.overwrite)):
        if value:
            raise UsageError(f"{flag} is for --format safetensors; an ONNX export keeps float32 "
                             "graphs and replaces only an earlier ONNX export")
    run = Path(args.run_dir)
    out = args.out or (run / "export" if run.is_dir() else "exports")
    folder = export_onnx(args.run_dir, out, name=args.name)
    manifest = read_manifest(folder)
    for graph in manifest["graphs"]:
        par = graph["parity"]
        print(f"wrote {folder / graph['file']} ({graph['method']}: inputs "
              f"{', '.join(graph['inputs'])}; max |diff| vs torch {par['max_abs_diff']:.2e} "
              f"over {par['calls']} call(s))")
    if manifest["not_exported"]:
        print(f"not exported (not reached by the example inputs): "
              f"{', '.join(manifest['not_exported'])}")
    print(f"wrote {folder / MANIFEST}; in Python: {manifest['python']}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from taskzoo.weights import resolve, weights_file

    cards = [resolve(n) for n in args.names]  # every name checked before any download
    for card in cards:
        path = weights_file(card)
        print(f"{card.name}: {path} (sha256 {card.sha256[:12]}..., verified)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from taskzoo.hub import cache_root, verify_cache

    report = verify_cache(delete=not args.keep)
    bad = [(p, s) for p, s in report if s != "ok"]
    for path, status in bad:
        print(f"{status}: {path}")
    print(f"{cache_root()}: {len(report)} files, {len(report) - len(bad)} ok, "
          f"{len(bad)} {'corrupt' if args.keep else 'deleted'}")
    return 1 if bad and args.keep else 0


def cmd_weights(args: argparse.Namespace) -> int:
    from taskzoo.weights import cards, local_state

    rows = [("name", "task", "metric", "size", "where")]
    for card in sorted(cards(), key=lambda c: (c.task, c.name)):
        head = card.headline
        metric = f"{head[0]} {head[1]:.4f}" if head else "-"
        mark = " (default)" if card.default else ""
        rows.append((card.name + mark, card.task, metric, _size(card.size),
                     local_state(card)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
