"""What extractive summarization needs besides a model: documents cut into sentences, ROUGE
from the `rouge-score` package, the greedy ROUGE oracle that labels training sentences
(Nallapati et al. 2017), the unsupervised cues the scorer reads beside each sentence's
embedding (TextRank centrality among them; baselines.py also ranks by it alone), and the
documents, batches and data bundle the task and its predictor share.

    >>> split_sentences("Profits rose 5%. Shares fell.\\n\\nMore follows.")
    ['Profits rose 5%.', 'Shares fell.', 'More follows.']
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch.nn.utils.rnn import pad_sequence

from taskzoo.tasks.base import DataBundle

# a sentence ends at . ! or ? (and a closing quote) before a space and a capital, digit or quote
_BOUNDARY = re.compile(r"(?<=[.!?])([\"'\u2019\u201d]?)\s+(?=[\"'\u2018\u201c(A-Z0-9])")
# BBC's summaries join sentences with no space: "...$10.9bn.For the full-year"
_JOINED = re.compile(r"(?<=[a-z0-9%)\"'][.!?])(?=[A-Z\"'])")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: paragraphs at line breaks, then at sentence-final punctuation
    followed by a capital (a heuristic: "Mr. Smith" splits; no tokenizer model is needed)."""
    out = []
    for para in text.splitlines():
        para = para.strip()
        if para:
            out += [s.strip() for s in _BOUNDARY.sub(r"\1\n", para).split("\n") if s.strip()]
    return out


def unjoin(summary: str) -> str:
    """A BBC reference summary with a space put back between its sentences."""
    return _JOINED.sub(" ", summary)


def rouge(pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 of (summary, reference) pairs, Porter-stemmed (rouge-score)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    total = Counter()
    for summary, reference in pairs:
        for k, s in scorer.score(reference, summary).items():
            total[k] += s.fmeasure
    return {k: total[k] / max(1, len(pairs)) for k in ROUGE_TYPES}


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n))))


def greedy_oracle(sentences: Sequence[str], reference: str, *, max_sentences: int = 0) -> list[int]:
    """Indices (in order) of the sentences that greedily maximise ROUGE-1 + ROUGE-2 F1 against
    the reference, adding one at a time until none helps (SummaRuNNer's labels). The n-gram
    counts are kept incrementally here, with rouge-score's own tokenizer and stemmer: calling
    its scorer per candidate would re-tokenise every sentence thousands of times."""
    from rouge_score.tokenizers import DefaultTokenizer

    tok = DefaultTokenizer(use_stemmer=True)
    ref_tokens = tok.tokenize(reference)
    ref = [_ngrams(ref_tokens, n) for n in (1, 2)]
    ref_sizes = [sum(r.values()) for r in ref]
    sents = [tok.tokenize(s) for s in sentences]
    grams = [[_ngrams(st, n) for n in (1, 2)] for st in sents]
    have = [Counter(), Counter()]  # the summary so far: unigrams, bigrams within sentences
    hits = [0, 0]
    chosen: list[int] = []
    best = 0.0
    while not max_sentences or len(chosen) < max_sentences:
        pick, pick_score, pick_hits = -1, best, hits
        for i in range(len(sents)):
            if i in chosen or not sents[i]:
                continue
            score, new_hits = 0.0, []
            for n in range(2):
                r, h, g = ref[n], have[n], grams[i][n]
                hit = hits[n] + sum(min(h[k] + c, r[k]) - min(h[k], r[k]) for k, c in g.items()
                                    if k in r)
                total = sum(h.values()) + sum(g.values())
                new_hits.append(hit)
                if hit and total and ref_sizes[n]:
                    p, q = hit / total, hit / ref_sizes[n]
                    score += 2 * p * q / (p + q)
            if score > pick_score:
                pick, pick_score, pick_hits = i, score, new_hits
        if pick < 0:
            break
        chosen.append(pick)
        for n in range(2):
            have[n].update(grams[pick][n])
        hits, best = pick_hits, pick_score
    return sorted(chosen)


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """The k best-scoring positions, in document order (ties: the earlier sentence)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])


def textrank(embeddings: torch.Tensor) -> list[float]:
    """PageRank centrality of each sentence in the graph of their cosine similarities
    (Mihalcea & Tarau 2004, with sentence embeddings for the edge weights)."""
    import networkx as nx

    n = len(embeddings)
    if n < 2:
        return [1.0] * n
    e = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    sim = (e @ e.T).clamp_min(0).fill_diagonal_(0).numpy()
    graph = nx.from_numpy_array(sim)
    ranks: dict[Any, float] = nx.pagerank(graph, weight="weight")
    return [float(ranks[i]) for i in range(n)]


FEATURES = 4  # sentence_features' columns


def sentence_features(vectors: torch.Tensor, sentences: Sequence[str]) -> torch.Tensor:
    """[S, 4] unsupervised cues of each sentence that the scorer reads beside its embedding:
    TextRank centrality (x S, so 1 is average), cosine to the document's mean embedding,
    relative position, and length (words / 50). SummaRuNNer learns salience from the
    document vector alone; with ~1,700 training documents, giving it the graph's centrality
    directly lets it start from TextRank's ranking and learn where to depart from it."""
    n = len(sentences)
    e = torch.nn.functional.normalize(vectors.float(), dim=-1)
    centroid = torch.nn.functional.normalize(e.mean(0), dim=0)
    return torch.stack([
        torch.tensor(textrank(vectors)) * n,
        e @ centroid,
        torch.arange(n, dtype=torch.float32) / max(1, n),
        torch.tensor([min(len(s.split()), 100) / 50 for s in sentences], dtype=torch.float32),
    ], dim=1)


def length_of(n: int, *, sentences: int, ratio: float) -> int:
    """How many of a document's `n` sentences a summary keeps: `sentences` when set, else
    `ratio` of them; at least one, at most all."""
    k = sentences if sentences > 0 else round(ratio * n)
    return max(1, min(n, k))


class Doc(NamedTuple):
    sentences: list[str]  # the candidates (a BBC title line is not one)
    reference: str  # the reference summary
    vectors: torch.Tensor  # [S, E + 4] sentence embeddings and sentence_features
    labels: torch.Tensor  # [S] 1 = in the greedy oracle's summary


class DocBatch(NamedTuple):
    vectors: torch.Tensor  # [B, S, E]
    lengths: torch.Tensor  # [B]
    labels: torch.Tensor  # [B, S]; -1 past a document's end


@dataclass
class SummaryData(DataBundle):
    subwords: Any = None  # the sentence encoder's tokenizer
    embedder: Any = None  # the frozen sentence encoder (on the runtime's device)
    docs: dict[str, list[Doc]] = field(default_factory=dict)


def collate(docs: list[Any]) -> DocBatch:
    return DocBatch(vectors=pad_sequence([d.vectors for d in docs], batch_first=True),
                    lengths=torch.tensor([len(d.vectors) for d in docs]),
                    labels=pad_sequence([d.labels for d in docs], batch_first=True,
                                        padding_value=-1.0))


def with_features(vectors: torch.Tensor, sentences: list[str]) -> torch.Tensor:
    if not sentences:
        return vectors
    return torch.cat([vectors, sentence_features(vectors, sentences)], dim=1)
