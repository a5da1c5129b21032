"""Issue 28's acceptance sweep: every task's predictor and every CLI subcommand driven with a
fixed corpus of hostile inputs (tests/hostile_corpus.py: truncated, zero-byte and wrong-type
files, text that is not UTF-8, NUL bytes, FIFOs, folders and symlink loops where files are
expected, outputs equal to inputs, JSON of the wrong shape).

Each case asserts what the issue promises: exit status 0 or 2, no traceback and at most a
few lines on stderr, no file outside the command's own output folder created, changed or
removed (the corpus and the current folder are hashed before and after), no `*.tmp` left,
and no hang (a FIFO opened for reading without a writer blocks: the case's timeout fails it).

The commands run in process through `taskzoo.cli.main`, offline, on the released packaged
weights; each task's predictor is loaded once per module and reused. The tasks come from the
registry, so a new task is swept without editing this file. The rows here are the systematic
sweep; the named cases of the issue have their own tests (test_hostile_inputs.py,
test_hostile_files.py, test_corrupt_runs.py)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from hostile_corpus import build, fifo_watch, snapshot

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")]

_STDIN = {"empty": b"", "nul": b"bad\x00\x00\n\x00\n", "nonutf8": b"caf\xe9 bad \x80\n"}


def _tasks() -> list[str]:
    from taskzoo.tasks import names

    return names()


# ------------------------------------------------------------- predict: every task x corpus

# (id, argv after `predict TASK`, stdin) with {in} for the corpus folder, {out} for the output
# folder. Each task gets every row: the ones that fit its input kind and the ones that do not.
PREDICT_ARGS: list[tuple[str, list[str], str]] = [
    ("good-png", ["{in}/good.png"], "empty"),
    ("zero-png", ["{in}/zero.png"], "empty"),
    ("trunc-png", ["{in}/trunc.png"], "empty"),
    ("trunc-jpg", ["{in}/trunc.jpg"], "empty"),
    ("text-as-png", ["{in}/text.png"], "empty"),
    ("png-as-txt", ["{in}/png.txt"], "empty"),
    ("random-bin", ["{in}/random.bin"], "empty"),
    ("random-png", ["{in}/random.png"], "empty"),
    ("nonutf8-file", ["{in}/nonutf8.txt"], "empty"),
    ("nul-file", ["{in}/nul.txt"], "empty"),
    ("fifo-png", ["{in}/fifo.png"], "empty"),
    ("fifo-txt", ["{in}/fifo.txt"], "empty"),
    ("dir-png", ["{in}/dir.png"], "empty"),
    ("empty-dir", ["{in}/empty"], "empty"),
    ("mixed-dir", ["{in}/mixed"], "empty"),
    ("glob-all", ["{in}/*"], "empty"),
    ("loop-png", ["{in}/loop.png"], "empty"),
    ("missing", ["{in}/missing.png"], "empty"),
    ("zero-mp4", ["{in}/zero.mp4"], "empty"),
    ("random-mp4", ["{in}/random.mp4"], "empty"),
    ("fifo-mp4", ["{in}/fifo.mp4"], "empty"),
    ("empty-arg", [""], "empty"),
    ("space-arg", ["  "], "empty"),
    ("dash-empty", ["-"], "empty"),
    ("dash-nul", ["-"], "nul"),
    ("dash-nonutf8", ["-"], "nonutf8"),
    ("nonutf8-arg", [os.fsdecode(b"caf\xe9 bad \x80")], "empty"),
    ("nonutf8-pair", ["who?", os.fsdecode(b"caf\xe9 bad \x80")], "empty"),
    ("long-arg", ["word " * 2000], "empty"),
    ("json-object", ["{}"], "empty"),
    ("json-list", ["[]"], "empty"),
    ("json-null", ["null"], "empty"),
    ("json-huge", ["1e999"], "empty"),
    ("json-nested", ["[[[[[]]]]]"], "empty"),
    ("json-pair-bad", ['{"question": 1, "context": null}'], "empty"),
    ("json-cands-bad", ['["q?", "not a list"]'], "empty"),
    ("at-nonutf8", ["who?", "@{in}/nonutf8.txt"], "empty"),
    ("at-fifo", ["who?", "@{in}/fifo.txt"], "empty"),
    ("at-zero", ["who?", "@{in}/zero.txt"], "empty"),
    ("at-dir", ["who?", "@{in}/dir.txt"], "empty"),
    ("at-loop", ["who?", "@{in}/loop.txt"], "empty"),
    ("at-missing", ["who?", "@{in}/missing.txt"], "empty"),
    ("at-empty", ["who?", "@"], "empty"),
    ("at-binary", ["who?", "@{in}/png.txt"], "empty"),
    ("at-nul", ["who?", "@{in}/nul.txt"], "empty"),
    ("at-long", ["who?", "@{in}/long.txt"], "empty"),
    ("at-alone", ["@{in}/fifo.txt"], "empty"),
    ("pair-empty", ["", ""], "empty"),
    ("pair-odd", ["who?", "ctx", "again?"], "empty"),
]

# --save equal to an input: the input file itself, its folder, and a folder that is a file
SAVE_ARGS: list[tuple[str, list[str]]] = [
    ("save-is-input", ["{in}/good.png", "--save", "{in}/good.png"]),
    ("save-input-folder", ["{in}/good.png", "--save", "{in}"]),
    ("save-under-file", ["{in}/good.png", "--save", "{in}/good.png/sub"]),
    ("save-fifo", ["{in}/good.png", "--save", "{in}/fifo.png"]),
    ("save-loop", ["{in}/good.png", "--save", "{in}/loop.png"]),
    ("save-empty", ["{in}/good.png", "--save", ""]),
    ("save-twice", ["{in}/good.png", "{in}/mixed/a.png", "--save", "{out}"]),
]

def _predict_params() -> list:
    params = []
    for task in _tasks():
        rows = [(rid, argv, stdin) for rid, argv, stdin in PREDICT_ARGS]
        rows += [(rid, argv, "empty") for rid, argv in SAVE_ARGS]
        for rid, argv, stdin in rows:
            params.append(pytest.param(["predict", task, *argv], stdin,
                                       id=f"predict-{task}-{rid}"))
    return params


# ------------------------------------------------------------- the other subcommands

OTHER: list = [
    # run: refused before any training
    ("run-unknown-task", ["run", "no_such_task"]),
    ("run-bad-key", ["run", "sentiment", "no_such_key=1"]),
    ("run-nan", ["run", "sentiment", "dataset=tiny", "lr=nan"]),
    ("run-inf", ["run", "sentiment", "dataset=tiny", "epochs=1e999"]),
    ("run-nonutf8-value", ["run", "sentiment", os.fsdecode(b"dataset=caf\xe9")]),
    ("run-out-fifo", ["run", "sentiment", "dataset=tiny", "--out", "{in}/fifo.png"]),
    ("run-out-loop", ["run", "sentiment", "dataset=tiny", "--out", "{in}/loop.png"]),
    ("run-out-corpus", ["run", "sentiment", "dataset=tiny", "--out", "{in}"]),
    ("run-out-zero-config", ["run", "sentiment", "dataset=tiny", "--out", "{in}/run_zero"]),
    ("run-resume-missing", ["run", "sentiment", "dataset=tiny", "--resume", "--out",
                            "{in}/missing"]),
    ("run-resume-empty", ["run", "sentiment", "dataset=tiny", "--resume", "--out", "{in}/empty"]),
    ("run-resume-file", ["run", "sentiment", "dataset=tiny", "--resume", "--out",
                         "{in}/good.png"]),
    ("run-resume-fifo-config", ["run", "sentiment", "dataset=tiny", "--resume", "--out",
                                "{in}/run_fifo"]),
    ("run-resume-zero-config", ["run", "sentiment", "dataset=tiny", "--resume", "--out",
                                "{in}/run_zero"]),
    ("run-resume-nonutf8-config", ["run", "sentiment", "dataset=tiny", "--resume", "--out",
                                   "{in}/run_nonutf8"]),
    ("run-data-fifo", ["run", "image_classification", "dataset=folder", "data_dir={in}/fifo.png"]),
    ("run-data-mixed", ["run", "image_classification", "dataset=folder", "data_dir={in}/mixed"]),
    # predict --from / --weights: a run or weights that are not what taskzoo wrote
    ("predict-from-missing", ["predict", "sentiment", "--from", "{in}/missing", "good"]),
    ("predict-from-file", ["predict", "sentiment", "--from", "{in}/good.png", "good"]),
    ("predict-from-fifo", ["predict", "sentiment", "--from", "{in}/fifo.png", "good"]),
    ("predict-from-empty", ["predict", "sentiment", "--from", "{in}/empty", "good"]),
    ("predict-from-fifo-config", ["predict", "sentiment", "--from", "{in}/run_fifo", "good"]),
    ("predict-from-zero-config", ["predict", "sentiment", "--from", "{in}/run_zero", "good"]),
    ("predict-from-nonutf8-config", ["predict", "sentiment", "--from", "{in}/run_nonutf8",
                                     "good"]),
    ("predict-from-list-config", ["predict", "sentiment", "--from", "{in}/run_list", "good"]),
    ("predict-from-random-config", ["predict", "sentiment", "--from", "{in}/run_random", "good"]),
    ("predict-weights-zero", ["predict", "sentiment", "--weights", "{in}/zero.safetensors",
                              "good"]),
    ("predict-weights-random", ["predict", "sentiment", "--weights",
                                "{in}/random.safetensors", "good"]),
    ("predict-weights-fifo", ["predict", "sentiment", "--weights", "{in}/fifo.png", "good"]),
    ("predict-weights-junk", ["predict", "sentiment", "--weights", "../../etc/passwd", "good"]),
    ("predict-unknown-task", ["predict", "no_such_task", "good"]),
    ("predict-from-and-weights", ["predict", "sentiment", "--from", "{in}/empty", "--weights",
                                  "x.y", "good"]),
    # play
    ("play-from-missing", ["play", "cartpole", "--from", "{in}/missing"]),
    ("play-from-file", ["play", "cartpole", "--from", "{in}/good.png"]),
    ("play-from-fifo-config", ["play", "cartpole", "--from", "{in}/run_fifo"]),
    ("play-from-zero-config", ["play", "cartpole", "--from", "{in}/run_zero"]),
    ("play-from-nonutf8-config", ["play", "cartpole", "--from", "{in}/run_nonutf8"]),
    ("play-record-input", ["play", "cartpole", "--from", "{in}/run_zero", "--record",
                           "{in}/good.png"]),
    ("play-unknown-task", ["play", "no_such_task", "--from", "{in}/empty"]),
    # bench: refused before any child process trains
    ("bench-unknown-task", ["bench", "no_such_task"]),
    ("bench-unknown-json-input", ["bench", "no_such_task", "--json", "{in}/good.png"]),
    ("bench-zero-seeds", ["bench", "sentiment", "--seeds", "0", "--csv", "{in}/good.png"]),
    # chat: knowledge bases that are not a CSV or a folder of text
    ("chat-kb-fifo", ["chat", "--kb", "{in}/fifo.csv"]),
    ("chat-kb-zero", ["chat", "--kb", "{in}/zero.csv"]),
    ("chat-kb-nonutf8", ["chat", "--kb", "{in}/nonutf8.csv"]),
    ("chat-kb-random", ["chat", "--kb", "{in}/random.bin"]),
    ("chat-kb-png", ["chat", "--kb", "{in}/good.png"]),
    ("chat-kb-missing", ["chat", "--kb", "{in}/missing.csv"]),
    ("chat-kb-empty-dir", ["chat", "--kb", "{in}/empty"]),
    ("chat-kb-loop", ["chat", "--kb", "{in}/loop.txt"]),
    ("chat-kb-empty-arg", ["chat", "--kb", ""]),
    ("chat-threshold-nan", ["chat", "--kb", "{in}/mixed", "--threshold", "nan"]),
    # export
    ("export-missing", ["export", "{in}/missing"]),
    ("export-file", ["export", "{in}/good.png"]),
    ("export-empty", ["export", "{in}/empty"]),
    ("export-fifo-config", ["export", "{in}/run_fifo", "--out", "{out}"]),
    ("export-zero-config", ["export", "{in}/run_zero", "--out", "{out}"]),
    ("export-nonutf8-config", ["export", "{in}/run_nonutf8", "--out", "{out}"]),
    ("export-out-input", ["export", "{in}/run_zero", "--out", "{in}/good.png"]),
    ("export-out-fifo", ["export", "{in}/run_zero", "--out", "{in}/fifo.png"]),
    ("export-over-corpus", ["export", "{in}/run_list", "--out", "{in}", "--overwrite"]),
    # download, verify, weights: junk names
    ("download-junk", ["download", "no_such.weights"]),
    ("download-path", ["download", "../../etc/passwd"]),
    ("download-empty", ["download", ""]),
    ("download-nonutf8", ["download", os.fsdecode(b"caf\xe9.x")]),
    ("download-input-file", ["download", "{in}/good.png"]),
    ("verify-extra", ["verify", "junk"]),
    ("weights-extra", ["weights", "junk"]),
    ("list-extra", ["list", "junk"]),
    ("no-command", []),
    ("unknown-command", ["no_such_command"]),
]


def _other_params() -> list:
    return [pytest.param(argv, "empty", id=rid) for rid, argv in OTHER]


# ------------------------------------------------------------- the harness


@pytest.fixture(scope="module")
def predictors(tmp_path_factory: pytest.TempPathFactory):
    """Each task's released predictor, loaded at its first use and reused by later cases."""
    return {}


@pytest.fixture
def cached_load(predictors, monkeypatch):
    import taskzoo.weights
    from taskzoo.errors import OfflineError

    real = taskzoo.weights.load

    def load(task, weights=None, sha256=None, device="auto", **kw):
        if weights is not None or sha256 is not None or kw:
            return real(task, weights=weights, sha256=sha256, device=device, **kw)
        key = (task, device)
        if key not in predictors:
            try:
                predictors[key] = real(task, device=device)
            except OfflineError as exc:  # its pretrained encoder is in no mirror here
                predictors[key] = exc
        if isinstance(predictors[key], OfflineError):
            pytest.skip(f"{task}'s weights are not available offline: {predictors[key]}")
        return predictors[key]

    monkeypatch.setattr(taskzoo.weights, "load", load)
    if (SHARED_DATA / "all-MiniLM-L6-v2").is_dir():  # the text tasks' encoder, offline
        monkeypatch.setenv("TASKZOO_MIRROR", str(SHARED_DATA))


def _run(argv: list[str], stdin: str, tmp_path: Path, monkeypatch, capsys) -> None:
    from taskzoo.cli import main

    corpus = build(tmp_path)
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(_STDIN[stdin]),
                                                       encoding="utf-8"))
    args = [a.replace("{in}", str(corpus)).replace("{out}", str(out)) for a in argv]
    before = snapshot(tmp_path)
    with fifo_watch(corpus) as blocked:
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own errors exit 2 through SystemExit
            code = exc.code
    captured = capsys.readouterr()
    err = captured.err
    assert not blocked, f"opened a FIFO for reading and waited for a writer: {blocked}"
    assert "Traceback" not in err, err
    assert code in (0, 2), f"exit {code}: {err}"
    lines = err.splitlines()
    if code == 2:  # an error line, or `taskzoo` alone: the help
        assert (lines and "error" in lines[-1]) or (not argv and captured.out), err
    # a usage message may wrap; taskzoo's own error or notes are one line each
    assert len([ln for ln in lines if ln.startswith("taskzoo: ")]) <= 3, err
    after = snapshot(tmp_path)
    # nothing that was there is changed or removed, even inside the output folder (an
    # output never goes over an input); new entries only inside the output folder
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"changed or removed: {changed}"
    outside = sorted(k for k in after.keys() - before.keys()
                     if not _inside(tmp_path / k, _output_folder(args, out)))
    assert not outside, f"created outside the output folder: {outside}"
    leftovers = [k for k in after if k.endswith(".tmp")]
    assert not leftovers, leftovers


def _output_folder(args: list[str], default: Path) -> Path:
    """Where the command may write: the folder given to --save or --out, else `default`."""
    for flag in ("--save", "--out"):
        if flag in args[:-1] and args[args.index(flag) + 1]:
            return Path(args[args.index(flag) + 1]).absolute()
    return default  # an empty --save or --out is no leave to write into the current folder


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@pytest.mark.parametrize(("argv", "stdin"), _predict_params())
def test_predict_on_a_hostile_input(argv, stdin, cached_load, tmp_path, monkeypatch, capsys):
    _run(argv, stdin, tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize(("argv", "stdin"), _other_params())
def test_a_subcommand_with_hostile_arguments(argv, stdin, cached_load, tmp_path, monkeypatch,
                                             capsys):
    _run(argv, stdin, tmp_path, monkeypatch, capsys)


def test_a_save_that_cannot_be_a_folder_is_refused_before_predicting(cached_load, tmp_path,
                                                                    monkeypatch, capsys):
    """An empty --save is refused (it was ignored: outputs printed, nothing saved), and a
    --save that is a file fails before the predictor runs (captioning's beam search on CPU
    took seconds only to be refused)."""
    import taskzoo.weights
    from taskzoo.cli import main

    corpus = build(tmp_path)
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    predictor = taskzoo.weights.load("autoencoder")

    def never(*args, **kwargs):
        raise AssertionError("the predictor ran")

    monkeypatch.setattr(predictor, "run", never)
    good = str(corpus / "good.png")
    assert main(["predict", "autoencoder", good, "--save", ""]) == 2
    assert "--save is empty" in capsys.readouterr().err
    assert main(["predict", "autoencoder", good, "--save", good]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
