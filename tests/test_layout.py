"""The layout rules of docs/architecture.md, checked on the source: few top-level modules, one
package per task with a page in docs/, no import of another module's private name, short
functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import taskzoo
from taskzoo.tasks import packages

PACKAGE = Path(taskzoo.__file__).parent
REPO = PACKAGE.parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(tree: ast.Module, package: str = "") -> list[str]:
    """`from m import _x`, and `m._x` where m is a module this file imported. A package's own
    private submodules are its business: `from taskzoo.hub import _verify` inside taskzoo.hub."""
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                own = node.module == package and _is_module(f"{package}.{alias.name}")
                if _private(alias.name) and not own:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                else:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name.split(".")[0] for a in node.names)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and _private(node.attr)):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _package_of(path: Path) -> str:
    """The package a source file belongs to (its folder, for `__init__.py` too)."""
    return ".".join(path.relative_to(REPO).parts[:-1])


def test_the_checker_sees_a_private_import():
    tree = ast.parse("from a.b import _c\nimport d\nd._e()\nfrom f import g\ng.h\n")
    assert private_imports(tree) == ["line 1: from a.b import _c", "line 3: d._e"]
    own = ast.parse("from taskzoo.hub import _verify\nfrom taskzoo.hub._verify import _x\n")
    assert private_imports(own, "taskzoo.hub") == ["line 2: from taskzoo.hub._verify import _x"]
    assert private_imports(own, "taskzoo.data") == ["line 1: from taskzoo.hub import _verify",
                                                    "line 2: from taskzoo.hub._verify import _x"]


def test_no_module_imports_another_modules_private_name():
    bad = {str(p.relative_to(REPO)): hits for p in SOURCES
           if (hits := private_imports(ast.parse(p.read_text(encoding="utf-8")), _package_of(p)))}
    assert not bad, bad


def test_no_function_is_longer_than_80_lines():
    long = [f"{p.relative_to(REPO)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in SOURCES for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 80]
    assert not long, long


def test_the_engine_has_few_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 15, top


def test_every_task_is_one_package_with_a_task_module_and_a_docs_page():
    tasks_dir = PACKAGE / "tasks"
    assert sorted(p.name for p in tasks_dir.glob("*.py")) == ["__init__.py", "base.py"]
    names = packages()
    assert len(names) == len(taskzoo.list_tasks()) == 19
    # faces adds the stages of its pipeline: the two detectors' inference, the alignment,
    # the whole pipeline, the gallery and its ORL measurements; style_transfer its loss
    # network, the per-image optimisation and the named paintings
    vocabulary = {"__init__.py", "task.py", "predictor.py", "data.py", "report.py", "baselines.py",
                  "trunk.py", "ultraface.py", "mtcnn.py", "align.py", "pipeline.py", "gallery.py",
                  "evaluate.py", "perceptual.py", "optimize.py", "paintings.py"}
    for name in names:
        files = {p.name for p in (tasks_dir / name).glob("*.py")}
        assert "task.py" in files and files <= vocabulary, (name, sorted(files - vocabulary))
        assert (REPO / "docs" / "tasks" / f"{name}.md").is_file(), name
    assert set(names) == set(taskzoo.list_tasks())


@pytest.mark.parametrize("page", ["quickstart", "configuration", "weights", "data", "devices",
                                  "benchmarks", "architecture", "adding-a-task"])
def test_the_docs_have_their_pages(page):
    assert (REPO / "docs" / f"{page}.md").is_file()
