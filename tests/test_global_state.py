"""A library call must leave the process as it found it: a notebook that calls taskzoo.run
behaves the same afterwards (threads, denormals, TF32, matplotlib, umask, random streams)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import taskzoo
from taskzoo.train.types import Callback

# Runs in a fresh interpreter, so nothing another test did (a pyplot import, a thread count)
# can hide a change. It prints the settings before and after each call as JSON.
_PROBE = textwrap.dedent("""
    import json, os, random, sys
    import matplotlib
    matplotlib.use("svg")  # the user's own choice, which taskzoo must not switch
    import numpy as np, torch, taskzoo
    from taskzoo.runtime import flush_denormal_enabled

    umask_calls = []
    real_umask = os.umask
    def counting_umask(mask):
        umask_calls.append(mask)
        return real_umask(mask)
    os.umask = counting_umask

    def settings():
        cuda = torch.backends.cuda.matmul
        return {"threads": torch.get_num_threads(), "flush": flush_denormal_enabled(),
                "backend": matplotlib.get_backend(), "pyplot": "matplotlib.pyplot" in sys.modules,
                "tf32": [cuda.fp32_precision, torch.backends.cudnn.conv.fp32_precision],
                "umask_calls": len(umask_calls),
                "torch_rng": torch.get_rng_state()[:64].tolist(),
                "numpy_rng": int(np.random.get_state()[1][:8].sum()), "python_rng": random.random()}

    torch.set_num_threads(2)
    torch.manual_seed(123); np.random.seed(123); random.seed(123)
    out = {"before": settings()}
    torch.manual_seed(123); np.random.seed(123); random.seed(123)
    # CartPole's recipe sets threads=1 and its run draws a learning-curve PNG
    taskzoo.run("cartpole", total_timesteps=2000, eval_freq=1000, val_episodes=2,
                eval_episodes=2, out="cart", progress=False)
    out["after_run"] = settings()
    torch.manual_seed(123); np.random.seed(123); random.seed(123)
    try:  # a run that fails must restore the settings too
        taskzoo.run("sentiment", dataset="tiny", lr=1e9, threads=1, out="nan", progress=False)
    except taskzoo.DivergenceError:
        out["diverged"] = True
    out["after_failure"] = settings()
    torch.manual_seed(123); np.random.seed(123); random.seed(123)
    clf = taskzoo.load("sentiment", device="cpu")
    clf("a fine film")
    taskzoo.load("cartpole", device="cpu")([0.0, 0.0, 0.0, 0.0])
    out["after_load"] = settings()
    print(json.dumps(out))
""")


@pytest.mark.timeout(240)
def test_run_and_load_leave_every_process_wide_setting_as_they_found_it(tmp_path, cli_env):
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=tmp_path, env=cli_env,
                          capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    before = out["before"]
    assert before["threads"] == 2 and before["flush"] is False and before["backend"] == "svg"
    assert out.get("diverged") is True
    for when in ("after_run", "after_failure", "after_load"):
        # the random streams too: each probe re-seeded before the call, so equal states
        # after it mean the call restored them (a run seeds and draws from them)
        assert out[when] == before, when
    assert (tmp_path / "cart" / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


class _Spy(Callback):
    def __init__(self) -> None:
        self.seen: dict = {}

    def on_step_end(self, trainer, state) -> None:
        if not self.seen:
            from taskzoo.runtime import flush_denormal_enabled

            self.seen = {"threads": torch.get_num_threads(), "flush": flush_denormal_enabled(),
                         "tf32": torch.backends.cuda.matmul.fp32_precision,
                         "device": torch.cuda.current_device() if torch.cuda.is_available()
                         else None}


def test_the_run_applies_its_settings_inside(tmp_path):
    n = torch.get_num_threads()
    spy = _Spy()
    taskzoo.run("sentiment", dataset="tiny", epochs=1, threads=1, device="cpu", callbacks=[spy],
                out=tmp_path / "r", progress=False)
    assert spy.seen["threads"] == 1 and spy.seen["flush"] is True
    assert torch.get_num_threads() == n


def test_tf32_is_a_precision_of_its_own_and_needs_a_gpu(tmp_path):
    with pytest.raises(taskzoo.ConfigError, match="tf32' needs an NVIDIA GPU"):
        taskzoo.run("sentiment", dataset="tiny", precision="tf32", device="cpu",
                    out=tmp_path / "r")


@pytest.mark.gpu
@pytest.mark.parametrize("precision, inside", [("32", "ieee"), ("tf32", "tf32")])
def test_fp32_means_fp32_and_tf32_is_scoped_to_the_run(tmp_path, precision, inside):
    matmul = torch.backends.cuda.matmul
    before = (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    spy = _Spy()
    taskzoo.run("sentiment", dataset="tiny", epochs=1, device="cuda", precision=precision,
                callbacks=[spy], out=tmp_path / precision, progress=False)
    assert spy.seen["tf32"] == inside
    assert (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == before


_MALLOC_PROBE = textwrap.dedent("""
    import json, resource, sys, torch
    from taskzoo.cli import main
    from taskzoo.runtime import tune_allocator

    def faults():  # page faults of allocating and freeing 64 MB five times
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            torch.ones(16 << 20).sum()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

    faults()
    main(["list"])  # a Python caller of the command's main(): nothing process-wide
    untouched = faults()
    tuned = tune_allocator()
    faults()
    print(json.dumps({"untouched": untouched, "tuned": tuned, "after": faults()}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("env", [{}, {"MALLOC_ARENA_MAX": "2"}])
def test_the_allocator_is_tuned_only_when_asked_and_never_over_the_users_choice(env):
    import os

    got = subprocess.run([sys.executable, "-c", _MALLOC_PROBE], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120)
    assert got.returncode == 0, got.stderr
    probe = json.loads(got.stdout.strip().splitlines()[-1])
    assert probe["untouched"] > 50_000  # each 64 MB block mapped and zeroed afresh
    if env:  # the user chose: left alone
        assert probe["tuned"] is False and probe["after"] > 50_000
    else:
        assert probe["tuned"] is True and probe["after"] < probe["untouched"] / 10
