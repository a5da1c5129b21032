"""`taskzoo run`: train and evaluate a task; `run TASK --help` lists the task's config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from taskzoo.errors import UsageError

EPILOG_RUN = """\
overrides are key=value pairs of the task's config, e.g. epochs=5 lr=0.001 dataset=tiny;
`taskzoo run TASK --help` lists every key with its type and default.
environment: TASKZOO_HOME (cache), TASKZOO_MIRROR (mirror dirs/URLs), TASKZOO_OFFLINE=1."""


def add_parser(sub: Any) -> None:
    r = sub.add_parser("run", help="train and evaluate a task", add_help=False,
                       description="Train and evaluate TASK with its default recipe.",
                       epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("-h", "--help", action="store_true", help="show this help (and TASK's config)")
    r.add_argument("task", nargs="?", help="task name or alias (see `taskzoo list`)")
    r.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    r.add_argument("--model", help="model registry name (same as model=...)")
    r.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (same as device=...)")
    r.add_argument("--precision", help="32, bf16-mixed or 16-mixed (same as precision=...)")
    r.add_argument("--out", help="run directory, new or empty (default runs/TASK/<time>-<model>)")
    r.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    r.add_argument("--overwrite", action="store_true",
                   help="write into OUT although it holds a run (started afresh) or other files")
    r.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files in the run directory (same as "
                        "logger=tensorboard; needs the tensorboard extra)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print final metrics as JSON")
    r.set_defaults(handler=lambda args: cmd_run(args, r))


def cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.help:
        parser.print_help()
        if args.task:
            print_task_config(args.task)
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
    if args.tensorboard:
        if overrides.get("logger", "tensorboard") != "tensorboard":
            raise UsageError(f"--tensorboard and logger={overrides['logger']} disagree: "
                             "give one of them")
        overrides["logger"] = "tensorboard"
    result = run(args.task, out=args.out, resume=args.resume, overwrite=args.overwrite,
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


def print_task_config(task: str) -> None:
    """TASK's config keys with their defaults, types and help, then what its presets set."""
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
              + " ".join(f"{k}={cli_value(v)}" for k, v in values.items()))


def cli_value(value: object) -> str:
    """A preset value as it would be typed: hidden=256,256 rather than hidden=(256, 256)."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def check_run_task(task: str, run_dir: str) -> None:
    """UsageError when `run_dir` holds a run of another task than TASK (a missing or broken
    run directory is left to load_run, which says what is missing)."""
    from taskzoo.api import resolve_task, run_task_name

    wanted = resolve_task(task).name
    trained = run_task_name(Path(run_dir))  # None when config.json is missing or damaged
    if trained and trained != wanted:
        raise UsageError(f"{run_dir} holds a '{trained}' run, not '{wanted}'")
