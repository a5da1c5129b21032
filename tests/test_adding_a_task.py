"""docs/adding-a-task.md, followed: the template package copied as a new task folder is found
by the registry, trains, predicts from Python and from the command line, and benchmarks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "docs" / "task_template"

# The copy goes into a folder added to taskzoo.tasks' search path (not into the checkout), in a
# child process: the registry of this process never sees the toy task.
SCRIPT = """
import json, sys
import taskzoo, taskzoo.tasks
taskzoo.tasks.__path__.append(sys.argv[1])
from taskzoo.cli import main
result = taskzoo.run("topic", out=sys.argv[2], progress=False)
clf = taskzoo.load_run(sys.argv[2])
print(json.dumps({"tasks": taskzoo.list_tasks(), "metrics": result.metrics,
                  "one": clf("the chef burnt the soup"),
                  "top": clf(["the storm hit the coast"], top_k=2)}))
sys.stdout.flush()
sys.exit(main(["predict", "topic", "--from", sys.argv[2], "--top-k", "3",
               "our striker scored in the final"]))
"""


@pytest.fixture
def topic_dir(tmp_path: Path) -> Path:
    extra = tmp_path / "more_tasks"
    shutil.copytree(TEMPLATE, extra / "topic", ignore=shutil.ignore_patterns("__pycache__"))
    return extra


def test_the_template_copied_as_a_folder_is_a_working_task(topic_dir, tmp_path, cli_env):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(topic_dir), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=240, env=cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, cli_line = proc.stdout.strip().splitlines()[-2:]
    out = json.loads(first)
    assert "topic" in out["tasks"] and "sentiment" in out["tasks"]
    assert out["metrics"]["dev/accuracy"] >= 0.9  # the topics are separable by their words
    assert out["one"]["label"] == "food" and 0 < out["one"]["score"] <= 1
    assert [t["label"] for t in out["top"][0]["top"]][0] == "weather"
    assert len(out["top"][0]["top"]) == 2
    assert json.loads(cli_line)["output"]["label"] == "sport"
    for name in ("config.json", "data.json", "metrics.json", "best.safetensors"):
        assert (tmp_path / "run" / name).is_file()


def test_the_template_keeps_the_layout_rules():
    names = sorted(p.name for p in TEMPLATE.glob("*.py"))
    assert names == ["__init__.py", "data.py", "predictor.py", "task.py"]
    guide = (REPO / "docs" / "adding-a-task.md").read_text(encoding="utf-8")
    assert "docs/task_template" in guide and "taskzoo/tasks/" in guide
