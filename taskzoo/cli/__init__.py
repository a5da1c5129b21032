"""The `taskzoo` command: list, run, predict, play, bench, export, download, verify, weights.

Usage errors (unknown task, bad override) print one helpful line and exit 2; other taskzoo
errors (download failed, corrupt checkpoint) exit 1; nothing prints a traceback unless
TASKZOO_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskzoo import __version__
from taskzoo.errors import TaskzooError, UsageError

EPILOG_RUN = """\
overrides are key=value pairs of the task's config, e.g. epochs=5 lr=0.001 dataset=tiny;
`taskzoo run TASK --help` lists every key with its type and default.
environment: TASKZOO_HOME (cache), TASKZOO_MIRROR (mirror dirs/URLs), TASKZOO_OFFLINE=1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its usage line short
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="taskzoo", description="Classic deep-learning applications, one API.")
    p.add_argument("--version", action="version", version=f"taskzoo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sub.add_parser("list", help="list tasks and models", description="List tasks and models.")

    r = sub.add_parser("run", help="train and evaluate a task", add_help=False,
                       description="Train and evaluate TASK with its default recipe.",
                       epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("-h", "--help", action="store_true", help="show this help (and TASK's config)")
    r.add_argument("task", nargs="?", help="task name or alias (see `taskzoo list`)")
    r.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    r.add_argument("--model", help="model registry name (same as model=...)")
    r.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (same as device=...)")
    r.add_argument("--precision", help="32, bf16-mixed or 16-mixed (same as precision=...)")
    r.add_argument("--out", help="run directory (default runs/TASK/<time>-<model>)")
    r.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print final metrics as JSON")

    pr = sub.add_parser("predict", help="predict with released weights or a trained run",
                        description="Run TASK's predictor on the given inputs: its default "
                                    "released weights, --weights, or a run directory (--from).")
    pr.add_argument("task", help="task name (checked against the weights or run directory)")
    pr.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="inputs in the task's form: text (sentiment, pos), a JSON array for an "
                         "observation vector (cartpole: '[0.01,0.2,-0.03,-0.3]'), a state "
                         "number (frozenlake, taxi), image paths, globs or folders "
                         "(image_classification); '-' reads one input per line from stdin")
    pr.add_argument("--from", dest="run_dir", help="run directory of `taskzoo run`")
    pr.add_argument("--weights", help="released name, .safetensors file (card beside it) or URL")
    pr.add_argument("--sha256", help="sha256 of --weights when it is an https URL")
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    pr.add_argument("--json", action="store_true", help="one JSON object per line")
    pr.add_argument("--top-k", type=int, default=0, metavar="K",
                    help="image tasks: also the K most likely labels")
    pr.add_argument("--save", metavar="DIR",
                    help="tasks that output images (autoencoder, detection): write them into "
                         "DIR as PNG; a video (detection): the annotated OUT.mp4, OUT.jsonl beside")
    pr.add_argument("--conf", type=float, metavar="C", help="detection: score threshold")
    pr.add_argument("--iou", type=float, metavar="T", help="detection: NMS IoU threshold")
    pr.add_argument("--ratio", type=float, metavar="R",
                    help="summarization: keep this fraction of the sentences")
    pr.add_argument("--sentences", type=int, metavar="N",
                    help="summarization: keep N sentences")

    pl = sub.add_parser("play", help="watch a trained RL agent (and record it)",
                        description="Play greedy episodes of a finished RL run; optionally "
                                    "record them as an animated GIF or an MP4.")
    pl.add_argument("task", help="task name (checked against the run directory)")
    pl.add_argument("--from", dest="run_dir", required=True, help="run directory of `taskzoo run`")
    pl.add_argument("--episodes", type=int, default=3, help="episodes to play (default 3)")
    pl.add_argument("--record", metavar="FILE", help="write the episodes to FILE (.gif or .mp4)")
    pl.add_argument("--seed", type=int, default=0, help="episode i is seeded SEED+i (default 0)")
    pl.add_argument("--fps", type=float, help="playback speed, steps per second "
                                              "(default the environment's, i.e. real time)")
    pl.add_argument("--max-steps", type=int, help="cut episodes after this many steps")
    b = sub.add_parser("bench", help="quality and speed of every task, one table",
                       description="Train, evaluate and time each task (default: all) with its "
                                   "default recipe, one child process per task.")
    b.add_argument("tasks", nargs="*", metavar="TASK", help="tasks to run (default: every task)")
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

    c = sub.add_parser("chat", help="answer questions from a knowledge base (retrieval chatbot)",
                       description="Ask questions in the terminal; each gets the best-matching "
                                   "entry of the knowledge base, or 'I don't know'.")
    c.add_argument("--kb", required=True, metavar="PATH",
                   help="a question,answer CSV (an FAQ) or a folder of .txt / .md files")
    c.add_argument("--threshold", type=float, default=0.4,
                   help="below this score the bot says it does not know (default 0.4)")
    c.add_argument("--rerank", action="store_true",
                   help="re-rank the best entries with the answer_selection cross-encoder")
    c.add_argument("--no-span", action="store_true",
                   help="show whole passages instead of the answer span the qa model cuts")
    c.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or mps")

    from taskzoo.cli.weights import add_parsers

    add_parsers(sub)
    return p


def _cmd_chat(args: argparse.Namespace) -> int:
    from taskzoo.apps.chat import chatbot, repl

    bot = chatbot(args.kb, threshold=args.threshold, rerank=args.rerank,
                  span=not args.no_span, device=args.device)
    return repl(bot)


def _cmd_list() -> int:
    from taskzoo.tasks import TASKS, names

    print("tasks:")
    width = max(len(n) for n in names()) + 2  # the longest name still leaves a gap
    for name in names():
        cls = TASKS.get(name)
        aliases = TASKS.aliases_of(name)
        alias_txt = f" (aliases: {', '.join(aliases)})" if aliases else ""
        print(f"  {name:<{width}}{cls.description}{alias_txt}")
    from taskzoo.models import names as model_names

    print("models:")
    print("  " + ", ".join(model_names()))
    return 0


def _print_task_config(task: str) -> None:
    from taskzoo.api import resolve_task
    from taskzoo.config import describe

    cls = resolve_task(task)
    print(f"\n{cls.name} config (key=value; defaults are the tuned recipe):")
    rows = describe(cls.Config)
    w = max(len(r[0]) for r in rows)
    for key, tp, default, help_text in rows:
        print(f"  {key:<{w}}  {default:<14} {tp}" + (f"  # {help_text}" if help_text else ""))
    for choice, values in cls.presets.items():
        print(f"  {cls.preset_key}={choice} also sets: "
              + " ".join(f"{k}={_cli_value(v)}" for k, v in values.items()))


def _cli_value(value: object) -> str:
    """A preset value as it would be typed: hidden=256,256 rather than hidden=(256, 256)."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.help:
        parser.print_help()
        if args.task:
            _print_task_config(args.task)
        return 0
    if not args.task:
        parser.print_usage(sys.stderr)
        print("taskzoo run: error: a TASK is required (see `taskzoo list`)", file=sys.stderr)
        return 2
    from taskzoo.api import run
    from taskzoo.config import parse_overrides

    overrides: dict[str, object] = dict(parse_overrides(args.overrides))
    for key in ("model", "device", "precision"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    result = run(args.task, out=args.out, resume=args.resume,
                 progress=False if args.quiet else None, **overrides)
    if args.json:
        print(json.dumps(result.metrics, indent=2, sort_keys=True))
    else:
        print(f"{result.task} finished: {result.run_dir}")
        w = max(len(k) for k in result.metrics)
        for k, v in result.metrics.items():
            if float(v).is_integer() and not 0 <= v <= 1:  # counts, not rates
                text = str(int(v))
            else:
                text = f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
            print(f"  {k:<{w}}  {text}")
    return 0


def _check_run_task(task: str, run_dir: str) -> None:
    """UsageError when `run_dir` holds a run of another task than TASK (a missing or broken
    run directory is left to load_run, which says what is missing)."""
    from taskzoo.api import resolve_task

    wanted = resolve_task(task).name
    config_path = os.path.join(run_dir, "config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as fh:
            trained = json.load(fh).get("_task")
        if trained and trained != wanted:
            raise UsageError(f"{run_dir} holds a '{trained}' run, not '{wanted}'")


def _cmd_predict(args: argparse.Namespace) -> int:
    from taskzoo.api import load_run
    from taskzoo.weights import load

    if args.run_dir and args.weights:
        raise UsageError("predict takes --from DIR or --weights W, not both")
    if args.run_dir:
        _check_run_task(args.task, args.run_dir)
    inputs: list[str] = []
    for item in args.inputs:
        inputs.extend(line for line in sys.stdin.read().splitlines() if line.strip()) if item == "-" \
            else inputs.append(item)
    predictor = (load_run(args.run_dir, device=args.device) if args.run_dir else
                 load(args.task, weights=args.weights, sha256=args.sha256, device=args.device))
    options = {k: v for k, v in (("top_k", args.top_k or None), ("conf", args.conf),
                                 ("iou", args.iou), ("ratio", args.ratio),
                                 ("sentences", args.sentences)) if v is not None}
    unknown = sorted(set(options) - set(predictor.call_options))
    if unknown:
        raise UsageError(f"--{unknown[0].replace('_', '-')} is not an option of {args.task}'s "
                         f"predictor (it takes: {', '.join(predictor.call_options) or 'none'})")
    streamed = predictor.stream_cli(inputs, args.save, **options)
    if streamed is not None:  # videos: each is tracked and written, then summarised
        for text, summary in zip(inputs, streamed):
            print(json.dumps({"input": text, **summary.to_json()}) if args.json
                  else f"{text}\t{summary.format()}")
        return 0
    # each task reads the command line's strings its own way: text as is, vectors as JSON,
    # images as paths, globs and folders (which may expand to more inputs than were typed)
    parsed = predictor.parse_cli(inputs)
    outputs = predictor(parsed, **options)
    names = inputs if len(parsed) == len(inputs) else [str(p) for p in parsed]
    saved = _save_outputs(predictor, names, outputs, Path(args.save)) if args.save else {}
    for text, out in zip(names, outputs):
        if args.json:
            out = predictor.to_json(out)
            record = {"input": text, **out} if isinstance(out, dict) else \
                {"input": text, "output": out}
            print(json.dumps({**record, **({"saved": str(saved[text])} if text in saved else {})}))
        elif text in saved:
            print(f"{text}\t{saved[text]}")
        else:
            print(predictor.format(text, out))
    return 0


def _save_outputs(predictor: Any, names: list[str], outputs: list[Any],
                  folder: Path) -> dict[str, Path]:
    """Each output written into `folder` under its input's file name (`a.jpg` -> `a.png`;
    a second `a` becomes `a-2`), never over an input."""
    folder = folder.expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--save {folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    inputs = {Path(n).expanduser().resolve() for n in names}
    saved: dict[str, Path] = {}
    taken: set[str] = set()
    for i, (name, out) in enumerate(zip(names, outputs)):
        stem = Path(name).stem if Path(name).suffix else f"output_{i}"
        candidate, k = stem, 1
        while candidate in taken or (folder / f"{candidate}.png").resolve() in inputs:
            k += 1
            candidate = f"{stem}-{k}"
        taken.add(candidate)
        saved[name] = predictor.save(out, folder / candidate)
    return saved


def _cmd_play(args: argparse.Namespace) -> int:
    from taskzoo.rl.play import play

    _check_run_task(args.task, args.run_dir)
    results = play(args.run_dir, episodes=args.episodes, record=args.record, seed=args.seed,
                   fps=args.fps, max_steps=args.max_steps)
    for i, res in enumerate(results, 1):
        print(f"episode {i}: return {res['return']:.1f}, {res['length']} steps")
    if args.record:
        print(f"wrote {args.record} ({sum(res['frames'] for res in results)} frames)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from taskzoo.bench.peers import benchmarks_dir, format_peers, peers_markdown, run_peers
    from taskzoo.bench.tasks import format_table, hardware_line, run_bench, to_csv, to_markdown
    from taskzoo.files import write_json, write_text

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
    return 1 if any("error" in r for r in rows + peers) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come after options (`run sentiment --out d epochs=2`), which
    # argparse cannot interleave with a nargs="*" positional; collect them here instead.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "run" and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    debug = os.environ.get("TASKZOO_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():  # restored on return: main() may be called from Python
        if not debug:
            warnings.showwarning = _one_line_warning
        try:
            return _dispatch(args, parser, debug)
        except BrokenPipeError:  # `taskzoo list | head`: the reader left; no traceback
            # Python would report the pipe again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141  # what shells report for SIGPIPE


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: object = None, line: str | None = None) -> None:
    """taskzoo's own warnings as one line, like its errors; others as Python prints them."""
    from taskzoo.errors import InitWarning

    if issubclass(category, InitWarning):
        print(f"taskzoo: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser, debug: bool) -> int:
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            return _cmd_run(args, parser._subparsers._group_actions[0].choices["run"])  # type: ignore[union-attr]
        if args.command == "predict":
            return _cmd_predict(args)
        if args.command == "play":
            return _cmd_play(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "chat":
            return _cmd_chat(args)
        from taskzoo.cli.weights import COMMANDS

        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        parser.print_help()
        return 2
    except UsageError as exc:
        if debug:
            raise
        print(f"taskzoo: error: {exc}", file=sys.stderr)
        return 2
    except TaskzooError as exc:
        if debug:
            raise
        print(f"taskzoo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ntaskzoo: interrupted; `taskzoo run ... --out DIR --resume` continues from the "
              "last checkpoint", file=sys.stderr)
        return 130

