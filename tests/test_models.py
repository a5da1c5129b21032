from __future__ import annotations

import pytest
import torch

from taskzoo.models import build, names
from taskzoo.models.rnn import masked_pool

TEXT_MODELS = ["lstm", "gru", "bilstm", "bigru", "textcnn"]
TAGGERS = ["bilstm_tagger", "bigru_tagger"]


POLICIES = ["mlp_actor_critic", "cnn_actor_critic", "mlp_qnet", "cnn_qnet", "minatar_qnet",
            "minatar_actor_critic", "q_table"]
CNNS = ["cnn_small", "vgg", "resnet20", "resnet18", "resnet34", "mobilenet_v3_small"]
AUTOENCODERS = ["conv_ae", "vae", "unet_small"]  # tested in test_autoencoder_models.py
DETECTORS = ["fastestdet", "yolo_tiny", "csp_darknet"]  # test_fastestdet.py, test_yolo.py
CAPTIONERS = ["show_attend_tell"]  # test_captioner.py
TRANSFORMERS = ["minilm", "minilm_tagger", "hf_classifier", "hf_tagger",  # test_transfer.py
                "minilm_qa", "hf_qa", "minilm_cross", "minilm_bi", "hf_bi"]
SUMMARIZERS = ["summarunner"]  # test_transfer.py
LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]  # test_efficientnet_lite.py
EMBEDDERS = ["face_resnet"]  # test_face_embed.py
MTCNNS = ["mtcnn", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"]  # test_mtcnn.py
FACES = ["ultraface_rfb", "ultraface_slim", "face_pipeline"]  # test_ultraface.py, test_faces.py
STYLE = ["style_net"]  # test_style_transfer.py


def test_every_registered_model_is_covered_by_these_tests():
    assert set(names()) == set(TEXT_MODELS) | set(TAGGERS) | set(POLICIES) | set(CNNS) | \
        set(AUTOENCODERS) | set(DETECTORS) | set(CAPTIONERS) | set(TRANSFORMERS) | \
        set(SUMMARIZERS) | set(LITES) | set(EMBEDDERS) | set(MTCNNS) | set(FACES) | set(STYLE)


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
    image = name.startswith(("cnn", "minatar"))
    shape = (10, 10, 4) if name.startswith("minatar") else (84, 84, 4) if image else (6,)
    if name == "q_table":
        net = build(name, num_states=6, num_actions=3)
        obs = torch.nn.functional.one_hot(torch.tensor([0, 5]), 6).float()
    else:
        extra = {"continuous": True} if continuous else {}
        net = build(name, obs_shape=shape, num_actions=3, **extra)
        high = 2 if name.startswith("minatar") else 256  # MinAtar's 0/1 object channels
        obs = torch.randint(0, high, (2, *shape)).float() if image else torch.randn(2, *shape)
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


# ---------------------------------------------------------------- image classifiers / backbones


def _cnn(name, **kwargs):
    """A CNN from the zoo; `small_input` is passed only to the builders that take it."""
    import inspect

    from taskzoo.models import MODELS

    if "small_input" not in inspect.signature(MODELS.get(name)).parameters:
        kwargs.pop("small_input", None)
    return build(name, **kwargs)


# (channels, height, width, classes): MNIST / Fashion-MNIST, CIFAR, ORL faces, sklearn digits.
# The torchvision nets take their small-input stem up to 64 px, as a task would.
IMAGE_CASES = [(1, 28, 28, 10), (3, 32, 32, 10), (1, 112, 92, 40), (1, 8, 8, 10)]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("name", CNNS)
def test_every_cnn_builds_runs_forward_and_backward(name, case):
    channels, height, width, classes = case
    torch.manual_seed(0)
    model = _cnn(name, in_channels=channels, num_classes=classes,
                 small_input=max(height, width) <= 64)
    if min(height, width) < model.min_size:
        pytest.skip(f"{name} needs at least {model.min_size} px")
    logits = model(torch.randn(2, channels, height, width))
    assert logits.shape == (2, classes) and torch.isfinite(logits).all()
    logits.sum().backward()
    _assert_every_parameter_gets_a_gradient(model)


@pytest.mark.parametrize("name", CNNS)
def test_cnn_below_its_minimum_size_fails_clearly(name):
    model = _cnn(name, in_channels=1, num_classes=10)
    small = model.min_size - 1
    with pytest.raises(ValueError, match=f"at least {model.min_size}x{model.min_size} pixels"):
        model(torch.zeros(2, 1, small, model.min_size))
    with pytest.raises(ValueError, match=r"expects images \[B, 1, H, W\]"):
        model(torch.zeros(2, 3, 16, 16))


@pytest.mark.parametrize("small_input", [True, False], ids=["small_input", "standard_stem"])
@pytest.mark.parametrize("name", CNNS)
def test_cnn_features_are_the_backbone_maps_forward_uses(name, small_input):
    """features(x): three maps of the documented channels and strides; forward pools the
    last one into the head, running the stem and every stage once."""
    import inspect

    from taskzoo.models import MODELS

    if not small_input and "small_input" not in inspect.signature(MODELS.get(name)).parameters:
        pytest.skip(f"{name} has one stem")
    torch.manual_seed(0)
    model = _cnn(name, in_channels=3, num_classes=7, small_input=small_input).eval()
    x = torch.randn(1, 3, 64, 64)
    calls = []
    for part in [model.stem, *model.stages]:
        part.register_forward_hook(lambda m, i, o: calls.append(m))
    with torch.no_grad():
        maps = model.features(x)
        assert len(calls) == 1 + len(model.stages)
        calls.clear()
        logits = model(x)
        assert len(calls) == 1 + len(model.stages), "forward runs each stage once"
        assert [tuple(m.shape[1:]) for m in maps] == [
            (c, 64 // s, 64 // s) for c, s in zip(model.feature_channels, model.feature_strides)]
        assert model.feature_strides == tuple(sorted(model.feature_strides))
        torch.testing.assert_close(logits, model.forward_head(maps[-1]))
        if not any(True for _ in model.pre_logits.parameters()):  # eval: dropout is identity
            pooled = torch.nn.functional.adaptive_avg_pool2d(maps[-1], 1).flatten(1)
            torch.testing.assert_close(logits, model.head(pooled))
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 7
    if name.startswith("resnet") and name != "resnet20":
        assert model.feature_strides == ((2, 4, 8) if small_input else (8, 16, 32))


def test_cnn_head_can_be_swapped():
    model = build("resnet20", in_channels=1, num_classes=10)
    model.head = torch.nn.Linear(model.head.in_features, 4)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    assert {k for k in model.state_dict() if k.startswith("head.")} == {"head.weight", "head.bias"}


def test_resnet20_is_he_et_al_cifar_size():
    model = build("resnet20")  # 3 channels, 10 classes: the paper's 0.27M parameters
    assert sum(p.numel() for p in model.parameters()) == 269_722
    assert model.feature_channels == (16, 32, 64)


def test_resnet20_option_a_shortcut_is_subsample_and_zero_pad():
    from taskzoo.models.cnn import CifarBasicBlock

    torch.manual_seed(0)
    block = CifarBasicBlock(4, 8, stride=2).eval()
    x = torch.randn(2, 4, 7, 5)  # odd sides: ceil(n / 2) cells, like the stride-2 conv
    with torch.no_grad():
        branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
        shortcut = torch.nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 4))
        torch.testing.assert_close(block(x), torch.relu(branch + shortcut))


def test_zero_init_residual_zeroes_the_last_bn_of_each_branch():
    net = build("resnet20", zero_init_residual=True)
    gammas = [m.bn2.weight for m in net.modules() if hasattr(m, "bn2")]
    assert len(gammas) == 9 and all((g == 0).all() for g in gammas)
    assert all((m.bn1.weight == 1).all() for m in net.modules() if hasattr(m, "bn1"))
    assert not any((m.bn2.weight == 0).all() for m in build("resnet20").modules()
                   if hasattr(m, "bn2"))


def test_resnet18_small_input_stem_keeps_the_resolution():
    x = torch.randn(1, 3, 32, 32)
    small = build("resnet18", small_input=True).eval()
    standard = build("resnet18", small_input=False).eval()
    with torch.no_grad():
        assert small.stem(x).shape[-2:] == (32, 32)
        assert standard.stem(x).shape[-2:] == (8, 8)  # 7x7 stride-2 conv + stride-2 max-pool
    assert small.stem[0].kernel_size == (3, 3) and small.stem[0].stride == (1, 1)
