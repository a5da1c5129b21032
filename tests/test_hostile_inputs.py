"""Hostile or careless command lines (issue 28): each ends in exit 2 with one line on stderr,
no traceback, and no file in the test's folder created, changed or removed.

The commands run in process through `taskzoo.cli.main` on the released default weights
(packaged, read offline). Add a row for each hostile input a fix makes an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskzoo import hub
from taskzoo.cli import main

pytestmark = pytest.mark.timeout(120)

# (argv with {tmp} for the test's folder, what the error line says)
REFUSED = [
    # case 4: a weights name that is not arch.tag is refused before anything is written
    (["export", "{tmp}/run", "--name", "../../escaped.x"], "expected arch.tag"),
    (["export", "{tmp}/run", "--name", "{tmp}/abs.x"], "expected arch.tag"),
    (["export", "{tmp}/run", "--name", "My Model"], "expected arch.tag"),
    (["export", "{tmp}/run", "--name", "bilstm.tiny", "--out", ""], "expected an output folder"),
    (["export", "{tmp}/run", "--name", "bilstm.tiny", "--out", "{tmp}/shoe.png"],
     "expected an output folder"),
    # case 3: a run never writes into the current folder or over a user's folder
    (["run", "sentiment", "dataset=tiny", "--out", ""], "--out is empty"),
    (["run", "sentiment", "dataset=tiny", "--out", "{tmp}/run"], "is not a taskzoo run"),
    # case 9: --out or --save that is a file, or runs through one
    (["run", "sentiment", "dataset=tiny", "--out", "{tmp}/shoe.png"], "is a file"),
    (["run", "sentiment", "dataset=tiny", "--out", "{tmp}/shoe.png/x"], "is a file"),
    (["predict", "autoencoder", "{tmp}/shoe.png", "--save", "{tmp}/shoe.png"],
     "exists and is not a folder"),
    # case 17: --save with a task whose outputs are printed makes no folder
    (["predict", "sentiment", "a good film", "--save", "{tmp}/out"], "outputs are printed"),
    # case 11: a negative top-k
    (["predict", "image_classification", "{tmp}/shoe.png", "--top-k", "-1"],
     "top_k=-1: expected a whole number >= 0"),
    # case 16: JSON true/false are not states
    (["predict", "frozenlake", "true"], "FrozenLake-v1 takes a state number"),
    (["predict", "frozenlake", "[false]"], "FrozenLake-v1 takes a state number"),
    (["predict", "cartpole", "[0, 0, 0, true]"], "CartPole-v1 takes a JSON array of 4 numbers"),
]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hub.sha256_file(p)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("argv", "says"), REFUSED, ids=[" ".join(a[:4]) for a, _ in REFUSED])
def test_a_hostile_command_is_one_line_exit_2_and_touches_nothing(argv, says, tmp_path,
                                                                  monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    Image.new("L", (28, 28), 128).save(tmp_path / "shoe.png")
    run = tmp_path / "run"  # what export checks first: the files of a finished run
    run.mkdir()
    for name in ("config.json", "data.json", "metrics.json", "best.safetensors"):
        (run / name).write_text("a user's file")
    before = _tree(tmp_path)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert _tree(tmp_path) == before
