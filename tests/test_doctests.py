"""The examples in docstrings run (those marked +SKIP need data or a trained model)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import taskzoo
import taskzoo.data
import taskzoo.models
import taskzoo.tasks

MODULES = sorted(f"{pkg.__name__}.{m.name}"
                 for pkg in (taskzoo, taskzoo.data, taskzoo.tasks, taskzoo.models)
                 for m in pkgutil.iter_modules(pkg.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"taskzoo": taskzoo}, optionflags=doctest.ELLIPSIS,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
