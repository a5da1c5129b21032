"""`taskzoo bench`: quality and speed of every task (and the peer scripts), one table."""

from __future__ import annotations

import argparse
from typing import Any

from taskzoo.errors import UsageError


def add_parser(sub: Any) -> None:
    b = sub.add_parser("bench", help="quality and speed of every task, one table",
                       description="Train, evaluate and time each task (default: all) with its "
                                   "default recipe, one child process per task.")
    b.add_argument("tasks", nargs="*", metavar="TASK",
                   help="tasks to run, TASK (its default recipe) or TASK:ROW (one of its "
                        "benchmark rows, e.g. image_classification:flowers); default: every "
                        "task and row")
    b.add_argument("--quick", action="store_true",
                   help="tiny embedded data and cut budgets: a smoke test, not results")
    b.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: each task's)")
    b.add_argument("--precision", help="32, bf16-mixed or 16-mixed")
    b.add_argument("--seeds", type=int, default=1, help="seeds per task; quality as mean ± std")
    b.add_argument("--peers", action="store_true",
                   help="run the benchmarks/ peer scripts instead (with TASKs: as well) and print "
                        "ratios: Trainer vs plain loop, RL vs SB3, sentiment vs DistilBERT")
    b.add_argument("--json", metavar="F", help="write the rows as JSON")
    b.add_argument("--md", metavar="F", help="write the table as Markdown")
    b.add_argument("--csv", metavar="F", help="write the rows as CSV")
    b.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from taskzoo.bench.peers import benchmarks_dir, format_peers, run_peers
    from taskzoo.bench.tasks import format_table, hardware_line, run_bench

    if args.seeds < 1:
        raise UsageError(f"--seeds {args.seeds}: expected a positive count")
    header = hardware_line()
    rows: list[dict] = []
    peers: list[dict] = []
    if args.peers:
        benchmarks_dir()  # a missing folder fails before any task trains
    if args.tasks or not args.peers:
        rows = run_bench(args.tasks or None, quick=args.quick, device=args.device,
                         precision=args.precision, seeds=args.seeds)
        print(format_table(rows, header))
    if args.peers:
        peers = run_peers(quick=args.quick, device=args.device)
        print(("" if rows else header + "\n") + format_peers(peers, quick=args.quick))
    _write_files(args, header, rows, peers)
    return 1 if any("error" in r for r in rows + peers) else 0


def _write_files(args: argparse.Namespace, header: str, rows: list[dict],
                 peers: list[dict]) -> None:
    """The --json, --md and --csv files asked for."""
    from taskzoo.bench.peers import peers_markdown
    from taskzoo.bench.tasks import to_csv, to_markdown
    from taskzoo.files import write_json, write_text

    if args.json:
        write_json(args.json, {"hardware": header, "quick": args.quick, "rows": rows,
                               "peers": peers})
    if args.md:
        parts = [to_markdown(rows, header)] if rows else [f"_{header}_\n"]
        if peers:
            parts.append(peers_markdown(peers, quick=args.quick))
        write_text(args.md, "\n".join(parts))
    if args.csv:
        write_text(args.csv, to_csv(rows + peers))
