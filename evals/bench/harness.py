"""Process and measurement helpers shared by the benchmark (bench.py) and the chaos soak (evals/soak/soak.py).

Standard library only.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (uvicorn workers)."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += tree_cpu_seconds(int(child))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, timeout: float = 60.0, interval: float = 0.002) -> float:
    """Seconds until `url` answers 200."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def start(args: list[str], env: dict | None = None, log_file: Path | None = None) -> subprocess.Popen:
    out = open(log_file, "wb") if log_file else subprocess.DEVNULL
    return subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)


# Gateway logs: an access line per request is ~600 MB a run, so they are removed once a run has succeeded.
LOG_DIRS: list[Path] = []


def gateway_log() -> Path:
    """A fresh log file for a gateway, outside its config directory (the policy watcher would see every write)."""
    directory = Path(tempfile.mkdtemp(prefix="switchyard-bench-log-"))
    LOG_DIRS.append(directory)
    return directory / "gateway.log"


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round((len(sorted_values) - 1) * q))]


def machine() -> dict:
    """The machine and the commit a run measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), "unknown")
    flags = set(next((l.split(":", 1)[1].split() for l in cpuinfo if l.startswith("flags")), []))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    # ONNX Runtime picks its kernels by these (classical/src/kernels.rs): the encoder's int8 products run u8×u8
    # (exact, slower) where AVX2 or AVX-512 has no VNNI.
    isa = {"avx2": "avx2" in flags, "avx512": "avx512bw" in flags,
           "vnni": "avx512_vnni" in flags or "avx_vnni" in flags}
    return {"cpu": cpu, "isa": isa, "cores": os.cpu_count(), "kernel": platform.release(), "commit": commit + ("+dirty" if dirty else ""),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def deploy_config(grpc: int, admin: int, llm_base_url: str) -> str:
    """The shipped config (deploy/config/switchyard.toml) on these ports and backend, with absolute model paths, for
    a gateway whose config lives in a scratch directory."""
    text = (ROOT / "deploy/config/switchyard.toml").read_text()
    text = text.replace('listen = "127.0.0.1:50051"', f'listen = "127.0.0.1:{grpc}"')
    text = text.replace('admin_listen = "127.0.0.1:9464"', f'admin_listen = "127.0.0.1:{admin}"')
    text = text.replace('base_url = "http://127.0.0.1:8081/v1"', f'base_url = "{llm_base_url}"')
    return text.replace('"../../classical/', f'"{ROOT}/classical/')


def metrics_text(admin: str) -> str:
    """The gateway's Prometheus exposition (`admin` is the admin port's base URL)."""
    with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as response:
        return response.read().decode()
