"""ONNX parity on real inputs: every released weights name that is its task's default (and
minilm.sst2) exported to ONNX, then the torch predictor and the onnxruntime one run side by
side on real data read through taskzoo's loaders.

    TASKZOO_MIRROR=../shared/data python benchmarks/onnx_parity.py \\
        [--tasks sentiment,detection] [--n 64] [--threads 2] [--cache DIR] [--json OUT]

Per weights: the export's time (into a temporary TASKZOO_HOME unless `--cache` names one,
where an earlier export is reused), then
- max |diff|: each exported method's calls recorded on the torch predictor's model while it
  runs the real inputs (`deploy.graphs.Recording`), the same arguments through the graph on
  onnxruntime (the ONNX predictor's `OrtCall`), the largest absolute difference over float
  outputs (integer outputs that differ are counted beside it);
- decisions equal k/n: the two predictors' outputs on each input: labels, tags, answers,
  captions, actions exactly; boxes and landmarks within 0.5 px; scores within 1e-3; images
  within 1/255;
- latency at batch 1 (median of >= 20 one-input calls after warm-up) and throughput at batch
  32 (inputs/s over 3 calls of 32), torch and onnxruntime on the same `--threads`.

Inputs: SST-2 dev, UD EWT dev, SQuAD, WikiQA test, BBC articles, Flickr8k test photos
(captioning, style transfer), coco128 (detection; faces: the photos with a person), the
Fashion-MNIST test images, and for the agents observations of seeded random-action rollouts
of their own environment. An export that fails prints its row with the error and the rest go
on. Times taken on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

IMAGE_TOL, PX_TOL, SCORE_TOL = 1 / 255, 0.5, 1e-3
PX_KEYS = ("boxes", "landmarks")


# ---------------------------------------------------------------- real inputs

def sst2(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.sst2 import load_sst2

    return [text for text, _ in load_sst2("dev")[:n]]


def ewt(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.ud import load_ewt

    return [" ".join(s.words) for s in load_ewt("dev")[:n]]


def squad(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.squad import load_squad, split_articles

    rows = split_articles(load_squad())["dev"]
    step = max(1, len(rows) // n)  # questions from many articles, not n on one paragraph
    return [(r.question, r.context) for r in rows[::step][:n]]


def wikiqa(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.wikiqa import load_wikiqa

    return [(q.question, list(q.sentences)) for q in load_wikiqa("test")[:n]]


def bbc(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.bbc import load_bbc

    articles = load_bbc()
    step = max(1, len(articles) // n)  # every topic
    return [a.text for a in articles[::step][:n]]


def _rgb(images: Any, n: int) -> list[np.ndarray]:
    return [np.asarray(images.image(i).convert("RGB")) for i in range(min(n, len(images)))]


def flickr_test(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.flickr8k import load_flickr8k

    return _rgb(load_flickr8k("test").images, n)


def coco128(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.detection.datasets import load_coco128
    from taskzoo.data.image_files import read_image

    return [np.asarray(read_image(p).convert("RGB")) for p in load_coco128().paths[:n]]


def coco128_people(n: int, pred: Any) -> list[Any]:
    """coco128 photos in which a person covers >= 2 % of the picture (its YOLO labels)."""
    from PIL import Image

    from taskzoo.data.detection.datasets import coco128_root

    root, out = coco128_root(), []
    for labels in sorted((root / "labels" / "train2017").glob("*.txt")):
        rows = [r.split() for r in labels.read_text().splitlines() if r.strip()]
        if any(r[0] == "0" and float(r[3]) * float(r[4]) >= 0.02 for r in rows):
            with Image.open(root / "images" / "train2017" / f"{labels.stem}.jpg") as im:
                out.append(np.asarray(im.convert("RGB")))
        if len(out) == n:
            break
    return out


def fashion(n: int, pred: Any) -> list[Any]:
    from taskzoo.data.images import load_fashion_mnist

    return list(load_fashion_mnist("test").arrays[:n])


def rollouts(n: int, pred: Any, seed: int = 0) -> list[Any]:
    """Observations of seeded episodes with random actions in the agent's own environment."""
    from taskzoo.rl import envs

    env = envs.make_env(pred.env_id, **pred.env_kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out, episode = [], 0
    try:
        while len(out) < n:
            out.append(obs)
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                episode += 1
                obs, _ = env.reset(seed=seed + episode)
    finally:
        env.close()
    return out


INPUTS: dict[str, tuple[Callable[[int, Any], list[Any]], str]] = {
    "sentiment": (sst2, "SST-2 dev"), "pos": (ewt, "UD EWT dev"),
    "qa": (squad, "SQuAD dev split"), "answer_selection": (wikiqa, "WikiQA test"),
    "summarization": (bbc, "BBC articles"), "captioning": (flickr_test, "Flickr8k test"),
    "style_transfer": (flickr_test, "Flickr8k test"), "detection": (coco128, "coco128"),
    "faces": (coco128_people, "coco128 with people"),
    "image_classification": (fashion, "Fashion-MNIST test"),
    "autoencoder": (fashion, "Fashion-MNIST test"),
}


def released() -> list[tuple[str, str]]:
    """(task, weights) for each task's default released weights, and minilm.sst2."""
    from taskzoo.weights import cards

    rows = [(c.task, c.name) for c in cards() if c.default or c.name == "minilm.sst2"]
    return sorted(rows, key=lambda r: (r[0], r[1] == "minilm.sst2"))


# ---------------------------------------------------------------- comparisons

def _plain(x: Any) -> Any:
    from PIL import Image

    if isinstance(x, Image.Image):
        return np.asarray(x)
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


def same(a: Any, b: Any, key: str = "") -> bool:
    """Whether two predictor outputs make the same decision (tolerances in the module doc)."""
    a, b = _plain(a), _plain(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype == np.uint8 and b.dtype == np.uint8:
            return bool((np.abs(a.astype(int) - b.astype(int)) <= 1).all())
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            return bool(np.allclose(a, b, rtol=0, atol=IMAGE_TOL + 1e-6))
        return bool((a == b).all())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], str(k)) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, key) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return a == b
        tol = PX_TOL if key in PX_KEYS else SCORE_TOL
        return abs(float(a) - float(b)) <= tol + 1e-9
    return a == b


def graph_diff(records: dict[str, Any], onnx_model: Any) -> dict[str, Any]:
    """Each recorded call run again through the ONNX predictor's graph of the same method:
    max |diff| over float outputs (None when there are none: an agent's actions), integer
    outputs compared and unequal, calls compared, and the calls a graph refused."""
    from taskzoo.deploy.graphs import flatten, owner_of

    worst, unequal, ints, calls, problems = None, 0, 0, 0, []
    for method, record in records.items():
        if not record.calls:
            continue
        owner, name = owner_of(onnx_model, method)
        call = getattr(owner, name)
        for args, kwargs, expected in record.calls:
            try:
                got = flatten(call(*args, **kwargs))[0]
            except Exception as exc:  # a call shaped unlike the traced one: say so, go on
                problems.append(f"{method}: {str(exc).splitlines()[0][:160]}")
                break
            calls += 1
            for g, w in zip(got, flatten(expected)[0]):
                if w.is_floating_point():
                    if g.numel():
                        d = float((g.float() - w.float()).abs().max())
                        worst = d if worst is None else max(worst, d)
                else:
                    ints += 1
                    unequal += int(not torch.equal(g.to(w.dtype), w))
    return {"max_abs_diff": worst, "integer_outputs": ints, "integer_outputs_unequal": unequal,
            "calls_compared": calls, "graph_problems": problems}


# ---------------------------------------------------------------- timing

def latency_ms(pred: Any, inputs: list[Any], calls: int, warmup: int = 3) -> float:
    for x in inputs[:warmup]:
        pred([x])
    times = []
    for i in range(calls):
        t = time.perf_counter()
        pred([inputs[i % len(inputs)]])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def throughput(pred: Any, inputs: list[Any], batch: int = 32, calls: int = 3) -> float:
    items = [inputs[i % len(inputs)] for i in range(batch)]
    pred(items)  # warm-up
    t = time.perf_counter()
    for _ in range(calls):
        pred(items)
    return batch * calls / (time.perf_counter() - t)


# ---------------------------------------------------------------- one row

def measure(task: str, weights: str, n: int, threads: int, calls: int) -> dict[str, Any]:
    import taskzoo
    from taskzoo.deploy import cached_export, load_onnx, read_manifest
    from taskzoo.deploy.graphs import Recording
    from taskzoo.weights import resolve_spec

    row: dict[str, Any] = {"task": task, "weights": weights}
    t = time.perf_counter()
    folder = cached_export(resolve_spec(weights, task=task))
    row["export_s"] = round(time.perf_counter() - t, 1)
    manifest = read_manifest(folder)
    row["graphs"] = [g["method"] for g in manifest["graphs"]]
    row["not_exported"] = manifest["not_exported"]
    row["python"] = manifest["python"]
    ref = taskzoo.load(task, weights=weights, device="cpu")
    onnx = load_onnx(folder, threads=threads)
    reader, source = INPUTS.get(task, (rollouts, "seeded random-action rollouts"))
    inputs = reader(n, ref)
    row["inputs"] = f"{len(inputs)} x {source}"
    with Recording(ref.model, tuple(ref.onnx_methods), limit=64) as records:
        want = ref(inputs)
    got = onnx(inputs)
    row.update(graph_diff(records, onnx.model))
    row["decisions_equal"] = sum(same(a, b) for a, b in zip(want, got))
    row["decisions_n"] = len(want)
    row["torch_ms_1"] = latency_ms(ref, inputs, calls)
    row["onnx_ms_1"] = latency_ms(onnx, inputs, calls)
    row["torch_per_s_32"] = throughput(ref, inputs)
    row["onnx_per_s_32"] = throughput(onnx, inputs)
    return row


# ---------------------------------------------------------------- table

def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| task | weights | graphs (methods) | stays in Python | max \\|diff\\| | "
            "decisions equal | torch ms @1 | onnx ms @1 | torch /s @32 | onnx /s @32 | export s |")
    lines = [head, "|" + " --- |" * 11]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['task']} | {r['weights']} | **failed**: {r['error']} "
                         f"| | | | | | | | {_fmt(r.get('export_s'), '.1f')} |")
            continue
        graphs = ", ".join(r["graphs"])
        if r["not_exported"]:
            graphs += f" (not reached: {', '.join(r['not_exported'])})"
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        if r["integer_outputs"]:
            equal = r["integer_outputs"] - r["integer_outputs_unequal"]
            diff += f" (ints {equal}/{r['integer_outputs']} equal)"
        if r["graph_problems"]:
            diff += " (" + "; ".join(r["graph_problems"]) + ")"
        lines.append(
            f"| {r['task']} | {r['weights']} | {graphs} | {r['python']} | {diff} "
            f"| {r['decisions_equal']}/{r['decisions_n']} | {r['torch_ms_1']:.2f} "
            f"| {r['onnx_ms_1']:.2f} | {r['torch_per_s_32']:.1f} | {r['onnx_per_s_32']:.1f} "
            f"| {r['export_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="", help="comma-separated tasks, run in this order "
                   "(default all)")
    p.add_argument("--n", type=int, default=64, help="real inputs per task")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    p.add_argument("--calls", type=int, default=20, help="one-input calls timed (>= 20)")
    p.add_argument("--cache", default="", help="TASKZOO_HOME to export into and reuse")
    p.add_argument("--json", default="", help="write the rows here")
    args = p.parse_args()
    rows = released()
    if args.tasks:
        wanted = {t.strip() for t in args.tasks.split(",") if t.strip()}
        unknown = wanted - {t for t, _ in rows}
        if unknown:
            sys.exit(f"unknown task(s) {', '.join(sorted(unknown))}: expected some of "
                     f"{', '.join(sorted({t for t, _ in rows}))}")
        order = [t.strip() for t in args.tasks.split(",")]
        rows = sorted((r for r in rows if r[0] in wanted), key=lambda r: order.index(r[0]))
    home = args.cache or tempfile.mkdtemp(prefix="taskzoo-onnx-parity-")
    os.environ["TASKZOO_HOME"] = home  # this script's own process: the exports land here
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    out = []
    try:
        for task, weights in rows:
            print(f"== {task} {weights}", file=sys.stderr, flush=True)
            try:
                out.append(measure(task, weights, args.n, args.threads, max(20, args.calls)))
            except Exception as exc:
                traceback.print_exc()
                out.append({"task": task, "weights": weights,
                             "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(before)
    print(f"threads {args.threads}, n {args.n}, TASKZOO_HOME {home}, load average "
          f"{os.getloadavg()[0]:.1f} (a shared machine: times are indicative)\n")
    print(table(out))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
