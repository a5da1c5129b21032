"""The two baselines a captioner must beat, computed in the same run on the same split.

- Prior: the single most common training caption (after `caption_words`), for every image.
- Nearest neighbours (Devlin et al. 2015, "Exploring Nearest Neighbor Approaches for Image
  Captioning"): the k training images closest to the query in the encoder's feature space
  (cosine of the mean-pooled feature map), then the *consensus* caption among their
  captions, the one most similar on average to the others.

Consensus similarity is CIDEr's: the cosine of TF-IDF weighted 1- to 4-gram vectors, the
document frequencies taken over the training captions (scikit-learn's TfidfVectorizer;
Devlin et al. report BLEU and CIDEr consensus to be close). The k is chosen on dev.

    >>> prior_caption([["a dog runs", "a dog runs", "two cats"]])
    'a dog runs'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from taskzoo.data.captions import caption_words


def prior_caption(captions: Sequence[Sequence[str]]) -> str:
    """The most common training caption (ties: the first seen)."""
    counts = Counter(" ".join(caption_words(c)) for caps in captions for c in caps)
    return max(counts.items(), key=lambda kv: kv[1])[0]


def pooled(maps: torch.Tensor) -> np.ndarray:
    """[N, C, h, w] feature maps -> [N, C] L2-normalised mean-pooled vectors."""
    v = maps.float().mean((2, 3))
    return torch.nn.functional.normalize(v, dim=1).numpy()


class NearestNeighbourCaptioner:
    """Consensus caption of the `k` nearest training images (see the module doc).

    `train_vectors` [N, C] (L2-normalised, `pooled`), `train_captions[i]` the captions of
    training image i."""

    def __init__(self, train_vectors: np.ndarray, train_captions: Sequence[Sequence[str]]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectors = np.asarray(train_vectors, np.float32)
        self.texts = [[" ".join(caption_words(c)) for c in caps] for caps in train_captions]
        flat = [t for caps in self.texts for t in caps]
        self.start = np.concatenate([[0], np.cumsum([len(c) for c in self.texts])])
        # CIDEr's n-gram TF-IDF; words are already split, so split on spaces only
        self.tfidf = TfidfVectorizer(ngram_range=(1, 4), token_pattern=r"[^ ]+",
                                     norm="l2").fit(flat)
        self.matrix = self.tfidf.transform(flat)
        self.flat = flat

    def neighbours(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """[Q, k] indices of the k most similar training images."""
        sims = np.asarray(vectors, np.float32) @ self.vectors.T
        k = min(k, sims.shape[1])
        return np.argpartition(-sims, k - 1, axis=1)[:, :k]

    def __call__(self, vectors: np.ndarray, *, k: int = 30) -> list[str]:
        """The consensus caption of each query vector's k nearest training images."""
        out = []
        for row in self.neighbours(vectors, k):
            idx = np.concatenate([np.arange(self.start[i], self.start[i + 1]) for i in row])
            m = self.matrix[idx]
            sims = (m @ m.T).toarray()
            np.fill_diagonal(sims, 0.0)
            out.append(self.flat[idx[int(sims.sum(1).argmax())]])
        return out


__all__ = ["NearestNeighbourCaptioner", "prior_caption", "pooled"]
