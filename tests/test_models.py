from __future__ import annotations

import pytest
import torch

from taskzoo.models import build, names
from taskzoo.models.rnn import masked_pool

TEXT_MODELS = ["lstm", "gru", "bilstm", "bigru", "textcnn"]


def test_the_five_text_models_are_registered():
    assert set(TEXT_MODELS) <= set(names())


@pytest.mark.parametrize("name", names())
def test_every_model_builds_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = build(name, vocab_size=50, num_classes=3, embed_dim=8, hidden_dim=6, num_filters=4,
                  kernel_sizes=(2, 3))
    ids = torch.randint(2, 50, (4, 7))
    lengths = torch.tensor([7, 3, 1, 2])
    ids[1, 3:] = 0
    ids[2, 1:] = 0
    ids[3, 2:] = 0
    logits = model(ids, lengths)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_padding_does_not_change_predictions(name):
    """Extra padding must be invisible: lengths are respected (packing / masking)."""
    torch.manual_seed(0)
    model = build(name, vocab_size=30, num_classes=2, embed_dim=8, hidden_dim=5, num_filters=4,
                  kernel_sizes=(2, 3)).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.cat([ids, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = model(ids, torch.tensor([4]))
        b = model(padded, torch.tensor([4]))
    torch.testing.assert_close(a, b)


def test_unknown_model_suggests():
    from taskzoo.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'bilstm'"):
        build("bilstn", vocab_size=5, num_classes=2)


def test_masked_pool_ignores_padding():
    out = torch.tensor([[[1.0], [5.0], [100.0]]])  # third position is padding
    lengths = torch.tensor([2])
    assert masked_pool(out, lengths, "max").item() == 5.0
    assert masked_pool(out, lengths, "mean").item() == 3.0


def test_bf16_autocast_trains_on_cpu(tmp_path):
    import taskzoo

    result = taskzoo.run("sentiment", dataset="tiny", model="textcnn", epochs=6,
                         precision="bf16-mixed", device="cpu", out=tmp_path / "bf16", progress=False)
    assert result.metrics["dev/accuracy"] >= 0.85
    with pytest.raises(taskzoo.ConfigError, match="16-mixed' needs a GPU"):
        taskzoo.run("sentiment", dataset="tiny", precision="16-mixed", device="cpu", out=tmp_path / "x")
