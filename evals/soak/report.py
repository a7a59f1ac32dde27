"""Turns the soak's results.json into REPORT.md and its plots, judging each of the soak's expectations.

Usage: report.py RESULTS_JSON OUT_DIR. Exits 1 when an expectation failed (the report is written either way).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from plot import Chart, Series

# What each class of bad request must get, always.
REFUSALS = {"malformed": {"InvalidArgument"}, "oversized": {"InvalidArgument", "OutOfRange"},
            "unauthenticated": {"Unauthenticated", "PermissionDenied"}}
FAIL_FAST_S = 1.0  # an LLM call made while the backend is down is refused within this
RSS_GROWTH = 0.10  # RSS over the last tenth of the soak vs the second tenth


def outages(results: dict) -> list[dict]:
    """Each kill: when the backend went down, came back, and the first LLM answer after it (recovered)."""
    events = results["events"]
    kills = [e["t"] for e in events if e["event"] == "backend_kill"]
    restarts = [e["t"] + e.get("ready_after_s", 0) for e in events if e["event"] == "backend_restart"]
    answered = sorted(c["start_ms"] / 1e3 + c["latency_ms"] / 1e3 for c in results["llm_calls"]
                      if c["code"] == "Ok" and not c["degraded"])
    windows = []
    for kill, back in zip(kills, restarts):
        recovered = next((t for t in answered if t > back), results["duration_s"])
        windows.append({"down": kill, "back": round(back, 2), "recovered": round(recovered, 2),
                        "recovery_s": round(recovered - back, 2)})
    return windows


def overlaps(call: dict, windows: list[dict]) -> bool:
    start = call["start_ms"] / 1e3
    end = start + call["latency_ms"] / 1e3
    return any(start <= w["recovered"] and end >= w["down"] for w in windows)


def judge(results: dict) -> tuple[list[tuple[str, str, bool]], dict]:
    """(expectation, what was measured, met) rows, and totals by class and code."""
    totals: dict[str, Counter] = {}
    past_deadline = Counter()
    for second in results["seconds"]:
        totals.setdefault(second["class"], Counter()).update(second["codes"])
        past_deadline[second["class"]] += second["past_deadline"]
    windows = outages(results)
    calls = results["llm_calls"]
    rows = []

    structured = totals.get("structured", Counter())
    failed = sum(n for code, n in structured.items() if code != "Ok")
    rows.append(("structured path: no errors throughout", f"{structured['Ok']:,} OK, {failed:,} not OK", failed == 0))

    nl_failed = [c for c in calls if c["class"] == "nl" and c["code"] != "Ok"]
    outside = [c for c in nl_failed if not overlaps(c, windows)]
    rows.append(("LLM requests fail only while the backend is down (kill → first answer after restart)",
                 f"{len(nl_failed)} NL calls failed, {len(outside)} of them outside an outage", not outside))
    while_down = [c for c in calls if c["class"] == "nl" and c["code"] != "Ok"
                  and any(w["down"] <= c["start_ms"] / 1e3 <= w["recovered"] for w in windows)]
    slowest = max((c["latency_ms"] / 1e3 for c in while_down), default=0.0)
    rows.append((f"...and fast: NL calls made during an outage refused within {FAIL_FAST_S:g} s",
                 f"{len(while_down)} refused, slowest after {slowest:.3f} s", slowest <= FAIL_FAST_S))

    hybrid = [c for c in calls if c["class"] == "hybrid"]
    hybrid_failed = [c for c in hybrid if c["code"] != "Ok"]
    degraded_outside = [c for c in hybrid if c["degraded"] and not overlaps(c, windows)]
    rows.append(("hybrid requests fail open: always the score, degraded (score only) only around an outage",
                 f"{len(hybrid)} calls, {len(hybrid_failed)} failed, {sum(1 for c in hybrid if c['degraded'])} "
                 f"degraded, {len(degraded_outside)} of them outside an outage",
                 not hybrid_failed and not degraded_outside))

    for cls, expected in REFUSALS.items():
        got = totals.get(cls, Counter())
        wrong = sum(n for code, n in got.items() if code not in expected)
        rows.append((f"{cls} requests always refused with {' / '.join(sorted(expected))}",
                     ", ".join(f"{code} {n:,}" for code, n in sorted(got.items())), wrong == 0 and bool(got)))

    sent = sum(sum(t.values()) for t in totals.values())
    dropped = sum(second.get("not_sent", 0) for second in results["seconds"])
    rows.append(("the load generator kept its schedule (a call more than 20 ms late is dropped, not sent in a burst)",
                 f"{dropped:,} of {sent + dropped:,} calls dropped ({dropped / max(sent + dropped, 1):.3%})",
                 dropped <= 0.001 * (sent + dropped)))
    hung = sum(t.get("Hung", 0) for t in totals.values())
    late = sum(past_deadline.values())
    rows.append(("no request hangs past its deadline", f"{hung} without an answer, {late} answered > 100 ms after "
                 "their deadline", hung == 0 and late == 0))

    writes = [e for e in results["events"] if e["event"].startswith("policy")]
    valid = sum(1 for e in writes if e["event"] != "policy_invalid")
    reloads = results["reloads"]
    rows.append(("policy rewrites applied, the invalid one refused (the running policy kept)",
                 f"{len(writes)} writes: applied {reloads['applied']:g}, rejected {reloads['rejected']:g}",
                 reloads["applied"] == valid and reloads["rejected"] == 1))

    rss = results["rss"]
    tenth = results["duration_s"] / 10
    early = statistics.median(s["rss_mb"] for s in rss if tenth <= s["t"] < 2 * tenth)
    late_rss = statistics.median(s["rss_mb"] for s in rss if s["t"] >= 9 * tenth)
    rows.append((f"RSS flat (last tenth within {RSS_GROWTH:.0%} of the second tenth)",
                 f"{early:.1f} MB → {late_rss:.1f} MB ({late_rss / early - 1:+.1%}), peak "
                 f"{max(s['rss_mb'] for s in rss):.1f} MB", late_rss <= early * (1 + RSS_GROWTH)))
    rows.append(("the gateway stays up and exits cleanly on SIGTERM",
                 f"alive at the end: {results['gateway_alive']}, exit code {results['gateway_exit_code']}",
                 results["gateway_alive"] and results["gateway_exit_code"] == 0))
    return rows, {"totals": totals, "windows": windows}


def charts(results: dict, windows: list[dict]) -> dict[str, str]:
    duration = results["duration_s"]
    bands = [(w["down"], w["recovered"], f"backend down at {w['down']:g}s, recovered at {w['recovered']:g}s")
             for w in windows]
    marks = [(e["t"], f"{e['event']}: {e.get('detail', '')}") for e in results["events"] if e["event"].startswith("policy")]
    # The last second is partial (the generator stops mid-way): left out of the plots.
    seconds = [s for s in results["seconds"] if s["t"] < duration]

    def per_second(cls: str, value) -> list[tuple[float, float]]:
        return [(s["t"], value(s)) for s in seconds if s["class"] == cls]

    def per_ten_seconds(cls: str, value) -> list[tuple[float, float]]:
        """Mean per second over 10-second windows (bad requests rotate shapes, so single seconds alternate)."""
        windows: dict[int, list[float]] = {}
        for t, v in per_second(cls, value):
            windows.setdefault(int(t // 10), []).append(v)
        return [(10 * w + 5, sum(vs) / len(vs)) for w, vs in sorted(windows.items())]

    def not_ok(s: dict) -> float:
        return sum(n for code, n in s["codes"].items() if code != "Ok")

    structured = Chart("Structured requests per second", "calls / s", duration, bands=bands, marks=marks, series=[
        Series("OK", "#2f7ed8", per_second("structured", lambda s: s["codes"].get("Ok", 0))),
        Series("not OK", "#d62728", per_second("structured", not_ok)),
    ])
    latency = Chart("Structured request latency (client side)", "ms (log)", duration, log_y=True, bands=bands,
                    marks=marks, series=[
                        Series("p50", "#2f7ed8", per_second("structured", lambda s: s["p50_ms"])),
                        Series("p99", "#ff7f0e", per_second("structured", lambda s: s["p99_ms"])),
                        Series("max", "#999999", per_second("structured", lambda s: s["max_ms"])),
                    ])
    calls = results["llm_calls"]

    def dots(cls: str, test) -> list[tuple[float, float]]:
        return [(c["start_ms"] / 1e3, c["latency_ms"] / 1e3) for c in calls if c["class"] == cls and test(c)]

    llm = Chart("LLM calls: when each started and how long it took", "seconds (log)", duration, log_y=True,
                bands=bands, marks=marks, series=[
                    Series("NL answered", "#2ca02c", dots("nl", lambda c: c["code"] == "Ok"), dots=True),
                    Series("NL failed", "#d62728", dots("nl", lambda c: c["code"] != "Ok"), dots=True),
                    Series("hybrid with explanation", "#1f77b4", dots("hybrid", lambda c: c["code"] == "Ok" and not c["degraded"]), dots=True),
                    Series("hybrid score only", "#ff7f0e", dots("hybrid", lambda c: c["degraded"]), dots=True),
                ])
    refused = Chart("Bad requests per second (10-second means), by answer", "calls / s", duration, marks=marks, series=[
        Series(f"{cls}: {code}", color, per_ten_seconds(cls, lambda s, code=code: s["codes"].get(code, 0)))
        for (cls, code), color in zip(
            [(cls, code) for cls, codes in REFUSALS.items() for code in sorted(codes)],
            ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"])
    ] + [Series("any other answer", "#d62728", sorted(wrong_answers(seconds).items()))])
    rss = Chart("Gateway resident memory", "MB", duration, bands=bands, marks=marks, series=[
        Series("RSS", "#2f7ed8", [(s["t"], s["rss_mb"]) for s in results["rss"]])])
    return {"soak-structured.svg": structured.svg(), "soak-latency.svg": latency.svg(), "soak-llm.svg": llm.svg(),
            "soak-refusals.svg": refused.svg(), "soak-rss.svg": rss.svg()}


def wrong_answers(seconds: list[dict]) -> dict[float, int]:
    """Per second, bad requests answered with anything but their expected statuses."""
    wrong: dict[float, int] = {}
    for second in seconds:
        expected = REFUSALS.get(second["class"])
        n = 0 if expected is None else sum(n for code, n in second["codes"].items() if code not in expected)
        wrong[second["t"]] = wrong.get(second["t"], 0) + n
    return wrong


def markdown(results: dict, rows: list, summary: dict) -> str:
    m = results["machine"]
    rates = results["rates"]
    cap = results["capacity"]
    lines = [
        "# Chaos soak",
        "",
        f"Generated by `evals/soak/run.sh` (commit {m['commit']}, {m['date']}, {m['cores']} × {m['cpu']}); do not "
        "edit by hand. The gateway ran its default config with authentication required and the real local LLM "
        "backend (llama-server, SmolLM2-135M) on a core of its own (CPU "
        f"{results['cpus']['backend']}; the gateway and the load generator on CPU {results['cpus']['gateway_and_callers']}), "
        "under open-loop mixed traffic for "
        f"{results['duration_s']} s while the backend was killed (SIGKILL) and restarted twice, the policy file was "
        "replaced five times (three edits, one invalid, one back to the shipped file), and malformed, oversized and "
        "unauthenticated requests were mixed in. Deadlines: "
        f"{results['deadline_ms']} ms for requests that do not wait on the LLM, {results['llm_deadline_ms'] / 1000:g} s for those that do.",
        "",
        "## Verdict",
        "",
        "| expectation | measured | |",
        "|---|---|---|",
    ]
    lines += [f"| {what} | {measured} | {'met' if ok else '**not met**'} |" for what, measured, ok in rows]
    lines += [
        "",
        "## Load",
        "",
        f"Each class ran at {results['load_share']:.0%} of its capacity, measured first: the LLM classes' closed "
        f"loop (NL {cap['llm_closed_loop']['nl']['ok_per_s']:.2f}/s, hybrid "
        f"{cap['llm_closed_loop']['hybrid']['ok_per_s']:.2f}/s: 4 slots on one core); the structured path's as the "
        "highest open-loop rate it sustained beside them with no error, no dropped call and every second's p99 under "
        f"50 ms ({cap['structured_sustained']:,.0f}/s), stepping up to its closed-loop maximum "
        f"({cap['structured_closed_loop']['ok_per_s']:,.0f}/s):",
        "",
        "| step (requests/s) | errors | dropped by the generator | worst second's p99 (ms) |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {step['rate']:,.0f} | {step['errors']} | {step['dropped']} | {step['worst_second_p99_ms']} |"
              for step in cap["structured_steps"]]
    lines += [
        "",
        "| class | rate (requests/s) | calls | answers |",
        "|---|---:|---:|---|",
    ]
    for cls, rate in rates.items():
        got = summary["totals"].get(cls, Counter())
        lines.append(f"| {cls} | {rate:,.2f} | {sum(got.values()):,} | "
                     + ", ".join(f"{code} {n:,}" for code, n in sorted(got.items())) + " |")
    lines += ["", "## Timeline", "", "| t (s) | event |", "|---:|---|"]
    for e in results["events"]:
        detail = e.get("detail", "")
        if "ready_after_s" in e:
            detail = f"answering /health {e['ready_after_s']} s later"
        if "reloads_after" in e:
            r = e["reloads_after"]
            detail += f" (reloads so far: applied {r['applied']:g}, rejected {r['rejected']:g})"
        lines.append(f"| {e['t']:.1f} | {e['event'].replace('_', ' ')}{': ' + detail if detail else ''} |")
    lines += ["", "Outages, from the kill to the first LLM answer after the restart (the circuit breaker stays open "
              "`breaker_open_for` after its last failure, then lets one probe through):", ""]
    for w in summary["windows"]:
        lines.append(f"- down at {w['down']:.1f} s, backend back at {w['back']:.1f} s, first answer at "
                     f"{w['recovered']:.1f} s ({w['recovery_s']:.1f} s after it was back)")
    lines += ["", "## Plots", ""]
    for name, title in [("soak-structured.svg", "structured throughput"), ("soak-latency.svg", "structured latency"),
                        ("soak-llm.svg", "LLM calls"), ("soak-refusals.svg", "bad requests"), ("soak-rss.svg", "RSS")]:
        lines += [f"![{title}]({name})", ""]
    return "\n".join(lines)


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    rows, summary = judge(results)
    for name, svg in charts(results, summary["windows"]).items():
        (out / name).write_text(svg)
    (out / "REPORT.md").write_text(markdown(results, rows, summary))
    failed = [what for what, _, ok in rows if not ok]
    for what in failed:
        print(f"soak: expectation not met: {what}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
