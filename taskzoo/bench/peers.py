"""`taskzoo bench --peers`: taskzoo beside what a user would otherwise use, as ratios.

The peer scripts live in the repository's `benchmarks/` folder, next to the package of an
editable install (`pip install -e ".[bench]"` brings the peers: Stable-Baselines3; Hugging
Face transformers is a dependency already). Each script runs both sides in one process,
alternating them so drift in machine speed hits both alike, and writes its comparisons as
JSON rows made by `peer_row`; this module runs the scripts in child processes and prints one
table. Ratios are always taskzoo / peer; the `better` column says which way is good.

    >>> row = peer_row("Trainer vs plain loop", 9.8, 10.0, "steps/s", "higher", ">= 0.95")
    >>> round(row["ratio"], 2), row["met"]
    (0.98, True)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskzoo.errors import UsageError


@dataclass(frozen=True)
class Peer:
    """One peer script in benchmarks/ and how `--peers` calls it."""

    script: str  # file name in benchmarks/
    what: str  # one line for progress and errors
    full: tuple[str, ...]  # arguments of the measured run
    quick: tuple[str, ...]  # arguments of the smoke run (seconds, tiny data)
    takes_device: bool  # whether --device is passed on
    requires: str = ""  # a module installed only for this comparison; skipped (said so) without it


PEERS = (
    Peer("trainer_overhead.py", "the Trainer vs a plain PyTorch loop (sentiment)",
         ("--dataset", "sst2"), ("--dataset", "tiny", "--steps", "20", "--repeats", "2"), True),
    Peer("trainer_overhead.py", "the Trainer vs a plain PyTorch loop (image classification)",
         ("--task", "image_classification", "--steps", "200"),
         ("--task", "image_classification", "--dataset", "digits", "--steps", "20",
          "--repeats", "2"), True),
    Peer("rl_vs_sb3.py", "PPO and DQN vs Stable-Baselines3 (CartPole-v1)",
         ("--seeds", "0,1,2", "--whole"), ("--quick", "--seeds", "0", "--whole"), False),
    Peer("highway_vs_sb3.py", "DQN vs Stable-Baselines3 driving (highway-fast-v0)",
         ("--seeds", "0"), ("--quick",), False, requires="highway_env"),
    Peer("sentiment_vs_hf.py", "sentiment inference vs a DistilBERT-size Hugging Face model",
         (), ("--quick",), True),
    Peer("detection_vs_ultralytics.py", "yolo_tiny vs Ultralytics YOLOv8n from scratch (PennFudan)",
         ("--minutes", "15"), ("--quick",), True, requires="ultralytics"),
)


def peer_row(comparison: str, ours: float, peer: float, unit: str, better: str,
             target: str = "") -> dict[str, Any]:
    """A comparison row: ratio = ours / peer; `met` checks `target` ('>= x' or '<= x')."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better={better!r}: expected 'higher' or 'lower'")
    ratio = ours / peer if peer else float("nan")
    met = None
    if target:
        op, _, value = target.partition(" ")
        met = ratio >= float(value) if op == ">=" else ratio <= float(value)
    return {"comparison": comparison, "taskzoo": ours, "peer": peer, "unit": unit,
            "ratio": ratio, "better": better, "target": target, "met": met}


def write_report(path: str | None, setup: str, rows: list[dict[str, Any]], **extra: Any) -> None:
    """What a peer script hands back: its setup line and rows (plus its own details)."""
    if path:
        from taskzoo.files import write_json

        write_json(path, {"setup": setup, "rows": rows, **extra})


def benchmarks_dir() -> Path:
    """The repository's benchmarks/ folder (TASKZOO_BENCHMARKS overrides)."""
    env = os.environ.get("TASKZOO_BENCHMARKS")
    here = Path(env) if env else Path(__file__).resolve().parents[2] / "benchmarks"
    if not all((here / p.script).is_file() for p in PEERS):
        raise UsageError(
            f"--peers runs the peer scripts of the repository's benchmarks/ folder, not found at "
            f"{here}. Clone the repository and `pip install -e \".[bench]\"`, or set "
            f"TASKZOO_BENCHMARKS to that folder.")
    return here


def run_peers(*, quick: bool = False, device: str | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run every peer script; its rows, or one row with `error` when it failed."""
    folder = benchmarks_dir()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="taskzoo-peers-") as tmp:
        for i, peer in enumerate(PEERS, 1):
            if progress:
                print(f"[peer {i}/{len(PEERS)}] {peer.what} ...", file=sys.stderr, flush=True)
            if peer.requires and importlib.util.find_spec(peer.requires) is None:
                rows.append({"comparison": peer.what, "script": peer.script,
                             "skipped": f"needs {peer.requires}, installed only for this "
                                        f"comparison: pip install {peer.requires}"})
                continue
            out = Path(tmp) / f"{i}.json"
            args = [*(peer.quick if quick else peer.full), "--json", str(out)]
            if device and peer.takes_device:
                args += ["--device", device]
            proc = subprocess.run([sys.executable, str(folder / peer.script), *args],
                                  capture_output=True, text=True)
            if proc.returncode == 0 and out.is_file():
                report = json.loads(out.read_text(encoding="utf-8"))
                rows += [{**r, "script": peer.script, "setup": report["setup"]}
                         for r in report["rows"]]
                continue
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            if "No module named" in err:
                err += ' (the peers: pip install -e ".[bench]")'
            rows.append({"comparison": peer.what, "script": peer.script, "error": err})
    return rows


_COLS = (("comparison", 38), ("taskzoo", 10), ("peer", 10), ("unit", 9), ("ratio", 7),
         ("better", 6), ("target", 11))  # 97 columns with the separators


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _target(row: dict[str, Any]) -> str:
    return row["target"] + ("" if row["met"] is None else (" ok" if row["met"] else " no"))


def format_peers(rows: list[dict[str, Any]], *, quick: bool = False) -> str:
    """The ratio rows for people: aligned, under 100 columns, each script's setup below."""
    lines = []
    if quick:
        lines.append("QUICK: tiny data, capped runs -- smoke figures, NOT benchmark results")
    lines.append(" ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(_COLS)))
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['comparison'][:60]:<38} skipped:")
            lines.append(textwrap.fill(r["skipped"], width=99, initial_indent="    ",
                                       subsequent_indent="    "))
            continue
        if "error" in r:
            lines.append(f"{r['comparison'][:60]:<38} FAILED ({r['script']}):")
            lines.append(textwrap.fill(r["error"], width=99, initial_indent="    ",
                                       subsequent_indent="    "))
            continue
        target = _target(r)
        cells = [r["comparison"][:38], _num(r["taskzoo"]), _num(r["peer"]), r["unit"][:9],
                 f"{r['ratio']:.3g}x", r["better"], target]
        lines.append(" ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, (_, w)) in enumerate(zip(cells, _COLS))))
    lines.append("ratio = taskzoo / peer; better: which way the ratio is good")
    # a script may run twice (the Trainer on text and on images): one line per setup
    setups = dict.fromkeys((r["script"], r["setup"]) for r in rows if "setup" in r)
    lines += [textwrap.fill(f"{script}: {setup}", width=99, subsequent_indent="    ")
              for script, setup in setups]
    return "\n".join(lines)


def peers_markdown(rows: list[dict[str, Any]], *, quick: bool = False) -> str:
    """The same rows as Markdown, each script's setup listed below."""
    out = ["**QUICK: smoke figures, NOT benchmark results**", ""] if quick else []
    out += ["| comparison | taskzoo | peer | unit | ratio | better | target |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['comparison']} | skipped: {r['skipped']} | | | | | |")
        elif "error" in r:
            out.append(f"| {r['comparison']} | FAILED: {r['error']} | | | | | |")
        else:
            target = _target(r)
            out.append(f"| {r['comparison']} | {_num(r['taskzoo'])} | {_num(r['peer'])} | "
                       f"{r['unit']} | {r['ratio']:.3g}x | {r['better']} | {target} |")
    setups = dict.fromkeys((r["script"], r["setup"]) for r in rows if "setup" in r)
    out += ["", *(f"- `{script}`: {setup}" for script, setup in setups)] if setups else []
    return "\n".join(out) + "\n"
