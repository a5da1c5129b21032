"""Import hygiene: a light `import taskzoo`, no stray top-level `tasks`/`models` packages."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str, cwd) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_taskzoo_is_light(tmp_path):
    out = _python("import sys, taskzoo; print(sorted(m for m in ('torch', 'torchvision', "
                  "'transformers', 'gymnasium') if m in sys.modules))", tmp_path)
    assert out == "[]"


def test_listing_tasks_does_not_pull_heavy_libraries(tmp_path):
    out = _python("import sys, taskzoo; taskzoo.list_tasks(); taskzoo.list_models(); "
                  "print(sorted(m for m in ('torchvision', 'transformers', 'gymnasium') "
                  "if m in sys.modules))", tmp_path)
    assert out == "[]"


def test_no_top_level_tasks_or_models_package(tmp_path):
    # run outside the repository so the checkout itself is not on sys.path
    out = _python("import importlib.util as u; print(u.find_spec('tasks'), u.find_spec('models'), "
                  "u.find_spec('taskzoo.tasks') is not None, u.find_spec('taskzoo.models') is not None)",
                  tmp_path)
    assert out == "None None True True"


def test_the_wheel_ships_every_default_weight_and_card(tmp_path):
    """`taskzoo.load(task)` works offline only if the built package carries the files."""
    import json
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path), str(repo)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("taskzoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    cards = sorted((repo / "taskzoo" / "released").glob("*.json"))
    assert cards
    for card in cards:
        assert f"taskzoo/released/{card.name}" in names
        if json.loads(card.read_text())["default"]:
            assert f"taskzoo/released/{json.loads(card.read_text())['file']}" in names
