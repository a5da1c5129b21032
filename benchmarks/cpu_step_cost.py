"""What the CPU fast paths buy: training throughput (samples/s) of a task's default model
with the RNN encoder packed or padded, and AdamW as a per-tensor loop or one fused kernel.

    TASKZOO_MIRROR=../shared/data python benchmarks/cpu_step_cost.py [--task pos]
        [--steps 60] [--repeats 3] [key=value ...]

The same batches are used for every variant (forward, backward and optimizer step; no
evaluation); the median over repeats is printed, in alternating order.
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import islice

import torch

from taskzoo.api import make_config, resolve_task
from taskzoo.config import parse_overrides
from taskzoo.models.rnn import RNNEncoder
from taskzoo.runtime import Runtime, seed_everything
from taskzoo.train.optim import build_optimizer
from taskzoo.train.types import TrainState


def tokens_per_s(task, data, batches, *, padded: bool, fused: bool) -> float:
    seed_everything(0)
    model = task.build_model(data).train()
    forward = RNNEncoder.forward_padded if padded else RNNEncoder.forward_packed
    for m in model.modules():
        if isinstance(m, RNNEncoder):
            m.forward = forward.__get__(m)  # type: ignore[method-assign]
    params = list(model.parameters())
    opt = build_optimizer(task.cfg, model) if fused else torch.optim.AdamW(
        params, lr=task.cfg.lr, weight_decay=task.cfg.weight_decay)
    samples, t0 = 0, time.perf_counter()
    for batch in batches:
        out = task.step(model, batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        samples += out.size  # what the step counts: words for pos, sentences for sentiment
    return samples / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="pos")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    task_cls = resolve_task(args.task)
    cfg = make_config(task_cls, dict(parse_overrides(args.overrides)) | {"device": "cpu"})
    task = task_cls(cfg, Runtime.create(device="cpu"))
    data = task.build_data()
    source = task.batches(data, task.build_model(data))
    batches = list(islice(source.batches(TrainState()), args.steps))
    variants = {"packed + loop AdamW": (False, False), "packed + fused AdamW": (False, True),
                "padded + loop AdamW": (True, False), "padded + fused AdamW (default)": (True, True)}
    results: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            results[name].append(tokens_per_s(task, data, batches, padded=variants[name][0],
                                              fused=variants[name][1]))
    base = statistics.median(results["packed + loop AdamW"])
    print(f"{args.task}, {cfg.model}, {args.steps} steps, torch threads {torch.get_num_threads()}")
    for name, vals in results.items():
        med = statistics.median(vals)
        print(f"  {name:<32} {med:9.0f} samples/s   x{med / base:.2f}")


if __name__ == "__main__":
    main()
