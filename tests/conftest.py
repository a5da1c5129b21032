from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# fixtures shared by several test modules: `server` (an HTTP server on 127.0.0.1) and the
# tiny-BERT mirror (`tiny_mirror`, `hf_env`)
pytest_plugins = ["hub_server", "tiny_bert"]

REPO = Path(__file__).resolve().parents[1]
# Tests that need real datasets read them from a mirror folder, the normal way (the hub
# through TASKZOO_MIRROR): the one given in the environment (CI: ../shared/data), else
# ../shared/data beside the checkout. Without either they are skipped, with the reason.
_MIRROR_DIRS = [m for m in re.split(r"[,\s]+", os.environ.get("TASKZOO_MIRROR", "").strip())
                if m and "://" not in m]
SHARED_DATA = (Path(_MIRROR_DIRS[0]).expanduser().resolve() if _MIRROR_DIRS
               else REPO.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets a private cache; the hub never reaches the network unless a test serves it."""
    home = tmp_path_factory.getbasetemp() / "taskzoo_home"
    monkeypatch.setenv("TASKZOO_HOME", str(home))
    monkeypatch.delenv("TASKZOO_OFFLINE", raising=False)
    monkeypatch.delenv("TASKZOO_MIRROR", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield


@pytest.fixture
def shared_data() -> Path:
    """The mirror folder of the real datasets; the test is skipped when there is none."""
    if not (SHARED_DATA / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"needs the real datasets: set TASKZOO_MIRROR to a mirror folder holding "
                    f"them (CI uses ../shared/data); none at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TASKZOO_HOME"] = str(tmp_path / "home")
    env.pop("TASKZOO_MIRROR", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def hide_package(monkeypatch: pytest.MonkeyPatch):
    """hide_package("minatar"): importlib.util.find_spec reports the package missing, as on
    a machine without that optional extra."""
    import importlib.util

    real = importlib.util.find_spec

    def hide(package: str) -> None:
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == package else real(name, *a))
    return hide


class Stop(Exception):
    """What `stop_at` raises: a run interrupted at a chosen step (resume tests)."""


def stop_at(step: int):
    """A Trainer callback that raises Stop at the end of step `step`."""
    from taskzoo.train.types import Callback

    class StopAt(Callback):
        def on_step_end(self, trainer, state) -> None:
            if state.step == step:
                raise Stop

    return StopAt()
