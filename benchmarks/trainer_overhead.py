"""Trainer overhead: a task's default model trained for a fixed number of steps by the
Trainer and by a plain hand-written PyTorch loop, over the same batches, in one process.

    TASKZOO_MIRROR=../shared/data python benchmarks/trainer_overhead.py [--steps 300]
        [--task sentiment|image_classification] [--dataset sst2|tiny|fashion_mnist|digits]
        [--device cpu] [--precision 32] [--repeats 3] [--json F]

Prints both throughputs (steps/s) and the ratio Trainer / plain (target >= 0.95). Runs
alternate (plain, Trainer, plain, Trainer, ...) so drift in machine speed hits both alike;
the median of the repeats is reported. `taskzoo bench --peers` runs it and reads --json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from taskzoo.api import make_config, resolve_task
from taskzoo.bench.peers import peer_row, write_report
from taskzoo.runtime import Runtime, seed_everything
from taskzoo.train.optim import build_optimizer, lr_lambda
from taskzoo.train.trainer import Trainer
from taskzoo.train.types import TrainState


def plain_loop(task, cfg, data, runtime: Runtime, steps: int) -> float:
    """What a user would write by hand: same model, loss, optimizer, schedule, clipping and
    batches (the task's own data pipeline)."""
    seed_everything(cfg.seed)
    model = runtime.place(task.build_model(data)).train()
    source = task.batches(data, model)
    source.setup(model, runtime)
    opt = build_optimizer(cfg, model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps))
    state = TrainState()
    done = 0
    runtime.synchronize()
    t0 = time.perf_counter()
    while done < steps:
        for batch in source.batches(state):
            batch = runtime.to_device(batch)
            with runtime.autocast():
                loss = task.step(model, batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            done += 1
            if done >= steps:
                break
        state.epoch += 1
    runtime.synchronize()
    return steps / (time.perf_counter() - t0)


def trainer_loop(task, cfg, data, runtime: Runtime, steps: int) -> float:
    seed_everything(cfg.seed)
    model = task.build_model(data)
    source = task.batches(data, model)
    trainer = Trainer(cfg, runtime, monitor=None, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        # no evaluation: both loops time training steps only
        result = trainer.fit(task.step, model, source, None, Path(tmp))
    return result.steps_per_sec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--task", default="sentiment", choices=("sentiment", "image_classification"))
    ap.add_argument("--dataset", default=None, help="default: sst2 / fashion_mnist")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="32")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--json", default=None, help="also write the setup and ratio row here")
    args = ap.parse_args()
    task_cls = resolve_task(args.task)
    dataset = args.dataset or {"sentiment": "sst2"}.get(args.task, "fashion_mnist")
    cfg = make_config(task_cls, {"dataset": dataset, "max_steps": args.steps,
                                 "device": args.device, "precision": args.precision})
    runtime = Runtime.create(device=cfg.device, precision=cfg.precision,
                             channels_last=getattr(cfg, "channels_last", False))
    task = task_cls(cfg, runtime)
    data = task.build_data()
    plain, ours = [], []
    # both loops under the run's settings (the Trainer applies them itself: denormal flushing)
    with runtime.activate():
        plain_loop(task, cfg, data, runtime, min(30, args.steps))  # warm-up (allocator, kernels)
        for i in range(args.repeats):
            # ABBA order: neither loop always runs first (warm caches, allocator state, clocks)
            order = (plain_loop, trainer_loop) if i % 2 == 0 else (trainer_loop, plain_loop)
            for fn in order:
                (plain if fn is plain_loop else ours).append(fn(task, cfg, data, runtime,
                                                                args.steps))
    p, t = statistics.median(plain), statistics.median(ours)
    device = torch.cuda.get_device_name() if runtime.device.type == "cuda" else "cpu"
    setup = (f"model={cfg.model} dataset={cfg.dataset} batch={cfg.batch_size} steps={args.steps} "
             f"repeats={args.repeats} device={device} precision={cfg.precision} "
             f"threads={torch.get_num_threads()} torch={torch.__version__}")
    print(setup)
    print(f"plain loop : {p:8.2f} steps/s  (runs: {', '.join(f'{x:.2f}' for x in plain)})")
    print(f"Trainer    : {t:8.2f} steps/s  (runs: {', '.join(f'{x:.2f}' for x in ours)})")
    print(f"ratio Trainer/plain = {t / p:.3f}  (target >= 0.95)")
    name = "Trainer vs plain PyTorch loop" + (" (images)" if args.task != "sentiment" else "")
    write_report(args.json, setup, [peer_row(name, t, p, "steps/s", "higher", ">= 0.95")],
                 plain_runs=plain, trainer_runs=ours)


if __name__ == "__main__":
    main()
