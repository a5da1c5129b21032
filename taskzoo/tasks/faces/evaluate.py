"""The faces task's measurements on ORL, with no training: identification (enroll k photos
of each person, name the rest), verification (same person or not, from pairs), and how
often the detector finds exactly one face in a one-face photo. Eigenfaces + 1-NN on the
same enrolled photos is the classical reference (scikit-learn).

    >>> found = analyse(net, images, detector="rfb320")          # doctest: +SKIP
    >>> identification(found.descriptors, labels, enrolled, test)  # doctest: +SKIP
    0.985
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from taskzoo.tasks.faces.pipeline import describe, find_faces, whole_image_face

KS = (1, 3, 5)  # photos enrolled per person


@dataclass
class Analysed:
    """Per image: faces found, the descriptor of the face used (the best-scored one, else
    the whole image as the face), whether that fallback was needed, the faces themselves."""

    counts: np.ndarray  # [N] int
    descriptors: torch.Tensor  # [N, 128]
    fallback: np.ndarray  # [N] bool
    faces: list  # [N] pipeline.Faces of the face described


def analyse(net: nn.Module, images: Sequence[torch.Tensor], *, detector: str, conf: float,
            iou: float, min_face: int, verify: float = 0.0, size: int = 320,
            progress: bool | None = None) -> Analysed:
    """Find, align and describe the face of each one-face photo."""
    from tqdm.auto import tqdm

    counts, rows, fallback, used = [], [], [], []
    for image in tqdm(images, desc="faces", unit="image", leave=False,
                      disable=None if progress is None else not progress):
        faces = find_faces(net, image, detector=detector, conf=conf, iou=iou, min_face=min_face,
                           verify=verify, size=size)
        counts.append(len(faces))
        best = faces.take(torch.arange(min(1, len(faces))))
        if not len(best):
            best = whole_image_face(net, image)
        fallback.append(not len(faces))
        rows.append(describe(net, image, best.landmarks)[0])
        used.append(best)
    return Analysed(np.array(counts), torch.stack(rows), np.array(fallback), used)


def enrolled(labels: np.ndarray, pool: Sequence[int], k: int) -> list[int]:
    """The first `k` indices of each person in `pool` (the split's enrollment photos)."""
    out = []
    for person in np.unique(labels):
        out += [i for i in pool if labels[i] == person][:k]
    return sorted(out)


def identification(descriptors: torch.Tensor, labels: np.ndarray, gallery: Sequence[int],
                   queries: Sequence[int]) -> tuple[float, np.ndarray]:
    """Accuracy of naming each query by its nearest gallery photo (Euclidean distance, the
    descriptor's metric), and the predicted labels."""
    dist = torch.cdist(descriptors[list(queries)], descriptors[list(gallery)])
    pred = labels[np.asarray(gallery)][dist.argmin(1).numpy()]
    return float(np.mean(pred == labels[np.asarray(queries)])), pred


def eigenfaces(arrays: np.ndarray, labels: np.ndarray, gallery: Sequence[int],
               queries: Sequence[int]) -> float:
    """Eigenfaces + 1-nearest-neighbour on the same enrolled photos: PCA of the enrolled
    faces (all components but the last, at most 80), scikit-learn."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    x = arrays.reshape(len(arrays), -1).astype(np.float64) / 255.0
    g, q = np.asarray(gallery), np.asarray(queries)
    k = max(1, min(len(g) - 1, 80))
    pca = PCA(n_components=k, svd_solver="full").fit(x[g])
    with warnings.catch_warnings():  # one photo a person "looks like regression" to it
        warnings.filterwarnings("ignore", message=".*unique classes.*")
        nn1 = KNeighborsClassifier(n_neighbors=1).fit(pca.transform(x[g]), labels[g])
        return float(nn1.score(pca.transform(x[q]), labels[q]))


def pairs(labels: np.ndarray, pool: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Verification pairs within `pool`: every same-person pair and as many different-person
    pairs drawn at random (seeded), as [P, 2] indices and [P] same (1) / different (0)."""
    pool = np.asarray(sorted(pool))
    same = [(a, b) for i, a in enumerate(pool) for b in pool[i + 1:] if labels[a] == labels[b]]
    rng = np.random.default_rng(seed)
    diff: set[tuple[int, int]] = set()
    while len(diff) < len(same):
        a, b = sorted(rng.choice(pool, 2, replace=False).tolist())
        if labels[a] != labels[b]:
            diff.add((a, b))
    idx = np.array(same + sorted(diff))
    return idx, np.r_[np.ones(len(same)), np.zeros(len(diff))]


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (same person at or below it) with the best accuracy on these
    pairs: the midpoint between two neighbouring distances."""
    order = np.sort(dist)
    cuts = np.r_[order[0] - 1e-6, (order[1:] + order[:-1]) / 2, order[-1] + 1e-6]
    acc = [np.mean((dist <= c) == same) for c in cuts]
    return float(cuts[int(np.argmax(acc))])


def verification(descriptors: torch.Tensor, labels: np.ndarray, tune: Sequence[int],
                 test: Sequence[int], seed: int) -> dict[str, float]:
    """ROC AUC on the test photos' pairs, and the accuracy there at the threshold chosen on
    the enrolled photos' pairs (and at dlib's published 0.6)."""
    from sklearn.metrics import roc_auc_score

    def distances(idx: np.ndarray) -> np.ndarray:
        d = descriptors[idx[:, 0]] - descriptors[idx[:, 1]]
        return d.norm(dim=1).numpy()

    tune_idx, tune_same = pairs(labels, tune, seed)
    threshold = best_threshold(distances(tune_idx), tune_same)
    test_idx, test_same = pairs(labels, test, seed + 1)
    dist = distances(test_idx)
    return {"test/verify_auc": float(roc_auc_score(test_same, -dist)),
            "test/verify_accuracy": float(np.mean((dist <= threshold) == test_same)),
            "test/verify_threshold": round(threshold, 4),
            "test/verify_accuracy_dlib": float(np.mean((dist <= 0.6) == test_same))}
