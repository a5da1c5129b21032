"""`taskzoo export DIR`: a finished run directory -> a release asset (safetensors + card).

    >>> from taskzoo.weights.export import export
    >>> weights, card = export("runs/sst2", name="bilstm.sst2", dtype="float16")  # doctest: +SKIP

The card's figures are measured on the exported weights themselves: with `evaluate=True`
(the default) the task's final splits are evaluated again after rounding to `dtype`, on the
real data read through the hub, so a card never claims what fp32 weights did.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taskzoo import hub
from taskzoo.errors import CheckpointError, ConfigError, UsageError
from taskzoo.files import atomic_path, write_json
from taskzoo.weights import DTYPES, GROUP, WeightCard, load_into, read_weights
from taskzoo.weights.catalog import NAME_RE

_NEEDED = ("config.json", "data.json", "metrics.json", "best.safetensors")


def default_name(arch: str, task_obj: Any) -> str:
    """arch.tag, the tag the task gives (`Task.weights_tag`: the dataset, an environment):
    `bilstm.sst2`, `mlp_actor_critic.cartpole_v1`."""
    tag = task_obj.weights_tag()
    return f"{arch}.{re.sub(r'[^a-z0-9]+', '_', str(tag).lower()).strip('_')}"


def recipe_of(task_cls: Any, cfg: Any) -> str:
    """The `taskzoo run` command that rebuilds `cfg`: the task plus what differs from its preset."""
    from taskzoo import config as cfgmod
    from taskzoo.api import make_config

    key = task_cls.preset_key
    # the preset key and the model first: what they imply (a preset, a pretrained model's
    # recipe) is the baseline the other fields differ from
    lead = [k for k in (key, "model") if hasattr(cfg, k)]
    base = make_config(task_cls, {k: getattr(cfg, k) for k in lead})
    ours, theirs = cfgmod.to_dict(cfg), cfgmod.to_dict(base)
    skip = {"device", "precision", "threads", "logger"}
    defaults = cfgmod.to_dict(task_cls.Config())
    parts = [f"{k}={_arg(ours[k])}" for k in lead if ours[k] != defaults.get(k)]
    parts += [f"{k}={_arg(v)}" for k, v in sorted(ours.items())
              if k not in skip and k not in lead and v != theirs.get(k)]
    return " ".join(["taskzoo run", task_cls.name, *parts])


def _arg(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def export(run_dir: str | os.PathLike[str], *, name: str | None = None, dtype: str = "float16",
           out: str | os.PathLike[str] | None = None, evaluate: bool = True,
           default: bool = False, url: str = "", notes: str = "",
           delta_rank: int = 0, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `<out>/<name>.safetensors` and `<out>/<name>.json` from a run directory.

    Returns the two paths. `out` defaults to `<run_dir>/export`. With `delta_rank=r` a
    fine-tune over a pretrained base stores each changed matrix as the rank-r truncated SVD
    of its change (two thin factors), the card says so, and the figures are measured on
    that approximation. The name and the folder are checked before anything is written, and
    nothing is left behind when the export fails; files of that name already in `out` are
    replaced only when they are an earlier export of this same run, or with `overwrite`."""
    from taskzoo.restore import check_run_dir, read_json, rebuild

    run_dir = Path(run_dir)
    check_run_dir(run_dir, _NEEDED)
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    if name is not None:  # a bad name is refused before the run is even rebuilt
        check_name(name)
    out_dir = check_out_dir(out, run_dir)
    # each a JSON object, else a RunFileError naming the file, before anything is built
    config_path, data_path = run_dir / "config.json", run_dir / "data.json"
    saved, state = read_json(config_path), read_json(data_path)
    run_metrics = read_json(run_dir / "metrics.json")
    # on the CPU, in the standard memory layout: the card's figures are measured so
    restored = rebuild({**saved, "device": "cpu"}, state, device="cpu", channels_last=False,
                       records=(str(config_path), str(data_path)))
    task_obj, model, task_cls = restored.task, restored.model, type(restored.task)
    arch, arch_kwargs = getattr(model, "zoo_spec", (getattr(task_obj.cfg, "model", ""), {}))
    name = check_name(name or default_name(arch, task_obj))
    weights_path, card_path = out_dir / f"{name}.safetensors", out_dir / f"{name}.json"
    ours = {"config": {k: v for k, v in saved.items() if not k.startswith("_")}, "data": state,
            "run_metrics": run_metrics}
    if not overwrite:
        check_free(weights_path, card_path, ours)
    base = _base_snapshot(model)
    load_into(model, read_weights(run_dir / "best.safetensors"), source=str(run_dir))
    # the weights go to a temporary file beside their target, renamed only once the card is
    # valid: a failed export (a card load() refuses, data that changed) leaves no orphan file
    with _created_dirs(out_dir), atomic_path(weights_path) as tmp:
        written = _write_weights(model, base, tmp, name=name, task=task_cls.name,
                                 dtype=dtype, delta_rank=delta_rank)
        base_card = _base_card(model, base, written)
        if base_card and delta_rank:
            base_card["delta_rank"] = delta_rank
        if base:  # what users get: the base, then the file over it
            model.load_state_dict({**model.state_dict(), **base})
        load_into(model, read_weights(tmp), source=str(weights_path), base=base_card)
        card = _card(task_obj, model, run_dir, tmp, name, evaluate=evaluate, dtype=dtype,
                     ours=ours, arch=(arch, arch_kwargs),
                     extra={"base": base_card} if base_card else {},
                     default=default, url=url, notes=notes)
    write_json(card_path, card.to_dict())
    return weights_path, card_path


def _card(task_obj: Any, model: Any, run_dir: Path, weights: Path, name: str, *,
          evaluate: bool, dtype: str, ours: dict[str, Any], arch: tuple[str, Any],
          extra: dict[str, Any], default: bool, url: str, notes: str) -> WeightCard:
    """The card of `name` whose weights are in `weights` (to be renamed NAME.safetensors),
    its figures measured on them or copied from the run; refused here if load() would."""
    import torch

    import taskzoo

    task_cls, state, run_metrics = type(task_obj), ours["data"], ours["run_metrics"]
    if evaluate:
        metrics = _measure(task_obj, model, state, run_dir)
        measured = f"measured by `taskzoo export` on the {dtype} weights"
    else:
        finals = tuple(f"{s}/" for s in task_obj.final_splits)
        metrics = {k: v for k, v in run_metrics.items() if k.startswith(finals)}
        measured = "copied from the run's metrics.json (fp32 weights), not re-measured"
    card = WeightCard(
        name=name, task=task_cls.name, arch=arch[0],
        arch_kwargs=_jsonable(arch[1]), config=ours["config"], data=state,
        file=f"{name}.safetensors", sha256=hub.sha256_file(weights), size=weights.stat().st_size, dtype=dtype,
        metrics={k: round(float(v), 6) for k, v in metrics.items()},
        dataset=task_obj.dataset_card(), recipe=recipe_of(task_cls, task_obj.cfg),
        library={"taskzoo": taskzoo.__version__, "torch": torch.__version__.split("+")[0],
                 "python": platform.python_version()},
        default=default, url=url,
        notes="; ".join(x for x in (f"metrics {measured}", notes) if x),
        extra={"headline": headline_metric(task_obj, metrics), "run_metrics": run_metrics,
               "mirror_folder": GROUP, **extra},
    )
    WeightCard.from_dict(card.to_dict(), source="export")  # never write a card load() refuses
    return card


def check_name(name: str) -> str:
    """`name` if it is arch.tag in lower_snake case (the released names' form, which is also
    a bare file name: no folder, no dot-dot); else ConfigError, before anything is written."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"name={name!r}: expected arch.tag in lower_snake case (a-z, 0-9 and _ "
                          f"on each side of one dot, e.g. bilstm.sst2); nothing was written")
    return name


def check_out_dir(out: str | os.PathLike[str] | None, run_dir: Path) -> Path:
    """The output folder (`<run_dir>/export` when `out` is None), refused when it is empty
    text, or it or a folder above it is an existing file."""
    if out is not None and not str(out).strip():
        raise ConfigError("out='': expected an output folder (default: DIR/export); an empty "
                          "name would write into the current folder")
    out_dir = Path(out) if out is not None else run_dir / "export"
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"out={str(out_dir)!r}: {folder} is a file, not a folder; "
                                  "expected an output folder")
            break
    return out_dir


def check_free(weights_path: Path, card_path: Path, ours: dict[str, Any]) -> None:
    """UsageError when `weights_path` or `card_path` exists and is not an earlier export of
    this run (its card's config, data and run metrics are this run's and its weights are the
    ones it names): export replaces only what it wrote itself unless `overwrite`."""
    there = [p for p in (weights_path, card_path) if p.exists() or p.is_symlink()]
    if not there or _same_export(weights_path, card_path, ours):
        return
    raise UsageError(f"{there[0]} already exists and is not an export of this run: choose "
                     "another --name or --out, or pass --overwrite to replace it")


def _same_export(weights_path: Path, card_path: Path, ours: dict[str, Any]) -> bool:
    if not card_path.is_file() or card_path.is_symlink():
        return False  # weights without their card: nothing says who wrote them
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(card, dict) or card.get("file") != weights_path.name:
        return False
    extra = card.get("extra") if isinstance(card.get("extra"), dict) else {}
    if (card.get("config"), card.get("data"), extra.get("run_metrics")) != (
            ours["config"], ours["data"], ours["run_metrics"]):
        return False
    if not (weights_path.exists() or weights_path.is_symlink()):
        return True  # the card alone, of this run: the weights it names are missing
    return (weights_path.is_file() and not weights_path.is_symlink()
            and hub.sha256_file(weights_path) == card.get("sha256"))


@contextlib.contextmanager
def _created_dirs(folder: Path) -> Iterator[None]:
    """Create `folder` and the folders above it that are missing; remove those again (when
    still empty) if the body fails, so a failed export leaves no trace."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for p in missing:  # the deepest first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def _write_weights(model: Any, base: dict[str, Any], path: Path, *, name: str, task: str,
                   dtype: str, delta_rank: int) -> dict[str, Any]:
    """Write the model's tensors to `path` and return them: floating ones in `dtype`, integer
    buffers as they are. Over a pretrained base only what fine-tuning changed is written
    (compared in full precision), as low-rank factors with `delta_rank`. A model may name
    key prefixes kept in float32 whatever `dtype` (`export_float32`: MTCNN's cascade crops
    by its own regressions, so float16 rounding moves its boxes by pixels)."""
    import torch
    from safetensors.torch import save_file

    target = getattr(torch, dtype)
    full = tuple(getattr(model, "export_float32", ()))

    def cast(k: str, v: Any) -> Any:
        if not v.is_floating_point():
            return v.detach()
        return v.detach().to(torch.float32 if full and k.startswith(full) else target)

    tensors = {k: cast(k, v).contiguous() for k, v in model.state_dict().items()
               if k not in base or not torch.equal(v, base[k])}
    if delta_rank:
        if not base:
            raise ConfigError("delta_rank= needs a fine-tune over a pretrained base (its card's "
                              "extra.base); this model was trained from scratch")
        tensors = low_rank_delta(tensors, base, delta_rank, target)
    save_file(tensors, str(path), metadata={"taskzoo.name": name, "taskzoo.task": task})
    return tensors


def _measure(task_obj: Any, model: Any, state: dict[str, Any], run_dir: Path) -> dict[str, float]:
    """The task's final splits evaluated with `model`, on the real data encoded with the
    run's vocabulary and labels (a fine-tune keeps its init's)."""
    import torch

    data = task_obj.build_data(state)
    if json.loads(json.dumps(task_obj.data_state(data))) != state:
        raise CheckpointError(f"the data now differs from {run_dir / 'data.json'} (another "
                              "vocabulary or label set); cannot measure these weights on it")
    metrics: dict[str, float] = {}
    with torch.inference_mode():
        for split in task_obj.final_splits:  # a task may set its splits from the data
            metrics.update(task_obj.evaluate(model.eval(), data, split))
    return metrics


def headline_metric(task_obj: Any, metrics: dict[str, float]) -> str:
    """The figure a table shows: the monitored metric on the last final split (test over dev)."""
    name = (task_obj.monitor or "").partition("/")[2]
    for split in reversed(task_obj.final_splits):
        if f"{split}/{name}" in metrics:
            return f"{split}/{name}"
    return next(iter(sorted(metrics)), "")


def low_rank_delta(tensors: dict[str, Any], base: dict[str, Any], rank: int,
                   dtype: Any) -> dict[str, Any]:
    """Each changed matrix of a fine-tune as `<name>.delta_u` [out, r] and `<name>.delta_v`
    [r, in], the rank-r truncated SVD of (fine-tuned - base): fine-tuning moves a pretrained
    matrix along few directions (Hu et al. 2021's LoRA rests on it), so a small rank keeps
    nearly all of the change. Vectors, the head and matrices too thin to gain stay whole."""
    import torch

    out = {}
    for k, v in tensors.items():
        if k in base and v.ndim == 2 and rank * sum(v.shape) < v.numel():
            change = v.float() - base[k].float()
            u, s, vh = torch.linalg.svd(change, full_matrices=False)
            out[f"{k}.delta_u"] = (u[:, :rank] * s[:rank]).to(dtype).contiguous()
            out[f"{k}.delta_v"] = vh[:rank].to(dtype).contiguous()
        else:
            out[k] = v
    return out


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _base_snapshot(model: Any) -> dict[str, Any]:
    """The tensors the model's pretrained base filled (`model.pretrained_base`, set by the
    task as it built the model), copied before the run's weights overwrite them."""
    info = getattr(model, "pretrained_base", None)
    if not info:
        return {}
    names = {info["prefix"] + n for n in info["names"]}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def _base_card(model: Any, base: dict[str, Any], written: dict[str, Any]) -> dict[str, Any] | None:
    """The card's `extra.base`: which encoder the file is a fine-tune of (repository, commit,
    weights sha256, license) and how many of its tensors the file leaves to it."""
    if not base:
        return None
    info = model.pretrained_base
    kept = sum(1 for k in base if k not in written)
    return {k: info[k] for k in ("repo", "revision", "file", "sha256", "license")} | {
        "from_base": kept, "written": len(written)}
