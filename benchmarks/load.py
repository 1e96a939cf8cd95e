"""Load test of a running coopbot server on loopback: N concurrent clients asking for D seconds.

    .venv/bin/python benchmarks/load.py                        # a server already on 127.0.0.1:7860
    .venv/bin/python benchmarks/load.py --spawn                # start `python app.py` first, report startup
    .venv/bin/python benchmarks/load.py --clients 20 --seconds 30 --api-key KEY

Each client is a closed loop (ask, wait for the whole answer, ask again) over the questions of
evals/qa/knowledge.jsonl (follow-ups with their history). Prints requests/s, latency p50/p95/p99 and
errors, and checks the target: zero errors and p95 under 1.5 s with the extractive composer.
Only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT / "evals" / "qa" / "knowledge.jsonl"
TARGET_P95_S = 1.5


def loopback_only(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    sys.exit(f"refusing to load-test {host!r}: only loopback addresses (127.0.0.0/8, ::1, localhost)")


def questions() -> list[dict[str, Any]]:
    cases = [json.loads(line) for line in QA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"question": c["question"], "history": c.get("history", [])} for c in cases]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(port: int) -> tuple[subprocess.Popen[bytes], float]:
    """`python app.py` on a free port with the caller's COOPBOT_* settings; seconds until the page answers 200."""
    env = dict(os.environ, COOPBOT_HOST="127.0.0.1", COOPBOT_PORT=str(port))
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    while time.monotonic() - began < 300:
        if process.poll() is not None:
            sys.exit(f"the server exited with {process.returncode} (run `python app.py` to see why)")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process, time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.terminate()
    sys.exit("the server did not answer within 300 s")


def run(url: str, clients: int, seconds: float, api_key: str | None, warm: bool) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    pool = questions()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Event()
    deadline = 0.0

    def client(index: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            start.wait()
            turn = index
            while time.monotonic() < deadline:
                body = pool[turn % len(pool)]
                turn += clients
                began = time.monotonic()
                try:
                    response = http.post("/api/ask", json=body)
                    ok = response.status_code == 200 and "text" in response.json()
                    kind = "" if ok else f"HTTP {response.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    kind = type(exc).__name__
                elapsed = time.monotonic() - began
                with lock:
                    if kind:
                        errors[kind] += 1
                    else:
                        latencies.append(elapsed)

    for body in pool if warm else pool[:1]:  # --warm: every question once, so caches hold their passages
        response = httpx.post(url + "/api/ask", json=body, headers=headers, timeout=120)
        if response.status_code != 200:
            sys.exit(f"warm-up request failed: HTTP {response.status_code} {response.text[:300]}")
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    deadline = began + seconds
    start.set()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    wall = time.monotonic() - began
    done = len(latencies)
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": done + sum(errors.values()),
        "requests_per_s": round(done / wall, 2),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "max_s": round(max(latencies, default=float("nan")), 3),
        "mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="the server (loopback only)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--api-key", default=os.environ.get("COOPBOT_BENCH_API_KEY"), help="Bearer key, if set")
    parser.add_argument("--spawn", action="store_true", help="start `python app.py` on a free port first")
    parser.add_argument(
        "--warm", action="store_true", help="ask every question once before the clock starts (steady state)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if not 1 <= args.clients <= 500 or not 1 <= args.seconds <= 600:
        sys.exit("--clients must be 1-500 and --seconds 1-600")

    process = None
    result: dict[str, Any] = {}
    if args.spawn:
        port = free_port()
        args.url = f"http://127.0.0.1:{port}"
        process, ready = spawn(port)
        result["startup_s"] = round(ready, 1)
        print(f"server ready (page 200) {ready:.1f} s after start", file=sys.stderr)
    loopback_only(args.url)
    try:
        result.update(run(args.url.rstrip("/"), args.clients, args.seconds, args.api_key, args.warm))
        result["warm"] = args.warm
        result["backend"] = httpx.get(args.url + "/healthz", timeout=10).json().get("backend")
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    result["target_met"] = result["errors"] == 0 and result["p95_s"] < TARGET_P95_S
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    print(
        f"{result['clients']} clients, {result['seconds']} s, backend {result['backend']}"
        f"{' (warmed: every question asked once first)' if args.warm else ' (cold: first pass included)'}: "
        f"{result['requests']} requests, {result['requests_per_s']} req/s\n"
        f"latency p50 {result['p50_s']} s, p95 {result['p95_s']} s, p99 {result['p99_s']} s, max {result['max_s']} s\n"
        f"errors: {result['errors']} {result['error_kinds'] or ''}\n"
        f"target (0 errors, p95 < {TARGET_P95_S} s): {'met' if result['target_met'] else 'NOT met'}"
        + (f"\nstartup: page answered 200 after {result['startup_s']} s" if "startup_s" in result else "")
    )


if __name__ == "__main__":
    main()
