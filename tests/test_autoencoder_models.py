"""The autoencoder family: conv_ae, vae and unet_small (shapes, codes, sampling, skips)."""

from __future__ import annotations

import pytest
import torch

from taskzoo.models import build, names

AUTOENCODERS = ["conv_ae", "vae", "unet_small"]


def _assert_every_parameter_gets_a_gradient(model):
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname}: gradient is zero everywhere"


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_family_is_registered():
    assert set(AUTOENCODERS) <= set(names())


# ------------------------------------------------------------------------------------ conv_ae


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 64])
def test_conv_ae_reconstructs_at_the_input_size(size, channels):
    torch.manual_seed(0)
    model = build("conv_ae", in_channels=channels, image_size=size, code_dim=8, width=4)
    x = torch.rand(2, channels, size, size)
    code = model.encode(x)
    logits = model(x)
    assert code.shape == (2, 8)
    assert logits.shape == (2, channels, size, size) and torch.isfinite(logits).all()
    assert model.decode(code).shape == logits.shape
    assert (model.code_dim, model.image_size, model.in_channels, model.stack) == (
        8, size, channels, 1)
    logits.sum().backward()
    _assert_every_parameter_gets_a_gradient(model)


@pytest.mark.parametrize("size, grid", [(128, 8), (8, 8), (45, 6), (31, 8)])
def test_conv_ae_downsamples_to_side_8_and_returns_the_exact_size(size, grid):
    """ceil-halving to a side <= 8, undone exactly by the decoder: 128 px (4 stages), 8 px
    (no stage) and odd sides."""
    model = build("conv_ae", image_size=size, code_dim=4, width=2)
    assert model.grid[1:] == (grid, grid)
    assert model(torch.rand(1, 1, size, size)).shape == (1, 1, size, size)


@pytest.mark.parametrize("stack, dims", [(1, (8,)), (2, (32, 8)), (3, (128, 32, 8))])
def test_encode_layers_are_the_stacked_code_layers(stack, dims):
    torch.manual_seed(0)
    model = build("conv_ae", image_size=28, code_dim=8, width=4, stack=stack).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        layers = model.encode_layers(x)
        code = model.encode(x)
        logits = model(x)
    assert model.layer_dims == dims
    assert [tuple(h.shape) for h in layers] == [(4, d) for d in dims]
    torch.testing.assert_close(layers[-1], code)
    torch.testing.assert_close(logits, model.decode(code))
    assert all((h >= 0).all() for h in layers[:-1]), "ReLU between the code layers"
    assert (code < 0).any(), "the last code layer is linear, with no activation"


@pytest.mark.parametrize("stack", [0, 4])
def test_conv_ae_rejects_a_bad_stack(stack):
    with pytest.raises(ValueError, match="stack must be 1, 2 or 3"):
        build("conv_ae", stack=stack)


@pytest.mark.parametrize("name", ["conv_ae", "vae"])
def test_codecs_reject_small_sizes_and_wrong_inputs(name):
    with pytest.raises(ValueError, match="image_size must be an integer >= 8"):
        build(name, image_size=7)
    model = build(name, image_size=28, width=4)
    with pytest.raises(ValueError, match=r"expects images \[B, 1, 28, 28\], got .*2, 1, 32, 32"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expects images \[B, 1, 28, 28\]"):
        model(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"decodes codes \[B, "):
        model.decode(torch.zeros(2, 1000))


def test_conv_ae_size_at_defaults():
    assert 50_000 <= _n_params(build("conv_ae", image_size=28, width=32, code_dim=32)) <= 2_000_000


def test_conv_ae_learns_a_fixed_batch():
    """A few Adam steps reduce the reconstruction MSE well below that of the batch's mean
    image, the best any code-blind decoder can do: the code carries each image."""
    torch.manual_seed(0)
    model = build("conv_ae", image_size=28, code_dim=8, width=8)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centres = torch.rand(8, 2) * 20 + 4  # a blob per image, at different places
    x = torch.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 20)
    x = x.unsqueeze(1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def mse() -> torch.Tensor:
        return torch.nn.functional.mse_loss(torch.sigmoid(model(x)), x)

    first = mse().item()
    mean_image = torch.nn.functional.mse_loss(x.mean(0, keepdim=True).expand_as(x), x).item()
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), x)
        loss.backward()
        opt.step()
    last = mse().item()
    assert last < 0.3 * first and last < 0.5 * mean_image  # measured: 0.21 x mean_image


# ---------------------------------------------------------------------------------------- vae


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 64])
def test_vae_shapes(size, channels):
    torch.manual_seed(0)
    model = build("vae", in_channels=channels, image_size=size, latent_dim=5, width=4)
    logits, mu, logvar = model(torch.rand(2, channels, size, size))
    assert logits.shape == (2, channels, size, size)
    assert mu.shape == logvar.shape == (2, 5)
    assert (model.latent_dim, model.image_size, model.in_channels) == (5, size, channels)
    (logits.sum() + mu.sum() + logvar.sum()).backward()  # training mode: logvar reaches z
    _assert_every_parameter_gets_a_gradient(model)


def test_vae_eval_decodes_the_mean_and_training_samples_reproducibly():
    torch.manual_seed(0)
    model = build("vae", image_size=28, latent_dim=6, width=4)
    x = torch.rand(3, 1, 28, 28)

    def run(seed):
        with torch.no_grad():
            return model(x, generator=torch.Generator().manual_seed(seed))

    model.eval()
    logits, mu, logvar = run(0)
    torch.testing.assert_close(run(1)[0], logits)  # no sampling: the seed does not matter
    with torch.no_grad():
        torch.testing.assert_close(logits, model.decode(mu))
    model.train()
    a, b, other = run(0), run(0), run(1)
    for ta, tb in zip(a, b):
        torch.testing.assert_close(ta, tb)
    torch.testing.assert_close(other[1], a[1])  # the same posterior ...
    assert not torch.allclose(other[0], a[0])  # ... sampled differently
    with torch.no_grad():
        assert not torch.allclose(a[0], model.decode(a[1]))


def test_vae_logvar_is_clamped():
    model = build("vae", image_size=28, latent_dim=4, width=4)
    with torch.no_grad():
        model.logvar.bias.fill_(1e4)
        _, logvar = model.encode(torch.rand(2, 1, 28, 28))
    assert torch.equal(logvar, torch.full_like(logvar, 10.0))


# --------------------------------------------------------------------------------- unet_small


@pytest.mark.parametrize("channels, height, width, depth",
                         [(1, 28, 28, 2), (3, 32, 32, 3), (1, 64, 64, 3), (3, 32, 48, 4)])
def test_unet_keeps_the_input_size(channels, height, width, depth):
    torch.manual_seed(0)
    model = build("unet_small", in_channels=channels, out_channels=2, width=4, depth=depth)
    out = model(torch.rand(2, channels, height, width))
    assert out.shape == (2, 2, height, width) and torch.isfinite(out).all()
    assert (model.in_channels, model.out_channels, model.depth) == (channels, 2, depth)
    out.sum().backward()
    _assert_every_parameter_gets_a_gradient(model)


def test_unet_rejects_sides_not_divisible_and_says_what_works():
    model = build("unet_small", width=4, depth=3)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*3 = 8, got 28x28: pad to 32x32 or "
                                         r"crop to 24x24, or use depth <= 2"):
        model(torch.zeros(1, 1, 28, 28))
    build("unet_small", width=4, depth=2)(torch.zeros(1, 1, 28, 28))  # as suggested
    for depth in (0, 6):
        with pytest.raises(ValueError, match="depth must be 1 to 5"):
            build("unet_small", depth=depth)
    with pytest.raises(ValueError, match=r"expects images \[B, 1, H, W\]"):
        model(torch.zeros(1, 3, 32, 32))


def test_unet_skip_connections_carry_local_detail():
    """With the bottleneck's output zeroed, only the skips connect input and output: a
    changed pixel still changes the output at that pixel, and only around it."""
    torch.manual_seed(0)
    model = build("unet_small", width=4, depth=2).eval()
    x = torch.rand(1, 1, 32, 32)
    poked = x.clone()
    poked[0, 0, 5, 5] += 1.0
    with torch.no_grad():
        full = (model(poked) - model(x)).abs()
        model.bottleneck.register_forward_hook(lambda m, i, out: torch.zeros_like(out))
        skips_only = (model(poked) - model(x)).abs()
    assert full[..., 5, 5].min() > 0
    assert skips_only[..., 5, 5].min() > 1e-4, "the skips carry the pixel"
    assert skips_only[..., 24:, 24:].max() == 0, "and only its neighbourhood"


# -------------------------------------------------------------------------------------- all


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_channels_last_and_bf16_autocast(name):
    torch.manual_seed(0)
    kwargs = {"image_size": 32, "width": 4} if name != "unet_small" else {"width": 4}
    model = build(name, in_channels=3, **kwargs).eval()
    x = torch.rand(2, 3, 32, 32)

    def logits(inp):
        with torch.no_grad():
            out = model(inp)
        return out[0] if isinstance(out, tuple) else out

    ref = logits(x)
    torch.testing.assert_close(logits(x.to(memory_format=torch.channels_last)), ref,
                               rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = logits(x.to(memory_format=torch.channels_last))
    assert low.shape == ref.shape and torch.isfinite(low).all()
    assert (low.float() - ref).norm() < 0.1 * ref.norm()
