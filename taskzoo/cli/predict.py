"""`taskzoo predict`: a task's predictor on command-line inputs, with released weights or a
trained run. Each call option a predictor declares (`CallOption`) is a flag here."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from taskzoo.errors import UsageError


def add_parser(sub: Any) -> None:
    """The `predict` parser; its task-option flags are added when it parses (making them
    imports every task)."""
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
    pr.add_argument("--save", metavar="DIR",
                    help="tasks that output images (autoencoder, detection): write them into "
                         "DIR as PNG; a video (detection): the annotated OUT.mp4, OUT.jsonl beside")
    pr.set_defaults(handler=cmd_predict)
    pr.before_parse = add_option_flags


def declared_options() -> list[tuple[Any, list[str]]]:
    """Each call option the tasks' predictors offer on the command line, once, with the
    tasks whose predictor declares it (none named for a predictor shared by several)."""
    from taskzoo.tasks import get_task, names
    from taskzoo.tasks.base import Predictor

    for name in names():  # each task module, and its package's predictor module if it has one
        module = get_task(name).__module__.rpartition(".")[0] + ".predictor"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    found: dict[str, tuple[Any, list[str]]] = {}
    classes, seen = list(Predictor.__subclasses__()), set()
    while classes:
        cls = classes.pop(0)
        if cls in seen or not cls.__module__.startswith("taskzoo."):
            continue
        seen.add(cls)
        classes.extend(cls.__subclasses__())
        parts = cls.__module__.split(".")
        owner = parts[2] if parts[1] == "tasks" and parts[-1] == "predictor" else None
        for opt in cls.call_options:
            if opt.cli:
                tasks = found.setdefault(opt.name, (opt, []))[1]
                if owner and owner not in tasks:
                    tasks.append(owner)
    return list(found.values())


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for each declared call option (top_k: --top-k K); absent, it is None."""
    group = parser.add_argument_group("task options (taken by the tasks named)")
    flags = {}
    for opt, tasks in declared_options():
        text = f"{', '.join(tasks)}: {opt.help}" if tasks else opt.help
        if opt.type is bool:
            group.add_argument(opt.flag, dest=opt.name, action="store_true", default=None,
                               help=text)
        else:
            group.add_argument(opt.flag, dest=opt.name, type=opt.type, metavar=opt.metavar,
                               help=text)
        flags[opt.name] = opt
    parser.set_defaults(option_flags=flags)


def cmd_predict(args: argparse.Namespace) -> int:
    from taskzoo.api import load_run
    from taskzoo.cli.run import check_run_task
    from taskzoo.weights import load

    if args.run_dir and args.weights:
        raise UsageError("predict takes --from DIR or --weights W, not both")
    if args.run_dir:
        check_run_task(args.task, args.run_dir)
    inputs: list[str] = []
    for item in args.inputs:
        inputs.extend(line for line in sys.stdin.read().splitlines() if line.strip()) if item == "-" \
            else inputs.append(item)
    predictor = (load_run(args.run_dir, device=args.device) if args.run_dir else
                 load(args.task, weights=args.weights, sha256=args.sha256, device=args.device))
    options = _given_options(args, predictor)
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
    saved = save_outputs(predictor, names, outputs, Path(args.save)) if args.save else {}
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


def _given_options(args: argparse.Namespace, predictor: Any) -> dict[str, Any]:
    """The task-option flags given (a flag at its option's default counts as not given);
    UsageError for one the loaded predictor does not take."""
    flags = getattr(args, "option_flags", {})
    options = {name: getattr(args, name) for name, opt in flags.items()
               if not opt.is_unset(getattr(args, name))}
    takes = [o.name for o in predictor.call_options if o.cli]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise UsageError(f"{flags[unknown[0]].flag} is not an option of {args.task}'s "
                         f"predictor (it takes: {', '.join(takes) or 'none'})")
    return options


def save_outputs(predictor: Any, names: list[str], outputs: list[Any],
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
