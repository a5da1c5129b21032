"""Cold start of a pretrained predictor: import, load and first prediction in a new process.

    python benchmarks/cold_start.py [TASK] [--repeats 5]

Each repeat is a fresh interpreter with an empty cache and TASKZOO_OFFLINE=1 (the default
weights ship with the package). Prints the split per repeat and the median of each part.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import taskzoo
t1 = time.perf_counter()
import torch  # the first thing load() needs; timed apart so "load" is taskzoo's own work
t2 = time.perf_counter()
predictor = taskzoo.load(sys.argv[1], device="cpu")
t3 = time.perf_counter()
predictor(sys.argv[2])
t4 = time.perf_counter()
print(json.dumps({"import taskzoo": t1 - t0, "import torch": t2 - t1, "load": t3 - t2,
                  "predict": t4 - t3, "total": t4 - t0}))
"""
INPUTS = {"sentiment": "a gripping , beautiful film", "pos": "The old man the boats ."}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", nargs="?", default="sentiment", choices=sorted(INPUTS))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "TASKZOO_HOME": home, "TASKZOO_OFFLINE": "1"}
            out = subprocess.run([sys.executable, "-c", CHILD, args.task, INPUTS[args.task]],
                                 env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print("  ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()), flush=True)
    print(f"median of {args.repeats} ({args.task}): "
          + "  ".join(f"{k} {statistics.median(r[k] for r in runs):.2f} s" for k in runs[0]))


if __name__ == "__main__":
    main()
