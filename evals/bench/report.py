"""Turns evals/bench/results.json into BENCHMARKS.md: every number beside its same-run baseline, and the issue's
targets as ratios. Standard library only."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def num(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def not_ok(run: dict) -> str:
    """Requests the gateway answered with a non-OK gRPC status, or the HTTP failures h2load saw."""
    statuses = run.get("grpc_status")
    if statuses is not None:
        bad = sum(n for code, n in statuses.items() if code not in ("0", "OK"))  # "0": runs before v1.44 names
        return str(bad) if bad else "0"
    return str(run["requests"] - run["http_ok"])


def report(r: dict) -> str:
    m = r["machine"]
    out = [
        "# Benchmarks",
        "",
        "Written by `evals/bench/run.sh` (do not edit by hand); raw numbers in `evals/bench/results.json`.",
        f"Machine: {m['cpu']} ({isa_line(m)}), {m['cores']} cores, Linux {m['kernel']}. Commit `{m['commit']}`, {m['date']}."
        + (" **Quick run** (short durations)." if r.get("quick") else ""),
        "Load generator: h2load (nghttp2) on the same cores as the gateway; CPU per request is the gateway "
        "process's own CPU time (user + system, all threads) over the requests it served in that run. The LLM "
        "backend is `switchyard-bench fake-llm` (a fixed answer; streams after a fixed 50 ms time to first token, then 32 tokens 50 ms apart).",
        "",
    ]
    paths = r["paths"]
    health = r["health_floor"]
    peer1 = r["python_peer"]["1_workers"]
    structured = paths["structured"]
    half = structured["open_loop"]["50%"]
    half_over_floor = half["p99_ms"] - half.get("floor", {}).get("p99_ms", float("nan"))
    targets = [
        ["one sequential caller, structured p50", f"{num(structured['sequential']['p50_ms'], 3)} ms", "≤ 0.3 ms",
         "met" if structured["sequential"]["p50_ms"] <= 0.3 else "not met"],
        ["one sequential caller, structured throughput vs Python peer (1 worker)",
         f"{num(ratio(structured['sequential']['req_per_s'], peer1['sequential']['req_per_s']), 2)}×", "≥ 5×",
         "met" if ratio(structured["sequential"]["req_per_s"], peer1["sequential"]["req_per_s"]) >= 5 else "not met"],
        ["structured max / Health/Check max (same load shape)",
         num(ratio(structured["max"]["req_per_s"], health["max"]["req_per_s"]), 3), "≥ 0.3",
         "met" if ratio(structured["max"]["req_per_s"], health["max"]["req_per_s"]) >= 0.3 else "not met"],
        ["structured p99 at 50 % of max", f"{num(half['p99_ms'], 2)} ms ({num(half_over_floor, 2)} ms over the "
         "floor at that rate)", "≤ 2 ms", "met" if half["p99_ms"] <= 2 else "not met"],
        ["gateway CPU per structured request (at max)", f"{num(structured['max']['cpu_us_per_request'])} µs",
         "≤ 60 µs", "met" if structured["max"]["cpu_us_per_request"] <= 60 else "not met"],
    ]
    streams = r["stream_overhead"]
    added_1000 = streams["1000"]["gateway"]["ttft_ms"]["p99"] - streams["1000"]["direct"]["ttft_ms"]["p99"]
    targets.append(["NL streams: added p99 time to first token at 1000 concurrent", f"{num(added_1000, 2)} ms",
                    "≤ 1 ms", "met" if added_1000 <= 1 else "not met"])
    nl100 = r["nl_overhead"]["100"]
    gateway_added = nl100["gateway"]["p99_ms"] - nl100["direct"]["p99_ms"]
    if r.get("litellm"):
        litellm_added = r["litellm"]["100"]["p99_ms"] - nl100["direct"]["p99_ms"]
        lite_ratio = ratio(litellm_added, max(gateway_added, 1e-3))
        targets.append(["NL added p99 at 100 concurrent: LiteLLM's / the gateway's", f"{num(lite_ratio, 1)}×",
                        "≥ 30×", "met" if lite_ratio >= 30 else "not met"])
    targets += [
        ["idle RSS", f"{num(r['idle_rss_mb'])} MB", "≤ 60 MB", "met" if r["idle_rss_mb"] <= 60 else "not met"],
        ["cold start to SERVING", f"{num(r['cold_start_to_serving_ms'])} ms", "≤ 500 ms",
         "met" if r["cold_start_to_serving_ms"] <= 500 else "not met"],
    ]
    out += ["## Targets", "", table(["target", "measured", "goal", ""], targets), ""]

    floor = r.get("in_process_ns", {})
    rows = []
    for model in ("classifier", "scorer"):
        one, many = floor.get(f"{model}/batch/1"), floor.get(f"{model}/batch/32")
        if one and many:
            rows.append([model, num(one / 1000, 1), num(many / 32 / 1000, 1), num(ratio(one, many / 32), 2) + "×"])
    out += ["## In-process floor (criterion, `ort`, one thread)", "",
            table(["model", "batch 1 (µs/row)", "batch 32 (µs/row)", "batching gain"], rows), ""]
    exact, native = floor.get("encoder/batch-1-x32/exact"), floor.get("encoder/batch-1-x32/native")
    if exact and native:
        out += ["The encoder (int8, one request per run as the cascade runs it, 32 CLINC150 questions): "
                f"{num(exact / 32 / 1000, 0)} µs per request with the served exact int8 products, "
                f"{num(native / 32 / 1000, 0)} µs with this CPU's own kernel ({num(ratio(exact, native), 2)}× the time; "
                "the same kernel where the CPU has VNNI, a saturating one where it has AVX2 or AVX-512 without it: "
                "`classical/src/kernels.rs`).", ""]

    rows = [["Health/Check (the gRPC floor)", num(health["sequential"]["req_per_s"]), num(health["sequential"]["p50_ms"], 3),
             num(health["max"]["req_per_s"]), "1.000", num(health["max"]["cpu_us_per_request"]), "-"]]
    for name in ("structured", "nl", "hybrid"):
        p = paths[name]
        rows.append([name, num(p["sequential"]["req_per_s"]), num(p["sequential"]["p50_ms"], 3), num(p["max"]["req_per_s"]),
                     num(ratio(p["max"]["req_per_s"], health["max"]["req_per_s"]), 3), num(p["max"]["cpu_us_per_request"]),
                     not_ok(p["max"])])
    out += ["## Paths: one caller, then the closed-loop maximum (16 connections × 10 streams)", "",
            table(["path", "1 caller req/s", "1 caller p50 ms", "max req/s", "max / floor", "CPU µs/req", "non-OK"], rows),
            ""]

    rows = []
    for name in ("structured", "nl", "hybrid"):
        for share, run in paths[name]["open_loop"].items():
            floor = run.get("floor", {})
            rows.append([name, share, num(run["target_req_per_s"]), num(run["req_per_s"]), num(run["p50_ms"], 3),
                         num(run["p99_ms"], 3), num(run["p999_ms"], 3), num(floor.get("p50_ms"), 3),
                         num(floor.get("p99_ms"), 3), num(run["p99_ms"] - floor.get("p99_ms", float("nan")), 3),
                         not_ok(run)])
    out += ["## Paths: open loop at 25 / 50 / 75 % of the maximum (h2load `--rps`, 16 connections × 10 streams)", "",
            "h2load's `--rps` clients fire on aligned timers, so requests arrive in small bursts; `Health/Check` at the "
            "same rate and shape (the floor columns) shows what the arrival pattern and the load generator cost alone.",
            "",
            table(["path", "load", "asked req/s", "got req/s", "p50 ms", "p99 ms", "p99.9 ms", "floor p50",
                   "floor p99", "p99 over floor", "non-OK"], rows), ""]

    rows = []
    for concurrency, pair in r["nl_overhead"].items():
        g, d = pair["gateway"], pair["direct"]
        rows.append([concurrency, num(d["p50_ms"], 3), num(g["p50_ms"], 3), num(g["p50_ms"] - d["p50_ms"], 3),
                     num(d["p99_ms"], 3), num(g["p99_ms"], 3), num(g["p99_ms"] - d["p99_ms"], 3), num(g["cpu_us_per_request"])])
    out += ["## NL path overhead (unary, closed loop): the fake backend direct vs through the gateway", "",
            table(["callers", "direct p50", "gateway p50", "added p50", "direct p99", "gateway p99", "added p99",
                   "gateway CPU µs/req"], rows), ""]

    rows = []
    for concurrency, pair in streams.items():
        g, d = pair["gateway"]["ttft_ms"], pair["direct"]["ttft_ms"]
        rows.append([concurrency, num(d["p50"], 2), num(g["p50"], 2), num(g["p50"] - d["p50"], 2), num(d["p99"], 2),
                     num(g["p99"], 2), num(g["p99"] - d["p99"], 2), str(pair["gateway"]["streams"]),
                     ", ".join(f"{n} {kind}" for kind, n in pair["gateway"]["errors"].items()) or "0"])
    out += ["## Streams: time to first token (ms), direct vs through the gateway (`RouteStream`)", "",
            table(["streams", "direct p50", "gateway p50", "added p50", "direct p99", "gateway p99", "added p99",
                   "streams measured", "errors"], rows), ""]

    rows = []
    for workers, run in r["python_peer"].items():
        rows.append([f"Python peer, {workers.split('_')[0]} uvicorn worker(s)", num(run["sequential"]["req_per_s"]),
                     num(run["sequential"]["p50_ms"], 3), num(run["max"]["req_per_s"]), num(run["max"]["cpu_us_per_request"])])
    rows.append(["Switchyard (structured)", num(structured["sequential"]["req_per_s"]), num(structured["sequential"]["p50_ms"], 3),
                 num(structured["max"]["req_per_s"]), num(structured["max"]["cpu_us_per_request"])])
    out += ["## Structured path vs the Python peer (FastAPI + onnxruntime, same models and record; max = 16 callers)", "",
            table(["server", "1 caller req/s", "1 caller p50 ms", "max req/s", "CPU µs/req"], rows), ""]

    if r.get("litellm"):
        rows = []
        for concurrency, run in r["litellm"].items():
            direct = r["nl_overhead"][concurrency]["direct"]
            gateway = r["nl_overhead"][concurrency]["gateway"]
            rows.append([concurrency, num(direct["p99_ms"], 3), num(gateway["p99_ms"] - direct["p99_ms"], 3),
                         num(run["p99_ms"] - direct["p99_ms"], 3), num(run["req_per_s"]), num(gateway["req_per_s"])])
        out += ["## NL path vs the LiteLLM proxy (same fake backend, closed loop)", "",
                table(["callers", "direct p99", "gateway added p99", "LiteLLM added p99", "LiteLLM req/s", "gateway req/s"],
                      rows), ""]

    if r.get("batch_sizes_after_paths"):
        rows = [[model, num(v["runs"], 0), num(v["mean_batch"], 2)] for model, v in r["batch_sizes_after_paths"].items()]
        out += ["## Micro-batching over the path scenarios (`switchyard_inference_batch_size`)", "",
                table(["model", "ONNX runs", "mean requests per run"], rows), ""]

    if r.get("classify_latency"):
        rows = []
        base = r["classify_latency"].get("linear_only", {}).get("all", {})
        for variant, tiers in r["classify_latency"].items():
            for tier, v in tiers.items():
                added = f"{num(v['p50_us'] - base['p50_us'], 0)} / {num(v['p99_us'] - base['p99_us'], 0)}" if base else ""
                rows.append([variant, tier, num(v["requests"], 0), num(v["p50_us"], 0), num(v["p90_us"], 0),
                             num(v["p99_us"], 0), added if tier == "all" else ""])
        out += ["## Classification through the gateway: `Explain` (classify + decide, no backend), one caller, every "
                "labelled text (µs; the gRPC round trip included)", "",
                table(["gateway", "tier", "requests", "p50", "p90", "p99", "added vs linear only (p50 / p99)"], rows), ""]

    out += ["## Resources", "", table(["measure", "value"], [
        ["idle RSS (models loaded, 1 s after ready)", f"{num(r['idle_rss_mb'])} MB"],
        ["peak RSS (after every gateway scenario)", f"{num(r['peak_rss_mb'])} MB"],
        ["cold start to SERVING (process start → /readyz 200)", f"{num(r['cold_start_to_serving_ms'])} ms"],
    ]), ""]
    return "\n".join(out)


def isa_line(m: dict) -> str:
    """The instruction sets ONNX Runtime's kernels depend on, as the run recorded them (older runs did not)."""
    isa = m.get("isa")
    if isa is None:
        return "instruction sets not recorded"
    return ", ".join(f"{name} {'yes' if isa[key] else 'no'}" for name, key in
                     (("AVX2", "avx2"), ("AVX-512", "avx512"), ("VNNI", "vnni")))


if __name__ == "__main__":
    print(report(json.loads(Path(sys.argv[1]).read_text())))

