"""Issue 28, case 7: a damaged run folder or weights card is one line on stderr naming the
file and what is wrong with it, exit 2 and no traceback, for `predict --from`, `predict
--weights`, `export` and `run --resume`; nothing in the folder is changed.

One tiny sentiment run (and its export) is trained per module; each case damages a copy."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import taskzoo
from taskzoo import hub
from taskzoo.cli import main
from taskzoo.errors import CheckpointError, RunFileError, UsageError

pytestmark = pytest.mark.timeout(300)

RECIPE = {"dataset": "tiny", "epochs": 1, "max_steps": 2, "device": "cpu"}
RANDOM = random.Random(28).randbytes(4096)  # the same "random" file on every run


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run in `run/` and its export (bigru.tiny) in `exp/`."""
    from taskzoo.weights.export import export

    root = tmp_path_factory.mktemp("originals")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKZOO_HOME", str(root / "home"))
        mp.setenv("TASKZOO_OFFLINE", "1")
        taskzoo.run("sentiment", out=root / "run", progress=False, **RECIPE)
        export(root / "run", out=root / "exp", evaluate=False)
    return root


def _write(name: str, content: bytes | str | None):
    def damage(folder: Path) -> None:
        path = folder / name
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def _card(change):
    def damage(folder: Path) -> None:
        path = folder / "bigru.tiny.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return damage


PREDICT = ["predict", "sentiment", "--from", "{run}", "a good film"]
WEIGHTS = ["predict", "sentiment", "--weights", "{exp}/bigru.tiny.safetensors", "a good film"]
EXPORT = ["export", "{run}", "--no-evaluate", "--out", "{tmp}/out"]
RESUME = ["run", "sentiment", "dataset=tiny", "epochs=1", "max_steps=2", "--device", "cpu",
          "--quiet", "--out", "{run}", "--resume"]

# (id, argv, how the run or export is damaged, the file and what the line says about it)
CASES = [
    ("predict-data-not-json", PREDICT, _write("data.json", '{"labels": ['),
     "data.json is not valid JSON"),
    ("predict-data-empty-object", PREDICT, _write("data.json", "{}"),
     "data.json is not a sentiment data state as taskzoo wrote it (missing key 'labels')"),
    ("predict-data-zero-bytes", PREDICT, _write("data.json", b""), "data.json is empty"),
    ("predict-data-not-utf8", PREDICT, _write("data.json", b"\xff\xfe{}"),
     "data.json is not UTF-8 text"),
    ("predict-config-not-json", PREDICT, _write("config.json", "{not json"),
     "config.json is not valid JSON"),
    ("predict-config-list", PREDICT, _write("config.json", "[1, 2]"),
     "config.json holds a JSON list, not the object taskzoo wrote"),
    ("predict-config-no-task", PREDICT, _write("config.json", "{}"),
     "config.json names no task"),
    ("predict-best-zero-bytes", PREDICT, _write("best.safetensors", b""),
     "best.safetensors is empty (0 bytes)"),
    ("predict-best-random", PREDICT, _write("best.safetensors", RANDOM),
     "best.safetensors is not a safetensors file"),
    ("export-config-missing", EXPORT, _write("config.json", None), "missing config.json"),
    ("export-config-not-json", EXPORT, _write("config.json", "{not json"),
     "config.json is not valid JSON"),
    ("export-config-list", EXPORT, _write("config.json", "[]"), "config.json holds a JSON list"),
    ("export-metrics-not-json", EXPORT, _write("metrics.json", "{"),
     "metrics.json is not valid JSON"),
    ("resume-config-missing", RESUME, _write("config.json", None),
     "config.json is missing, unreadable or names no task (this one is missing)"),
    ("resume-config-not-json", RESUME, _write("config.json", "{not json"),
     "config.json is missing, unreadable or names no task (this one is not valid JSON"),
    ("resume-ckpt-zero-bytes", RESUME, _write("last.ckpt", b""),
     "last.ckpt: it is empty (0 bytes)"),
    ("resume-ckpt-random", RESUME, _write("last.ckpt", RANDOM),
     "last.ckpt: it is damaged or not a file taskzoo wrote"),
    ("card-data-empty", WEIGHTS, _card(lambda c: {**c, "data": {}}),
     'bigru.tiny.json ("data") is not a sentiment data state as taskzoo wrote it '
     "(missing key 'labels')"),
    ("card-data-labels-number", WEIGHTS,
     _card(lambda c: {**c, "data": {**c["data"], "labels": 3}}),
     'bigru.tiny.json ("data") is not a sentiment data state'),
    ("card-config-bad-value", WEIGHTS,
     _card(lambda c: {**c, "config": {**c["config"], "hidden_dim": "x"}}),
     "bigru.tiny.json (\"config\"): hidden_dim='x': expected int"),
    ("card-config-list", WEIGHTS, _card(lambda c: {**c, "config": []}),
     "bigru.tiny.json: config is not an object"),
    ("card-name-number", WEIGHTS, _card(lambda c: {**c, "name": 5}),
     "bigru.tiny.json: name is not a string"),
    ("card-size-text", WEIGHTS, _card(lambda c: {**c, "size": "5"}),
     "bigru.tiny.json: size is not a whole number"),
    ("card-a-list", WEIGHTS, _card(lambda c: [c]), "bigru.tiny.json: holds a JSON list"),
    ("card-not-json", WEIGHTS, _write("bigru.tiny.json", "{"),
     "bigru.tiny.json: not a readable weights card"),
]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hub.sha256_file(p)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("argv", "damage", "says"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_damaged_run_or_card_is_one_line_naming_the_file(argv, damage, says, originals,
                                                           tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    for name in ("run", "exp"):
        shutil.copytree(originals / name, tmp_path / name)
    damage(tmp_path / ("exp" if argv is WEIGHTS else "run"))
    before = _tree(tmp_path)
    folders = {"{run}": str(tmp_path / "run"), "{exp}": str(tmp_path / "exp"),
               "{tmp}": str(tmp_path)}
    args = []
    for arg in argv:
        for key, value in folders.items():
            arg = arg.replace(key, value)
        args.append(arg)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("taskzoo: error: "), err
    assert says in err and str(tmp_path) in err and "Traceback" not in err, err
    assert _tree(tmp_path) == before  # nothing written, nothing removed


def test_the_error_is_a_checkpoint_error_and_a_usage_error(originals, tmp_path):
    # callers that catch CheckpointError still do; the CLI's exit 2 comes from UsageError
    shutil.copytree(originals / "run", tmp_path / "run")
    (tmp_path / "run" / "data.json").write_text("{}")
    with pytest.raises(RunFileError, match="data.json is not a sentiment data state") as info:
        taskzoo.load_run(tmp_path / "run", device="cpu")
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, UsageError)
