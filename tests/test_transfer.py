"""Transfer learning from pretrained transformer encoders, offline: a tiny random BERT written
into a temporary mirror stands in for a Hugging Face repository (`model=hf:<repo>@<commit>`),
so the whole path (first fetch records the pins, verified loading, fine-tuning sentiment and
POS, small released weights over the base, refusals) runs in seconds with no network."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_bert import REVISION, SPEC
from tiny_bert import offline_run as _offline_run

import taskzoo
from taskzoo.data.tiny_sentiment import load_tiny_sentiment
from taskzoo.errors import CheckpointError, ConfigError, IntegrityError, OfflineError


def test_first_fetch_records_pins_and_later_fetches_verify_against_them(hf_env):
    from taskzoo import hub
    from taskzoo.hf import hf_folder, repo_for

    repo = repo_for(SPEC)
    names = {n for n, _, _ in repo.files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= names
    pins = json.loads(next((hub.cache_root() / "hf" / "pins").glob("*.json")).read_text())
    assert pins["revision"] == REVISION and [tuple(f) for f in pins["files"]] == list(repo.files)
    folder = hf_folder(repo)
    sha = dict((n, s) for n, s, _ in repo.files)
    assert hub.sha256_file(folder / "model.safetensors") == sha["model.safetensors"]
    # the record is what counts from now on: a changed cached file no longer verifies
    cached = hub.cached_path(hub.RemoteFile("config.json", sha["config.json"],
                                            dict((n, z) for n, _, z in repo.files)["config.json"]))
    (folder / "config.json").unlink()
    cached.write_text(cached.read_text().replace("32", "33"))
    (hf_env / "tiny-bert" / "config.json").rename(hf_env / "config.json.bak")
    try:
        with pytest.raises((IntegrityError, OfflineError)):
            hf_folder(repo_for(SPEC))
    finally:
        (hf_env / "config.json.bak").rename(hf_env / "tiny-bert" / "config.json")


@pytest.mark.parametrize("spec", ["hf:taskzoo-tests/tiny-bert@main", "hf:tiny-bert", "hf:a/b@123"])
def test_a_model_id_without_a_pinned_commit_is_refused_up_front(spec):
    with pytest.raises(ConfigError, match="40-digit commit"):
        taskzoo.run("sentiment", dataset="tiny", model=spec, device="cpu", progress=False)


def test_without_the_files_the_error_says_what_is_needed_and_where(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "no_mirror"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"config.json, model.safetensors.*<mirror>/tiny-bert/"):
        taskzoo.run("sentiment", dataset="tiny", model=SPEC, device="cpu", progress=False)


@pytest.fixture(scope="module")
def sentiment_run(tiny_mirror, tmp_path_factory):
    """One fine-tuned tiny-BERT sentiment run, shared by the tests that read it; a random
    encoder has nothing to keep, so its embeddings train too."""
    return _offline_run(tiny_mirror, tmp_path_factory.mktemp("sentiment_run"), "sentiment",
                        lr=1e-3, epochs=6, train_embeddings=True)


def test_sentiment_fine_tunes_a_hub_encoder_and_the_release_holds_only_what_changed(
        sentiment_run, hf_env, tmp_path):
    from taskzoo.weights import read_weights
    from taskzoo.weights.export import export

    r = sentiment_run
    assert r.metrics["dev/accuracy"] >= 0.8  # chance 0.5; a random 2-layer encoder, 6 epochs
    state = json.loads((r.run_dir / "data.json").read_text())
    assert state["encoder"]["repo"] == "taskzoo-tests/tiny-bert" and "vocab" not in state
    texts = [t for t, _ in load_tiny_sentiment()[1][:8]]
    want = r.predictor(texts)

    # train only the top layer: the export leaves the frozen layer and embeddings to the base
    r2 = taskzoo.run("sentiment", dataset="tiny", model=SPEC, lr=1e-3, epochs=1, train_layers=1,
                     out=tmp_path / "top1", device="cpu", progress=False)
    weights, card_path = export(r2.run_dir, name="tiny_bert.tiny", out=tmp_path / "rel",
                                evaluate=False, dtype="float32")  # exact: no fp16 rounding
    card = json.loads(card_path.read_text())
    written = read_weights(weights)
    assert card["extra"]["base"]["repo"] == "taskzoo-tests/tiny-bert"
    assert any(k.startswith("encoder.encoder.layer.1.") for k in written)
    assert not any(k.startswith(("encoder.embeddings.", "encoder.encoder.layer.0."))
                   for k in written)
    assert "head.weight" in written and card["extra"]["base"]["from_base"] > 0
    clf = taskzoo.load("sentiment", weights=weights, device="cpu")
    assert clf(texts) == r2.predictor(texts)  # base + changed tensors = the run's model
    # the full run's predictor, rebuilt from its directory, answers as the run did
    assert taskzoo.load_run(r.run_dir, device="cpu")(texts) == want


def test_a_low_rank_export_stores_factors_of_each_change_and_loads_their_product(
        sentiment_run, hf_env, tmp_path):
    from taskzoo.weights import read_weights
    from taskzoo.weights.export import export

    run = read_weights(sentiment_run.run_dir / "best.safetensors")
    errors, sizes = [], []
    for rank in (2, 12):
        weights, card_path = export(sentiment_run.run_dir, name=f"tiny_bert.r{rank}",
                                    out=tmp_path / f"r{rank}", evaluate=False, delta_rank=rank,
                                    dtype="float32")
        written = read_weights(weights)
        name = "encoder.encoder.layer.1.attention.self.query.weight"  # 32 x 32, fine-tuned
        assert name not in written and written[f"{name}.delta_u"].shape == (32, rank)
        assert written[f"{name}.delta_v"].shape == (rank, 32) and "head.weight" in written
        assert json.loads(card_path.read_text())["extra"]["base"]["delta_rank"] == rank
        clf = taskzoo.load("sentiment", weights=weights, device="cpu")
        errors.append(float((clf.model.state_dict()[name] - run[name]).norm() / run[name].norm()))
        sizes.append(weights.stat().st_size)
    assert errors[1] < errors[0] < 1.0 and sizes[0] < sizes[1]  # more rank: closer, larger


def test_weights_over_another_base_are_refused(sentiment_run, tmp_path, hf_env):
    from taskzoo.weights.export import export

    weights, card_path = export(sentiment_run.run_dir, name="tiny_bert.tiny", out=tmp_path / "rel",
                                evaluate=False)
    card = json.loads(card_path.read_text())
    card["extra"]["base"]["sha256"] = "f" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="fine-tuned from taskzoo-tests/tiny-bert"):
        taskzoo.load("sentiment", weights=weights, device="cpu")


@pytest.fixture(scope="module")
def pos_run(tiny_mirror, tmp_path_factory):
    return _offline_run(tiny_mirror, tmp_path_factory.mktemp("pos_run"), "pos", lr=2e-3,
                        epochs=8, train_embeddings=True)


def test_pos_tags_words_from_their_first_subword(pos_run):
    r = pos_run
    assert r.metrics["test/upos_accuracy"] >= 0.8  # most-frequent-tag baseline is ~0.3
    out = r.predictor("The old dog sleeps .")
    assert out["tokens"] == ["The", "old", "dog", "sleeps", "."] and len(out["tags"]) == 5
    # a word the vocabulary splits into pieces still gets exactly one tag
    many = r.predictor([["Zyxwvut", "sleeps"]], tokenized=True)[0]
    assert len(many["tags"]) == 2


def test_layer_recipe_freezes_and_decays_by_layer():
    from taskzoo.config import TrainConfig
    from taskzoo.models import build
    from taskzoo.tasks.common.pretrained_text import layer_recipe
    from taskzoo.train.optim import param_groups

    cfg = {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 3,
           "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32}
    net = build("hf_classifier", num_classes=2, encoder_config=cfg)
    layer_recipe(net, train_layers=2, train_embeddings=False, layer_decay=0.5)
    assert not any(p.requires_grad for p in net.encoder.embeddings.parameters())
    assert not any(p.requires_grad for p in net.encoder.encoder.layer[0].parameters())
    scales = sorted({g["lr_scale"] for g in param_groups(TrainConfig(), net)})
    assert scales == [0.25, 0.5, 1.0]  # layer 1, layer 2 (the top), the head
    layer_recipe(net, train_layers=4, train_embeddings=True, layer_decay=1.0)  # more than 3: all
    assert all(p.requires_grad for p in net.parameters())


def test_distill_loss_mixes_soft_and_gold_and_augmented_rows_take_soft_only():
    from taskzoo.tasks.common.distill import distill_loss

    teacher = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    gold = torch.tensor([0, 1])
    same = distill_loss(teacher.clone(), teacher, torch.tensor([-1, -1]), temperature=2.0,
                        alpha=0.5)
    assert same.abs() < 1e-6  # a student equal to its teacher has nothing to learn from it
    student = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    soft = distill_loss(student, teacher, gold, temperature=2.0, alpha=1.0)
    hard = distill_loss(student, teacher, gold, temperature=2.0, alpha=0.0)
    assert torch.isclose(hard, torch.nn.functional.cross_entropy(student, gold))
    assert torch.isclose(distill_loss(student, teacher, gold, temperature=2.0, alpha=0.25),
                         0.25 * soft + 0.75 * hard)
    # without a gold label a row is soft-only, whatever alpha
    assert torch.isclose(distill_loss(student, teacher, torch.tensor([-1, -1]), temperature=2.0,
                                      alpha=0.0), soft)


def test_augmentation_masks_swaps_within_a_tag_and_is_seeded():
    from taskzoo.tasks.common.distill import MASK, augment

    sents = [["the", "film", "is", "good"], ["a", "movie", "was", "bad"]] * 50
    tags = [["DET", "NOUN", "AUX", "ADJ"]] * 100
    out = augment(sents, tags, copies=2, seed=0)
    assert len(out) == 200 and out == augment(sents, tags, copies=2, seed=0)
    assert all(o != s for o, s in zip(out, [s for s in sents for _ in range(2)]))
    words = [w for o in out for w in o]
    assert 0.04 < words.count(MASK) / len(words) < 0.2  # P_MASK = 0.1
    nouns = {"film", "movie"}
    for o in out:  # every word is a mask or a word seen with some tag; never invented
        assert all(w == MASK or w in {"the", "a", "is", "was", "good", "bad"} | nouns for w in o)
    assert any(len(o) < 4 for o in out)  # n-gram sampling shortened some


def test_a_distilled_student_learns_from_the_teacher_and_its_card_names_it(sentiment_run,
                                                                             hf_env, tmp_path):
    from taskzoo.weights.export import export

    student = taskzoo.run("sentiment", dataset="tiny", model="bigru", epochs=6,
                          teacher=str(sentiment_run.run_dir), augment=1, distill_alpha=0.7,
                          out=tmp_path / "student", device="cpu", progress=False)
    assert student.metrics["dev/accuracy"] >= 0.8
    state = json.loads((student.run_dir / "data.json").read_text())
    assert state["teacher"]["run"] == str(sentiment_run.run_dir)
    assert state["teacher"]["augmented"] == 256  # one copy of each training sentence
    _, card_path = export(student.run_dir, name="bigru.tiny_distilled", out=tmp_path / "rel")
    card = json.loads(card_path.read_text())
    assert card["data"]["teacher"]["model"] == SPEC and card["arch"] == "bigru"
    with pytest.raises(ConfigError, match="teacher="):
        taskzoo.run("sentiment", dataset="tiny", teacher=str(tmp_path / "nothing"), device="cpu",
                    progress=False)


def test_pos_distils_per_word_soft_tags(pos_run, hf_env, tmp_path):
    teacher = pos_run
    student = taskzoo.run("pos", dataset="tiny", teacher=str(teacher.run_dir), epochs=6,
                          out=tmp_path / "student", device="cpu", progress=False)
    assert student.metrics["test/upos_accuracy"] >= 0.7
    assert json.loads((student.run_dir / "data.json").read_text())["teacher"]["model"] == SPEC


def test_released_minilm_sst2_loads_offline_over_the_mirrored_base(shared_data, monkeypatch,
                                                                   tmp_path):
    """The release holds only the fine-tuned tensors: with an empty cache and no network it
    loads once the base encoder is in the mirror, and reproduces its card's accuracy."""
    from taskzoo import weights
    from taskzoo.data.sst2 import load_sst2

    card = weights.resolve("minilm.sst2")
    assert card.size < 15_000_000 and card.extra["base"]["repo"] == "sentence-transformers/all-MiniLM-L6-v2"
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="all-MiniLM-L6-v2.*model.safetensors"):
        taskzoo.load("sentiment", weights="minilm.sst2", device="cpu")
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    clf = taskzoo.load("sentiment", weights="minilm.sst2", device="cpu")
    dev = load_sst2("dev")
    out = clf([text for text, _ in dev])
    accuracy = sum((o["label"] == "positive") == bool(y) for o, (_, y) in zip(out, dev)) / len(dev)
    assert abs(accuracy - card.metrics["dev/accuracy"]) <= 0.002


_SMALL = {"model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32}


@pytest.mark.parametrize("name", ["minilm", "hf_classifier"])
def test_classifier_ignores_padding_and_every_parameter_learns(name):
    from taskzoo.models import build

    torch.manual_seed(0)
    net = build(name, num_classes=3, encoder_config=_SMALL).eval()
    ids = torch.tensor([[2, 5, 7, 3, 0, 0], [2, 9, 3, 0, 0, 0]])
    lengths = torch.tensor([4, 3])
    out = net(ids, lengths)
    assert out.shape == (2, 3)
    alone = net(ids[1:, :3], lengths[1:])  # the same sentence without the batch's padding
    assert torch.allclose(out[1], alone[0], atol=1e-5)
    net.train()
    net(ids, lengths).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in net.named_parameters() if "token_type" not in n)


@pytest.mark.parametrize("name, head", [("minilm_tagger", "linear"), ("hf_tagger", "bilstm")])
def test_tagger_scores_each_word_at_its_first_subword(name, head):
    from taskzoo.models import build

    torch.manual_seed(0)
    net = build(name, num_tags=5, encoder_config=_SMALL, tag_head=head, hidden_dim=8).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 9, 3, 0, 0]])  # [CLS] w1 w1' w2 [SEP]; [CLS] w1 [SEP]
    first = torch.tensor([[1, 3], [1, 0]])
    out = net(ids, torch.tensor([5, 3]), first, torch.tensor([2, 1]))
    assert out.shape == (2, 2, 5)
    moved = net(ids, torch.tensor([5, 3]), torch.tensor([[2, 3], [1, 0]]), torch.tensor([2, 1]))
    assert not torch.allclose(out[0, 0], moved[0, 0])  # word 1 read at another subword
    if head == "linear":  # a linear head reads each word's position alone
        assert torch.allclose(out[0, 1], moved[0, 1], atol=1e-6)


@pytest.mark.parametrize("name", ["minilm_qa", "hf_qa"])
def test_span_head_scores_start_and_end_per_token_and_reads_segments(name):
    from taskzoo.models import build

    torch.manual_seed(0)
    net = build(name, encoder_config=_SMALL).eval()
    ids = torch.tensor([[2, 5, 3, 7, 8, 3], [2, 9, 3, 6, 3, 0]])
    types = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]])
    out = net(ids, torch.tensor([6, 5]), types)
    assert out.shape == (2, 6, 2)
    assert not torch.allclose(out, net(ids, torch.tensor([6, 5]), torch.zeros_like(types)))
    net.train()
    net(ids, torch.tensor([6, 5]), types).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bi_encoder_gives_unit_vectors_and_cross_encoder_one_score():
    from taskzoo.models import build

    torch.manual_seed(0)
    ids, lengths = torch.tensor([[2, 5, 7, 3], [2, 9, 3, 0]]), torch.tensor([4, 3])
    for name in ("minilm_bi", "hf_bi"):
        e = build(name, encoder_config=_SMALL).eval()(ids, lengths)
        assert e.shape == (2, _SMALL["hidden_size"])
        assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    cross = build("minilm_cross", encoder_config=_SMALL).eval()
    assert cross(ids, lengths, torch.zeros_like(ids)).shape == (2, 1)


def test_summarunner_scores_each_sentence_and_ignores_padding():
    from taskzoo.models import build

    torch.manual_seed(0)
    net = build("summarunner", input_dim=16, hidden_dim=8, positions=4, features=2).eval()
    x = torch.randn(2, 6, 16)
    out = net(x, torch.tensor([6, 3]))
    assert out.shape == (2, 6)
    alone = net(x[1:, :3], torch.tensor([3]))
    assert torch.allclose(out[1, :3], alone[0], atol=1e-5)
    net.train()
    net(x, torch.tensor([6, 3]))[:, :3].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
