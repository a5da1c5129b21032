"""run(): data -> model -> train -> evaluate -> RunResult; load_run(): a predictor from a run dir."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskzoo import config as cfgmod
from taskzoo.errors import ConfigError, RunFileError, UsageError
from taskzoo.files import write_bytes, write_json, write_text


@dataclass
class RunResult:
    """What a finished run gives back.

    >>> result = taskzoo.run("sentiment", dataset="tiny")   # doctest: +SKIP
    >>> result.metrics["dev/accuracy"]                       # doctest: +SKIP
    0.94
    """

    task: str
    config: Any  # the frozen config actually used
    metrics: dict[str, float]  # final metrics of the best checkpoint, "split/metric"
    run_dir: Path
    model: Any  # the trained torch module (best weights)
    predictor: Any  # callable on raw inputs


def resolve_task(name: str) -> Any:
    from taskzoo.tasks import get_task

    return get_task(name)


def make_config(task_cls: Any, overrides: dict[str, Any]) -> Any:
    """Defaults <- the dataset's preset (if any) <- overrides; every step type-checked."""
    cfg = task_cls.Config()
    overrides = {**task_cls.implied_overrides(overrides), **overrides}
    key = task_cls.preset_key
    if key in overrides:
        cfg = cfgmod.apply_overrides(cfg, {key: overrides[key]})
    preset = task_cls.presets.get(getattr(cfg, key, None), {})
    if cfgmod.init_spec(overrides.get("init")):  # fine-tuning: the weights fix the architecture
        from taskzoo.weights import init_overrides

        preset = {**preset, **init_overrides(task_cls, str(overrides["init"]))}
    cfg = cfgmod.apply_overrides(cfg, {**preset, **overrides})
    if task_cls.models:
        cfg = _check_model(task_cls, cfg)
    return cfg


def _check_model(task_cls: Any, cfg: Any) -> Any:
    """Resolve the model name (aliases too) now, not after minutes of data preparation."""
    from taskzoo.errors import UnknownNameError, did_you_mean
    from taskzoo.models import MODELS, names

    names()  # registers every family
    scheme, sep, _ = str(cfg.model).partition(":")
    if sep and scheme in task_cls.model_schemes:
        if scheme == "hf":  # checked now: the form, not yet the files
            from taskzoo.hf import parse_spec

            parse_spec(cfg.model)
        return cfg
    try:
        canonical = MODELS.canonical(cfg.model)
    except UnknownNameError:
        canonical = cfg.model
    if canonical not in task_cls.models:
        raise UnknownNameError(
            f"Unknown model '{cfg.model}' for task {task_cls.name}."
            f"{did_you_mean(cfg.model, task_cls.models)} Valid models: {', '.join(task_cls.models)}"
            + "".join(f", or {sc}:<repo>@<commit>" for sc in task_cls.model_schemes)
            + "."
        )
    return cfgmod.apply_overrides(cfg, {"model": canonical})


def config_record(cfg: Any, task: str) -> dict[str, Any]:
    """What config.json holds: the config plus the task name (enough to rebuild the run)."""
    return json.loads(cfgmod.to_json(cfg)) | {"_task": task}


def _default_run_dir(task: str, cfg: Any) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    model = getattr(cfg, "model", "") or "run"
    base = Path("runs") / task / f"{stamp}-{model}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def run(
    task: str,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    **overrides: Any,
) -> RunResult:
    """Train and evaluate a task with its default recipe, changed by `overrides`.

    `out` must be a new or empty folder; an existing run there needs `resume=True` (continue
    it) or `overwrite=True` (start afresh), and a folder of other files `overwrite=True`.

    >>> import taskzoo
    >>> result = taskzoo.run("sentiment", dataset="tiny", out="runs/demo")  # doctest: +SKIP
    >>> result.metrics["dev/accuracy"] > 0.8                                  # doctest: +SKIP
    True
    """
    from taskzoo.runtime import Runtime, preserved_rng

    task_cls = resolve_task(task)
    cfg = make_config(task_cls, overrides)
    if getattr(cfg, "logger", "jsonl") == "tensorboard":  # a missing extra, before any work
        from taskzoo.train.tensorboard import summary_writer_class

        summary_writer_class()
    # Every process checks and tidies the folder before Runtime.create: under torchrun its
    # rendezvous waits for all of them, so none is still looking when rank 0 starts writing.
    run_dir = _prepare_run_dir(out, cfg, task_cls.name, resume=resume, overwrite=overwrite)
    runtime = Runtime.create(device=cfg.device, precision=cfg.precision,
                             threads=getattr(cfg, "threads", 0),
                             channels_last=getattr(cfg, "channels_last", False))
    # Threads, denormal flushing, TF32, the CUDA device and the random streams are the
    # caller's again when run() returns (or fails).
    # the TensorBoard writer (logger=tensorboard) is closed however the run ends
    with runtime.activate(), preserved_rng(), _logger(cfg, task_cls.name, run_dir,
                                                      runtime) as watch:
        return _run(task_cls, cfg, runtime, run_dir, resume, progress, callbacks, watch)


# What files.atomic_path leaves when the process dies between writing and renaming:
# tempfile.mkstemp(prefix=".NAME.", suffix=".tmp") adds 8 characters of [a-z0-9_].
ATOMIC_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
# The files every run writes or reads back; an overwritten run loses them first, so a new run
# that stops early is never resumed from, or delivered as, the old one's checkpoints.
_RUN_RECORDS = ("config.json", "data.json", "init.json", "last.ckpt", "best.safetensors",
                "metrics.json", "metrics.jsonl", "training_curves.png")


def run_task_name(run_dir: Path) -> str | None:
    """The task of the taskzoo run in `run_dir`, or None when it holds none. A taskzoo run
    is a folder whose config.json is a JSON object naming a task in `_task`, as run() writes
    it; a missing, unreadable or other config.json is the user's own file."""
    from taskzoo.restore import json_record

    record, _ = json_record(run_dir / "config.json")  # {} when missing, special or not JSON
    task = record.get("_task")
    return task if isinstance(task, str) and task else None


def _prepare_run_dir(out: str | os.PathLike[str] | None, cfg: Any, task: str, *,
                     resume: bool, overwrite: bool) -> Path:
    """The run folder, checked before anything is built: a UsageError for an empty --out, a
    path through a file, or a folder that holds a run or other files the caller did not say
    may be continued or replaced; then the checks of --resume and its tidying."""
    if resume and overwrite:
        raise UsageError("--resume and --overwrite together: --resume continues the run in "
                         "--out, --overwrite starts a new one there; choose one")
    if out is None:
        if resume:
            raise UsageError("--resume needs --out DIR, the folder of the run to continue")
        run_dir = _default_run_dir(task, cfg)
    elif not os.fspath(out).strip():  # "" is the current folder to Path; nobody means that
        raise UsageError("--out is empty: name the run folder (e.g. --out runs/demo), or leave "
                         f"--out out for runs/{task}/<time>-<model>")
    else:
        run_dir = Path(out)
    _check_folder_path(run_dir)
    if not run_dir.is_dir():
        if resume:
            _check_resume(run_dir, cfg, task)  # says there is nothing to resume
        return run_dir
    entries = _entries(run_dir)
    owner = run_task_name(run_dir)
    if resume:
        _check_resume(run_dir, cfg, task)
    elif owner and not overwrite:
        raise UsageError(f"--out {run_dir} already holds a '{owner}' run: continue it with "
                         "--resume, replace it with --overwrite, or choose a new --out")
    elif entries and not overwrite:
        raise UsageError(
            f"--out {run_dir} is not empty and is not a taskzoo run (it holds "
            f"{_some(entries)}; no config.json naming a task): the run would write config.json, "
            "metrics.json, best.safetensors and more there; choose a new or empty --out, or "
            "pass --overwrite to write into it")
    from taskzoo.train.tensorboard import is_event_file  # (imports no tensorboard)

    files = [n for n in entries if (run_dir / n).is_file() and not (run_dir / n).is_symlink()]
    stale = [n for n in files if ATOMIC_TEMP_NAME.fullmatch(n)]
    old = [n for n in files if n in _RUN_RECORDS or is_event_file(n)] if owner and overwrite \
        else []
    _remove(run_dir, stale, "stale temporary file(s) of an interrupted write")
    _remove(run_dir, old, f"file(s) of the '{owner}' run it replaces")
    return run_dir


def _check_folder_path(run_dir: Path) -> None:
    """UsageError when `run_dir`, or the nearest part of its path that exists, is not a folder."""
    for part in (run_dir, *run_dir.parents):
        if not os.path.lexists(part):
            continue
        if part.is_dir():
            return
        what = "a file" if part.is_file() else "not a folder"
        if part == run_dir:
            raise UsageError(f"--out {run_dir} is {what}; the run needs a folder: choose "
                             "a new or empty folder for --out")
        raise UsageError(f"--out {run_dir}: {part} is {what}, so no folder can be made "
                         "inside it; choose another --out")


def _entries(run_dir: Path) -> list[str]:
    try:
        return sorted(os.listdir(run_dir))
    except OSError as exc:
        raise UsageError(f"--out {run_dir} cannot be read ({exc.strerror}); choose another "
                         "--out") from None


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _remove(run_dir: Path, names: list[str], what: str) -> None:
    """Delete `names` from `run_dir` and say so on stderr (one line); under torchrun each
    file is reported by the process that removed it."""
    removed = []
    for name in names:
        try:
            (run_dir / name).unlink()
        except FileNotFoundError:  # another process of the same run was first
            continue
        removed.append(name)
    if removed:
        print(f"taskzoo: removed {len(removed)} {what} in {run_dir}: {_some(removed)}",
              file=sys.stderr)


def _check_resume(run_dir: Path, cfg: Any, task: str) -> None:
    from taskzoo.restore import json_record

    config_path = run_dir / "config.json"
    if not (run_dir / "last.ckpt").exists():
        # the user's mistake (a wrong folder, or a run that never saved one): exit 2
        raise RunFileError(f"--resume: no last.ckpt in {run_dir}; nothing to resume")
    saved, problem = json_record(config_path)
    if not problem and run_task_name(run_dir) is None:
        problem = f"names no task (its \"_task\" is {saved.get('_task')!r})"
    if problem:
        # the recipe in config.json is what a resumed run is checked against: without it,
        # continuing could silently mix two recipes
        raise RunFileError(f"--resume: {config_path} is missing, unreadable or names no task ("
                           f"this one {problem}), so the run cannot be checked or continued; restore "
                           "it, or start afresh with --overwrite (or a new --out)")
    ours = config_record(cfg, task)
    # device and precision may change between machines, and the logger (which older runs'
    # config.json lacks) with the way the run is watched; the recipe may not
    diff = sorted(k for k in set(saved) | set(ours)
                  if k not in ("device", "precision", "logger") and saved.get(k) != ours.get(k))
    if diff:
        raise ConfigError(
            "--resume with a different config: "
            + ", ".join(f"{k}={saved.get(k)!r} in {config_path} vs {ours.get(k)!r} now" for k in diff)
        )


def _logger(cfg: Any, task: str, run_dir: Path, runtime: Any) -> Any:
    """The TensorBoard log as a context (logger=tensorboard, in the process that writes the
    run's files), else a context holding None; tensorboard is imported only when asked for."""
    if getattr(cfg, "logger", "jsonl") != "tensorboard" or not runtime.is_main:
        return contextlib.nullcontext()
    from taskzoo.train.tensorboard import TensorBoardLog

    return TensorBoardLog(run_dir, config_record(cfg, task))


def _run(task_cls: Any, cfg: Any, runtime: Any, run_dir: Path, resume: bool,
         progress: bool | None, callbacks: Sequence[Any], watch: Any = None) -> RunResult:
    from taskzoo.runtime import seed_everything
    from taskzoo.train.trainer import Trainer

    seed_everything(cfg.seed)
    t_start = time.perf_counter()
    task_obj = task_cls(cfg, runtime)
    data, model, started = _start(task_obj, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    if runtime.is_main:
        write_json(run_dir / "config.json", config_record(cfg, task_cls.name))
        write_json(run_dir / "data.json", task_obj.data_state(data))
        if started:  # what the run started from, and what did not fit
            write_json(run_dir / "init.json", started)
    source = task_obj.batches(data, model)

    def evaluate(m: Any) -> dict[str, float]:
        out_metrics: dict[str, float] = {}
        for split in task_obj.eval_splits:
            out_metrics.update(task_obj.evaluate(m, data, split))
        return out_metrics

    if source is None:  # a pretrained pipeline with nothing to train: delivered as built
        fit = _untrained(model, run_dir, runtime)
    else:
        loggers = [watch] if watch is not None else []
        trainer = Trainer(task_obj.train_config(source), runtime,
                          [*callbacks, *task_obj.callbacks(), *loggers],
                          monitor=task_obj.monitor or None, mode=task_cls.mode,
                          ties=task_cls.ties, progress=progress)
        fit = trainer.fit(task_obj.step, model, source, evaluate, run_dir, resume=resume)
        model = runtime.unwrap(trainer.model)
    model = model.eval()
    # From here the task serves inference as the predictor it returns will: full precision,
    # as load() and load_run() build it, so metrics.json holds that predictor's figures.
    task_obj.runtime = infer = runtime.for_inference()
    metrics: dict[str, float] = {}
    with infer.inference():
        for split in task_obj.final_splits:
            metrics.update(task_obj.evaluate(model, data, split))
        metrics.update(task_obj.final_metrics(model, data))
    metrics.update({
        "train/steps": float(fit.state.step),
        "train/best_step": float(fit.state.best_step),
        "train/time_s": round(fit.state.train_time, 3),
        "train/samples_per_s": round(fit.samples_per_sec, 1),
    })
    metrics.update(task_obj.summarize(fit))
    # the whole run, its same-run baselines (summarize) included
    metrics["total/time_s"] = round(time.perf_counter() - t_start, 3)
    if runtime.is_main:
        pictures = _write_results(run_dir, task_obj, model, data, metrics)
        if watch is not None:
            watch.finish(pictures, metrics, fit.state.step)
    return RunResult(task=task_cls.name, config=cfg, metrics=metrics, run_dir=run_dir,
                     model=model, predictor=task_obj.predictor(model, data))


def _untrained(model: Any, run_dir: Path, runtime: Any) -> Any:
    """The FitResult of a run whose task trains nothing (`batches` returned None): the model
    as built is the delivered best.safetensors, and metrics.jsonl holds no records."""
    from taskzoo.train.checkpoints import save_weights
    from taskzoo.train.types import FitResult, TrainState

    if runtime.is_main:
        save_weights(model, run_dir / "best.safetensors")
        write_bytes(run_dir / "metrics.jsonl", b"")
    return FitResult(state=TrainState(), best_metrics={}, history=[], steps_per_sec=0.0,
                     samples_per_sec=0.0)


def _start(task_obj: Any, resume: bool) -> tuple[Any, Any, dict[str, Any] | None]:
    """The run's data and model; with `init=` the data is encoded with the starting
    weights' vocabulary and labels, and (unless resuming) the model holds those weights.
    The third item is init.json's record, None when the run did not start from weights."""
    task_cls = type(task_obj)
    init = cfgmod.init_spec(getattr(task_obj.cfg, "init", ""))
    if not init:
        data = task_obj.build_data()
        return data, task_obj.build_model(data), None
    from taskzoo.weights import init_tensors, load_into

    card, tensors = init_tensors(init, task_cls.name)
    data = task_obj.build_data(card.data)
    model = task_obj.build_model(data)
    if resume:  # the checkpoint holds the weights
        return data, model, None
    reinit = load_into(model, tensors, source=card.name,
                       reinit_mismatched=task_cls.init_reinit_mismatched,
                       base=card.extra.get("base"))
    if reinit:
        import warnings

        from taskzoo.errors import InitWarning

        # the frame of run()'s caller: _start <- _run <- run <- caller
        warnings.warn(InitWarning(
            f"init={init}: re-initialised {len(reinit)} tensor(s) of another shape: "
            + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in reinit.items())), stacklevel=4)
    return data, model, {"init": init, "weights": card.name, "reinitialised": reinit}


def _write_results(run_dir: Path, task_obj: Any, model: Any, data: Any,
                   metrics: dict[str, float]) -> dict[str, bytes]:
    """metrics.json, the training curves and the task's reports, beside the checkpoints;
    returns the PNG pictures among them, {file name: bytes}."""
    from taskzoo.report import read_records, training_curves_png

    write_json(run_dir / "metrics.json", metrics)
    curves = training_curves_png(read_records(run_dir / "metrics.jsonl"),
                                 title=f"{task_obj.name}: {run_dir.name}")
    pictures: dict[str, bytes] = {}
    if curves is not None:
        write_bytes(run_dir / "training_curves.png", curves)
        pictures["training_curves.png"] = curves
    with task_obj.runtime.inference():
        for name, content in task_obj.reports(model, data).items():
            if isinstance(content, bytes):
                write_bytes(run_dir / name, content)
                if name.lower().endswith(".png"):
                    pictures[name] = content
            else:
                write_text(run_dir / name, content)
    return pictures


def load_run(run_dir: str | os.PathLike[str], *, device: str = "auto", backend: str = "torch",
             **options: Any) -> Any:
    """The predictor of a finished run directory (config.json, data.json, best.safetensors);
    `backend="onnx"` runs its networks on onnxruntime, exported once into the cache.

    >>> clf = taskzoo.load_run("runs/demo")        # doctest: +SKIP
    >>> clf("a gripping , beautiful film")["label"]  # doctest: +SKIP
    'positive'
    """
    from taskzoo.restore import restore_run
    from taskzoo.weights.loading import check_backend

    if check_backend(backend, device) == "onnx":
        from taskzoo.deploy import cached_export, load_onnx
        from taskzoo.weights.resolver import SpecRules, resolve_spec

        source = resolve_spec(run_dir, task=None, rules=SpecRules(run_dirs=True))
        return load_onnx(cached_export(source)).configure(**options)
    return restore_run(run_dir, device=device).predictor().configure(**options)


def list_tasks() -> list[str]:
    """Registered task names.

    >>> "sentiment" in taskzoo.list_tasks()
    True
    """
    from taskzoo.tasks import names

    return names()


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names, optionally filtered by a glob pattern.

    >>> taskzoo.list_models("*_tagger")
    ['bigru_tagger', 'bilstm_tagger', 'hf_tagger', 'minilm_tagger']
    """
    from taskzoo.models import names

    return names(pattern)
