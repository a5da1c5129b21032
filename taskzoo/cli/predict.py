"""`taskzoo predict`: a task's predictor on command-line inputs, with released weights or a
trained run. Each call option a predictor declares (`CallOption`) is a flag here."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
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
                         "DIR as PNG under each input's name, never over a file already there "
                         "(a taken name gets -2, -3, ...); a video (detection): the annotated "
                         "OUT.mp4, OUT.jsonl beside (never one of the inputs)")
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
    if args.save is not None and not args.save.strip():
        raise UsageError("--save is empty: expected where to write the outputs (--save . for "
                         "the current folder)")
    inputs: list[str] = []
    for item in args.inputs:
        inputs.extend(line for line in stdin_text().splitlines() if line.strip()) if item == "-" \
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
    if args.save:  # image outputs go into a folder: one that cannot be fails before predicting
        check_save_folder(args.save)
    # each task reads the command line's strings its own way: text as is, vectors as JSON,
    # images as paths, globs and folders (which may expand to more inputs than were typed)
    parsed = predictor.parse_cli(inputs)
    outputs = predictor(parsed, **options)
    names = input_names(inputs, parsed)
    files = [p for p in parsed if isinstance(p, Path)]
    saved = save_outputs(predictor, names, outputs, Path(args.save), files) if args.save \
        else [None] * len(outputs)
    for text, out, path in zip(names, outputs, saved):
        if args.json:
            out = predictor.to_json(out)
            record = {"input": text, **out} if isinstance(out, dict) else \
                {"input": text, "output": out}
            print(json.dumps({**record, **({"saved": str(path)} if path else {})}))
        elif path:
            print(f"{text}\t{path}")
        else:
            print(predictor.format(text, out))
    return 0


def stdin_text() -> str:
    """What `-` reads: standard input's text; a UsageError in one line when it is not UTF-8
    (a strict terminal or pipe raises UnicodeDecodeError on the first bad byte)."""
    try:
        return sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise UsageError(f"-: standard input is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}"
                         f" at offset {exc.start}); convert it (e.g. iconv -f latin1 -t utf-8)"
                         ) from None


def input_names(typed: list[str], parsed: list[Any]) -> list[str]:
    """What each output is labelled with: the file a path, glob or folder expanded to (a
    glob that matched one file is that file, not the pattern), else the typed string."""
    if len(parsed) != len(typed):
        return [str(p) for p in parsed]
    return [str(p) if isinstance(p, Path) and Path(t).expanduser() != p else t
            for t, p in zip(typed, parsed)]


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


def save_outputs(predictor: Any, names: list[str], outputs: list[Any], folder: Path,
                 inputs: list[Path]) -> list[Path]:
    """Each output written into `folder` under its input's file name (`a.jpg` -> `a.png`),
    never over a file that is there: a taken name (an input, an earlier output of this
    call, any other file) becomes `a-2.png`, `a-3.png`, ... and a note on stderr says why.

    Each output is written first into a private staging folder: a task whose outputs cannot
    be saved fails before `folder` is made, and the suffix is the one its `save` chose."""
    folder = check_save_folder(str(folder))
    inputs_at = {p.expanduser().resolve() for p in inputs}
    saved: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="taskzoo-save-") as stage:
        for i, (name, out) in enumerate(zip(names, outputs)):
            staged = predictor.save(out, Path(stage) / "output")
            if not saved:
                make_folder(folder)
            suffix = staged.name[len("output"):] if staged.name.startswith("output") \
                else staged.suffix
            stem = Path(name).stem or f"output_{i}"
            target = place_output(staged, folder, stem, suffix)
            staged.unlink()
            first = folder / f"{stem}{suffix}"
            if target != first:  # say why the name is not the input's own
                why = ("is an input" if first.resolve() in inputs_at else
                       "is the output of an input of the same name" if first in saved else
                       "exists")
                print(f"taskzoo: {first} {why}; {name} saved as {target}", file=sys.stderr)
            saved.append(target)
    return saved


def check_save_folder(save: str) -> Path:
    """--save's folder for image outputs; UsageError when it is a file or other non-folder."""
    folder = Path(save).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--save {folder}: exists and is not a folder (--save takes a folder "
                         "for image outputs)")
    return folder


def make_folder(folder: Path) -> None:
    """`folder` and its parents; UsageError when a part of the path is a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"--save {folder}: a part of this path is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"--save {folder}: cannot make this folder ({exc.strerror})") from None


def place_output(staged: Path, folder: Path, stem: str, suffix: str) -> Path:
    """`staged` moved to `folder/<stem><suffix>`, or `<stem>-2<suffix>`, ... when that name is
    taken. The name is claimed with O_EXCL (no file that appears meanwhile is replaced either)
    and filled through a temporary file renamed over the claim, so a crash can leave an
    empty claimed file but never a half-written image."""
    k = 1
    while True:
        target = folder / (f"{stem}{suffix}" if k == 1 else f"{stem}-{k}{suffix}")
        k += 1
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        break
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(staged, tmp)
        shutil.copymode(target, tmp)  # the claimed file's umask mode, not mkstemp's 0600
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        target.unlink(missing_ok=True)
        raise
    return target
