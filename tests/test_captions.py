"""Caption words, the caption vocabulary and the BLEU/CIDEr-D scores (pycocoevalcap), on
hand-made captions and on Flickr8k's real ones."""

from __future__ import annotations

from collections import Counter

import pytest

from taskzoo.data.captions import CaptionVocab, caption_scores, caption_vocab, caption_words
from taskzoo.errors import DataError


def test_words_are_lower_case_without_punctuation():
    assert caption_words("A man's dog, running!  Fast...") == ["a", "man's", "dog", "running",
                                                                "fast"]
    assert caption_words("\u2019Tis  ") == ["tis"]
    assert caption_words("...") == []


def test_vocab_ids_min_count_and_round_trip():
    caps = [["a", "dog", "runs"], ["a", "dog", "sits"], ["a", "cat"]]
    v = caption_vocab(caps, min_count=2)
    assert v.to_list() == ["<pad>", "<unk>", "<start>", "<end>", "a", "dog"]
    ids = v.encode_caption(["a", "cat", "runs"], max_len=10)
    assert ids == [2, 4, 1, 1, 3]
    assert v.decode(ids + [0, 0]) == ["a", "<unk>", "<unk>"]
    assert v.decode([2, 5, 3, 4]) == ["dog"]  # stops at <end>
    assert v.encode_caption(["a"] * 20, max_len=5) == [2, 4, 4, 4, 3]
    with pytest.raises(ValueError, match="max_len"):
        v.encode_caption(["a"], max_len=2)
    assert CaptionVocab.from_list(v.to_list()).stoi == v.stoi
    with pytest.raises(ValueError, match="caption vocabulary"):
        CaptionVocab.from_list(["<pad>", "<unk>", "a"])
    with pytest.raises(DataError):
        caption_vocab([])


def test_scores_rank_a_better_caption_higher():
    refs = [["a black dog runs through the snow", "a dog running in snow"],
            ["two children play on the beach", "kids playing at the beach"]]
    good = caption_scores(refs, ["a black dog running in the snow", "two children playing on the beach"])
    bad = caption_scores(refs, ["a man rides a bike", "a red car on the street"], prefix="x_")
    assert set(good) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider"}
    assert set(bad) == {"x_bleu1", "x_bleu2", "x_bleu3", "x_bleu4", "x_cider"}
    assert good["bleu4"] > bad["x_bleu4"] and good["cider"] > 1.0 > bad["x_cider"]
    assert good["bleu1"] >= good["bleu2"] >= good["bleu3"] >= good["bleu4"]
    with pytest.raises(ValueError, match="hypotheses"):
        caption_scores(refs, ["one"])


def test_flickr8k_vocabulary_and_the_human_and_prior_baselines(shared_data, monkeypatch):
    """Karpathy's Flickr8k vocabulary (min count 5) has ~2.5k words; one human caption scored
    against the other four beats the single most common training caption by far."""
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    from taskzoo.data.flickr8k import load_flickr8k

    train, dev = load_flickr8k("train"), load_flickr8k("dev")
    words = [caption_words(c) for caps in train.captions for c in caps]
    vocab = caption_vocab(words, min_count=5)
    assert 2000 <= len(vocab) <= 3500
    unk = sum(t == vocab.unk_id for w in words for t in vocab.encode(w)) / sum(map(len, words))
    assert unk < 0.03  # 2.5 % of training words are rarer than 5
    human = caption_scores([caps[:4] for caps in dev.captions],
                           [caps[4] for caps in dev.captions])
    common = Counter(" ".join(w) for w in words).most_common(1)[0][0]
    prior = caption_scores([caps[:4] for caps in dev.captions], [common] * len(dev.captions))
    assert 0.1 < human["bleu4"] < 0.4 and human["cider"] > 0.4
    assert prior["bleu4"] < human["bleu4"] / 2 and prior["cider"] < human["cider"] / 4
