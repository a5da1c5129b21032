from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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
    assert (SHARED_DATA / "SST-2" / "dev.tsv").is_file(), (
        f"the shared datasets are expected at {SHARED_DATA} (../shared/data beside the repo)"
    )
    return SHARED_DATA


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TASKZOO_HOME"] = str(tmp_path / "home")
    env.pop("TASKZOO_MIRROR", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env
