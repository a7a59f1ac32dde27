"""Runs every benchmark scenario against release binaries and writes the results (JSON) for report.py.

Called by evals/bench/run.sh, which builds the binaries and installs the tools. Standard library only.
Every number is measured in this run, beside the baseline it is compared with (the gRPC floor, the fake
backend called directly, the Python peer, LiteLLM).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import LOG_DIRS, deploy_config, machine, metrics_text, gateway_log, percentile, rss_mb, start, stop, tree_cpu_seconds, wait_http

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
HERE = Path(__file__).resolve().parent
PORTS = {"grpc": 50151, "admin": 9564, "fake": 18081, "peer": 18101, "litellm": 18201}
PATHS = ("structured", "nl", "hybrid")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# === load ===


def h2load(url: str, body: Path | None, *, clients: int, streams: int, duration: int, rps: float = 0.0, http1: bool = False, grpc: bool = True, warmup: int = 0,
           headers: list[str] | None = None) -> dict:
    """One h2load run; latency percentiles (ms) from its per-request log, throughput from its summary."""
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as f:
        log_path = Path(f.name)
    command = ["h2load", "-c", str(clients), "-m", str(streams), "-t", "1", f"--log-file={log_path}"]
    if grpc:
        command += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        command += ["-H", "content-type: application/json"]
    for header in headers or []:
        command += ["-H", header]
    if http1:
        command += ["--h1"]
    if body is not None:
        command += ["-d", str(body)]
    command += ["-D", str(duration)]
    if warmup:
        command += [f"--warm-up-time={warmup}"]
    if rps:
        command += [f"--rps={rps:.3f}"]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latencies = []
    ok_http = 0
    for line in log_path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            latencies.append(int(parts[2]) / 1000.0)
            ok_http += parts[1] == "200"
    log_path.unlink()
    latencies.sort()
    finished = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    return {
        "command": " ".join(command),
        "requests": len(latencies),
        "http_ok": ok_http,
        "req_per_s": float(finished.group(3)) if finished else float("nan"),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
    }


def grpc_statuses(admin: str) -> dict[str, int]:
    """Requests counted by the gateway's own metrics, by gRPC status code (h2load sees only HTTP 200)."""
    counts: dict[str, int] = {}
    for line in metrics_text(admin).splitlines():
        if line.startswith("rpc_server_call_duration_seconds_count{"):
            code = re.search(r'rpc_response_status_code="([A-Z_]+)"', line)
            if code:
                counts[code.group(1)] = counts.get(code.group(1), 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


def batch_sizes(admin: str) -> dict[str, dict[str, float]]:
    """ONNX runs and requests per run so far, by model, from the gateway's batch-size histogram."""
    out: dict[str, dict[str, float]] = {}
    for line in metrics_text(admin).splitlines():
        found = re.match(r'switchyard_inference_batch_size_(sum|count)\{.*switchyard_model="(\w+)".*\} (\S+)', line)
        if found:
            out.setdefault(found.group(2), {})[found.group(1)] = float(found.group(3))
    return {model: {"runs": v.get("count", 0.0), "mean_batch": v.get("sum", 0.0) / max(v.get("count", 0.0), 1.0)}
            for model, v in out.items()}


def measured(pid: int, admin: str | None, run) -> dict:
    """`run()`'s result, plus the CPU the process spent per request and the gRPC statuses the gateway counted."""
    before_cpu = tree_cpu_seconds(pid)
    before = grpc_statuses(admin) if admin else {}
    result = run()
    spent = tree_cpu_seconds(pid) - before_cpu
    if admin:
        after = grpc_statuses(admin)
        delta = {code: after.get(code, 0) - before.get(code, 0) for code in after}
        result["grpc_status"] = {code: n for code, n in delta.items() if n}
    result["cpu_us_per_request"] = 1e6 * spent / max(result["requests"], 1)
    return result


def one_and_max(pid: int, admin: str | None, url: str, body: Path, seconds: int, max_streams: int = 10,
                **kind) -> dict:
    """One sequential caller, then the closed-loop maximum with 16 connections of `max_streams` streams each."""
    return {
        "sequential": measured(pid, admin, lambda: h2load(url, body, clients=1, streams=1, duration=seconds,
                                                          warmup=1, **kind)),
        "max": measured(pid, admin, lambda: h2load(url, body, clients=16, streams=max_streams, duration=seconds,
                                                   warmup=1, **kind)),
    }


def run_seconds(quick: bool) -> int:
    """How long each load run lasts."""
    return 4 if quick else 10


# === scenarios ===


def bodies(work: Path) -> dict[str, Path]:
    files = {}
    for scenario in PATHS:
        for kind, flag in (("grpc", []), ("json", ["--json"])):
            path = work / f"{scenario}.{kind}"
            path.write_bytes(subprocess.run([str(RELEASE / "switchyard-bench"), "body", "--scenario", scenario, *flag],
                                            capture_output=True, check=True).stdout)
            files[f"{scenario}.{kind}"] = path
    files["health.grpc"] = work / "health.grpc"
    files["health.grpc"].write_bytes(b"\x00\x00\x00\x00\x00")
    chat = {"model": "smollm2", "temperature": 0, "messages": [{"role": "user", "content": "what is the capital of france?"}]}
    files["chat.json"] = work / "chat.json"
    files["chat.json"].write_text(json.dumps(chat))
    return files


def gateway_config(work: Path) -> Path:
    text = deploy_config(PORTS["grpc"], PORTS["admin"], f"http://127.0.0.1:{PORTS['fake']}/v1")
    # The fake backend answers at once; the local llama-server's 4 slots would be the limit, not the gateway.
    text = text.replace("max_concurrent = 4 ", "max_concurrent = 1024 ").replace("max_queued = 32 ", "max_queued = 4096 ")
    text = text.replace("concurrency_per_connection = 64", "concurrency_per_connection = 256")
    (work / "switchyard.toml").write_text(text)
    shutil.copy(ROOT / "deploy/config/policy.toml", work / "policy.toml")
    return work / "switchyard.toml"


def path_scenarios(url: str, files: dict, pid: int, admin: str, quick: bool) -> dict:
    results = {}
    seconds = run_seconds(quick)
    for name in PATHS:
        body = files[f"{name}.grpc"]
        route = f"{url}/switchyard.v1.Router/Route"
        log(f"{name}: one sequential caller, then the closed-loop maximum (16 connections x 10 streams)")
        closed = one_and_max(pid, admin, route, body, seconds)
        maximum = closed["max"]
        open_loop = {}
        check = f"{url}/grpc.health.v1.Health/Check"
        for share in (0.25, 0.5, 0.75):
            rate = maximum["req_per_s"] * share
            log(f"{name}: open loop at {share:.0%} of maximum ({rate:.0f} req/s), then the floor at that rate")
            run = measured(
                pid, admin, lambda: h2load(route, body, clients=16, streams=10, duration=seconds, rps=rate / 16)
            )
            # h2load's --rps clients fire on aligned timers, so arrivals come in small bursts: the floor at the
            # same rate and shape shows what that alone costs, and the difference is the path's own.
            floor = h2load(check, files["health.grpc"], clients=16, streams=10, duration=seconds, rps=rate / 16)
            open_loop[f"{int(share * 100)}%"] = run | {"target_req_per_s": rate, "floor": floor}
        results[name] = closed | {"open_loop": open_loop}
    return results


def health_floor(url: str, files: dict, pid: int, quick: bool) -> dict:
    check = f"{url}/grpc.health.v1.Health/Check"
    return one_and_max(pid, None, check, files["health.grpc"], run_seconds(quick))


def nl_overhead(url: str, files: dict, pid: int, admin: str, fake_pid: int, quick: bool) -> dict:
    """The NL path against the fake backend called directly, at the same closed-loop concurrency."""
    seconds = run_seconds(quick)
    out = {}
    for concurrency in (1, 100):
        log(f"nl overhead: {concurrency} concurrent callers, gateway and direct")
        through = measured(pid, admin, lambda: h2load(f"{url}/switchyard.v1.Router/Route", files["nl.grpc"],
                                                      clients=concurrency, streams=1, duration=seconds, warmup=1))
        direct = measured(fake_pid, None, lambda: h2load(f"http://127.0.0.1:{PORTS['fake']}/v1/chat/completions",
                                                         files["chat.json"], clients=concurrency, streams=1,
                                                         duration=seconds, warmup=1, http1=True, grpc=False))
        out[str(concurrency)] = {"gateway": through, "direct": direct}
    return out


def stream_overhead(quick: bool) -> dict:
    seconds = 8 if quick else 20
    out = {}
    for concurrency in (1, 100, 1000):
        runs = {}
        for mode, target in (("direct", ["--direct", f"http://127.0.0.1:{PORTS['fake']}/v1/chat/completions"]),
                             ("gateway", ["--grpc", f"http://127.0.0.1:{PORTS['grpc']}"])):
            log(f"streams: {concurrency} concurrent, {mode}")
            result = subprocess.run([str(RELEASE / "switchyard-bench"), "streams", *target, "--concurrency",
                                     str(concurrency), "--duration-s", str(seconds)],
                                    capture_output=True, text=True, check=True)
            runs[mode] = json.loads(result.stdout.strip().splitlines()[-1])
        out[str(concurrency)] = runs
    return out


def classify_texts(work: Path) -> Path:
    """Every labelled request the classifier never trained on: CLINC150 validation (no record) and every record
    phrasing (with the README's customer), as the evals use them."""
    data = json.loads((ROOT / "classical/data/clinc150/clinc150_train_val.json").read_text())
    lines = [{"text": text, "record": False} for text, _ in data["val"] + data["oos_val"]]
    for line in (ROOT / "evals/datasets/record_phrasings.jsonl").read_text().splitlines():
        if line.strip():
            lines.append({"text": json.loads(line)["text"], "record": True})
    path = work / "classify_texts.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def classify_latency(work: Path) -> dict:
    """One caller, Explain (classify and decide, no backend) over every labelled text, through a gateway with the
    default config's cascade and through one without it (the linear model alone): the baseline in the same run."""
    texts = classify_texts(work)
    admin = f"http://127.0.0.1:{PORTS['admin']}"
    url = f"http://127.0.0.1:{PORTS['grpc']}"
    config = work / "switchyard.toml"
    with_cascade = config.read_text()
    results = {}
    for name, text in (("linear_only", re.sub(r"\[models\.cascade\][^\[]*", "", with_cascade)), ("cascade", with_cascade)):
        config.write_text(text)
        gateway = start([str(RELEASE / "switchyard"), "serve", "--config", str(config)],
                        log_file=gateway_log())
        try:
            wait_http(f"{admin}/readyz", interval=0.001)
            log(f"classify latency ({name}): Explain over {sum(1 for _ in texts.open())} texts, one caller")
            out = subprocess.run([str(RELEASE / "switchyard-bench"), "explain", "--grpc", url, "--texts", str(texts)],
                                 capture_output=True, check=True, text=True).stdout
            results[name] = json.loads(out)
        finally:
            stop(gateway)
    config.write_text(with_cascade)
    return results


def python_peer(files: dict, quick: bool) -> dict:
    """FastAPI + onnxruntime under uvicorn, same two models and record, 1 and 2 workers."""
    venv = Path(os.environ["SWITCHYARD_BENCH_PEER_VENV"])
    out = {}
    for workers in (1, 2):
        log(f"python peer: {workers} uvicorn worker(s)")
        process = start([str(venv / "bin/uvicorn"), "peer:app", "--app-dir", str(HERE / "peer"), "--host", "127.0.0.1",
                         "--port", str(PORTS["peer"]), "--workers", str(workers), "--log-level", "warning",
                         "--no-access-log"], env={"SWITCHYARD_ROOT": str(ROOT)})
        try:
            wait_http(f"http://127.0.0.1:{PORTS['peer']}/health", timeout=120, interval=0.05)
            url = f"http://127.0.0.1:{PORTS['peer']}/route"
            out[f"{workers}_workers"] = one_and_max(process.pid, None, url, files["structured.json"],
                                                    run_seconds(quick), max_streams=1, http1=True, grpc=False)
        finally:
            stop(process)
    return out


def litellm_peer(files: dict, quick: bool) -> dict | None:
    venv = os.environ.get("SWITCHYARD_BENCH_LITELLM_VENV")
    if not venv:
        return None
    seconds = run_seconds(quick)
    config = Path(tempfile.mkdtemp()) / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: smollm2\n    litellm_params:\n      model: openai/smollm2\n"
        f"      api_base: http://127.0.0.1:{PORTS['fake']}/v1\n      api_key: none\n"
    )
    env = {"LITELLM_TELEMETRY_DISABLED": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": "sk-bench",
           "LITELLM_LOG": "ERROR"}
    process = start([str(Path(venv) / "bin/litellm"), "--config", str(config), "--host", "127.0.0.1", "--port",
                     str(PORTS["litellm"]), "--num_workers", "1"], env=env, log_file=config.parent / "litellm.log")
    try:
        wait_http(f"http://127.0.0.1:{PORTS['litellm']}/health/liveliness", timeout=180, interval=0.1)
        url = f"http://127.0.0.1:{PORTS['litellm']}/v1/chat/completions"
        out = {}
        for concurrency in (1, 100):
            log(f"litellm: {concurrency} concurrent callers")
            out[str(concurrency)] = measured(process.pid, None, lambda: h2load(
                url, files["chat.json"], clients=concurrency, streams=1, duration=seconds, warmup=1, http1=True,
                grpc=False, headers=["authorization: Bearer sk-bench"]))
        return out
    finally:
        stop(process)


def criterion() -> dict:
    """The in-process floor: criterion's mean estimates for each inference benchmark (ns)."""
    out = {}
    base = ROOT / "target/criterion"
    for estimates in sorted(base.glob("**/new/estimates.json")):
        name = "/".join(estimates.relative_to(base).parts[:-2])
        out[name] = json.loads(estimates.read_text())["mean"]["point_estimate"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the command)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    files = bodies(work)
    results: dict = {"machine": machine(), "quick": args.quick, "in_process_ns": criterion()}
    # A stream lasts ~1.6 s (50 ms to the first token, 32 tokens 50 ms apart), as LLM streams do: 1000 open
    # streams then ask ~600 new streams a second, a load the path can carry, so the added time to first token is
    # overhead rather than queueing.
    fake = start([str(RELEASE / "switchyard-bench"), "fake-llm", "--listen", f"127.0.0.1:{PORTS['fake']}",
                  "--ttft-ms", "50", "--tokens", "32", "--token-interval-ms", "50"])
    gateway = None
    try:
        time.sleep(0.3)
        if fake.poll() is not None:
            raise RuntimeError(f"the fake backend did not start (is port {PORTS['fake']} taken?)")
        admin = f"http://127.0.0.1:{PORTS['admin']}"
        config = gateway_config(work)
        # The log goes outside the config directory: the policy watcher would see every write there.
        gateway = start([str(RELEASE / "switchyard"), "serve", "--config", str(config)],
                        log_file=gateway_log())
        # From the process's start until /readyz says the models are loaded (gRPC health SERVING at the same moment).
        results["cold_start_to_serving_ms"] = 1000 * wait_http(f"{admin}/readyz", interval=0.001)
        time.sleep(1.0)
        results["idle_rss_mb"] = rss_mb(gateway.pid)
        url = f"http://127.0.0.1:{PORTS['grpc']}"
        log("grpc floor: grpc.health.v1.Health/Check")
        results["health_floor"] = health_floor(url, files, gateway.pid, args.quick)
        results["paths"] = path_scenarios(url, files, gateway.pid, admin, args.quick)
        results["batch_sizes_after_paths"] = batch_sizes(admin)
        results["nl_overhead"] = nl_overhead(url, files, gateway.pid, admin, fake.pid, args.quick)
        results["stream_overhead"] = stream_overhead(args.quick)
        results["peak_rss_mb"] = rss_mb(gateway.pid, "VmHWM")
    finally:
        if gateway:
            stop(gateway)
    results["classify_latency"] = classify_latency(work)
    try:
        results["python_peer"] = python_peer(files, args.quick)
        results["litellm"] = litellm_peer(files, args.quick)
    finally:
        stop(fake)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"results in {args.out}")
    for directory in LOG_DIRS + [work]:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
