"""Pretrained Hugging Face encoders through the verified hub: MiniLM from the mirror,
loaded by transformers with no network; a clear error without it."""

from __future__ import annotations

import pytest

from taskzoo.errors import OfflineError


def test_minilm_comes_from_the_mirror_verified_and_loads_offline(shared_data, monkeypatch):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from taskzoo.hf import MINILM, hf_folder

    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    folder = hf_folder(MINILM)
    assert sorted(p.name for p in folder.iterdir()) == sorted(n for n, _, _ in MINILM.files)
    assert hf_folder(MINILM) == folder  # the second time from the cache
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tok(["a gripping film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    assert out.shape[0] == 2 and out.shape[-1] == 384
    assert sum(p.numel() for p in model.parameters()) == 22_713_216


def test_without_mirror_or_network_the_error_names_the_files(monkeypatch, tmp_path):
    from taskzoo.hf import MINILM, hf_folder

    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "empty"))  # nothing cached
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="model.safetensors.*TASKZOO_MIRROR"):
        hf_folder(MINILM)
