"""The examples in docstrings run (those marked +SKIP need data or a trained model)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import taskzoo

# every module of the package, subpackages included (`__main__` modules run a command)
MODULES = sorted(m.name for m in pkgutil.walk_packages(taskzoo.__path__, "taskzoo.")
                 if not m.name.endswith(".__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"taskzoo": taskzoo}, optionflags=doctest.ELLIPSIS,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
