"""The classical references image_classification reports beside its networks: eigenfaces
(PCA) with 1-nearest-neighbour or an SVM for ORL faces, with scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np

from taskzoo.data import vision


def eigenfaces(data: Any) -> dict[str, float]:
    """The classical face-recognition references on the run's own split, with scikit-learn:
    PCA of the training faces (eigenfaces), then 1-nearest-neighbour on the components, or
    an RBF SVM on the whitened components. The number of components and the SVM's C are
    chosen by 5-fold cross-validation on the training faces only. PCA's leading components
    do not depend on how many are kept, so each fold fits PCA once and slices it."""
    from sklearn.decomposition import PCA
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    def flat(examples: vision.ImageExamples) -> np.ndarray:
        return np.stack([examples[i][0].numpy().ravel() for i in range(len(examples))]) / 255.0

    def fit_pca(x: np.ndarray, k: int) -> PCA:
        return PCA(n_components=k, svd_solver="full").fit(x)

    def scores(pca: PCA, x_fit, y_fit, x_eval, y_eval, k: int, c: float) -> tuple[float, float]:
        z_fit, z_eval = pca.transform(x_fit)[:, :k], pca.transform(x_eval)[:, :k]
        nn1 = KNeighborsClassifier(n_neighbors=1).fit(z_fit, y_fit).score(z_eval, y_eval)
        white = np.sqrt(pca.explained_variance_[:k])
        svm = SVC(kernel="rbf", C=c).fit(z_fit / white, y_fit).score(z_eval / white, y_eval)
        return nn1, svm

    x_train, y_train = flat(data.train), data.train.labels()
    x_test, y_test = flat(data.splits["test"]), data.splits["test"].labels()
    folds = StratifiedKFold(n_splits=min(5, int(np.bincount(y_train).min())), shuffle=True,
                            random_state=0)
    limit = len(x_train) - len(x_train) // folds.n_splits - 1  # components a fold can fit
    comps = [k for k in (20, 40, 60, 80, 120) if k <= limit]
    grid = [(k, c) for k in comps for c in (1.0, 10.0, 100.0)]
    cv = np.zeros((len(grid), 2))
    for fit_idx, val_idx in folds.split(x_train, y_train):
        pca = fit_pca(x_train[fit_idx], max(comps))
        for g, (k, c) in enumerate(grid):
            cv[g] += scores(pca, x_train[fit_idx], y_train[fit_idx], x_train[val_idx],
                            y_train[val_idx], k, c)
    best_nn = grid[int(np.argmax(cv[:, 0]))]
    best_svm = grid[int(np.argmax(cv[:, 1]))]
    pca = fit_pca(x_train, max(comps))
    nn1 = scores(pca, x_train, y_train, x_test, y_test, *best_nn)[0]
    svm = scores(pca, x_train, y_train, x_test, y_test, *best_svm)[1]
    return {"test/accuracy_eigenfaces_1nn": float(nn1), "test/accuracy_eigenfaces_svm": float(svm)}
