"""`taskzoo bench`: quality and speed of every task in one table.

Each task is benchmarked in a fresh child process (so peak memory is its own): it trains
with the task's default recipe (`--quick`: the task's `quick` overrides, its tiny embedded
data, a smoke test, not a result), evaluates, then times its predictor: latency at batch 1
(p50/p95 of repeated calls after warm-up) and throughput at the task's batch size (median
of repeats; halved and flagged when it runs out of GPU memory). A task declares its
benchmark through its recipe, `quick` and `example_inputs`; nothing here names a task.

    >>> rows = run_bench(["cartpole"], quick=True)    # doctest: +SKIP
    >>> print(format_table(rows))                      # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

COLUMNS = (  # key, header, width, format: 99 columns in all
    ("task", "task", 11, "{}"),
    ("quality", "quality", 15, "{}"),
    ("reference", "ref (gap)", 13, "{}"),
    ("train_s", "train s", 7, "{:.1f}"),
    ("train_rate", "train/s", 9, "{:,.0f}"),
    ("p50_ms", "p50 ms", 6, "{:.2f}"),
    ("p95_ms", "p95 ms", 6, "{:.2f}"),
    ("infer_rate", "infer/s", 9, "{:,.0f}"),
    ("peak_mb", "peak MB", 7, "{:,.0f}"),
    ("params", "params", 7, "{}"),
)


def hardware_line() -> str:
    """CPU model and cores, GPU, torch and taskzoo versions: the table's header."""
    import torch

    import taskzoo

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}, "
            f"taskzoo {taskzoo.__version__}, Python {platform.python_version()}")


# ---------------------------------------------------------------- one task (child process)
def bench_task(task: str, *, quick: bool, device: str | None, precision: str | None,
               seeds: int, out_dir: str, row: str = "") -> dict[str, Any]:
    """Train, evaluate and time one task in this process (`row`: one of its `bench_rows`,
    "" for its default recipe); a JSON-able row."""
    import resource

    import numpy as np
    import torch

    import taskzoo
    from taskzoo.api import resolve_task
    from taskzoo.runtime import Runtime
    from taskzoo.weights.export import headline_metric

    cls = resolve_task(task)
    overrides: dict[str, Any] = dict(cls.quick) if quick else dict(cls.bench_rows.get(row, {}))
    label = f"{cls.name}:{row}" if row else cls.name
    if device:
        overrides["device"] = device
    if precision:
        overrides["precision"] = precision
    results = [taskzoo.run(cls.name, out=os.path.join(out_dir, f"{label}-{s}"), progress=False,
                           seed=s, **overrides) for s in range(seeds)]
    first = results[0]
    task_obj = cls(first.config)
    metric = headline_metric(task_obj, first.metrics)
    values = [r.metrics[metric] for r in results]
    m = first.metrics
    rate, unit = task_obj.train_rate(m)  # each task says what it trains on per second
    predictor = first.predictor
    inputs = task_obj.example_inputs(max(1, int(getattr(first.config, "batch_size", 64))))
    # timed under the run's own settings (RL tasks: one thread), which run() has restored
    cfg = first.config
    with Runtime.create(device=str(cfg.device), threads=getattr(cfg, "threads", 0)).activate():
        p50, p95 = latency(predictor, inputs[:1])
        infer_rate, batch, note = throughput(predictor, inputs)
    # a quick run's tiny data is not the benchmark's dataset: no reference to compare against
    ref = None if quick else reference_for(cls, metric, cfg)
    cuda_mb = (torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else 0.0
    return {
        "task": label, "metric": metric, "quality": float(np.mean(values)),
        "quality_std": float(np.std(values)) if len(values) > 1 else 0.0, "seeds": seeds,
        "reference": ref.value if ref else None, "reference_source": _source(ref),
        "gap": (float(np.mean(values)) - ref.value) if ref else None,
        "train_s": m.get("train/time_s", 0.0), "train_rate": rate, "train_unit": unit,
        "p50_ms": p50, "p95_ms": p95, "infer_rate": infer_rate, "infer_batch": batch,
        "infer_note": note,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cuda_mb": cuda_mb,
        "params": sum(p.numel() for p in first.model.parameters()),
        "device": str(first.config.device), "precision": str(first.config.precision),
        "quick": quick,
        # the first seed's whole run: its baselines, dev figures and time, for --json
        "metrics": {k: v for k, v in m.items() if isinstance(v, (int, float))},
    }


def reference_for(cls: Any, metric: str, config: Any) -> Any:
    """The task's published figure for `metric` on the data `config` ran on: one measured on
    that very data first, then one that names no data; None when there is neither."""
    data = str(getattr(config, cls.preset_key, "") or "")
    fits = [r for r in cls.references if r.metric == metric and r.dataset in ("", data)]
    return next((r for r in fits if r.dataset), fits[0] if fits else None)


def _rows(cls: Any, quick: bool) -> tuple[str, ...]:
    """A task's rows in a whole bench: a GPU-scale default recipe only as the --quick smoke."""
    if quick:
        return ("",)
    return (*(() if cls.gpu_recipe else ("",)), *cls.bench_rows)


def bench_rows(tasks: list[str] | None, *, quick: bool) -> list[tuple[str, str]]:
    """(task, row) pairs to run: every task's default recipe and, unless `quick`, its
    `bench_rows`; or the tasks named, each "task" (its default) or "task:row".

    >>> bench_rows(["sentiment", "image_classification:flowers"], quick=False)  # doctest: +SKIP
    [('sentiment', ''), ('image_classification', 'flowers')]
    """
    import difflib

    from taskzoo.api import resolve_task
    from taskzoo.errors import UsageError
    from taskzoo.tasks import names

    if not tasks:
        return [(n, r) for n in names() for r in _rows(resolve_task(n), quick)]
    out = []
    for spec in tasks:
        name, _, row = spec.partition(":")
        cls = resolve_task(name)  # typos fail up front, with the closest task
        if row and row not in cls.bench_rows:
            valid = sorted(cls.bench_rows)
            close = difflib.get_close_matches(row, valid, n=1)
            raise UsageError(
                f"bench {spec}: {cls.name} has no benchmark row {row!r}; "
                + (f"its rows: {', '.join(valid)}" if valid else "it has only its default row")
                + (f" (did you mean {cls.name}:{close[0]}?)" if close else ""))
        if row and quick:
            raise UsageError(f"bench {spec} --quick: --quick runs each task's tiny data, not "
                             "its benchmark rows; leave --quick out, or name the task alone")
        out.append((cls.name, row))
    return out


def _source(ref: Any) -> str:
    """Who published the reference, and what differs from our setting."""
    if ref is None:
        return ""
    return ref.source + (f" ({ref.note})" if ref.note else "")


def _sync() -> None:
    """Wait for queued GPU work before reading the clock. Predictors return Python values, which
    already waits, but a task's predictor may one day return device tensors."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def latency(predictor: Any, one: list[Any], *, warmup: int = 3, repeats: int = 30) -> tuple[float, float]:
    """p50 and p95 milliseconds of `predictor(one)` after `warmup` untimed calls."""
    import numpy as np

    for _ in range(warmup):
        predictor(one)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        predictor(one)
        _sync()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def throughput(predictor: Any, inputs: list[Any], *, repeats: int = 5) -> tuple[float, int, str]:
    """Inputs per second of `predictor(inputs)` (median of repeats), the batch that ran and a
    note: on CUDA out-of-memory the batch is halved until it fits, and the note says so."""
    import torch

    batch, note = list(inputs), ""
    while True:
        try:
            predictor(batch)  # warm-up
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                predictor(batch)
                _sync()
                times.append(time.perf_counter() - t)
            return len(batch) / statistics.median(times), len(batch), note
        except torch.cuda.OutOfMemoryError:
            if len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            batch = batch[: len(batch) // 2]
            note = f"out of memory at {len(inputs)}: halved to {len(batch)}"


# ---------------------------------------------------------------- all tasks (parent)
def run_bench(tasks: list[str] | None = None, *, quick: bool = False, device: str | None = None,
              precision: str | None = None, seeds: int = 1, progress: bool = True) -> list[dict]:
    """One row per task and benchmark row (see `bench_rows`), each measured in its own
    process. A failed one gets an `error`."""
    chosen = bench_rows(tasks, quick=quick)
    rows = []
    with tempfile.TemporaryDirectory(prefix="taskzoo-bench-") as tmp:
        for i, (task, row) in enumerate(chosen, 1):
            label = f"{task}:{row}" if row else task
            if progress:
                print(f"[{i}/{len(chosen)}] {label} ...", file=sys.stderr, flush=True)
            args = {"task": task, "row": row, "quick": quick, "device": device,
                    "precision": precision, "seeds": seeds, "out_dir": tmp}
            proc = subprocess.run([sys.executable, "-m", "taskzoo.bench.tasks", json.dumps(args)],
                                  capture_output=True, text=True)
            lines = proc.stdout.strip().splitlines()
            if proc.returncode == 0 and lines:
                rows.append(json.loads(lines[-1]))
            else:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"task": label, "error": err, "quick": quick})
    return rows


def _cell(row: dict, key: str, fmt: str) -> str:
    if key == "quality":
        if row.get("quality") is None:
            return "-"
        std = f"±{row['quality_std']:.2g}" if row.get("seeds", 1) > 1 else ""
        return f"{row['metric'].split('/')[-1][:8]} {row['quality']:.4g}{std}"
    if key == "reference":
        if row.get("reference") is None:
            return "-"
        return f"{row['reference']:.4g} ({round(row['gap'], 4) + 0.0:+.3g})"  # no +8.9e-16
    if key == "params":
        n = row.get("params", 0)
        return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def format_table(rows: list[dict], header: str = "") -> str:
    """The table for people: aligned, about 100 columns (wider only for long task names or
    figures, which widen their own column rather than shift the rest)."""
    lines = [header] if header else []
    if any(r.get("quick") for r in rows):
        lines.append("QUICK: tiny embedded data, cut budgets: smoke figures, NOT benchmark results; "
                     "no references")
    table = [[_cell(row, k, f) for k, _, _, f in COLUMNS] for row in rows if "error" not in row]
    widths = [max([w, *(len(cells[i]) for cells in table)])
              for i, (_, _, w, _) in enumerate(COLUMNS)]

    def line(cells: list[str]) -> str:
        return " ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(cells, widths)))

    lines.append(line([h for _, h, _, _ in COLUMNS]))
    cells_of = iter(table)
    for row in rows:
        if "error" in row:
            lines.append(f"{row['task']:<{widths[0]}} FAILED: {row['error'][:80]}")
        else:
            lines.append(line(next(cells_of)))
    notes = [f"{r['task']}: {r['infer_note']}" for r in rows if r.get("infer_note")]
    units = sorted({f"{r['train_unit']}" for r in rows if "train_unit" in r})
    lines.append(textwrap.fill(f"train/s: {' or '.join(units)} per second of training; infer/s at "
                               "the task's batch size; p50/p95: batch-1 latency", width=99))
    refs = [f"{r['task']}: {r['reference_source']}" for r in rows if r.get("reference_source")]
    if refs:
        lines.append("references (ref column):")
        lines += [textwrap.fill(ref, width=99, initial_indent="  ", subsequent_indent="    ")
                  for ref in refs]
    return "\n".join(lines + notes)


def to_markdown(rows: list[dict], header: str = "") -> str:
    heads = [h for _, h, _, _ in COLUMNS]
    out = [f"_{header}_", ""] if header else []
    out += ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    for row in rows:
        cells = ([row["task"], "FAILED: " + row["error"]] + [""] * (len(heads) - 2)
                 if "error" in row else [_cell(row, k, f) for k, _, _, f in COLUMNS])
        out.append("| " + " | ".join(cells) + " |")
    refs = [f"- {r['task']}: {r['reference_source']}" for r in rows if r.get("reference_source")]
    return "\n".join(out + (["", "References (ref column):", *refs] if refs else [])) + "\n"


def to_csv(rows: list[dict]) -> str:
    keys = sorted({k for r in rows for k in r if k != "metrics"})  # a table: flat fields only
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


if __name__ == "__main__":  # the child: one task, one JSON line on stdout
    from taskzoo.runtime import tune_allocator

    tune_allocator()  # this process is the benchmark's own, as under `taskzoo run`
    spec = json.loads(sys.argv[1])
    row = bench_task(spec.pop("task"), **spec)
    print(json.dumps(row))
