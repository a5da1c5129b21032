from __future__ import annotations

import pytest
import torch

from taskzoo.models import build, names
from taskzoo.models.rnn import masked_pool

TEXT_MODELS = ["lstm", "gru", "bilstm", "bigru", "textcnn"]
TAGGERS = ["bilstm_tagger", "bigru_tagger"]


POLICIES = ["mlp_actor_critic", "cnn_actor_critic", "mlp_qnet", "cnn_qnet", "q_table"]


def test_every_registered_model_is_covered_by_these_tests():
    assert set(names()) == set(TEXT_MODELS) | set(TAGGERS) | set(POLICIES)


def _assert_every_parameter_gets_a_gradient(model):
    """No trainable tensor is cut off the loss: each gets a finite gradient, non-zero somewhere."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for pname, p in trainable:
        assert p.grad is not None, f"{pname}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname}: gradient is zero everywhere"


# the continuous actor-critic adds a state-independent log std, reached only through the
# action distribution, so it is checked through evaluate_actions (PPO's loss path)
@pytest.mark.parametrize("name", [*POLICIES, "mlp_actor_critic:continuous"])
def test_every_policy_builds_acts_and_backpropagates(name):
    name, _, kind = name.partition(":")
    continuous = kind == "continuous"
    torch.manual_seed(0)
    image = name.startswith("cnn")
    shape = (84, 84, 4) if image else (6,)
    if name == "q_table":
        net = build(name, num_states=6, num_actions=3)
        obs = torch.nn.functional.one_hot(torch.tensor([0, 5]), 6).float()
    else:
        extra = {"continuous": True} if continuous else {}
        net = build(name, obs_shape=shape, num_actions=3, **extra)
        obs = torch.randint(0, 256, (2, *shape)).float() if image else torch.randn(2, *shape)
    actions = net.act(obs)
    if continuous:
        assert actions.shape == (2, 3) and torch.isfinite(actions).all()
    else:
        assert actions.shape == (2,) and 0 <= int(actions.min()) and int(actions.max()) < 3
    out = net(obs)
    head = out[0] if isinstance(out, tuple) else out
    assert head.shape == (2, 3)
    if isinstance(out, tuple):  # actor-critic: log-probabilities, entropies and values
        logp, entropy, values = net.evaluate_actions(obs, actions)
        (logp.sum() + entropy.sum() + values.sum()).backward()
    else:
        out.sum().backward()
    _assert_every_parameter_gets_a_gradient(net)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_every_text_classifier_builds_runs_forward_and_backward(name):
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
    _assert_every_parameter_gets_a_gradient(model)  # reverse directions and every conv included


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


def _tagger_batch():
    """Two sentences (lengths 4 and 2) over 3 distinct word forms with 2-4 characters."""
    words = torch.tensor([[5, 6, 7, 5], [8, 9, 0, 0]])
    chars = torch.tensor([[2, 4, 5, 3], [2, 6, 3, 0], [2, 7, 8, 3]])
    char_index = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 0]])
    return words, torch.tensor([4, 2]), chars, char_index


@pytest.mark.parametrize("name", TAGGERS)
def test_taggers_score_every_position_and_train(name):
    torch.manual_seed(0)
    model = build(name, vocab_size=12, num_chars=10, num_tags=5, embed_dim=6, char_dim=4,
                  char_filters=5, hidden_dim=7)
    scores = model(*_tagger_batch())
    assert scores.shape == (2, 4, 5) and torch.isfinite(scores).all()
    scores[0, :4].sum().backward()
    assert model.chars.conv.weight.grad.abs().sum() > 0, "characters feed the tag scores"
    assert model.embedding.weight.grad.abs().sum() > 0, "words feed the tag scores"


@pytest.mark.parametrize("name", TAGGERS)
def test_tagger_ignores_padding_and_batch_neighbours(name):
    torch.manual_seed(0)
    model = build(name, vocab_size=12, num_chars=10, num_tags=5, embed_dim=6, char_dim=4,
                  char_filters=5, hidden_dim=7).eval()
    words, lengths, chars, char_index = _tagger_batch()
    with torch.no_grad():
        both = model(words, lengths, chars, char_index)
        alone = model(words[1:, :2], lengths[1:], chars[1:], char_index[1:, :2] - 1)
    torch.testing.assert_close(both[1, :2], alone[0])


def test_tagger_word_dropout_only_in_training():
    torch.manual_seed(0)
    model = build("bilstm_tagger", vocab_size=12, num_chars=10, num_tags=5, embed_dim=6,
                  char_dim=4, char_filters=5, hidden_dim=7, dropout=0.0, embed_dropout=0.0,
                  word_dropout=1.0)
    batch = _tagger_batch()
    unk = (torch.ones_like(batch[0]), *batch[1:])  # every word replaced by <unk> (id 1)
    model.train()
    torch.testing.assert_close(model(*batch), model(*unk))
    model.eval()
    assert not torch.allclose(model(*batch), model(*unk))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padded_rnn_path_equals_the_packed_one(cell, bidirectional):
    """On CPU the encoder runs padded batches with per-direction reversal; it must give the
    packed-sequence result (outputs, final state and gradients), padding included."""
    from taskzoo.models.rnn import RNNEncoder

    torch.manual_seed(0)
    enc = RNNEncoder(input_dim=6, hidden_dim=5, cell=cell, num_layers=2,
                     bidirectional=bidirectional)
    x = torch.randn(4, 7, 6, requires_grad=True)
    lengths = torch.tensor([7, 3, 1, 5])
    out_a, final_a = enc.forward_packed(x, lengths)
    (out_a.sum() + final_a.sum()).backward()
    grad_a, wgrad_a = x.grad.clone(), enc.rnn.weight_hh_l0.grad.clone()
    x.grad, enc.rnn.weight_hh_l0.grad = None, None
    out_b, final_b = enc.forward_padded(x, lengths)
    (out_b.sum() + final_b.sum()).backward()
    torch.testing.assert_close(out_a, out_b)
    torch.testing.assert_close(final_a, final_b)
    torch.testing.assert_close(grad_a, x.grad)
    torch.testing.assert_close(wgrad_a, enc.rnn.weight_hh_l0.grad)
