"""Image captioning: Show, Attend and Tell (a CNN's grid of regions read by an attention LSTM)
on Flickr8k, with the nearest-neighbour and most-common-caption baselines of the same run.

    taskzoo run captioning                    # Flickr8k; ImageNet EfficientNet-Lite0, kept frozen
    taskzoo run captioning freeze_encoder=4   # fine-tune the encoder after 4 epochs (slow on CPUs)
    taskzoo run captioning encoder=fastestdet encoder_init=fastestdet.coco image_size=256
                           freeze_encoder=4   # the previous default: FastestDet's COCO trunk
    taskzoo run captioning encoder_init=runs/image_classification/RUN
    taskzoo run captioning data=~/Flickr8k                  # your copy of the original images
    taskzoo predict captioning photo.jpg [--save out/] beam=5

The encoder is any zoo backbone with `features(x)`; `encoder_init=` fills it from the weights
of another task (a released name, a run directory or a .safetensors with its card) and
`freeze_encoder` keeps it frozen for that many epochs (-1: always). While it is frozen its
feature maps are computed once and reused, so the decoder trains at its own speed.
Scores are pycocoevalcap's BLEU-1..4 and CIDEr-D against all five references of an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from taskzoo.config import NonNegativeFloat, PositiveInt, Probability, Range, SupervisedConfig
from taskzoo.data import vision
from taskzoo.data.captions import CaptionVocab, caption_scores
from taskzoo.errors import ConfigError
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.captioning.data import (
    CaptionData,
    CaptionSource,
    caption_collate,
    load_caption_data,
)
from taskzoo.tasks.captioning.predictor import CaptionPredictor, encoder_maps
from taskzoo.tasks.common.image_task import ImageTask
from taskzoo.train.types import StepOutput


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class CaptioningConfig(SupervisedConfig):
    # flickr8k (the mirror's 128x128 images), shapes (tiny, offline) or folder (data=PATH)
    dataset: Literal["flickr8k", "shapes", "folder"] = "flickr8k"
    data: str = ""  # your copy of the original Flickr8k (images and Flickr8k_text), resized here
    model: str = "show_attend_tell"  # the captioner
    encoder: str = "efficientnet_lite0"  # zoo backbone giving the regions (fastestdet, resnet18, ...)
    encoder_init: str = "efficientnet_lite0.imagenet"  # encoder weights: released name, run dir, .safetensors; none
    freeze_encoder: Annotated[int, Range(-1)] = -1  # epochs the encoder stays frozen; -1 always, 0 never
    encoder_lr: Annotated[float, Range(0, 10)] = 0.1  # encoder's learning rate, a fraction of lr
    level: Annotated[int, Range(-3, 2)] = -1  # which encoder map holds the regions: -1 the coarsest (stride 32)
    image_size: Annotated[int, Range(32, 1024)] = 224  # encoder input side (the 128 px images upsampled)
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    feature_dim: Annotated[int, Range(1, 4096)] = 256  # regions projected to this width
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    embed_dim: Annotated[int, Range(1, 4096)] = 256  # word embeddings
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    hidden_dim: Annotated[int, Range(1, 4096)] = 512  # LSTM state
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    attention_dim: Annotated[int, Range(1, 4096)] = 256  # additive attention's hidden width
    cell: Literal["lstm", "gru"] = "lstm"  # decoder cell
    dropout: Probability = 0.5  # before the word classifier
    min_count: PositiveInt = 5  # a training word seen fewer times becomes <unk>
    max_len: Annotated[int, Range(3, 100)] = 22  # training captions cut to this many ids (with <start>/<end>)
    attention_reg: NonNegativeFloat = 1.0  # weight of the doubly stochastic attention penalty
    # <= 50: beam search keeps beam x vocabulary scores per image
    beam: Annotated[int, Range(1, 50)] = 3  # beam width of evaluation and prediction; 1 = greedy
    # <= 100: Flickr8k captions are ~12 words; decoding is one step a word
    max_words: Annotated[int, Range(1, 100)] = 20  # longest caption generated
    nn_k: Annotated[int, Range(0)] = 0  # neighbours of the retrieval baseline; 0 = chosen on dev
    baselines: bool = True  # compute the nearest-neighbour and prior baselines at the end
    workers: Annotated[int, Range(-1)] = -1  # loader processes; -1 = by the number of cores
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"  # torch.optim class
    lr: float = 1e-3  # peak learning rate (the decoder's)
    weight_decay: float = 0.0  # decoupled weight decay
    schedule: Literal["constant", "linear", "cosine"] = "cosine"  # lr after warm-up
    warmup_steps: int = 100  # linear warm-up steps
    grad_clip: float = 5.0  # max global gradient norm
    epochs: int = 8  # passes over the training images (each with its 5 captions)
    batch_size: int = 32  # images per step (160 captions on Flickr8k)
    # <= 8192: a batch is padded and held in memory at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 100  # images per decoding batch
    keep: Literal["best", "last"] = "best"  # weights the run delivers: best dev CIDEr or last


# ---------------------------------------------------------------------------- the task
@TASKS.register("captioning", aliases=("caption", "image_captioning"))
class Captioning(ImageTask[CaptioningConfig]):
    name = "captioning"
    Config = CaptioningConfig
    description = "a sentence for an image (Flickr8k): Show, Attend and Tell with beam search"
    dev_metric = "dev/cider"
    models = ("show_attend_tell",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # the tiny synthetic set: small images, a small random encoder trained with the rest
        "shapes": {"encoder": "cnn_small", "encoder_init": "", "freeze_encoder": 0,
                   "image_size": 64, "min_count": 1, "epochs": 15, "batch_size": 8,
                   "warmup_steps": 10, "lr": 3e-3, "encoder_lr": 1.0, "hidden_dim": 128,
                   "embed_dim": 64, "feature_dim": 64, "attention_dim": 64, "dropout": 0.1,
                   "level": -2},
    }
    quick: ClassVar[dict[str, Any]] = {"dataset": "shapes", "epochs": 2}
    references = (
        Reference("test/bleu4", 0.195, "Xu et al. 2015, Show, Attend and Tell (soft attention), "
                  "Flickr8k test", "ImageNet-pretrained VGG encoder, 224 px originals"),
        Reference("test/bleu4", 0.16, "Karpathy & Fei-Fei 2015, Flickr8k test",
                  "ImageNet-pretrained VGG, BLEU computed differently (no brevity penalty)"),
    )

    def __init__(self, cfg: CaptioningConfig, runtime: Any = None) -> None:
        super().__init__(cfg, runtime)
        # split -> (words, attention) of the latest evaluation with the configured beam
        self.last_outputs: dict[str, list[tuple[list[str], torch.Tensor]]] = {}
        # an encoder that never trains (freeze_encoder=-1): id(images) -> (images, maps),
        # valid for `_maps_of`, the encoder they came from
        self._maps_cache: dict[int, tuple[np.ndarray, torch.Tensor]] = {}
        self._maps_of: nn.Module | None = None

    @classmethod
    def implied_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": "folder"} if overrides.get("data") else {}
        # another encoder than the default's cannot start from the default's weights: it
        # starts afresh, trained (name its weights with encoder_init=)
        default = CaptioningConfig.encoder
        if overrides.get("encoder", default) != default and "encoder_init" not in overrides:
            out["encoder_init"] = ""
        from taskzoo.config import init_spec

        merged = {**overrides, **out}
        if "encoder_init" in merged and not init_spec(merged["encoder_init"]):
            # a random encoder learns with the decoder, from the first step, at full speed
            out.update({k: v for k, v in (("freeze_encoder", 0), ("encoder_lr", 1.0))
                        if k not in overrides})
        return out

    # -- data
    def build_data(self, state: dict[str, Any] | None = None) -> CaptionData:
        c = self.cfg
        self._data = load_caption_data(c, state)
        if c.freeze_encoder == -1 and not self._encoder_init():
            raise ConfigError("freeze_encoder=-1 with no encoder_init: a random encoder that "
                              "never trains gives the decoder nothing to read; set "
                              "freeze_encoder=0 or encoder_init= its weights (e.g. "
                              f"{CaptioningConfig.encoder_init})")
        return self._data

    def _encoder_init(self) -> str:
        from taskzoo.config import init_spec

        return init_spec(self.cfg.encoder_init)

    def batches(self, data: CaptionData, model: nn.Module) -> CaptionSource:
        c = self.cfg
        return CaptionSource(data.train, batch_size=c.batch_size, collate=caption_collate,
                             seed=c.seed, shard=self.runtime.shard, workers=0,
                             images=data.images["train"], frozen_epochs=c.freeze_encoder,
                             encode=self._maps)

    # -- model
    def build_model(self, data: CaptionData) -> nn.Module:
        from taskzoo.train.optim import scale_lr

        c = self.cfg
        spec = self._encoder_init()
        tensors = None
        if data.train is None:  # rebuilt for prediction: the weights file holds the encoder
            enc_kwargs = dict(data.encoder_kwargs)
        elif spec:
            from taskzoo.tasks.captioning.data import encoder_source

            enc_kwargs, tensors, state = encoder_source(spec, c.encoder)
            if len(state.get("mean") or ()) == 3:  # the encoder's own input normalisation
                data.mean, data.std = list(state["mean"]), list(state["std"])
        else:
            enc_kwargs = {}
        data.encoder_kwargs = enc_kwargs
        model = build(c.model, vocab_size=len(data.vocab), encoder=c.encoder, level=c.level,
                      input_size=c.image_size, feature_dim=c.feature_dim, embed_dim=c.embed_dim,
                      hidden_dim=c.hidden_dim, attention_dim=c.attention_dim, cell=c.cell,
                      dropout=c.dropout, encoder_kwargs=enc_kwargs)
        if tensors is not None:
            from taskzoo.tasks.captioning.data import load_encoder

            self.encoder_ignored = load_encoder(model.encoder, tensors, spec)
        scale_lr(model.encoder, c.encoder_lr)
        return model

    def _encode(self, model: nn.Module, images: np.ndarray) -> torch.Tensor:
        """The encoder's maps of uint8 images [N, H, W, 3] (eval mode, no gradients)."""
        return encoder_maps(model, images, runtime=self.runtime, mean=self._data.mean,
                            std=self._data.std, batch_size=self.cfg.eval_batch_size)

    def _maps(self, model: nn.Module, images: np.ndarray) -> torch.Tensor:
        """`_encode`, computed once per split when the encoder never trains
        (freeze_encoder=-1): its maps are then the same at every evaluation and for the
        baselines, and encoding is the costly part (EfficientNet-Lite0 at 224 px encodes ~27
        images a second on one CPU thread: Flickr8k's 8,000 take 5 minutes)."""
        splits = self._data.images.values() if self._data is not None else ()
        if self.cfg.freeze_encoder != -1 or not any(images is a for a in splits):
            return self._encode(model, images)  # a training encoder, or someone else's images
        encoder = self.runtime.unwrap(model).encoder
        if encoder is not self._maps_of:  # another network: its own maps
            self._maps_cache, self._maps_of = {}, encoder
        hit = self._maps_cache.get(id(images))
        if hit is None or hit[0] is not images:
            hit = self._maps_cache[id(images)] = (images, self._encode(model, images))
        return hit[1]

    # -- step
    def step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        from taskzoo.models.captioner import attention_penalty

        caps, owner = batch["captions"], batch["owner"]
        if "maps" in batch:  # frozen encoder: its cached maps
            logits, alphas = model(batch["maps"], caps, encoded=True, packed=True, owner=owner)
        else:
            images = vision.normalize(self._data.mean, self._data.std)(batch["images"])
            logits, alphas = model(images, caps, packed=True, owner=owner)
        targets = caps[:, 1:]
        mask = targets != 0
        ce = nn.functional.cross_entropy(logits.float(), targets[mask])
        # the paper's sum over regions, as a mean so its weight does not scale with the grid
        penalty = attention_penalty(alphas.float(), mask.float()) / alphas.shape[-1]
        loss = ce + self.cfg.attention_reg * penalty
        return StepOutput(loss, size=len(batch["index"]), logs={"ce": ce.detach(),
                                                      "attention": penalty.detach()})

    # -- evaluate
    def generate(self, model: nn.Module, images: np.ndarray, *, beam: int | None = None,
                 maps: torch.Tensor | None = None) -> list[tuple[list[str], torch.Tensor]]:
        """(words, attention [len, h, w]) for each uint8 image [N, H, W, 3]."""
        c, vocab = self.cfg, self._data.vocab
        beam = c.beam if beam is None else beam
        maps = self._maps(model, images) if maps is None else maps
        net = self.runtime.unwrap(model)
        grid = tuple(maps.shape[-2:])
        out = []
        for i in range(0, len(maps), c.eval_batch_size):
            m = self.runtime.to_device(maps[i:i + c.eval_batch_size])
            res = net.caption(m, start_id=vocab.start_id, end_id=vocab.end_id, beam=beam,
                              max_len=c.max_words, encoded=True)
            out += [(vocab.decode(ids), att.reshape(len(att), *grid)) for ids, att in res]
        return out

    def evaluate(self, model: nn.Module, data: CaptionData, split: str, *,
                 beam: int | None = None, suffix: str = "") -> dict[str, float]:
        was = model.training
        model.eval()
        with torch.no_grad():
            out = self.generate(model, data.images[split], beam=beam)
        model.train(was)
        hyps = [" ".join(words) for words, _ in out]
        if not suffix:  # the pictures of the run directory show these
            self.last_outputs[split] = out
        scores = caption_scores(data.references[split], hyps)
        metrics = {f"{split}/{k}{suffix}": v for k, v in scores.items()}
        metrics[f"{split}/words{suffix}"] = float(np.mean([len(w) for w, _ in out]))
        metrics[f"{split}/distinct_words{suffix}"] = float(len({w for ws, _ in out for w in ws}))
        return metrics

    def final_metrics(self, model: nn.Module, data: CaptionData) -> dict[str, float]:
        """Greedy decoding on dev beside the beam, and the two baselines (see
        tasks/captioning/baselines.py), on the delivered model's encoder features."""
        from taskzoo.tasks.captioning.baselines import (
            NearestNeighbourCaptioner,
            pooled,
            prior_caption,
        )

        c = self.cfg
        out: dict[str, float] = {}
        if c.beam != 1 and "dev" in data.splits:
            out.update(self.evaluate(model, data, "dev", beam=1, suffix="_greedy"))
        if not c.baselines or data.train is None:
            return out
        model.eval()
        with torch.no_grad():
            vec = {s: pooled(self._maps(model, data.images[s]).cpu())
                   for s in ("train", *data.splits)}
        nn_cap = NearestNeighbourCaptioner(vec["train"], data.references["train"])
        k = c.nn_k
        if not k:  # chosen on dev by CIDEr
            grid = [kk for kk in (5, 15, 30, 60, 120) if kk <= len(vec["train"])] or [1]
            dev = "dev" if "dev" in data.splits else next(iter(data.splits))
            k = max(grid, key=lambda kk: caption_scores(
                data.references[dev], nn_cap(vec[dev], k=kk))["cider"])
        prior = prior_caption(data.references["train"])
        for split in data.splits:
            refs = data.references[split]
            s = caption_scores(refs, nn_cap(vec[split], k=k))
            out.update({f"{split}/bleu4_nn": s["bleu4"], f"{split}/cider_nn": s["cider"],
                        f"{split}/bleu1_nn": s["bleu1"]})
            p = caption_scores(refs, [prior] * len(refs))
            out.update({f"{split}/bleu4_prior": p["bleu4"], f"{split}/cider_prior": p["cider"]})
        out["baseline/nn_k"] = float(k)
        self.baseline_captions = {"prior": prior, "nn_k": k}
        return out

    def reports(self, model: nn.Module, data: CaptionData) -> dict[str, str | bytes]:
        import json

        from taskzoo.tasks.captioning.report import caption_reports

        out = caption_reports(self, model, data)
        if getattr(self, "encoder_ignored", None) is not None:  # what encoder_init= filled
            out["encoder_init.json"] = json.dumps(
                {"encoder_init": self.cfg.encoder_init, "encoder": self.cfg.encoder,
                 "tensors_loaded": len(self.runtime.unwrap(model).encoder.state_dict()),
                 "ignored": self.encoder_ignored}, indent=1) + "\n"
        return out

    # -- predictor
    def predictor(self, model: nn.Module, data: CaptionData) -> CaptionPredictor:
        c = self.cfg
        return CaptionPredictor(model, self.runtime, vocab=data.vocab, size=data.size,
                                mean=data.mean, std=data.std, beam=c.beam,
                                max_words=c.max_words, batch_size=c.eval_batch_size)

    def data_state(self, data: CaptionData) -> dict[str, Any]:
        return {"vocab": data.vocab.to_list(), "size": data.size, "mean": data.mean,
                "std": data.std, "encoder_kwargs": data.encoder_kwargs}

    def data_from_state(self, state: dict[str, Any]) -> CaptionData:
        return CaptionData(train=None, vocab=CaptionVocab.from_list(state["vocab"]),
                           size=int(state["size"]), mean=list(state["mean"]),
                           std=list(state["std"]),
                           encoder_kwargs=dict(state.get("encoder_kwargs") or {}))

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.caption_shapes import caption_shapes

        shapes = caption_shapes(max(1, n), seed=1)
        return [shapes.arrays[i % len(shapes)] for i in range(n)]

    def dataset_card(self) -> dict[str, Any]:
        data = self._data
        return {"name": data.name if data else self.cfg.dataset,
                "files": data.files if data else [],
                "license": data.license if data else "unknown"}
