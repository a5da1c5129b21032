"""The `taskzoo` command through subprocess, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_pos import as_raw_text  # a tiny sentence as a person writes it

from taskzoo.data.tiny_pos import load_tiny_pos
from taskzoo.data.tiny_sentiment import load_tiny_sentiment
from taskzoo.data.ud import UPOS

CLI = [sys.executable, "-m", "taskzoo.cli"]


def _run(args, env, timeout=120, **kw):
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, **kw)


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def test_list(cli_env):
    proc = _run(["list"], cli_env)
    assert proc.returncode == 0
    assert "sentiment" in proc.stdout and "pos" in proc.stdout
    assert "bilstm_tagger" in proc.stdout
    for model in ("lstm", "gru", "bilstm", "bigru", "textcnn"):
        assert model in proc.stdout
    tasks = proc.stdout.split("models:")[0].splitlines()[1:]
    assert any(line.split()[0] == "image_classification" for line in tasks)
    for line in tasks:  # the longest name is still apart from its description
        assert line[2:].split(" ")[0].isidentifier() and "  " in line[2:], line


def test_list_into_a_closed_pipe_is_quiet(cli_env):
    # `taskzoo list | head -1`: the reader has gone before taskzoo writes
    proc = subprocess.Popen([*CLI, "list"], env=cli_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_unknown_task_suggests_and_exits_2(cli_env):
    proc = _run(["run", "sentimnet"], cli_env)
    assert proc.returncode == 2
    assert "Did you mean 'sentiment'?" in proc.stderr
    _no_traceback(proc)


def test_bad_override_names_key_and_type(cli_env):
    proc = _run(["run", "sentiment", "lr=abc"], cli_env)
    assert proc.returncode == 2
    assert "lr='abc'" in proc.stderr and "expected float" in proc.stderr
    _no_traceback(proc)
    proc = _run(["run", "sentiment", "epoch=3"], cli_env)
    assert proc.returncode == 2 and "Did you mean 'epochs'?" in proc.stderr
    proc = _run(["run", "sentiment", "dataset=sst3"], cli_env)
    assert proc.returncode == 2 and "Did you mean 'sst2'?" in proc.stderr
    proc = _run(["run", "sentiment", "--model", "bilstn"], cli_env)
    assert proc.returncode == 2 and "Did you mean 'bilstm'?" in proc.stderr
    proc = _run(["run", "sentiment", "--bogus"], cli_env)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    _no_traceback(proc)


def test_help_lists_the_task_config(cli_env):
    proc = _run(["run", "sentiment", "--help"], cli_env)
    assert proc.returncode == 0
    assert "--resume" in proc.stdout and "epochs" in proc.stdout and "dataset=tiny also sets" in proc.stdout
    for sub in ("list", "predict"):
        assert _run([sub, "--help"], cli_env).returncode == 0


def test_offline_without_data_is_a_clear_error(cli_env, tmp_path):
    env = {**cli_env, "TASKZOO_OFFLINE": "1"}
    proc = _run(["run", "sentiment", "--out", str(tmp_path / "r")], env)
    assert proc.returncode == 1
    assert "TASKZOO_OFFLINE" in proc.stderr and "train.tsv" in proc.stderr
    _no_traceback(proc)


@pytest.mark.timeout(240)
def test_run_then_predict(cli_env, tmp_path):
    out = tmp_path / "run"
    proc = _run(["run", "sentiment", "dataset=tiny", "--out", str(out), "--device", "cpu",
                 "epochs=8", "--quiet", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["dev/accuracy"] >= 0.9
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # the tiny dev split through stdin: one JSON line per sentence, as accurate as the run said
    dev = load_tiny_sentiment()[1]
    proc = _run(["predict", "sentiment", "--from", str(out), "-", "--json"], cli_env,
                input="".join(text + "\n\n" for text, _ in dev))  # blank lines are skipped
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["input"] for r in rows] == [text for text, _ in dev]
    hits = [r["label"] == ("positive" if y else "negative") for r, (_, y) in zip(rows, dev)]
    assert sum(hits) / len(dev) == metrics["dev/accuracy"]
    proc = _run(["predict", "sentiment", "--from", str(out), dev[0][0]], cli_env)
    label, score, text = proc.stdout.rstrip("\n").split("\t")  # label, score, text
    assert label == rows[0]["label"] and float(score) == rows[0]["score"] and text == dev[0][0]
    proc = _run(["predict", "sentiment", "--from", str(out), "   "], cli_env)
    assert proc.returncode == 2 and "empty" in proc.stderr
    _no_traceback(proc)
    proc = _run(["predict", "sentiment", "--from", str(tmp_path / "nope"), "hi"], cli_env)
    assert proc.returncode == 2 and "not a finished run directory" in proc.stderr
    _no_traceback(proc)


@pytest.mark.timeout(240)
def test_run_then_predict_pos(cli_env, tmp_path):
    out = tmp_path / "pos"
    proc = _run(["run", "pos", "dataset=tiny", "epochs=6", "--out", str(out), "--device", "cpu",
                 "--quiet"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "test/upos_accuracy" in proc.stdout and (out / "tags_test.txt").is_file()
    # the tiny test split as raw text, one sentence per argument: word/TAG lines whose words
    # are the sentence's, tagged about as accurately as the run reported
    test = load_tiny_pos()["test"][:20]
    proc = _run(["predict", "pos", "--from", str(out), *[as_raw_text(t.words) for t in test]],
                cli_env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    pairs = [[p.rsplit("/", 1) for p in line.split()] for line in lines]
    assert [[w for w, _ in sent] for sent in pairs] == [list(t.words) for t in test]
    gold = [g for t in test for g in t.upos]
    tags = [tag for sent in pairs for _, tag in sent]
    assert sum(g == p for g, p in zip(gold, tags)) / len(gold) >= 0.9
    proc = _run(["predict", "pos", "--from", str(out), "Anna visited Paris.", "--json"], cli_env)
    row = json.loads(proc.stdout)
    assert row["input"] == "Anna visited Paris." and row["tokens"] == ["Anna", "visited", "Paris", "."]
    assert len(row["tags"]) == len(row["scores"]) == 4 and set(row["tags"]) <= set(UPOS)
    proc = _run(["predict", "sentiment", "--from", str(out), "hi"], cli_env)
    assert proc.returncode == 2 and "holds a 'pos' run" in proc.stderr
    _no_traceback(proc)


# ---------------------------------------------------------------- one-line errors
@pytest.mark.parametrize("override, message", [
    ("batch_size=0", "batch_size=0: expected in [1, 65536]"),
    ("epochs=-1", "epochs=-1: expected >= 1"),
    ("lr=nan", "lr=nan: expected a finite number"),
])
def test_out_of_range_overrides_are_one_line_and_exit_2(cli_env, override, message):
    # the config is checked before any data is read: no mirror and no network needed
    proc = _run(["run", "sentiment", override, "--quiet"], {**cli_env, "TASKZOO_OFFLINE": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"taskzoo: error: {proc.stderr.strip()[16:]}"
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    _no_traceback(proc)


def test_a_diverging_run_is_one_line_and_exit_2(cli_env, tmp_path):
    proc = _run(["run", "sentiment", "lr=1e9", "dataset=tiny", "--out", str(tmp_path / "r"),
                 "--device", "cpu", "--quiet"], cli_env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskzoo: error: train/loss became")
    assert "lower learning rate than lr=1e+09" in lines[0]
    _no_traceback(proc)


def test_predict_cartpole_from_a_json_array(cli_env):
    proc = _run(["predict", "cartpole", "[0.01,0.2,-0.03,-0.3]", "[0.0, 0.0, 0.1, 0.5]",
                 "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["input"] for r in rows] == ["[0.01,0.2,-0.03,-0.3]", "[0.0, 0.0, 0.1, 0.5]"]
    assert rows[1]["output"] == 1  # the pole falls right: push right
    for bad, message in [("abc", "is not JSON: CartPole-v1 takes a JSON array of 4 numbers"),
                         ("[1, 2]", "observations have shape (4,)"),
                         ('["a", "b", "c", "d"]', "takes a JSON array of 4 numbers")]:
        proc = _run(["predict", "cartpole", bad], cli_env)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        _no_traceback(proc)


def test_every_task_predicts_from_the_command_line(capsys, tmp_path, monkeypatch):
    """Each task's default weights, fed its example input the way a shell passes it, offline.
    Weights over a pretrained encoder need its files from the mirror; without one those
    tasks are left out."""
    import numpy as np
    from conftest import SHARED_DATA
    from PIL import Image

    from taskzoo import weights
    from taskzoo.api import make_config, resolve_task
    from taskzoo.cli import main
    from taskzoo.tasks import names

    mirror = (SHARED_DATA / "all-MiniLM-L6-v2").is_dir()
    if mirror:
        monkeypatch.setenv("TASKZOO_MIRROR", str(SHARED_DATA))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    for task in names():
        if resolve_task(task).gpu_recipe and not any(
                c.task == task and c.default for c in weights.cards()):
            continue  # no weights trained for it yet (a GPU job)
        if "encoder" in weights.resolve(task).data and not mirror:
            continue
        cls = resolve_task(task)
        example = cls(make_config(cls, {})).example_inputs(1)[0]
        if isinstance(example, np.ndarray):  # an image: a shell passes its path
            Image.fromarray(example).save(tmp_path / f"{task}.png")
            text = str(tmp_path / f"{task}.png")
        else:
            text = example if isinstance(example, str) else json.dumps(example)
        assert main(["predict", task, text, "--json", "--device", "cpu"]) == 0, task
        row = json.loads(capsys.readouterr().out)
        assert row["input"] == text, task
    assert main(["predict", "taxi", "500"]) == 2  # Taxi has states 0..499
    assert "state number 0..499" in capsys.readouterr().err


def test_help_names_the_preset_key_of_each_task(cli_env):
    proc = _run(["run", "cartpole", "--help"], cli_env)
    assert proc.returncode == 0
    assert "algo=dqn also sets:" in proc.stdout and "dataset=ppo" not in proc.stdout
    assert "hidden=256,256" in _run(["run", "lunarlander", "--help"], cli_env).stdout
    assert "lr " in proc.stdout and "float > 0" in proc.stdout  # ranges are listed


def test_predict_flags_are_the_predictors_declared_options(capsys):
    """Every call option a predictor declares for the command line is a `predict` flag, and
    only those: adding one to a predictor needs no CLI edit."""
    import importlib
    import pkgutil

    import taskzoo.tasks
    from taskzoo.cli import main
    from taskzoo.tasks.base import Predictor

    for mod in pkgutil.walk_packages(taskzoo.tasks.__path__, "taskzoo.tasks."):
        importlib.import_module(mod.name)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    flags = {word.rstrip(",") for word in help_text.split() if word.startswith("--")}
    classes, declared = [Predictor], []
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if cls.__module__.startswith("taskzoo."):
            declared += [(cls.__name__, o) for o in cls.call_options]
    assert {o.name for _, o in declared} >= {"top_k", "conf", "iou", "ratio", "sentences"}
    for owner, opt in declared:
        assert (opt.flag in flags) == opt.cli, (owner, opt.name)


def test_predict_refuses_an_option_the_task_does_not_take(capsys, monkeypatch):
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")  # the default weights ship with the package
    assert main(["predict", "sentiment", "a fine film", "--conf", "0.3", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == (
        "taskzoo: error: --conf is not an option of sentiment's predictor (it takes: none)")
    # a flag at its option's default is as if not given: --top-k 0 shows no ranking
    assert main(["predict", "sentiment", "a fine film", "--top-k", "0", "--device", "cpu"]) == 0
    assert "positive" in capsys.readouterr().out


def test_the_base_predictor_checks_declared_options():
    import torch

    from taskzoo.errors import InputError
    from taskzoo.runtime import Runtime
    from taskzoo.tasks.base import CallOption, Predictor

    class Scaled(Predictor):
        call_options = (CallOption("times", int, default=0, low=1, help="repeat"),
                        CallOption("share", float, low=0, high=1, help="a fraction"),
                        CallOption("loud", bool, help="shout"))
        times, share = 2, 0.5

        def preprocess(self, item, index, ctx):
            return torch.tensor(float(item))

        def postprocess(self, result, example, ctx):
            return (ctx["times"], ctx["share"], ctx["loud"])

    pred = Scaled(torch.nn.Identity(), Runtime.create(device="cpu"))
    assert pred(1) == (2, 0.5, None)  # the predictor's settings
    assert pred(1, times="3", share=1, loud="yes") == (3, 1.0, True)
    assert pred(1, times=0, share=None) == (2, 0.5, None)  # default and None: not set
    for options, message in [({"volume": 3}, r"unknown option\(s\) volume: this predictor takes "
                                             "times, share, loud"),
                             ({"times": "x"}, "times='x': expected a whole number >= 1"),
                             ({"times": -1}, "times=-1: expected a whole number >= 1"),
                             ({"share": 1.5}, r"share=1.5: expected a number in \[0, 1\]"),
                             ({"loud": "maybe"}, "loud='maybe': expected true or false")]:
        with pytest.raises(InputError, match=message):
            pred(1, **options)
        with pytest.raises(InputError, match=message):
            pred.configure(**options)
    assert pred.configure(times=4, loud=True)(1) == (4, 0.5, True)


# issue 28, cases 3 and 9: what `taskzoo run --out` refuses, before any training
RUN_TINY = ["run", "sentiment", "dataset=tiny", "epochs=1", "embed_dim=16", "hidden_dim=16",
            "--device", "cpu", "--quiet"]


def _one_usage_line(proc, *parts):
    assert proc.returncode == 2, proc.stderr
    _no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskzoo: error: --out"), proc.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


def test_run_out_empty_or_through_a_file_is_one_line_and_exit_2(cli_env, tmp_path):
    proc = _run([*RUN_TINY, "--out", ""], cli_env, cwd=tmp_path)
    _one_usage_line(proc, "--out is empty")
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == []  # nor the current folder
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    _one_usage_line(_run([*RUN_TINY, "--out", str(notes)], cli_env), f"{notes} is a file")
    _one_usage_line(_run([*RUN_TINY, "--out", str(notes / "run")], cli_env),
                    f"{notes} is a file, so no folder can be made inside it")
    assert notes.read_text() == "mine"


@pytest.mark.timeout(240)
def test_run_out_refuses_a_users_folder_unless_overwrite(cli_env, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    own = {"config.json": '{"lr": 1}', "metrics.json": "{}", "best.safetensors": "weights",
           "notes.txt": "kept"}
    for name, text in own.items():
        (mine / name).write_text(text)
    _one_usage_line(_run([*RUN_TINY, "--out", str(mine)], cli_env),
                    str(mine), "not a taskzoo run", "--overwrite")
    assert {p.name: p.read_text() for p in mine.iterdir()} == own
    proc = _run([*RUN_TINY, "--out", str(mine), "--overwrite", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((mine / "config.json").read_text())["_task"] == "sentiment"
    assert (mine / "notes.txt").read_text() == "kept"
    # now it is a run: a second run there needs --resume or --overwrite
    _one_usage_line(_run([*RUN_TINY, "--out", str(mine)], cli_env),
                    "already holds a 'sentiment' run", "--resume", "--overwrite")
    help_text = _run(["run", "--help"], cli_env).stdout
    assert "--overwrite" in help_text


def _photo(path, seed):
    """A tiny random RGB PNG at `path`; returns its bytes (to check it was not touched)."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


def test_save_never_writes_over_an_input_that_a_glob_or_folder_expands_to(
        capsys, tmp_path, monkeypatch):
    """Issue 28, case 2: the outputs are compared with the files the arguments expand to,
    not with the typed arguments, so a glob or folder of one file saved into its own folder
    (or `img.png --save .`) gets `-2` and a note instead of replacing the photo."""
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")  # the autoencoder's weights ship with taskzoo
    monkeypatch.chdir(tmp_path)
    shot = _photo(tmp_path / "shots" / "IMG_0001.png", 0)
    inner = _photo(tmp_path / "img.d" / "img.png", 1)
    img = _photo(tmp_path / "img.png", 2)
    for args, typed, kept, new in [
            (["shots/IMG_0001.*", "--save", "shots"], "shots/IMG_0001.png", shot,
             "shots/IMG_0001-2.png"),
            (["img.d", "--save", "img.d"], "img.d/img.png", inner, "img.d/img-2.png"),
            (["img.png", "--save", "."], "img.png", img, "img-2.png")]:
        assert main(["predict", "autoencoder", *args, "--device", "cpu"]) == 0, args
        out, err = capsys.readouterr()
        assert out == f"{typed}\t{new}\n", args
        assert f"{typed} is an input; {typed} saved as {new}" in err, err
        assert (tmp_path / typed).read_bytes() == kept, args
        assert (tmp_path / new).is_file()
    before = img
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "img.png").write_bytes(b"the user's own file, not an output")
    assert main(["predict", "autoencoder", "img.png", "img.png", "--save", "res"]) == 0
    out, err = capsys.readouterr()  # a file already there is kept too; a repeat gets -3
    assert out.splitlines() == ["img.png\tres/img-2.png", "img.png\tres/img-3.png"]
    assert (tmp_path / "res" / "img.png").read_bytes() == b"the user's own file, not an output"
    assert (tmp_path / "img.png").read_bytes() == before


def test_a_glob_of_one_file_is_labelled_and_saved_by_that_file(capsys, tmp_path, monkeypatch):
    """Issue 28, case 12: `'shots/*.png'` matching one photo printed the pattern and wrote
    `out/*.png`; the line and the file now carry the photo's name."""
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "shots" / "IMG_0001.png", 0)
    assert main(["predict", "autoencoder", "shots/*.png", "--save", "out", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["input"] == "shots/IMG_0001.png" and row["saved"] == "out/IMG_0001.png"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG_0001.png"]
    assert main(["predict", "autoencoder", "shots", "--device", "cpu"]) == 0  # a folder too
    assert capsys.readouterr().out.startswith("shots/IMG_0001.png\t")


def test_save_with_a_task_whose_outputs_are_printed_makes_no_folder(capsys, tmp_path,
                                                                      monkeypatch):
    """Issue 28, case 17: `--save DIR` with sentiment fails (exit 2, one line) before DIR
    is made, instead of leaving an empty folder behind."""
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    assert main(["predict", "sentiment", "a fine film", "--save",
                 str(tmp_path / "new" / "dir")]) == 2
    err = capsys.readouterr().err
    assert "outputs are printed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()
