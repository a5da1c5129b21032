"""Show, Attend and Tell: shapes, attention, teacher forcing, greedy and beam decoding, and
that it can learn two captions."""

from __future__ import annotations

import pytest
import torch

from taskzoo.models import build
from taskzoo.models.captioner import attention_penalty

START, END = 2, 3


def _net(cell="lstm", vocab=20):
    torch.manual_seed(0)
    return build("show_attend_tell", vocab_size=vocab, encoder="cnn_small", level=-1, cell=cell,
                 feature_dim=32, embed_dim=16, hidden_dim=32, attention_dim=16, dropout=0.0,
                 encoder_kwargs={"width": 8})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_teacher_forcing_shapes_attention_and_gradients(cell):
    net = _net(cell)
    images, caps = torch.rand(3, 3, 32, 32), torch.randint(4, 20, (3, 5))
    logits, alphas = net(images, caps)
    assert logits.shape == (3, 4, 20) and alphas.shape == (3, 4, 64)  # 8x8 regions at 32 px
    assert torch.allclose(alphas.sum(-1), torch.ones(3, 4), atol=1e-5)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), caps[:, 1:].reshape(-1))
    loss = loss + attention_penalty(alphas, torch.ones(3, 4))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    with pytest.raises(ValueError, match="captions"):
        net(images, caps[:, :1])


def test_attention_penalty_is_zero_when_every_region_gets_one_unit():
    alphas = torch.eye(4)[None]  # 4 steps, 4 regions: each region attended once
    assert attention_penalty(alphas, torch.ones(1, 4)).item() == 0.0
    assert attention_penalty(alphas, torch.tensor([[1.0, 1.0, 0.0, 0.0]])).item() == 2.0


def test_learns_two_captions_and_beam_matches_or_beats_greedy():
    net = _net()
    images = torch.zeros(2, 3, 32, 32)
    images[0, 0] = 1.0  # a red image and a blue one
    images[1, 2] = 1.0
    caps = torch.tensor([[START, 5, 6, 7, END], [START, 8, 9, END, 0]])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(120):
        logits, _ = net(images, caps)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), caps[:, 1:].reshape(-1),
                                                 ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    greedy = net.greedy(images, start_id=START, end_id=END, max_len=8)
    assert [g[0] for g in greedy] == [[5, 6, 7], [8, 9]]
    assert greedy[0][1].shape == (3, 64)  # an attention map per word
    beam = net.beam_search(images, start_id=START, end_id=END, beam=3, max_len=8)
    assert [b[0] for b in beam] == [[5, 6, 7], [8, 9]]
    one = net.beam_search(images, start_id=START, end_id=END, beam=1, max_len=8)
    assert [b[0] for b in one] == [g[0] for g in greedy]  # beam 1 is greedy


def test_beam_search_finds_a_caption_at_least_as_probable_as_greedy():
    net = _net().eval()
    images = torch.rand(4, 3, 32, 32)
    max_len = 6

    def logprob(image, seq):
        """log P(seq, then <end> if it ended before max_len) under the model."""
        ended = len(seq) < max_len
        caps = torch.tensor([[START, *seq, *([END] if ended else [])]])
        if caps.shape[1] < 2:
            return 0.0
        logits, _ = net(image[None], caps)
        steps = caps.shape[1] - 1
        return logits.log_softmax(-1)[0, torch.arange(steps), caps[0, 1:]].sum().item()

    with torch.no_grad():
        greedy = net.greedy(images, start_id=START, end_id=END, max_len=max_len)
        beam = net.beam_search(images, start_id=START, end_id=END, beam=4, max_len=max_len)
        for img, (g, _), (b, _) in zip(images, greedy, beam):
            if len(g) == len(b) == max_len or (len(g) < max_len and len(b) < max_len):
                assert logprob(img, b) >= logprob(img, g) - 1e-4


def test_padding_costs_nothing_and_changes_nothing():
    """A caption's logits are the same alone or padded in a batch with longer ones, and the
    packed logits are exactly those of the real (non-padding) targets."""
    net = _net().eval()
    images = torch.rand(3, 3, 32, 32)
    caps = torch.tensor([[START, 5, 6, END, 0, 0], [START, 7, 8, 9, 10, END],
                         [START, 11, END, 0, 0, 0]])
    with torch.no_grad():
        logits, alphas = net(images, caps)
        packed, _ = net(images, caps, packed=True)
        for i, n in enumerate([4, 6, 3]):
            alone, _ = net(images[i:i + 1], caps[i:i + 1, :n])
            assert torch.allclose(logits[i, :n - 1], alone[0], atol=1e-5)
            assert alphas[i, n - 1:].abs().sum() == 0  # ended rows attend nowhere
    mask = caps[:, 1:] != 0
    assert torch.allclose(packed, logits[mask], atol=1e-6)


def test_cached_maps_give_the_same_captions_as_images():
    net = _net().eval()
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        maps = net.encode(images)
        a = net.beam_search(images, start_id=START, end_id=END, beam=3, max_len=6)
        b = net.beam_search(maps, start_id=START, end_id=END, beam=3, max_len=6, encoded=True)
        per_image = [net.beam_search(images[i:i + 1], start_id=START, end_id=END, beam=3,
                                     max_len=6)[0] for i in range(4)]
    assert [x[0] for x in a] == [x[0] for x in b] == [x[0] for x in per_image]
    for (_, att_a), (_, att_b) in zip(a, per_image):
        assert torch.allclose(att_a, att_b, atol=1e-5)


def test_input_size_resizes_before_the_encoder():
    torch.manual_seed(0)
    net = build("show_attend_tell", vocab_size=20, encoder="cnn_small", level=-1, input_size=64,
                feature_dim=8, embed_dim=8, hidden_dim=8, attention_dim=8,
                encoder_kwargs={"width": 8})
    assert net.encode(torch.rand(1, 3, 32, 32)).shape[-2:] == (16, 16)  # as a 64 px input


def test_fastestdet_backbone_as_encoder_drops_the_detection_head():
    net = build("show_attend_tell", vocab_size=20, encoder="fastestdet", input_size=64)
    keys = net.encoder.state_dict().keys()
    assert all(k.startswith("backbone.") for k in keys)
    assert net.encode(torch.rand(2, 3, 64, 64)).shape == (2, 192, 2, 2)


def test_captions_sharing_an_image_encode_it_once():
    net = _net().eval()
    images = torch.rand(2, 3, 32, 32)
    caps = torch.tensor([[START, 5, 6, END], [START, 7, END, 0], [START, 8, 9, END]])
    owner = torch.tensor([0, 0, 1])
    with torch.no_grad():
        shared, _ = net(images, caps, owner=owner)
        repeated, _ = net(images[owner], caps)
    assert torch.allclose(shared, repeated, atol=1e-6)
    with pytest.raises(ValueError, match="owner"):
        net(images, caps)  # 3 captions, 2 images, no owner
