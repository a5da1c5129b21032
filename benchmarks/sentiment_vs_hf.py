"""Sentiment inference: taskzoo's default predictor against a DistilBERT-size Hugging Face
text-classification pipeline, on the same sentences, in one process.

    TASKZOO_MIRROR=../shared/data python benchmarks/sentiment_vs_hf.py [--batch 64]
        [--repeats 5] [--device cpu] [--quick] [--json F]

The peer is what a Hugging Face user runs: `pipeline("text-classification")` with
DistilBERT's architecture (distilbert-base-uncased: 6 layers, 768 wide, 67M parameters)
and its WordPiece tokenizer (the bert-base-uncased vocab.txt, fetched and verified by the
hub like any dataset file). Its weights are randomly initialised, since nothing can be
downloaded here; speed does not depend on the values of the weights. Its accuracy is the
published figure of distilbert-base-uncased-finetuned-sst-2-english (model card: 91.3 on SST-2
dev), printed beside ours, not measured.

Both classify the SST-2 dev sentences (--quick: the tiny embedded set) in chunks of --batch:
throughput is sentences per second over the whole set (median of --repeats, alternating
which side runs first); latency is batch-1 p50/p95 over single sentences after warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

import taskzoo
from taskzoo import hub
from taskzoo.bench.peers import peer_row, write_report
from taskzoo.bench.tasks import latency

# bert-base-uncased's WordPiece vocabulary, which distilbert-base-uncased and all-MiniLM-L6-v2
# share; pinned by sha256 like every file the hub fetches.
VOCAB = hub.RemoteFile(
    name="vocab.txt",
    sha256="07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    size=231_508,
    urls=("https://huggingface.co/distilbert/distilbert-base-uncased/resolve/main/vocab.txt",
          "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/"
          "c9745ed1d9f207416be6d2e6f8de32d1f16199bf/vocab.txt"),
)
PUBLISHED_ACCURACY = (0.913, "distilbert-base-uncased-finetuned-sst-2-english model card")


def hf_pipeline(device: str) -> tuple[Any, int]:
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizerFast,
        pipeline,
    )

    tok = DistilBertTokenizerFast(vocab_file=str(hub.fetch(VOCAB, group="all-MiniLM-L6-v2")),
                                  do_lower_case=True)
    torch.manual_seed(0)
    cfg = DistilBertConfig(num_labels=2, id2label={0: "negative", 1: "positive"},
                           label2id={"negative": 0, "positive": 1})
    model = DistilBertForSequenceClassification(cfg).eval()
    params = sum(p.numel() for p in model.parameters())
    return pipeline("text-classification", model=model, tokenizer=tok, device=device), params


def sentences(quick: bool) -> list[tuple[str, int]]:
    if quick:
        from taskzoo.data.tiny_sentiment import load_tiny_sentiment

        return list(load_tiny_sentiment()[1])
    from taskzoo.data.sst2 import load_sst2

    return load_sst2("dev")


def whole_set(classify: Any, texts: list[str], batch: int) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(texts), batch):
        out += classify(texts[i: i + batch])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64, help="sentences per call, both sides")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes over the set")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both sides)")
    ap.add_argument("--quick", action="store_true",
                    help="the tiny embedded set and 2 repeats: a smoke test, not a measurement")
    ap.add_argument("--json", default=None, help="also write the setup and ratio rows here")
    args = ap.parse_args()
    repeats = 2 if args.quick else args.repeats
    rows = sentences(args.quick)
    texts, labels = [t for t, _ in rows], [y for _, y in rows]

    ours = taskzoo.load("sentiment", device=args.device)
    pipe, hf_params = hf_pipeline(args.device)
    sides = {"taskzoo": lambda xs: ours(list(xs)),
             "hf": lambda xs: pipe(list(xs), batch_size=len(xs))}
    rates: dict[str, list[float]] = {"taskzoo": [], "hf": []}
    for name in sides:  # warm-up: allocator, kernels, tokenizer caches
        whole_set(sides[name], texts[: 2 * args.batch], args.batch)
    for i in range(repeats):
        for name in (("taskzoo", "hf") if i % 2 == 0 else ("hf", "taskzoo")):
            t = time.perf_counter()
            out = whole_set(sides[name], texts, args.batch)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rates[name].append(len(texts) / (time.perf_counter() - t))
            if name == "taskzoo":
                preds = out  # scored below: no extra pass over the set
    one = [sorted(texts, key=len)[len(texts) // 2]]  # a sentence of median length
    lat = {name: latency(fn, one) for name, fn in sides.items()}
    rate = {name: statistics.median(r) for name, r in rates.items()}

    label_names = ["negative", "positive"]
    accuracy = sum(p["label"] == label_names[y] for p, y in zip(preds, labels)) / len(labels)
    setup = (f"{'tiny set' if args.quick else 'SST-2 dev'} ({len(texts)} sentences), batch "
             f"{args.batch}, {repeats} repeats, device={args.device}, "
             f"threads={torch.get_num_threads()}; taskzoo.load('sentiment') "
             f"({sum(p.numel() for p in ours.model.parameters()):,} params) vs transformers "
             f"pipeline, DistilBERT-size ({hf_params:,} params, random weights)"
             + ("; QUICK: smoke figures" if args.quick else ""))
    print(setup)
    print(f"throughput  taskzoo {rate['taskzoo']:10,.0f}/s   HF {rate['hf']:10,.0f}/s   "
          f"ratio {rate['taskzoo'] / rate['hf']:.2f}")
    print(f"latency p50 taskzoo {lat['taskzoo'][0]:8.2f} ms   HF {lat['hf'][0]:8.2f} ms   "
          f"ratio {lat['taskzoo'][0] / lat['hf'][0]:.3f}")
    report_rows = [
        peer_row(f"sentiment inference vs DistilBERT b{args.batch}", rate["taskzoo"], rate["hf"],
                 "sent/s", "higher"),
        peer_row("sentiment latency vs DistilBERT b1", lat["taskzoo"][0], lat["hf"][0],
                 "ms p50", "lower"),
    ]
    if not args.quick:  # the published figure is SST-2 dev's; the tiny set is not comparable
        print(f"SST-2 dev accuracy: taskzoo {accuracy:.4f} (measured), DistilBERT-SST-2 "
              f"{PUBLISHED_ACCURACY[0]} (published: {PUBLISHED_ACCURACY[1]})")
        report_rows.append(peer_row("SST-2 accuracy vs published DistilBERT", accuracy,
                                    PUBLISHED_ACCURACY[0], "accuracy", "higher"))
    write_report(args.json, setup, report_rows, rates=rates, latency_ms=lat,
                 accuracy=accuracy)


if __name__ == "__main__":
    main()
