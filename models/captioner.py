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

    def __init__(self, *, vocab_size: int, encoder: nn.Module, level: int = -1,
                 feature_dim: int = 256, embed_dim: int = 256, hidden_dim: int = 512,
                 attention_dim: int = 256, cell: Literal["lstm", "gru"] = "lstm",
                 dropout: float = 0.5) -> None:
        super().__init__()
        if not hasattr(encoder, "features"):
            raise ValueError(f"{type(encoder).__name__} has no features(x): not a zoo backbone")
        self.encoder, self.level, self.cell_type = encoder, level, cell
        channels = encoder.feature_channels[level]
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
    def regions(self, images: torch.Tensor) -> torch.Tensor:
        """[B, R, feature_dim]: the chosen feature map's cells, projected."""
        fmap = self.encoder.features(images)[self.level]
        return self.project(fmap.flatten(2).transpose(1, 2))

    def start(self, regions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean = regions.mean(1)
        h = torch.tanh(self.init_h(mean))
        return (h, torch.tanh(self.init_c(mean))) if self.init_c is not None else (h,)

    def step(self, regions: torch.Tensor, projected: torch.Tensor, words: torch.Tensor,
             state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """One word: (logits [B, V], alpha [B, R], the new state)."""
        h = state[0]
        context, alpha = self.attend(regions, projected, h)
        context = torch.sigmoid(self.f_beta(h)) * context
        x = torch.cat((self.embed(words), context), -1)
        if self.init_c is not None:
            h, c = self.cell(x, state)
            new: tuple[torch.Tensor, ...] = (h, c)
        else:
            h = self.cell(x, h)
            new = (h,)
        return self.out(self.drop(h)), alpha, new

    # -- teacher forcing
    def forward(self, images: torch.Tensor,
                captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """captions [B, T] (`<start>` first, padded): logits [B, T-1, V] for words 1..T-1 and
        the attention weights [B, T-1, R] of each step."""
        if captions.ndim != 2 or captions.shape[1] < 2:
            raise ValueError(f"captions must be [B, T >= 2] word ids, got {tuple(captions.shape)}")
        regions = self.regions(images)
        projected = self.attend.enc(regions)
        state = self.start(regions)
        logits, alphas = [], []
        for t in range(captions.shape[1] - 1):
            out, alpha, state = self.step(regions, projected, captions[:, t], state)
            logits.append(out)
            alphas.append(alpha)
        return torch.stack(logits, 1), torch.stack(alphas, 1)

    # -- decoding
    @torch.no_grad()
    def greedy(self, images: torch.Tensor, *, start_id: int, end_id: int,
               max_len: int = 20) -> list[tuple[list[int], torch.Tensor]]:
        """Per image: (word ids without <start>/<end>, attention [len, R])."""
        regions = self.regions(images)
        projected = self.attend.enc(regions)
        state = self.start(regions)
        words = torch.full((len(images),), start_id, dtype=torch.long, device=images.device)
        ids, alphas = [], []
        for _ in range(max_len):
            out, alpha, state = self.step(regions, projected, words, state)
            words = out.argmax(-1)
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
                    max_len: int = 20) -> list[tuple[list[int], torch.Tensor]]:
        """Per image, the most probable caption among `beam` hypotheses kept at each step
        (sum of log-probabilities; a finished hypothesis competes with the open ones)."""
        results = []
        for b in range(len(images)):
            regions = self.regions(images[b:b + 1]).expand(beam, -1, -1)
            projected = self.attend.enc(regions)
            state = tuple(s.expand(beam, -1).contiguous() for s in self.start(regions[:1]))
            words = torch.full((beam,), start_id, dtype=torch.long, device=images.device)
            scores = torch.zeros(beam, device=images.device)
            scores[1:] = float("-inf")  # all beams start equal: keep one until they differ
            seqs: list[list[int]] = [[] for _ in range(beam)]
            maps: list[list[torch.Tensor]] = [[] for _ in range(beam)]
            done: list[tuple[float, list[int], list[torch.Tensor]]] = []
            for _ in range(max_len):
                out, alpha, state = self.step(regions, projected, words, state)
                total = (scores[:, None] + out.float().log_softmax(-1)).flatten()
                top, idx = total.topk(beam)
                src, nxt = idx // self.vocab_size, idx % self.vocab_size
                new_seqs, new_maps, keep, keep_scores, keep_words = [], [], [], [], []
                for s, k, w in zip(top.tolist(), src.tolist(), nxt.tolist()):
                    if w == end_id:
                        done.append((s, seqs[k], maps[k] + [alpha[k].float().cpu()]))
                        continue
                    new_seqs.append(seqs[k] + [w])
                    new_maps.append(maps[k] + [alpha[k].float().cpu()])
                    keep.append(k)
                    keep_scores.append(s)
                    keep_words.append(w)
                if not keep or (done and max(d[0] for d in done) >= max(keep_scores)):
                    break
                n = len(keep)
                pad = beam - n  # fill the beam with copies of the last kept hypothesis
                keep += [keep[-1]] * pad
                keep_scores += [float("-inf")] * pad
                keep_words += [keep_words[-1]] * pad
                new_seqs += [list(new_seqs[-1]) for _ in range(pad)]
                new_maps += [list(new_maps[-1]) for _ in range(pad)]
                index = torch.tensor(keep, device=images.device)
                state = tuple(s[index] for s in state)
                scores = torch.tensor(keep_scores, device=images.device)
                words = torch.tensor(keep_words, device=images.device)
                seqs, maps = new_seqs, new_maps
            if not done:  # no hypothesis ended within max_len: the best open one
                best = int(scores.argmax())
                done.append((float(scores[best]), seqs[best], maps[best]))
            _, seq, amap = max(done, key=lambda d: d[0])
            n = len(seq)
            results.append((seq, torch.stack(amap[:n]) if n else torch.zeros(0, regions.shape[1])))
        return results


def attention_penalty(alphas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The doubly stochastic regulariser: every region should receive about one unit of
    attention over the caption, sum_i (1 - sum_t alpha_ti)^2, averaged over images.
    `mask` [B, T] marks the real (non-padding) steps."""
    attention = (alphas * mask[..., None]).sum(1)  # [B, R]
    return ((1.0 - attention) ** 2).sum(-1).mean()


@MODELS.register("show_attend_tell")
def show_attend_tell(*, vocab_size: int = 5000, encoder: str = "resnet18", level: int = -1,
                     in_channels: int = 3, feature_dim: int = 256, embed_dim: int = 256,
                     hidden_dim: int = 512, attention_dim: int = 256,
                     cell: Literal["lstm", "gru"] = "lstm", dropout: float = 0.5,
                     encoder_kwargs: dict[str, Any] | None = None) -> ShowAttendTell:
    """Show, Attend and Tell over the zoo backbone `encoder` (its classifier head unused)."""
    from taskzoo.models import build

    backbone = build(encoder, in_channels=in_channels, num_classes=1, **(encoder_kwargs or {}))
    # only features(x) is used: drop the classifier so every parameter is trained
    backbone.head, backbone.pre_logits = nn.Identity(), nn.Identity()
    return ShowAttendTell(vocab_size=vocab_size, encoder=backbone, level=level,
                          feature_dim=feature_dim, embed_dim=embed_dim, hidden_dim=hidden_dim,
                          attention_dim=attention_dim, cell=cell, dropout=dropout)


__all__ = ["ShowAttendTell", "AdditiveAttention", "attention_penalty", "show_attend_tell"]
