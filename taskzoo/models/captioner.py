"""Show, Attend and Tell (Xu et al. 2015): a CNN encoder's grid of region features read by a
recurrent decoder through additive (Bahdanau) attention at every word.

- Encoder: any zoo classifier's `features(x)` (`encoder=`, `level=` picks the map: -1 the
  coarsest, -2 one stride finer); its H x W cells are the regions, projected to
  `feature_dim`.
- Decoder: an LSTM (or GRU) cell whose input is the previous word's embedding and the
  attention context; the initial state comes from the mean region (the paper's init_h,
  init_c). The context is gated by f_beta = sigmoid(W h) (the paper's section 4.2.1); the
  word is predicted from the state (dropout before the output layer).
- `forward(images, captions)` is teacher forcing: logits for words 1..T-1 given 0..T-2,
  and the attention weights of each step (for the doubly stochastic penalty,
  `attention_penalty`).
- `greedy` and `beam_search` decode from `<start>` to `<end>`; both return the attention
  maps of the words they chose (the paper's figure).

    >>> net = show_attend_tell(vocab_size=50, encoder="cnn_small", encoder_kwargs={"width": 8})
    >>> logits, alphas = net(torch.rand(2, 3, 64, 64), torch.randint(4, 50, (2, 7)))
    >>> tuple(logits.shape), tuple(alphas.shape)
    ((2, 6, 50), (2, 6, 256))

The step is hand-written (an LSTMCell under a Python loop) because attention needs the state
of every step before the next: no fused torch RNN takes a per-step input that depends on
its own output.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from taskzoo.models import MODELS
from taskzoo.models.rnn import token_embedding


class AdditiveAttention(nn.Module):
    """alpha = softmax(w . tanh(W_e regions + W_d h)); context = sum alpha * regions."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.enc = nn.Linear(feature_dim, attention_dim)
        self.dec = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, regions: torch.Tensor, projected: torch.Tensor,
                h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.score(torch.tanh(projected + self.dec(h)[:, None])).squeeze(-1)  # [B, R]
        alpha = e.softmax(-1)
        return (alpha[..., None] * regions).sum(1), alpha


class ShowAttendTell(nn.Module):
    """CNN regions -> attention decoder (see the module doc)."""

    ddp_unused_parameters = True  # given cached maps (`encoded=True`) the encoder sits out

    def __init__(self, *, vocab_size: int, encoder: nn.Module, level: int = -1,
                 input_size: int = 0, feature_dim: int = 256, embed_dim: int = 256,
                 hidden_dim: int = 512, attention_dim: int = 256,
                 cell: Literal["lstm", "gru"] = "lstm", dropout: float = 0.5) -> None:
        super().__init__()
        if not hasattr(encoder, "features"):
            raise ValueError(f"{type(encoder).__name__} has no features(x): not a zoo backbone")
        self.encoder, self.level, self.cell_type = encoder, level, cell
        self.input_size = input_size
        channels = encoder.feature_channels[level]
        # a pretrained trunk's channels differ in scale by 30x or more (FastestDet's stage 4:
        # std 0.009 to 0.31); standardising them lets the attention and the initial state see
        # the image rather than their own biases
        self.norm = nn.BatchNorm2d(channels)
        self.project = nn.Sequential(nn.Linear(channels, feature_dim), nn.ReLU(inplace=True))
        self.embed = token_embedding(vocab_size, embed_dim)
        self.attend = AdditiveAttention(feature_dim, hidden_dim, attention_dim)
        self.init_h = nn.Linear(feature_dim, hidden_dim)
        self.init_c = nn.Linear(feature_dim, hidden_dim) if cell == "lstm" else None
        self.f_beta = nn.Linear(hidden_dim, feature_dim)
        cell_cls = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[cell]
        self.cell = cell_cls(embed_dim + feature_dim, hidden_dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, vocab_size)
        self.vocab_size = vocab_size

    # -- pieces
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's chosen feature map [B, C, h, w] (images resized to `input_size`
        first when it is set: a small image upsampled gives a finer grid of regions)."""
        if images.ndim != 4:
            raise ValueError(f"images must be [B, C, H, W], got {tuple(images.shape)}")
        if self.input_size and tuple(images.shape[-2:]) != (self.input_size,) * 2:
            images = nn.functional.interpolate(images, size=(self.input_size,) * 2,
                                               mode="bilinear", align_corners=False)
        return self.encoder.features(images)[self.level]

    def regions(self, fmap: torch.Tensor) -> torch.Tensor:
        """[B, R, feature_dim]: the feature map's cells, projected."""
        return self.project(self.norm(fmap.float()).flatten(2).transpose(1, 2))

    def start(self, regions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean = regions.mean(1)
        h = torch.tanh(self.init_h(mean))
        return (h, torch.tanh(self.init_c(mean))) if self.init_c is not None else (h,)

    def step(self, regions: torch.Tensor, projected: torch.Tensor, x_word: torch.Tensor,
             state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """One word from its embedding: (new hidden state [B, H], alpha [B, R], new state)."""
        h = state[0]
        context, alpha = self.attend(regions, projected, h)
        context = torch.sigmoid(self.f_beta(h)) * context
        x = torch.cat((x_word, context), -1)
        if self.init_c is not None:
            h, c = self.cell(x, state)
            return h, alpha, (h, c)
        h = self.cell(x, h)
        return h, alpha, (h,)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(h))

    # -- teacher forcing
    def forward(self, images: torch.Tensor, captions: torch.Tensor, *, encoded: bool = False,
                packed: bool = False,
                owner: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """captions [N, T] (`<start>` first, `<pad>` = 0 after `<end>`): logits [N, T-1, V] for
        words 1..T-1 and the attention weights [N, T-1, R] of each step.

        `owner` [N]: caption i describes image owner[i] (several captions of one image share
        its encoding); without it caption i is image i's.
        `encoded`: `images` is already `encode(images)` (a frozen encoder's cached maps).
        `packed`: logits only where the target is a word, [N, V] in row-major order of
        `captions[:, 1:] != 0` (the loss needs no more; the output layer is the costliest).
        Rows stop being computed once their caption has ended (padding costs nothing); their
        later attention weights are 0.
        """
        rows = len(images) if owner is None else len(owner)
        if captions.ndim != 2 or captions.shape[1] < 2 or len(captions) != rows:
            raise ValueError(f"captions must be [N, T >= 2] word ids, one per image or per "
                             f"`owner` entry ({rows}), got {tuple(captions.shape)}")
        regions = self.regions(images if encoded else self.encode(images))
        if owner is not None:
            regions = regions[owner]
        lengths = (captions[:, 1:] != 0).sum(1)  # decoding steps each row needs
        order = lengths.argsort(descending=True)
        regions, sorted_caps, lengths = regions[order], captions[order], lengths[order]
        projected = self.attend.enc(regions)
        state = self.start(regions)
        words = self.embed(sorted_caps[:, :-1])
        steps = captions.shape[1] - 1
        hidden, alphas = [], []
        for t in range(steps):
            n = int((lengths > t).sum())
            if n == 0:
                break
            state = tuple(s[:n] for s in state)
            h, alpha, state = self.step(regions[:n], projected[:n], words[:n, t], state)
            pad = (0, 0, 0, len(captions) - n)  # rows that have ended: zeros
            hidden.append(nn.functional.pad(h, pad))
            alphas.append(nn.functional.pad(alpha, pad))
        for _ in range(steps - len(hidden)):  # only padding left (every caption ended)
            hidden.append(hidden[-1].new_zeros(hidden[-1].shape))
            alphas.append(alphas[-1].new_zeros(alphas[-1].shape))
        hidden, alphas = torch.stack(hidden, 1), torch.stack(alphas, 1)
        back = order.argsort()
        hidden, alphas = hidden[back], alphas[back]
        if packed:
            return self.logits(hidden[captions[:, 1:] != 0]), alphas
        return self.logits(hidden), alphas

    # -- decoding
    def caption(self, images: torch.Tensor, *, start_id: int, end_id: int, beam: int = 1,
                max_len: int = 20, encoded: bool = False) -> list[tuple[list[int], torch.Tensor]]:
        """`greedy` when `beam` is 1, else `beam_search` (which gives the same at beam 1,
        more slowly)."""
        kw = dict(start_id=start_id, end_id=end_id, max_len=max_len, encoded=encoded)
        return self.greedy(images, **kw) if beam == 1 else self.beam_search(images, beam=beam, **kw)

    @torch.no_grad()
    def greedy(self, images: torch.Tensor, *, start_id: int, end_id: int, max_len: int = 20,
               encoded: bool = False) -> list[tuple[list[int], torch.Tensor]]:
        """Per image: (word ids without <start>/<end>, attention [len, R])."""
        regions = self.regions(images if encoded else self.encode(images))
        projected = self.attend.enc(regions)
        state = self.start(regions)
        words = torch.full((len(images),), start_id, dtype=torch.long, device=images.device)
        ids, alphas = [], []
        for _ in range(max_len):
            h, alpha, state = self.step(regions, projected, self.embed(words), state)
            words = self.logits(h).argmax(-1)
            ids.append(words)
            alphas.append(alpha)
        ids_t, al_t = torch.stack(ids, 1).cpu(), torch.stack(alphas, 1).float().cpu()
        results = []
        for b in range(len(images)):
            seq = ids_t[b].tolist()
            n = seq.index(end_id) if end_id in seq else len(seq)
            results.append((seq[:n], al_t[b, :n]))
        return results

    @torch.no_grad()
    def beam_search(self, images: torch.Tensor, *, start_id: int, end_id: int, beam: int = 3,
                    max_len: int = 20, encoded: bool = False,
                    length_penalty: float = 0.0) -> list[tuple[list[int], torch.Tensor]]:
        """Per image, the most probable caption among `beam` hypotheses kept at each step
        (sum of log-probabilities, divided by length ** `length_penalty`; a finished
        hypothesis competes with the open ones). All images decode together: the rows are
        (image, hypothesis) pairs."""
        regions = self.regions(images if encoded else self.encode(images))
        n_img, n_reg = regions.shape[:2]
        regions = regions.repeat_interleave(beam, 0)  # [n_img * beam, R, F]
        projected = self.attend.enc(regions)
        state = self.start(regions)
        dev = regions.device
        words = torch.full((n_img * beam,), start_id, dtype=torch.long, device=dev)
        scores = torch.zeros(n_img, beam, device=dev)
        scores[:, 1:] = float("-inf")  # all hypotheses start equal: keep one until they differ
        seqs = torch.zeros(n_img, beam, 0, dtype=torch.long, device=dev)
        maps = torch.zeros(n_img, beam, 0, n_reg, device=dev)
        best: list[tuple[float, list[int], torch.Tensor] | None] = [None] * n_img
        open_ = torch.ones(n_img, dtype=torch.bool, device=dev)  # images still decoding
        vocab = self.vocab_size
        for t in range(max_len):
            h, alpha, state = self.step(regions, projected, self.embed(words), state)
            logp = self.logits(h).float().log_softmax(-1).view(n_img, beam, vocab)
            total = (scores[..., None] + logp).view(n_img, -1)
            top, idx = total.topk(beam, dim=-1)  # [n_img, beam]
            src, nxt = idx // vocab, idx % vocab
            alpha = alpha.float().view(n_img, beam, n_reg)
            seqs = torch.cat((seqs.gather(1, src[..., None].expand(-1, -1, t)), nxt[..., None]), 2)
            amap = alpha.gather(1, src[..., None].expand(-1, -1, n_reg))
            maps = torch.cat((maps.gather(1, src[..., None, None].expand(-1, -1, t, n_reg)),
                              amap[:, :, None]), 2)
            ended = (nxt == end_id) & open_[:, None]
            norm = float(t + 1) ** length_penalty
            for i, k in ended.nonzero().tolist():  # a hypothesis that ends here: a candidate
                s = float(top[i, k]) / norm
                if best[i] is None or s > best[i][0]:
                    best[i] = (s, seqs[i, k, :t].tolist(), maps[i, k, :t + 1].cpu())
            top = top.masked_fill(nxt == end_id, float("-inf"))
            # an image is done when no open hypothesis can still beat its best ended one
            # (log-probabilities only fall as words are added; with no length penalty)
            for i in open_.nonzero().flatten().tolist():
                if best[i] is not None and (length_penalty == 0.0 and
                                            best[i][0] >= float(top[i].max())):
                    open_[i] = False
            if not bool(open_.any()):
                break
            scores = top.masked_fill(~open_[:, None], float("-inf"))
            rows = (src + torch.arange(n_img, device=dev)[:, None] * beam).flatten()
            state = tuple(s[rows] for s in state)
            words = nxt.flatten()
        results = []
        for i in range(n_img):
            if best[i] is None:  # nothing ended within max_len: the best open hypothesis
                k = int(scores[i].argmax()) if bool(torch.isfinite(scores[i]).any()) else 0
                best[i] = (0.0, seqs[i, k].tolist(), maps[i, k].cpu())
            _, seq, amap = best[i]
            results.append((seq, amap[:len(seq)]))
        return results


def attention_penalty(alphas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The doubly stochastic regulariser: every region should receive about one unit of
    attention over the caption, sum_i (1 - sum_t alpha_ti)^2, averaged over images.
    `mask` [B, T] marks the real (non-padding) steps."""
    attention = (alphas * mask[..., None]).sum(1)  # [B, R]
    return ((1.0 - attention) ** 2).sum(-1).mean()


@MODELS.register("show_attend_tell")
def show_attend_tell(*, vocab_size: int = 5000, encoder: str = "resnet18", level: int = -1,
                     in_channels: int = 3, input_size: int = 0, feature_dim: int = 256,
                     embed_dim: int = 256,
                     hidden_dim: int = 512, attention_dim: int = 256,
                     cell: Literal["lstm", "gru"] = "lstm", dropout: float = 0.5,
                     encoder_kwargs: dict[str, Any] | None = None) -> ShowAttendTell:
    """Show, Attend and Tell over the zoo backbone `encoder` (its classifier head unused)."""
    from taskzoo.models import build

    backbone = build(encoder, in_channels=in_channels, num_classes=1, **(encoder_kwargs or {}))
    # only features(x) is used: drop the classifier (a detector's neck and head) so every
    # parameter is trained and the weights file holds no dead tensors
    for name in getattr(backbone, "head_modules", ("head", "pre_logits")):
        setattr(backbone, name, nn.Identity())
    return ShowAttendTell(vocab_size=vocab_size, encoder=backbone, level=level,
                          input_size=input_size,
                          feature_dim=feature_dim, embed_dim=embed_dim, hidden_dim=hidden_dim,
                          attention_dim=attention_dim, cell=cell, dropout=dropout)


__all__ = ["ShowAttendTell", "AdditiveAttention", "attention_penalty", "show_attend_tell"]
