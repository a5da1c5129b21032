"""Sentiment models side by side: SST-2 dev accuracy and inference speed (tokenization
included) at batch 1 and batch 32, against the DistilBERT-size Hugging Face pipeline of
`sentiment_vs_hf.py` (random weights: speed only; its accuracy is the published figure).

    TASKZOO_MIRROR=../shared/data python benchmarks/sentiment_speed.py \\
        --models bigru.sst2,bigru.sst2_distilled,minilm.sst2 [--device cpu]
        [--single 300] [--repeats 3] [--json F] [--quick]

Each model is a released weights name, a `.safetensors` with its card, or a run directory.
Batch 1: sentences per second over the first `--single` dev sentences given one call each
(what an interactive user sees). Batch 32: the whole dev set in calls of 32 sentences
(median of `--repeats` passes). Every side runs in this one process, one after another, with
torch's threads as they are (`--threads` sets them for all sides).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from sentiment_vs_hf import PUBLISHED_ACCURACY, hf_pipeline, sentences  # benchmarks/ is sys.path[0]

import taskzoo


def _load(spec: str, device: str) -> tuple[str, Any]:
    path = Path(spec)
    if path.is_dir():
        model = json.loads((path / "config.json").read_text())["model"]
        return f"{model} ({path.name})", taskzoo.load_run(path, device=device)
    return spec, taskzoo.load("sentiment", weights=spec, device=device)


def measure(classify: Any, texts: list[str], labels: list[int], *, single: int,
            repeats: int) -> dict[str, float]:
    """Accuracy (labels given) and sentences/s at batch 1 and 32 of `classify(list[str])`."""
    for i in range(0, 64, 32):  # warm-up: allocator, kernels, tokenizer caches
        classify(texts[i:i + 32])
    t = time.perf_counter()
    for text in texts[:single]:
        classify([text])
    one = min(single, len(texts)) / (time.perf_counter() - t)
    rates, preds = [], []
    for _ in range(repeats):
        t, out = time.perf_counter(), []
        for i in range(0, len(texts), 32):
            out += classify(texts[i:i + 32])
        rates.append(len(texts) / (time.perf_counter() - t))
        preds = out
    names = ["negative", "positive"]
    acc = sum(p["label"] == names[y] for p, y in zip(preds, labels)) / len(labels)
    return {"accuracy": acc, "batch1_per_s": one, "batch32_per_s": statistics.median(rates)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="bigru.sst2,bigru.sst2_distilled,minilm.sst2", help="comma-separated weights or run dirs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--single", type=int, default=300, help="sentences timed one per call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--quick", action="store_true", help="the tiny set: a smoke test")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = sentences(args.quick)
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    results: dict[str, dict[str, float]] = {}
    for spec in [m for m in args.models.split(",") if m]:
        name, clf = _load(spec, args.device)
        params = sum(p.numel() for p in clf.model.parameters())
        results[name] = {**measure(clf, texts, labels, single=args.single,
                                   repeats=args.repeats), "params": params}
    pipe, hf_params = hf_pipeline(args.device)
    peer = measure(lambda xs: pipe(list(xs), batch_size=len(xs)), texts, labels,
                   single=args.single, repeats=args.repeats)
    peer.update(accuracy=PUBLISHED_ACCURACY[0], params=hf_params)
    results["DistilBERT-size HF pipeline (accuracy: published)"] = peer
    print(f"SST-2 dev ({len(texts)} sentences), device={args.device}, "
          f"threads={torch.get_num_threads()}, batch 1 over {min(args.single, len(texts))} "
          f"sentences, batch 32 over all ({args.repeats} passes, median)")
    print("| model | params | dev accuracy | sentences/s, batch 1 | sentences/s, batch 32 |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['params'] / 1e6:.1f}M | {r['accuracy']:.4f} | "
              f"{r['batch1_per_s']:,.0f} | {r['batch32_per_s']:,.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
