"""A small Trainer fit run by test_ddp.py, alone or under torchrun: each process writes its
final weights and its own random draws, so the test can tell whether gradients were
all-reduced and whether the processes drew different random numbers.

    python tests/ddp_worker.py OUT BATCH_SIZE [--resume]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from taskzoo.config import TrainConfig
from taskzoo.data.loader import LoaderSource
from taskzoo.errors import CheckpointError
from taskzoo.runtime import Runtime
from taskzoo.train.trainer import Trainer
from taskzoo.train.types import StepOutput


def main(out: Path, batch_size: int, resume: bool) -> int:
    runtime = Runtime.create(device="cpu")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(64, 1, generator=g)
    rows = list(zip(x, y))
    source = LoaderSource(rows, batch_size=batch_size, seed=0, shard=runtime.shard,
                          collate=lambda b: (torch.stack([r[0] for r in b]),
                                             torch.stack([r[1] for r in b])))
    torch.manual_seed(0)  # the same initial weights everywhere (DDP would broadcast rank 0's)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    draws: list[float] = []

    def step(m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> StepOutput:
        draws.append(float(torch.rand(())))  # what a dropout mask would draw from
        inputs, target = batch
        return StepOutput(torch.nn.functional.mse_loss(m(inputs), target), size=len(inputs))

    cfg = TrainConfig(epochs=3, lr=0.05, optimizer="sgd", momentum=0.0, eval_every=4)
    try:
        fit = Trainer(cfg, runtime, progress=False).fit(step, model, source, lambda m: {}, out,
                                                        resume=resume)
    except CheckpointError as exc:
        print(exc, file=sys.stderr)
        return 3
    tag = f"rank{runtime.rank}"
    weights = {k: v.detach().contiguous() for k, v in runtime.unwrap(model).state_dict().items()}
    save_file(weights, str(out / f"{tag}.safetensors"))
    (out / f"{tag}.json").write_text(json.dumps({"steps": fit.state.step, "draws": draws}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2]), "--resume" in sys.argv))
