"""Released weights: cards, export, verified download over loopback HTTP, load, verify."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from hub_server import count_hashes, run_at_once

import taskzoo
from taskzoo import hub, weights
from taskzoo.cli import main
from taskzoo.data.tiny_sentiment import load_tiny_sentiment
from taskzoo.errors import (
    CheckpointError,
    ConfigError,
    IntegrityError,
    OfflineError,
    UnknownNameError,
    UsageError,
)
from taskzoo.weights import WeightCard, cards, read_card
from taskzoo.weights.export import export

pytestmark = pytest.mark.timeout(120)

TINY = dict(dataset="tiny", model="bilstm", embed_dim=32, hidden_dim=32, epochs=4)


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    """Each test downloads into its own cache: nothing cached by another test is found."""
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def asset(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A tiny sentiment run exported as fp16: (weights, card, the run's metrics)."""
    root = tmp_path_factory.mktemp("asset")
    res = taskzoo.run("sentiment", out=root / "run", progress=False, **TINY)
    w, c = export(root / "run", out=root / "export", dtype="float16")
    return w, c, res.metrics


@pytest.fixture
def remote_release(asset, server, monkeypatch, tmp_path):
    """The asset published on a loopback server; its card alone is in the package's list."""
    w, c, _ = asset
    server.files[f"/rel/{w.name}"] = w.read_bytes()
    server.files[f"/rel/{c.name}"] = c.read_bytes()
    released = tmp_path / "released"
    released.mkdir()
    shutil.copy(c, released / c.name)
    monkeypatch.setattr(weights.catalog, "RELEASED", released)
    monkeypatch.setenv("TASKZOO_HUB_URL", server.url("/rel"))
    weights.released_cards.cache_clear()
    yield read_card(c)
    weights.released_cards.cache_clear()


def _accuracy(predictor, rows) -> float:
    out = predictor([text for text, _ in rows])
    return sum((o["label"] == "positive") == bool(y) for o, (_, y) in zip(out, rows)) / len(rows)


# ---------------------------------------------------------------- cards
def test_every_released_card_is_valid_and_matches_its_file():
    released = cards()
    assert released, "no released weights in taskzoo/released"
    from taskzoo.models import MODELS
    from taskzoo.models import names as model_names
    from taskzoo.tasks import TASKS
    from taskzoo.tasks import names as task_names

    model_names(), task_names()  # register every model and task
    for card in released:
        assert WeightCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
        assert card.task in TASKS and card.arch in MODELS and card.metrics
        source = card.extra.get("source", {})
        parts = card.extra.get("sources", {})  # several third-party networks in one file
        if "repo" in source:  # third-party weights: where they come from and their license
            assert source["license"] and source["sha256"] and source["repo"] in card.notes
        elif parts:
            for part in parts.values():
                assert part["license"] and part["sha256"]
                assert (part.get("repo") or part["package"]) in card.notes, part
        else:
            assert card.recipe.startswith(f"taskzoo run {card.task}")
        path = weights.catalog.RELEASED / card.file
        if card.default:  # defaults ship in the package, at most 10 MB
            assert path.is_file() and card.size <= 10_000_000
        if path.is_file():
            assert path.stat().st_size == card.size
            assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256
    defaults = [c.task for c in released if c.default]
    assert sorted(defaults) == sorted(set(defaults)), "two defaults for one task"
    from taskzoo.api import resolve_task

    # a GPU-scale recipe (atari) ships weights only once trained on a GPU
    trained_here = {t for t in task_names() if not resolve_task(t).gpu_recipe}
    assert trained_here <= set(defaults) <= set(task_names()), "every task has default weights"


def test_default_weights_load_offline_and_reproduce_their_cards(shared_data, monkeypatch):
    """An empty cache, no network: the shipped weights predict, and their accuracy on the real
    data (read through the mirror) is the card's."""
    from taskzoo.data.sst2 import load_sst2
    from taskzoo.data.ud import load_ewt

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    clf = taskzoo.load("sentiment", device="cpu")
    card = weights.resolve("sentiment")
    assert abs(_accuracy(clf, load_sst2("dev")) - card.metrics["dev/accuracy"]) <= 0.002
    tagger = taskzoo.load("pos", device="cpu")
    card = weights.resolve("pos")
    test = load_ewt("test")
    out = tagger([list(s.words) for s in test], tokenized=True)
    pairs = [(g, p) for s, o in zip(test, out) for g, p in zip(s.upos, o["tags"])]
    accuracy = sum(g == p for g, p in pairs) / len(pairs)
    assert abs(accuracy - card.metrics["test/upos_accuracy"]) <= 0.002


def test_card_schema_errors_name_the_field(asset):
    data = json.loads(asset[1].read_text())
    with pytest.raises(CheckpointError, match="missing fields \\['sha256'\\]"):
        WeightCard.from_dict({k: v for k, v in data.items() if k != "sha256"})
    with pytest.raises(CheckpointError, match="not arch.tag"):
        WeightCard.from_dict({**data, "name": "BiLSTM"})
    with pytest.raises(CheckpointError, match="sha256 is not 64"):
        WeightCard.from_dict({**data, "sha256": "abc"})


# ---------------------------------------------------------------- export and load
def test_export_measures_the_exported_weights_and_load_reproduces_them(asset):
    w, c, run_metrics = asset
    card = read_card(c)
    assert card.dtype == "float16" and card.task == "sentiment" and card.arch == "bilstm"
    assert card.arch_kwargs["hidden_dim"] == 32 and card.arch_kwargs["vocab_size"] > 100
    assert card.size == w.stat().st_size and card.sha256 == hub.sha256_file(w)
    assert "embed_dim=32" in card.recipe and "dataset=tiny" in card.recipe
    assert all(t.dtype == torch.float16 for t in weights.read_weights(w).values()
               if t.is_floating_point())
    # the fp16 figure is measured, and close to the fp32 run's
    assert abs(card.metrics["dev/accuracy"] - run_metrics["dev/accuracy"]) <= 0.05
    clf = taskzoo.load("sentiment", weights=w, device="cpu")
    _, dev = load_tiny_sentiment()
    assert _accuracy(clf, dev) == pytest.approx(card.metrics["dev/accuracy"], abs=1e-9)


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under `root` with its sha256 (folders: "dir")."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hub.sha256_file(p)
            for p in sorted(root.rglob("*"))}


def test_export_refuses_a_bad_name_or_folder_before_writing_anything(asset, tmp_path, capsys,
                                                                     monkeypatch):
    """issue 28 case 4: `--name ../../escaped.x` (or an absolute path) wrote the weights
    outside the output folder, and `--name "My Model"` left an orphan file, before the name
    was refused."""
    run_dir = tmp_path / "a" / "b" / "run"
    shutil.copytree(asset[0].parent.parent / "run", run_dir)
    afile = tmp_path / "afile"
    afile.write_text("mine")
    before = _tree(tmp_path)
    bad_names = ["../../escaped.x", str(tmp_path / "abs.x"), "My Model", "bilstm.tiny/x",
                 "bilstm.tiny\n", "bilstm", ".x", "Bilstm.tiny", "a.b.c"]
    for name in bad_names:
        assert main(["export", str(run_dir), "--name", name, "--no-evaluate"]) == 2, name
        err = capsys.readouterr().err
        assert "expected arch.tag in lower_snake case" in err and err.count("\n") == 1, err
        assert _tree(tmp_path) == before, name
    for out in ["", str(afile), str(afile / "sub")]:
        assert main(["export", str(run_dir), "--out", out, "--no-evaluate"]) == 2, out
        err = capsys.readouterr().err
        assert "expected an output folder" in err and err.count("\n") == 1, err
        assert _tree(tmp_path) == before, out
    # an export that fails after its checks (here the measurement) leaves nothing either:
    # not the weights, not the folders it made for them
    import taskzoo.weights.export as export_mod

    def fail(*args, **kwargs):
        raise CheckpointError("the data now differs")
    monkeypatch.setattr(export_mod, "_measure", fail)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "new" / "deep")]) == 1
    assert "the data now differs" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_export_replaces_only_an_earlier_export_of_the_same_run(asset, tmp_path, capsys):
    """issue 28 case 4: export wrote over a NAME.safetensors / NAME.json it had not written."""
    w, c, _ = asset
    out = tmp_path / "rel"
    out.mkdir()
    weights_path, card_path = out / w.name, out / c.name
    args = ["export", str(w.parent.parent / "run"), "--out", str(out), "--no-evaluate"]

    def refused(path: Path) -> None:
        before = _tree(tmp_path)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{path} already exists and is not an export of this run" in err, err
        assert "--overwrite" in err and err.count("\n") == 1 and _tree(tmp_path) == before

    weights_path.write_bytes(b"the user's own file")
    refused(weights_path)
    weights_path.unlink()
    card_path.write_text("{}")
    refused(card_path)
    card_path.unlink()
    assert main(args) == 0 and main(args) == 0  # a second export of the same run replaces it
    assert read_card(card_path).sha256 == hub.sha256_file(weights_path)
    card = json.loads(card_path.read_text())
    card["extra"]["run_metrics"]["dev/accuracy"] = 0.0  # the card of another run
    card_path.write_text(json.dumps(card))
    refused(weights_path)
    card_path.write_text(c.read_text())
    weights_path.write_bytes(w.read_bytes()[:-1] + b"\x00")  # not the weights its card names
    refused(weights_path)
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == 0  # asked for: replaced
    assert read_card(card_path).sha256 == hub.sha256_file(weights_path)


def test_load_rejects_wrong_task_unknown_names_and_bad_specs(asset):
    w, _, _ = asset
    with pytest.raises(ConfigError, match="for task sentiment, not pos"):
        taskzoo.load("pos", weights=w)
    with pytest.raises(UnknownNameError, match="Did you mean 'sentiment'"):
        taskzoo.load("sentimnet")
    with pytest.raises(UsageError, match="no such file"):
        taskzoo.load("sentiment", weights="nowhere.safetensors")
    with pytest.raises(UsageError, match="needs sha256"):
        taskzoo.load("sentiment", weights="https://127.0.0.1:9/x.safetensors")


@pytest.mark.parametrize("kind", ["pickle", "torch_save"])
def test_a_pickle_disguised_as_safetensors_is_refused(asset, tmp_path, kind):
    w, c, _ = asset
    fake = tmp_path / w.name
    if kind == "pickle":
        fake.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    else:
        torch.save({"weight": torch.ones(2)}, fake)
        assert zipfile.is_zipfile(fake)
    card = json.loads(c.read_text())
    card.update(sha256=hub.sha256_file(fake), size=fake.stat().st_size)
    (tmp_path / c.name).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="not a safetensors file.*never unpickles"):
        taskzoo.load("sentiment", weights=fake)


def test_a_safetensors_file_whose_header_length_starts_like_a_pickle_is_read(tmp_path):
    """A header of 0x..80 bytes makes the file's first byte 0x80, a pickle's mark."""
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    for pad in range(256):
        save_file({"w": torch.ones(3)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert torch.equal(weights.read_weights(path)["w"], torch.ones(3))


# ---------------------------------------------------------------- download through the hub
def test_released_card_downloads_from_loopback_then_works_offline(remote_release, server,
                                                                  monkeypatch):
    card = remote_release
    assert weights.local_state(card) == "remote"
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match=card.file):
        taskzoo.load(card.name)
    monkeypatch.delenv("TASKZOO_OFFLINE")
    assert main(["download", card.name]) == 0
    assert weights.local_state(card) == "cached" and server.count(f"/rel/{card.file}") == 1
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    clf = taskzoo.load(card.name, device="cpu")
    # the downloaded weights are the card's: its dev accuracy, measured at export
    _, dev = load_tiny_sentiment()
    assert _accuracy(clf, dev) == pytest.approx(card.metrics["dev/accuracy"], abs=1e-9)
    assert server.count(f"/rel/{card.file}") == 1


def test_url_with_sha256_loads_and_a_wrong_hash_is_refused(asset, server):
    w, c, _ = asset
    server.files[f"/u/{w.name}"] = w.read_bytes()
    server.files[f"/u/{c.name}"] = c.read_bytes()
    url = server.url(f"/u/{w.name}")
    clf = taskzoo.load("sentiment", weights=url, sha256=hub.sha256_file(w), device="cpu")
    assert len(clf(["fine", "awful"])) == 2
    with pytest.raises(CheckpointError, match="describes sha256"):
        taskzoo.load("sentiment", weights=url, sha256="0" * 64)


@pytest.mark.parametrize("fault", ["wrong", "short"])
def test_corrupt_or_truncated_download_is_never_used(remote_release, server, fault):
    card = remote_release
    server.faults[f"/rel/{card.file}"] = {fault: True}
    with pytest.raises(IntegrityError if fault == "wrong" else hub.DownloadError):
        weights.weights_file(card)
    assert not hub.cached_path(card.remote()).exists()


def test_dropped_download_resumes_with_range(remote_release, server):
    card = remote_release
    server.faults[f"/rel/{card.file}"] = {"drop": 1}
    path = weights.weights_file(card)
    assert hub.sha256_file(path) == card.sha256
    ranges = [r for p, r in server.requests if p == f"/rel/{card.file}"]
    assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=")


def _load_worker(name, released, hub_url, home, barrier, queue) -> None:
    os.environ.update(TASKZOO_HUB_URL=hub_url, TASKZOO_HOME=home)
    from taskzoo import weights as w

    w.catalog.RELEASED = Path(released)
    barrier.wait()
    predictor = w.load(name, device="cpu")
    queue.put((str(w.weights_file(w.resolve(name))), predictor(["good"])[0]["label"]))


def test_four_processes_loading_at_once_download_once(remote_release, server):
    card = remote_release
    server.faults[f"/rel/{card.file}"] = {"delay": 1.0}
    args = (card.name, str(weights.catalog.RELEASED), os.environ["TASKZOO_HUB_URL"],
            os.environ["TASKZOO_HOME"])
    results = run_at_once(_load_worker, args, n=4, timeout=100)
    assert len({r[0] for r in results}) == 1 and len({r[1] for r in results}) == 1
    assert server.full_bodies[f"/rel/{card.file}"] == 1
    assert hub.sha256_file(Path(results[0][0])) == card.sha256


# ---------------------------------------------------------------- hashing once per change
def test_packaged_weights_are_hashed_once_not_on_every_load(monkeypatch):
    hashed = count_hashes(monkeypatch)
    card = weights.resolve("sentiment")
    first = taskzoo.load("sentiment", device="cpu")
    assert hashed == [weights.catalog.RELEASED / card.file]  # verified (and recorded) once
    second = taskzoo.load("sentiment", device="cpu")
    assert hashed == [weights.catalog.RELEASED / card.file]  # unchanged since: not hashed again
    assert weights.local_state(card) == "packaged" and len(hashed) == 1
    text = ["a gripping , beautiful film"]
    assert first(text) == second(text)


def test_local_weights_are_rehashed_only_when_they_change(asset, monkeypatch, tmp_path):
    w, c, _ = asset
    local = tmp_path / w.name
    shutil.copy(w, local)
    shutil.copy(c, tmp_path / c.name)
    hashed = count_hashes(monkeypatch)
    taskzoo.load("sentiment", weights=local, device="cpu")
    taskzoo.load("sentiment", weights=local, device="cpu")
    assert hashed == [local]
    st = local.stat()
    os.utime(local, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched: stale
    taskzoo.load("sentiment", weights=local, device="cpu")
    assert hashed == [local, local]  # exactly one rehash
    data = bytearray(local.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    local.write_bytes(bytes(data))
    os.utime(local, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    with pytest.raises(CheckpointError, match="does not match its card"):
        taskzoo.load("sentiment", weights=local, device="cpu")
    with pytest.raises(CheckpointError, match="does not match its card"):
        weights.init_tensors(str(local), "sentiment")
    assert len(hashed) == 3  # the bad bytes were recorded as such: refused without rehashing


def test_a_same_size_corrupt_cached_file_is_not_reported_as_cached(remote_release, monkeypatch):
    card = remote_release
    hashed = count_hashes(monkeypatch)
    path = weights.weights_file(card)
    assert weights.local_state(card) == "cached"
    assert weights.weights_file(card) == path and len(hashed) == 1  # the download's own hash
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert weights.local_state(card) == "remote"
    assert hub.sha256_file(weights.weights_file(card)) == card.sha256  # downloaded again


# ---------------------------------------------------------------- the cache check and the CLI
def test_verify_finds_and_removes_a_corrupted_cache_entry(remote_release, capsys):
    card = remote_release
    path = weights.weights_file(card)
    assert main(["verify"]) == 0 and "0 deleted" in capsys.readouterr().out
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["verify", "--keep"]) == 1
    assert f"corrupt: {path}" in capsys.readouterr().out and path.exists()
    assert main(["verify"]) == 0
    assert f"deleted: {path}" in capsys.readouterr().out and not path.exists()
    assert weights.local_state(card) == "remote"


def test_cli_export_weights_and_predict(asset, tmp_path, capsys):
    w, c, _ = asset
    run_dir = w.parent.parent / "run"
    assert main(["export", str(run_dir), "--name", "bilstm.tiny_copy", "--dtype", "float32",
                 "--no-evaluate", "--out", str(tmp_path)]) == 0
    card = read_card(tmp_path / "bilstm.tiny_copy.json")
    assert card.dtype == "float32" and "not re-measured" in card.notes
    capsys.readouterr()
    text = load_tiny_sentiment()[1][0][0]
    assert main(["predict", "sentiment", text, "--weights",
                 str(tmp_path / "bilstm.tiny_copy.safetensors"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    # the fp32 copy predicts what the run directory it was exported from predicts
    expected = taskzoo.load_run(run_dir, device="cpu")(text)
    assert {k: row[k] for k in ("label", "score")} == expected
    assert main(["weights"]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[0].split() == ["name", "task", "metric", "size", "where"]
    assert main(["download", "sentimnet"]) == 2
    assert "Did you mean 'sentiment'" in capsys.readouterr().err


def test_fine_tuning_starts_from_the_weights_and_their_architecture(asset, tmp_path):
    w, c, _ = asset
    card = read_card(c)
    # lr=1e-12 (lr must be > 0): training moves no prediction, so the run evaluates the
    # starting weights
    res = taskzoo.run("sentiment", init=str(w), dataset="tiny", epochs=1, lr=1e-12,
                      out=tmp_path / "ft", progress=False)
    assert res.config.model == "bilstm" and res.config.hidden_dim == 32  # from the card
    assert res.metrics["dev/accuracy"] == pytest.approx(card.metrics["dev/accuracy"], abs=1e-9)
    with pytest.raises(UnknownNameError, match="not a released weights name or a file"):
        taskzoo.run("sentiment", init="bilstm.nowhere", dataset="tiny", out=tmp_path / "x")


def test_load_into_reinitialises_a_head_of_another_shape_only_when_asked():
    torch.manual_seed(0)
    src = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 10))
    dst = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    fresh_head = dst[1].weight.detach().clone()
    tensors = {k: v.detach().clone() for k, v in src.state_dict().items()}
    with pytest.raises(CheckpointError, match="shape mismatch \\['1.weight', '1.bias'\\]"):
        weights.load_into(dst, tensors, source="src")
    reinit = weights.load_into(dst, tensors, source="src", reinit_mismatched=True)
    assert reinit == {"1.weight": ([10, 8], [3, 8]), "1.bias": ([10], [3])}
    assert torch.equal(dst[0].weight, src[0].weight)  # what fits is loaded
    assert torch.equal(dst[1].weight, fresh_head)  # the head keeps its fresh initialisation
    with pytest.raises(CheckpointError, match="missing \\['1.bias'\\]"):  # another architecture
        weights.load_into(dst, {k: v for k, v in tensors.items() if k != "1.bias"},
                          source="src", reinit_mismatched=True)


# ---------------------------------------------------------------- one resolver of a spec
def test_resolve_spec_reads_each_kind_of_spec(asset, server):  # noqa: F811  (a fixture)
    """A released name, a run directory, a local file with its card and a pinned URL each
    give their card (or run records) and a verified local file; without fetch only the card."""
    w, c, _ = asset
    card = read_card(c)
    default = weights.resolve("sentiment")
    src = weights.resolve_spec(default.name, task="sentiment")
    assert src.card == default and src.path == weights.catalog.RELEASED / default.file
    src = weights.resolve_spec(w, task="sentiment")
    assert src.card == card and src.path == w and src.run_dir is None
    assert weights.resolve_spec(w, task="sentiment", fetch=False).path is None
    server.files[f"/s/{w.name}"] = w.read_bytes()
    server.files[f"/s/{c.name}"] = c.read_bytes()
    src = weights.resolve_spec(server.url(f"/s/{w.name}"), task="sentiment", sha256=card.sha256)
    assert src.card == card and hub.sha256_file(src.path) == card.sha256
    run_dir = w.parent.parent / "run"
    src = weights.resolve_spec(run_dir, task="sentiment",
                               rules=weights.SpecRules(run_dirs=True))
    assert src.card is None and src.run_dir == run_dir and src.task == "sentiment"
    assert src.path == run_dir / "best.safetensors" and src.data["labels"]
    text = ["a gripping , beautiful film", "dull"]
    restored = src.restore(device="cpu").predictor()
    assert restored(text) == taskzoo.load_run(run_dir, device="cpu")(text)


def test_resolve_spec_refuses_a_bad_spec_in_each_option_s_words(asset, tmp_path):
    from taskzoo.tasks.captioning.data import ENCODER_INIT
    from taskzoo.tasks.common.distill import TEACHER
    from taskzoo.weights.loading import INIT

    w, c, _ = asset
    run_dir = w.parent.parent / "run"
    with pytest.raises(UsageError, match="weights='nowhere': no such file, released name"):
        weights.resolve_spec("nowhere", task="sentiment")
    with pytest.raises(UsageError, match="no such file"):  # load() takes no run directory
        weights.resolve_spec(run_dir, task="sentiment")
    with pytest.raises(UsageError, match="needs sha256"):
        weights.resolve_spec("https://127.0.0.1:9/x.safetensors", task="sentiment")
    with pytest.raises(ConfigError, match="^weights bilstm.tiny are for task sentiment, not pos"):
        weights.resolve_spec(w, task="pos")
    with pytest.raises(ConfigError, match=f"^init={w}: weights .* for task sentiment, not pos"):
        weights.resolve_spec(w, task="pos", rules=INIT)
    with pytest.raises(UnknownNameError, match="init='nowhere': not a released weights name"):
        weights.resolve_spec("nowhere", task="sentiment", rules=INIT)
    with pytest.raises(ConfigError, match="teacher='nowhere': expected a run directory"):
        weights.resolve_spec("nowhere", task="sentiment", rules=TEACHER)
    with pytest.raises(UnknownNameError, match="Unknown weights or task 'bigru.sst3'"):
        weights.resolve_spec("bigru.sst3", task="sentiment", rules=TEACHER)
    with pytest.raises(UnknownNameError, match="encoder_init='nowhere': not a released"):
        weights.resolve_spec("nowhere", task=None, rules=ENCODER_INIT)
    with pytest.raises(CheckpointError, match="not a finished run directory: missing data.json"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "config.json").write_text("{}")
        weights.resolve_spec(tmp_path / "half", task=None, rules=ENCODER_INIT)
    local = tmp_path / w.name
    local.write_bytes(w.read_bytes()[:-1] + bytes([w.read_bytes()[-1] ^ 0xFF]))
    shutil.copy(c, tmp_path / c.name)
    with pytest.raises(CheckpointError, match=f"^{local} does not match its card"):
        weights.resolve_spec(local, task="sentiment")
    with pytest.raises(CheckpointError, match="encoder_init=.*does not match its card's sha256"):
        weights.resolve_spec(local, task=None, rules=ENCODER_INIT)


def test_tasks_declare_the_fields_and_the_tag_of_their_weights():
    from taskzoo.api import make_config, resolve_task
    from taskzoo.weights.export import default_name

    assert resolve_task("sentiment").weights_fields == ("model",)
    assert resolve_task("pos").weights_fields == ("model", "tagset")
    assert {"algo", "env", "hidden", "activation"} <= set(resolve_task("cartpole").weights_fields)
    assert {"algo", "env"} <= set(resolve_task("taxi").weights_fields)
    for task, arch, name in [("sentiment", "bigru", "bigru.sst2"),
                             ("cartpole", "mlp_actor_critic", "mlp_actor_critic.cartpole_v1"),
                             ("taxi", "q_table", "q_table.taxi_v4")]:
        task_cls = resolve_task(task)
        overrides = {"dataset": "sst2"} if task == "sentiment" else {}
        task_obj = task_cls(make_config(task_cls, overrides))
        assert default_name(arch, task_obj) == name


def test_uint8_quantised_tensors_are_decoded_as_tfjs_does():
    """A third-party tensor kept as its source publishes it (uint8, a scale and a minimum:
    face-api's descriptor) loads as q * scale + min, computed in float64."""
    import torch

    from taskzoo.errors import CheckpointError
    from taskzoo.weights import load_into

    net = torch.nn.Linear(3, 2, bias=False)
    q = torch.tensor([[0, 1, 255], [7, 128, 3]], dtype=torch.uint8)
    scale, low = torch.tensor(0.0005260649557207145, dtype=torch.float64), \
        torch.tensor(-0.07101876902229645, dtype=torch.float64)
    load_into(net, {"weight.q8": q, "weight.q8_scale": scale, "weight.q8_min": low}, source="t")
    assert torch.equal(net.weight.data, (q.double() * scale + low).float())
    assert float(net.weight[0, 2]) == pytest.approx(-0.07101876902229645 + 255 * 0.0005260649557207145)
    with pytest.raises(CheckpointError, match="lacks its .q8_scale"):
        load_into(net, {"weight.q8": q, "weight.q8_min": low}, source="t")
