"""Captions as training targets, and their scores: words, the vocabulary, id sequences, and
BLEU-1..4 and CIDEr-D by pycocoevalcap (the COCO caption evaluation papers report).

    >>> caption_words("A black dog is running after a white dog in the snow .")
    ['a', 'black', 'dog', 'is', 'running', 'after', 'a', 'white', 'dog', 'in', 'the', 'snow']
    >>> vocab = caption_vocab([["a", "dog"], ["a", "cat"]], min_count=1)
    >>> vocab.decode(vocab.encode_caption(["a", "dog"], max_len=6))
    ['a', 'dog']

Words follow Karpathy's Flickr8k preprocessing (the split and tokens Show, Attend and Tell
used): lower-cased, punctuation dropped, split on white space. A word seen fewer than
`min_count` times in the training captions becomes `<unk>`. Sequences are
`<start> w1 .. wn <end>`, padded with `<pad>` (id 0).

Scores: each hypothesis against all references of its image (five for Flickr8k), corpus
BLEU and CIDEr-D over the split, the numbers of the coco-caption code. Both sides are
tokenised here with `caption_words` rather than the Java PTB tokenizer of coco-caption
(which only splits punctuation that `caption_words` drops anyway), so no JVM is needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from taskzoo.data.text import Vocab
from taskzoo.errors import DataError

START, END = "<start>", "<end>"
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def caption_words(text: str) -> list[str]:
    """Lower-cased words with punctuation dropped (apostrophes kept inside words)."""
    text = _NOT_WORD.sub(" ", text.lower().replace("\u2019", "'"))
    return [w.strip("'") for w in text.split() if w.strip("'")]


class CaptionVocab(Vocab):
    """A Vocab with `<start>` and `<end>` after `<pad>` and `<unk>` (ids 2 and 3)."""

    @property
    def start_id(self) -> int:
        return self.stoi[START]

    @property
    def end_id(self) -> int:
        return self.stoi[END]

    def encode_caption(self, words: Sequence[str], *, max_len: int) -> list[int]:
        """`<start> words <end>` as ids, the words cut to `max_len - 2` (at least one)."""
        if max_len < 3:
            raise ValueError(f"max_len={max_len}: a caption needs room for <start>, a word, <end>")
        return [self.start_id, *self.encode(list(words)[: max_len - 2]), self.end_id]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Words up to the first `<end>`, without `<start>` and `<pad>`."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.end_id:
                break
            if i in (self.pad_id, self.start_id):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else Vocab.UNK)
        return out

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> CaptionVocab:
        if list(tokens[:4]) != [cls.PAD, cls.UNK, START, END]:
            raise ValueError("not a caption vocabulary: expected <pad>, <unk>, <start>, <end> "
                             "first")
        return cls(tokens)


def caption_vocab(captions: Sequence[Sequence[str]], *, min_count: int = 5) -> CaptionVocab:
    """The vocabulary of the training captions' words seen at least `min_count` times."""
    if not captions:
        raise DataError("no training captions to build a vocabulary from")
    base = Vocab.build(captions, min_freq=min_count, specials=(START, END))
    return CaptionVocab(base.to_list())


def caption_scores(references: Sequence[Sequence[str]], hypotheses: Sequence[str],
                   *, prefix: str = "") -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D of `hypotheses[i]` against `references[i]` (all of image i),
    over the whole split: {prefix + "bleu1".."bleu4", prefix + "cider"}.

    >>> refs = [["a dog runs on the grass", "a brown dog running"], ["two men talk"]]
    >>> s = caption_scores(refs, ["a dog runs on the grass", "two men talk"])
    >>> round(s["bleu4"], 3), s["cider"] > 1
    (1.0, True)
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if len(references) != len(hypotheses) or not hypotheses:
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference sets")
    gts = {i: [" ".join(caption_words(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(caption_words(h)) or "<unk>"] for i, h in enumerate(hypotheses)}
    if any(not refs for refs in gts.values()):
        raise ValueError("every image needs at least one reference caption")
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    out = {f"{prefix}bleu{n}": float(b) for n, b in enumerate(bleu, 1)}
    out[f"{prefix}cider"] = float(cider)
    return out
