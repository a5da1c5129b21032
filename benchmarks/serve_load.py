"""A load test of `taskzoo serve` on loopback: N concurrent clients for T seconds against each
task, first on the batched server (--max-batch 32 --max-wait-ms 5), then on the plain
one-request-at-a-time server (max batch 1, no wait), and the ratio of their throughputs; then
100 hostile requests (malformed JSON, wrong types, oversized bodies, bomb images, path
strings, unknown tasks and parameters, ...) that must each get a 4xx while the server keeps
answering /health and an ordinary request.

    TASKZOO_MIRROR=../shared/data python benchmarks/serve_load.py \\
        [--tasks sentiment,detection] [--clients 16] [--seconds 20] [--hostile 100]
        [--threads 0] [--device cpu] [--json OUT]

The server runs in a child process (`taskzoo serve TASK --port P --max-batch B --max-wait-ms W`
on 127.0.0.1), so its CPU and memory are its own: its resident memory is read from /proc every second and reported
at the start of the load, a quarter into it, at its peak and at the end (flat: the end no
higher than a quarter in). The
clients are wrk's (Debian's `wrk`, a load generator in C: one connection per client, the
requests' bodies cycled by a Lua script) where it is installed, else asyncio + httpx in this
process. On a 2-core machine the clients share the cores with the server: Python clients spend
about 2 ms of CPU on each request, so they, not the server, limit the rate (a batched
sentiment server answered 349 requests/s to httpx clients and 893 to wrk's, the same 16
connections); `--client httpx` keeps them for comparison. The CPU each side used (cores busy
on average) shows which one limited the rate. Sentences are SST-2 dev's
(through the hub from TASKZOO_MIRROR; the embedded tiny set without it); images are coco128's
(skipped without the mirror). Everything stops by itself; the child is killed in a finally.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from serve_hostile import cycle, hostile_kinds  # benchmarks/ is sys.path[0]

START_S = 180  # loading a model in a busy machine
REQUEST_TIMEOUT_S = 60
MAX_REQUESTS = 200_000  # a bound on one phase's count, whatever the speed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """The process's resident memory in MB (Linux /proc), None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) the process has used (Linux /proc), None where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's ended children (wrk's; the server is still running)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


class Server:
    """`task` served by a child process; `with Server(...) as url:` starts and kills it."""

    def __init__(self, task: str, *, max_batch: int, max_wait_ms: float, device: str,
                 threads: int) -> None:
        self.port = free_port()
        self.argv = [sys.executable, "-m", "taskzoo.cli", "serve", task, "--port", str(self.port),
                     "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
                     "--device", device, "--log-level", "warning"]  # no line per request
        self.env = dict(os.environ)
        if threads:  # torch's intra-op threads follow OMP_NUM_THREADS
            self.env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()
        self.samples: list[float] = []
        self._sampling = threading.Event()

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=self.log)
        try:
            return self._wait_ready(f"http://127.0.0.1:{self.port}")
        except BaseException:  # the child is killed whatever stopped the wait (Ctrl-C too)
            self.__exit__()
            raise

    def _wait_ready(self, url: str) -> str:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the server did not answer /health in {START_S} s:\n{self.tail()}")

    def __exit__(self, *exc: object) -> None:
        self._sampling.set()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:].decode(errors="replace")

    def sample_memory(self) -> threading.Thread:
        """Sample the child's RSS once a second until `stop_sampling` (a daemon thread)."""
        self.samples, self._sampling = [], threading.Event()

        def loop() -> None:
            while True:
                if (mb := rss_mb(self.proc.pid)) is not None:
                    self.samples.append(mb)
                if self._sampling.wait(1.0):
                    return

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop_sampling(self, thread: threading.Thread) -> dict[str, float | None]:
        self._sampling.set()
        thread.join(5)
        s = self.samples or [None]
        # start: as the load begins; warm: a quarter into it (batches at their size, the
        # allocator's pools filled); flat means the end is no higher than warm
        return {"rss_start_mb": s[0], "rss_warm_mb": s[len(s) // 4],
                "rss_peak_mb": None if s[0] is None else max(s), "rss_end_mb": s[-1]}


def payloads(task: str, input_kind: str) -> list[dict[str, Any]]:
    """httpx keyword arguments of ordinary requests for `task`, cycled by the clients."""
    if input_kind in ("image", "video"):
        from taskzoo.data.detection.datasets import coco128_root

        images = sorted((coco128_root() / "images" / "train2017").glob("*.jpg"))[:16]
        return [{"files": {"file": (p.name, p.read_bytes(), "image/jpeg")}} for p in images]
    if input_kind == "text":
        return [{"json": {"inputs": s}} for s in sentences()]
    raise SystemExit(f"{task}: the load test sends text or images, not {input_kind!r}")


def sentences() -> list[str]:
    """SST-2 dev's sentences through the hub; the embedded tiny set when it has none."""
    from taskzoo.errors import TaskzooError

    try:
        from taskzoo.data.sst2 import load_sst2

        return [text for text, _ in load_sst2("dev")]
    except TaskzooError as exc:
        from taskzoo.data.tiny_sentiment import load_tiny_sentiment

        print(f"(SST-2 dev not found: {str(exc).splitlines()[0]}; the tiny set instead)")
        return [text for text, _ in load_tiny_sentiment()[1]]


async def load(url: str, task: str, requests: list[dict[str, Any]], *, clients: int,
               seconds: float) -> dict[str, Any]:
    """`clients` clients, each sending one request after another for `seconds`."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    endpoint = f"{url}/v1/{task}/predict"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for kw in requests[:2]:  # warm-up: the first call builds kernels, caches, threads
            await http.post(endpoint, **kw)
        start = time.perf_counter()
        deadline = start + seconds

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < deadline and len(latencies) + sum(errors.values()) < MAX_REQUESTS:
                t = time.perf_counter()
                try:
                    res = await http.post(endpoint, **requests[i % len(requests)])
                    ok = res.status_code == 200 and isinstance(res.json(), (list, dict))
                    key = "" if ok else f"HTTP {res.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    key = type(exc).__name__
                if key:
                    errors[key] += 1
                else:
                    latencies.append(time.perf_counter() - t)
                i += clients

        await asyncio.gather(*(client(k) for k in range(clients)))
        wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {"requests": len(latencies), "errors": sum(errors.values()), "error_kinds": dict(errors),
            "wall_s": wall, "req_per_s": len(latencies) / wall, "p50_ms": 1000 * q[49],
            "p99_ms": 1000 * q[98]}


WRK_SCRIPT = """
local dir, n, path = "%s", %d, "%s"
local bodies, types = {}, {}
for i = 1, n do
  local f = assert(io.open(dir .. "/" .. i .. ".body", "rb"))
  bodies[i] = f:read("*a")
  f:close()
  local t = assert(io.open(dir .. "/" .. i .. ".type", "rb"))
  types[i] = t:read("*a")
  t:close()
end
local i = 0
request = function()
  i = i %% n + 1
  return wrk.format("POST", path, {["Content-Type"] = types[i]}, bodies[i])
end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def load_wrk(url: str, task: str, requests: list[dict[str, Any]], *, clients: int,
             seconds: float) -> dict[str, Any]:
    """The same load from wrk: `clients` connections for `seconds`, each request's body one
    of `requests` (httpx builds them: JSON, or a multipart upload) in turn."""
    path = f"/v1/{task}/predict"
    with tempfile.TemporaryDirectory() as tmp:
        for i, kw in enumerate(requests, 1):
            req = httpx.Request("POST", url + path, **kw)
            Path(tmp, f"{i}.body").write_bytes(req.read())
            Path(tmp, f"{i}.type").write_text(req.headers["content-type"])
        script = Path(tmp, "requests.lua")
        script.write_text(WRK_SCRIPT % (tmp, len(requests), path))
        for kw in requests[:2]:  # warm-up: the first call builds kernels, caches, threads
            httpx.post(url + path, timeout=REQUEST_TIMEOUT_S, trust_env=False, **kw)
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency",
                              f"--timeout={REQUEST_TIMEOUT_S}s", "-s", str(script), url + path],
                             capture_output=True, text=True, timeout=seconds + 120, check=True)
    text = out.stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", text)
    if done is None:
        raise SystemExit(f"wrk printed no request count:\n{text}\n{out.stderr}")
    total, wall = int(done.group(1)), float(done.group(2)) * UNITS[done.group(3)] / 1e3
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)

    def pct(q: str) -> float:
        m = re.search(rf"^\s*{q}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

    return {"requests": total - errors, "errors": errors, "error_kinds": {}, "wall_s": wall,
            "req_per_s": (total - errors) / wall, "p50_ms": pct("50"), "p99_ms": pct("99"),
            "client": "wrk"}


def run_task(task: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """`task` under load on the batched server (then the hostile requests) and on the plain
    one; None when its requests cannot be made here (no dataset), said why."""
    phases: dict[str, Any] = {}
    requests: list[dict[str, Any]] = []
    for name, batch, wait in (("batched", 32, 5.0), ("plain", 1, 0.0)):
        server = Server(task, max_batch=batch, max_wait_ms=wait, device=args.device,
                        threads=args.threads)
        with server as url:
            if not requests:
                listing = httpx.get(url + "/v1/tasks", timeout=REQUEST_TIMEOUT_S, trust_env=False).json()
                phases["input"] = next(t["input"] for t in listing if t["task"] == task)
                try:
                    requests = payloads(task, phases["input"])
                except Exception as exc:  # noqa: BLE001 - a missing dataset skips the task
                    print(f"{task}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
                    return None
            sampler, cpu0, own0 = server.sample_memory(), cpu_s(server.proc.pid), time.process_time()
            kids0 = children_cpu()  # wrk's, once it has ended
            if args.client == "wrk":
                phases[name] = r = load_wrk(url, task, requests, clients=args.clients,
                                            seconds=args.seconds)
            else:
                phases[name] = r = asyncio.run(load(url, task, requests, clients=args.clients,
                                                    seconds=args.seconds))
            r.update(server.stop_sampling(sampler))
            # which side was busy: CPU seconds per second of load, server and clients
            cpu1 = cpu_s(server.proc.pid)
            r["server_cpu"] = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / r["wall_s"]
            r["client_cpu"] = (time.process_time() - own0 + children_cpu() - kids0) / r["wall_s"]
            if name == "batched" and args.hostile:
                phases[name]["hostile"] = hostile(url, task, phases["input"], requests[0],
                                                  args.hostile)
        print(f"{task} {name}: {phases[name]['req_per_s']:.1f} req/s, "
              f"{phases[name]['errors']} errors", flush=True)
    phases["ratio"] = phases["batched"]["req_per_s"] / max(phases["plain"]["req_per_s"], 1e-9)
    return phases


def hostile(url: str, task: str, input_kind: str, ordinary: dict[str, Any], n: int
            ) -> dict[str, Any]:
    """`n` hostile requests in turn; each must get a 4xx; then the server must still serve."""
    statuses: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, (method, path, kw) in cycle(hostile_kinds(task, input_kind), n):
        # a connection each, as separate clients: a server may close one it refused
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
            try:
                res = http.request(method, path, **kw)
                code = str(res.status_code)
                if 400 <= res.status_code < 500 and "error" not in _json_or_none(res):
                    code += " (no JSON error)"
            except httpx.HTTPError as exc:
                code = type(exc).__name__
        statuses[name][code] += 1
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        health = _status(http, "GET", "/health", {})
        normal = _status(http, "POST", f"/v1/{task}/predict", ordinary)
    by_code = collections.Counter()
    for counts in statuses.values():
        by_code.update(counts)
    refused = sum(c for code, c in by_code.items() if code[:1] == "4" and code[3:] == "")
    return {"sent": n, "got_4xx": refused, "by_status": dict(by_code),
            "by_kind": {k: dict(v) for k, v in sorted(statuses.items())},
            "health_after": health, "normal_after": normal,
            "ok": refused == n and health == 200 and normal == 200}


def _status(http: httpx.Client, method: str, path: str, kw: dict[str, Any]) -> int | str:
    """A request's status code, or the error that stopped it (the server is gone)."""
    try:
        return http.request(method, path, **kw).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def _json_or_none(res: httpx.Response) -> dict[str, Any]:
    try:
        body = res.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    def mb(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.0f}"

    print(f"\n{args.clients} clients for {args.seconds:g} s a phase, server threads="
          f"{args.threads or 'default'}, device={args.device}, loopback")
    print("| task | server | requests | req/s | p50 ms | p99 ms | errors | server RSS MB "
          "start / warm / peak / end | CPU server / clients |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for task, phases in results.items():
        for name, r in phases.items():
            if name in ("batched", "plain"):
                print(f"| {task} | {name} | {r['requests']:,} | {r['req_per_s']:,.1f} | "
                      f"{r['p50_ms']:,.1f} | {r['p99_ms']:,.1f} | {r['errors']} | "
                      f"{mb(r['rss_start_mb'])} / {mb(r['rss_warm_mb'])} / {mb(r['rss_peak_mb'])} / "
                      f"{mb(r['rss_end_mb'])} | "
                      f"{_cores(r['server_cpu'])} / {_cores(r['client_cpu'])} |")
    for task, phases in results.items():
        if "ratio" in phases:
            print(f"{task}: batched / plain throughput = {phases['ratio']:.2f}x")
        if h := phases.get("batched", {}).get("hostile"):
            print(f"{task}: {h['sent']} hostile requests, {h['got_4xx']} got a 4xx JSON error "
                  f"{dict(sorted(h['by_status'].items()))}; afterwards /health {h['health_after']}, "
                  f"an ordinary request {h['normal_after']}: {'ok' if h['ok'] else 'FAILED'}")
            bad = {k: v for k, v in h["by_kind"].items() if any(c[:1] != "4" or c[3:] for c in v)}
            for kind, counts in bad.items():
                print(f"  not refused with a 4xx: {kind}: {counts}")


def _cores(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="sentiment,detection", help="comma-separated tasks")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients")
    ap.add_argument("--seconds", type=float, default=20.0, help="load time of each phase")
    ap.add_argument("--hostile", type=int, default=100, help="hostile requests (0: none)")
    ap.add_argument("--threads", type=int, default=0,
                    help="the server's torch threads, as OMP_NUM_THREADS (0: its default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--client", choices=("wrk", "httpx"),
                    default="wrk" if shutil.which("wrk") else "httpx",
                    help="the load generator (default: wrk where installed)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    if not (1 <= args.clients <= 1024 and 0 < args.seconds <= 3600 and 0 <= args.hostile <= 10_000):
        ap.error("--clients in [1, 1024], --seconds in (0, 3600], --hostile in [0, 10000]")
    results: dict[str, dict[str, Any]] = {}
    for task in [t for t in args.tasks.split(",") if t]:
        if (phases := run_task(task, args)) is not None:
            results[task] = phases
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
