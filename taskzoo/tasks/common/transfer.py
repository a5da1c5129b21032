"""Fine-tuning a pretrained network on a folder of photos, as practitioners do it: the head
first on the frozen trunk's features (computed once: the trunk would give the same vector
every epoch, and it is the costly part), then every layer at layer-wise learning rates, and
beside it the linear probe a user would weigh it against (logistic regression on the
pretrained features, scikit-learn).

The network must offer `features(x)` (its maps, the last one pooled by the classifier),
`forward_head(last_map)` and `layer_groups()` (parameters from the input up, the classifier
last), as the zoo's EfficientNet-Lite does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.errors import CheckpointError, ConfigError

NEEDS = ("features", "forward_head", "layer_groups")


def check_transferable(model: nn.Module, name: str, *, what: str) -> None:
    """ConfigError unless `model` has what `what` (a config field) needs."""
    missing = [m for m in NEEDS if not callable(getattr(model, m, None))]
    if missing:
        raise ConfigError(f"{what} needs a network with {', '.join(NEEDS)}; model={name} has "
                          f"no {', '.join(missing)} (use model=efficientnet_lite0, 1 or 2)")


def layer_decay(model: nn.Module, decay: float) -> None:
    """Layer-wise learning rates: the classifier at lr, the group below it at lr * decay,
    each group further down at one more factor (the stem lowest): early layers hold generic
    edges and textures that a few hundred photos should barely move."""
    from taskzoo.train.optim import scale_lr

    groups = model.layer_groups()
    for depth, params in enumerate(reversed(groups[:-1]), start=1):
        scale_lr(params, decay ** depth)


BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (call after the Trainer's model.train()): its
    statistics stay those of the pretrained weights, which a few hundred images in batches
    of 32 would only make noisier; its scale and shift still train."""
    for m in model.modules():
        if isinstance(m, BATCHNORMS):
            m.eval()


@torch.no_grad()
def zero_head(model: nn.Module) -> None:
    """A classifier that starts at zero: every class equally likely. A fresh head drawn like
    the pretrained one (uniform in +-1/sqrt(classes), over 1,280 features) starts with logits
    in the tens and a loss of 5 for five classes, which a short head phase spends its steps
    undoing. Weights given by init= of the same shape still replace it."""
    head = model.head
    for p in head.parameters():
        p.zero_()


@torch.no_grad()
def pooled_features(model: nn.Module, examples: Sequence[Any], *, runtime: Any,
                    collate: Callable[[list[Any]], Any], batch_size: int,
                    workers: int = 0) -> torch.Tensor:
    """The globally pooled last map of every example [N, C, 1, 1] (float32, on the CPU),
    in eval mode; the model's mode is restored after."""
    was = model.training
    model.eval()
    out: torch.Tensor | None = None
    try:
        for idx, (x, _) in eval_batches(examples, batch_size=batch_size, collate=collate,
                                        workers=workers):
            last = model.features(runtime.to_device(x))[-1]
            pooled = F.adaptive_avg_pool2d(last.float(), 1).cpu()
            if out is None:
                out = torch.empty(len(examples), *pooled.shape[1:])
            out[idx] = pooled
    finally:
        model.train(was)
    assert out is not None  # examples is never empty: the loader refused that already
    return out


class HeadFirstSource(LoaderSource):
    """Batches of augmented training images, except during the first `head_epochs` epochs:
    then a batch is {"features": the frozen trunk's pooled features, "labels"} of the
    un-augmented images, computed once when training starts (also after a resume: the trunk
    does not change while only the head trains)."""

    def __init__(self, dataset: Sequence[Any], *, head_epochs: int,
                 encode: Callable[[nn.Module], torch.Tensor], **kw: Any) -> None:
        super().__init__(dataset, **kw)
        self.head_epochs, self.encode = head_epochs, encode
        self.cached: torch.Tensor | None = None
        self.labels = torch.as_tensor(np.asarray(dataset.labels()), dtype=torch.int64)

    def setup(self, model: nn.Module, runtime: Any) -> None:
        super().setup(model, runtime)
        if self.head_epochs > 0:
            self.cached = self.encode(model)

    def batches(self, state: Any) -> Iterator[Any]:
        if state.epoch >= self.head_epochs or self.cached is None:
            yield from super().batches(state)
            return
        for idx in self.epoch_batches(state.epoch)[state.batch_in_epoch:]:
            yield {"features": self.cached[idx], "labels": self.labels[idx]}


def linear_probe(train: tuple[np.ndarray, np.ndarray],
                 evals: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Logistic regression on standardised pretrained features: C chosen by 5-fold
    cross-validation on the training split (never on dev or test), then accuracy per split
    as "split/accuracy_linear_probe"."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = train
    folds = max(2, min(5, int(np.bincount(y).min())))
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        {"logisticregression__C": [0.01, 0.03, 0.1, 0.3, 1.0]},
        cv=StratifiedKFold(folds, shuffle=True, random_state=0), n_jobs=1)
    search.fit(x, y)
    return {f"{split}/accuracy_linear_probe": float(search.score(xs, ys))
            for split, (xs, ys) in evals.items()}


def flat(features: torch.Tensor) -> np.ndarray:
    """[N, C, 1, 1] pooled features -> [N, C] float64 for scikit-learn."""
    return features.flatten(1).double().numpy()



def load_part(part: nn.Module, tensors: dict[str, torch.Tensor], *, option: str, spec: str,
              what: str) -> list[str]:
    """Fill `part` of a network (an encoder, a detector's trunk) from another network's
    tensors: every tensor of `part` must be there with its shape, or a CheckpointError names
    `option`={spec}; the other network's extra tensors (a classifier, a detection head) are
    left out. Returns their names."""
    own = part.state_dict()
    missing = [k for k in own if k not in tensors]
    wrong = [k for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        raise CheckpointError(f"{option}={spec}: does not fit the {what}: missing "
                              f"{missing[:4]}, other shapes {wrong[:4]}")
    part.load_state_dict({k: tensors[k].to(own[k].dtype) for k in own})
    return sorted(set(tensors) - set(own))
