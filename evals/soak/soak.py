"""The chaos soak: mixed traffic at ~70 % of measured capacity while the LLM backend is killed and restarted, the
policy is rewritten (once invalidly) and malformed, oversized and unauthenticated requests are mixed in. Writes
evals/soak/results.json; report.py turns it into REPORT.md with plots.

Called by evals/soak/run.sh, which builds the release binaries and sets up ONNX Runtime and llama-server (their
paths come in SWITCHYARD_LLAMA_SERVER and SWITCHYARD_LLAMA_MODEL). Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "evals" / "bench"))
from harness import LOG_DIRS, deploy_config, gateway_log, machine, metrics_text, rss_mb, start, stop, wait_http  # noqa: E402

RELEASE = ROOT / "target" / "release"
HERE = Path(__file__).resolve().parent
PORTS = {"grpc": 50251, "admin": 9664, "llm": 18281}
GRPC = f"http://127.0.0.1:{PORTS['grpc']}"
ADMIN = f"http://127.0.0.1:{PORTS['admin']}"
# Each class runs at this share of its capacity. The LLM classes' capacity is what they carry closed loop (5 NL and
# 3 hybrid callers for llama-server's 4 slots). The structured path's is the highest open-loop rate it sustains
# beside them with no error, no call dropped by the generator and p99 under SUSTAINED_P99_MS, found by stepping
# up to its closed-loop maximum: a closed loop never queues past its callers, so its maximum overstates what an
# open stream of callers can be given.
LOAD_SHARE = 0.70
LLM_CALLERS = {"nl": 5, "hybrid": 3}
STEPS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SUSTAINED_P99_MS = 50.0
# The LLM backend has a core of its own (as in production it has machines of its own) and the gateway with its
# callers the other: sharing cores, llama-server's decoding and the gateway would take CPU from each other, and
# neither side's capacity would be its own.
GATEWAY_CPU, BACKEND_CPU = "0", "1"
BAD_RATES = {"malformed": 10.0, "oversized": 2.0, "unauthenticated": 10.0}
LLM_DEADLINE_MS, DEADLINE_MS = 20_000, 1_000
# When each chaos event happens, as a share of the soak's duration.
SCHEDULE = [
    (0.15, "policy_rewrite"),
    (0.25, "backend_kill"),
    (0.35, "backend_restart"),
    (0.40, "policy_invalid"),
    (0.42, "policy_restore"),
    (0.50, "policy_rewrite"),
    (0.70, "backend_kill"),
    (0.75, "backend_restart"),
    (0.85, "policy_rewrite"),
]


def log(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


def gateway_config(work: Path, keys: Path) -> Path:
    text = deploy_config(PORTS["grpc"], PORTS["admin"], f"http://127.0.0.1:{PORTS['llm']}/v1")
    text += f'\n[auth]\nmode = "required"\nkeys_file = "{keys}"\n'
    (work / "switchyard.toml").write_text(text)
    shutil.copy(ROOT / "deploy/config/policy.toml", work / "policy.toml")
    return work / "switchyard.toml"


def api_key(work: Path) -> str:
    """A fresh random key for tenant `soak`; the keys file holds its digest (as `switchyard hash-key` prints it)."""
    key = secrets.token_urlsafe(32)
    digest = subprocess.run([str(RELEASE / "switchyard"), "hash-key"], input=key, capture_output=True, text=True,
                            check=True).stdout.strip()
    if digest != hashlib.sha256(key.encode()).hexdigest():
        raise RuntimeError("switchyard hash-key disagrees with SHA-256")
    (work / "keys.toml").write_text(f'[[keys]]\ntenant = "soak"\nsha256 = "{digest}"\n')
    return key


class Backend:
    """The local llama-server, started, killed (SIGKILL) and restarted on the soak's schedule."""

    def __init__(self) -> None:
        self.args = ["taskset", "-c", BACKEND_CPU, os.environ["SWITCHYARD_LLAMA_SERVER"],
                     "-m", os.environ["SWITCHYARD_LLAMA_MODEL"],
                     "--host", "127.0.0.1", "--port", str(PORTS["llm"]), "-c", "2048", "-t", "1",
                     "--alias", "smollm2", "--log-disable"]
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Starts the server; seconds until it answers /health."""
        self.process = start(self.args)
        return wait_http(f"http://127.0.0.1:{PORTS['llm']}/health", timeout=120, interval=0.05)

    def kill(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process:
            stop(self.process)


def metric(name: str, labels: str = "") -> float:
    """A counter's value from the gateway's /metrics (0 when absent)."""
    total = 0.0
    for line in metrics_text(ADMIN).splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def reloads() -> dict[str, float]:
    return {result: metric("switchyard_policy_reloads_total", f'result="{result}"')
            for result in ("applied", "rejected")}


def write_policy(path: Path, text: str) -> None:
    """Replaces the policy file atomically, as a Kubernetes ConfigMap update does."""
    temporary = path.with_suffix(".next")
    temporary.write_text(text)
    os.replace(temporary, path)


def capacity(key: str, seconds: int, callers: dict[str, int]) -> dict:
    """The classes at once, closed loop: what each carries beside the others."""
    runs = {cls: subprocess.Popen(["taskset", "-c", GATEWAY_CPU, str(RELEASE / "switchyard-bench"), "capacity",
                                   "--grpc", GRPC, "--class", cls,
                                   "--concurrency", str(n), "--duration-s", str(seconds),
                                   "--deadline-ms", str(DEADLINE_MS), "--llm-deadline-ms", str(LLM_DEADLINE_MS)],
                                  env={**os.environ, "SWITCHYARD_API_KEY": key}, stdout=subprocess.PIPE, text=True)
            for cls, n in callers.items()}
    results = {}
    for cls, run in runs.items():
        out, _ = run.communicate()
        if run.returncode != 0:
            raise RuntimeError(f"capacity {cls} exited with {run.returncode}")
        results[cls] = json.loads(out)
        log(f"capacity {cls}: {results[cls]['ok_per_s']:.2f} ok/s, codes {results[cls]['codes']}")
    return results


def mix_rates(key: str, seconds: int, work: Path) -> tuple[dict, dict]:
    """The soak's rates (LOAD_SHARE of each class's capacity) and the measurements they come from."""
    llm = capacity(key, 3 * seconds, LLM_CALLERS)
    llm_rates = {cls: LOAD_SHARE * llm[cls]["ok_per_s"] for cls in LLM_CALLERS}
    closed = capacity(key, seconds, {"structured": 64})["structured"]
    steps = []
    for share in STEPS:
        rate = share * closed["ok_per_s"]
        out = work / f"step-{share}.jsonl"
        code = soak(key, {"structured": rate} | llm_rates, seconds, out).wait()
        if code != 0:
            raise RuntimeError(f"the load generator exited with {code}")
        _, seconds_out, _ = read_soak(out)
        structured = [s for s in seconds_out if s["class"] == "structured"]
        errors = sum(n for s in structured for code, n in s["codes"].items() if code != "Ok")
        dropped = sum(s.get("not_sent", 0) for s in structured)
        p99 = max((s["p99_ms"] for s in structured), default=float("inf"))
        steps.append({"rate": round(rate, 1), "errors": errors, "dropped": dropped, "worst_second_p99_ms": round(p99, 2)})
        log(f"step {rate:.0f}/s: {errors} errors, {dropped} dropped, worst second's p99 {p99:.1f} ms")
        if errors or dropped or p99 > SUSTAINED_P99_MS:
            break
    sustained = [step["rate"] for step in steps if not step["errors"] and not step["dropped"]
                 and step["worst_second_p99_ms"] <= SUSTAINED_P99_MS]
    if not sustained:
        raise RuntimeError(f"the structured path sustained none of the steps: {steps}")
    rates = {"structured": LOAD_SHARE * max(sustained)} | llm_rates | BAD_RATES
    return rates, {"llm_closed_loop": llm, "structured_closed_loop": closed, "structured_steps": steps,
                   "structured_sustained": max(sustained)}


def soak(key: str, rates: dict, seconds: int, out: Path) -> subprocess.Popen:
    """Starts the open-loop load generator."""
    command = ["taskset", "-c", GATEWAY_CPU, str(RELEASE / "switchyard-bench"), "soak", "--grpc", GRPC, "--duration-s", str(seconds),
               "--out", str(out), "--deadline-ms", str(DEADLINE_MS), "--llm-deadline-ms", str(LLM_DEADLINE_MS)]
    command += [f"--rate={name}={rate:.3f}" for name, rate in rates.items()]
    return subprocess.Popen(command, env={**os.environ, "SWITCHYARD_API_KEY": key})


def read_soak(path: Path) -> tuple[float, list, list]:
    """The generator's start (unix seconds), its per-second lines and its LLM calls."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    started = lines[0]["started_unix_ms"] / 1000
    return started, [line for line in lines[1:] if "t" in line], [line["call"] for line in lines[1:] if "call" in line]


def chaos(duration: float, began: float, policy: Path, backend: Backend, events: list, done: threading.Event) -> None:
    """Runs the schedule; records each event's wall-clock time and what it observed."""
    original = policy.read_text()
    rewrites = 0
    for share, name in SCHEDULE:
        if done.wait(max(0.0, began + share * duration - time.monotonic())):
            return
        t = time.monotonic() - began
        event: dict = {"unix": time.time(), "event": name}
        if name == "policy_rewrite":
            rewrites += 1
            # A real change an operator might make: the abstain bar moves a little each time.
            below = 0.2 - 0.01 * rewrites
            write_policy(policy, re.sub(r"(?m)^below = 0\.2\b", f"below = {below:.2f}", original))
            event["detail"] = f"abstain below {below:.2f}"
        elif name == "policy_invalid":
            write_policy(policy, original.replace('target = "churn"\n', 'target = "nowhere"\n', 1))
            event["detail"] = "a rule names a target that does not exist"
        elif name == "policy_restore":
            write_policy(policy, original)
            event["detail"] = "the shipped policy"
        elif name == "backend_kill":
            backend.kill()
        elif name == "backend_restart":
            event["ready_after_s"] = round(backend.start(), 2)
        if name.startswith("policy"):
            time.sleep(2.0)
            event["reloads_after"] = reloads()
        events.append(event)
        log(f"t={t:.0f}s {name} {event.get('detail', '')}")


def sample(pid: int, samples: list, done: threading.Event) -> None:
    """The gateway's RSS once a second."""
    while not done.wait(1.0):
        try:
            samples.append({"unix": time.time(), "rss_mb": round(rss_mb(pid), 2)})
        except (FileNotFoundError, ProcessLookupError):
            return


def write_results(results: dict, out: Path) -> None:
    """The results as JSON, one line per second and class and per LLM call, times to 0.01 ms: small enough to
    commit, and a rerun's diff stays readable."""
    series = {"seconds": results.get("seconds", []), "llm_calls": results.get("llm_calls", [])}
    for second in series["seconds"]:
        for key in ("p50_ms", "p99_ms", "max_ms"):
            second[key] = round(second[key], 2)
    for call in series["llm_calls"]:
        call["latency_ms"] = round(call["latency_ms"], 2)
    head = json.dumps({k: v for k, v in results.items() if k not in series}, indent=1)
    body = ",\n".join(f' "{name}": [\n' + ",\n".join(json.dumps(row) for row in rows) + "\n ]"
                       for name, rows in series.items())
    out.write_text(head[:-2] + ",\n" + body + "\n}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=600, help="soak length in seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="switchyard-soak-"))
    key = api_key(work)
    config = gateway_config(work, work / "keys.toml")
    backend = Backend()
    gateway = None
    results: dict = {"machine": machine(), "cpus": {"gateway_and_callers": GATEWAY_CPU, "backend": BACKEND_CPU}, "duration_s": args.duration, "schedule": SCHEDULE, "load_share": LOAD_SHARE,
                     "deadline_ms": DEADLINE_MS, "llm_deadline_ms": LLM_DEADLINE_MS}
    try:
        results["backend_start_s"] = round(backend.start(), 2)
        gateway = start(["taskset", "-c", GATEWAY_CPU, str(RELEASE / "switchyard"), "serve", "--config", str(config)], log_file=gateway_log())
        wait_http(f"{ADMIN}/readyz", timeout=120)
        rates, results["capacity"] = mix_rates(key, max(10, args.duration // 40), work)
        results["rates"] = {name: round(rate, 3) for name, rate in rates.items()}
        log(f"rates {results['rates']}, {args.duration}s")
        events: list = []
        samples: list = []
        done = threading.Event()
        began = time.monotonic()
        load = soak(key, rates, args.duration, work / "soak.jsonl")
        threads = [threading.Thread(target=chaos, args=(args.duration, began, work / "policy.toml", backend, events, done)),
                   threading.Thread(target=sample, args=(gateway.pid, samples, done))]
        for thread in threads:
            thread.start()
        code = load.wait()
        done.set()
        for thread in threads:
            thread.join()
        if code != 0:
            raise RuntimeError(f"the load generator exited with {code}")
        started, results["seconds"], results["llm_calls"] = read_soak(work / "soak.jsonl")
        # Every time from the load generator's start, in seconds.
        results["events"] = [{**{k: v for k, v in e.items() if k != "unix"}, "t": round(e["unix"] - started, 2)} for e in events]
        results["rss"] = [{"t": round(x["unix"] - started, 2), "rss_mb": x["rss_mb"]} for x in samples]
        results["reloads"] = reloads()
        results["gateway_alive"] = gateway.poll() is None
    finally:
        if gateway:
            stop(gateway)
        backend.stop()
    results["gateway_exit_code"] = gateway.returncode if gateway else None
    write_results(results, args.out)
    log(f"results in {args.out}")
    for directory in LOG_DIRS + [work]:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
