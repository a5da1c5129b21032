"""Linear probes: how good are learned features, measured the classical way.

A probe is a logistic regression (scikit-learn) trained on frozen features of the training
images and scored on the test images: better features separate the classes linearly. The
reference is PCA with the same number of dimensions on the same pixels, the linear
autoencoder every nonlinear one must beat.

    >>> pca = pca_codes(train_pixels, test_pixels, 32)           # doctest: +SKIP
    >>> fit_probe(pca.train, y_train).score(pca.test, y_test)     # doctest: +SKIP
    0.8153
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class PCACodes:
    pca: Any  # the fitted sklearn PCA (transform more images with it)
    train: np.ndarray  # [N_train, k] components of the training images
    test: np.ndarray  # [N_test, k]
    test_mse: float  # mean squared error per pixel of the k-component reconstruction


def pca_codes(train: np.ndarray, test: np.ndarray, k: int, *, seed: int = 0) -> PCACodes:
    """PCA fitted on the training pixels [N, D] (floats in [0, 1]); the test images' codes
    and their reconstruction error. Randomised SVD: exact to many digits for k << D, and
    seconds instead of a minute for 55,000 x 784."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(train)
    test_codes = pca.transform(test)
    recon = pca.inverse_transform(test_codes)
    return PCACodes(pca, pca.transform(train), test_codes, float(np.mean((recon - test) ** 2)))


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, *, max_iter: int = 1000) -> Any:
    """A logistic regression on standardised features (the same probe for every feature set,
    so only the features differ), fitted; `.score(x, y)` gives its accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter)).fit(
        train_x, train_y)


def codes_2d_png(codes: np.ndarray, labels: np.ndarray, classes: list[str], *,
                 title: str, limit: int = 3000) -> bytes:
    """A scatter of codes projected to 2-D by PCA, coloured by class (a seeded subsample)."""
    import matplotlib  # the colormap registry only: no backend is touched
    from sklearn.decomposition import PCA

    from taskzoo.report import new_figure, png_bytes

    idx = np.random.default_rng(0).permutation(len(codes))[:limit]
    xy = PCA(n_components=2).fit_transform(codes[idx])
    fig = new_figure(7, 6)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for c, name in enumerate(classes):
        m = labels[idx] == c
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.6, label=name,
                       color=cmap(c % 10))
    ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set(title=title, xlabel="PC 1 of the codes", ylabel="PC 2 of the codes")
    fig.tight_layout()
    return png_bytes(fig)
