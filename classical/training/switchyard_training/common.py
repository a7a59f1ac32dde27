"""Helpers shared by both trainers: paths, seeds, hashing, calibration metrics, ONNX metadata."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import onnx

SEED = 20261126

CLASSICAL_DIR = Path(__file__).resolve().parents[2]
DATA_DIR = CLASSICAL_DIR / "data"
MODELS_DIR = CLASSICAL_DIR / "models"
TRAINING_COMMAND = "classical/training/train.sh"


def seed_everything() -> None:
    """Fix every random source the pipeline touches."""
    random.seed(SEED)
    np.random.seed(SEED)


def sha256_files(paths: list[Path]) -> str:
    """One sha256 over the files' bytes, in the given order (names included so a rename counts)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def reliability_table(y_true: np.ndarray, prob: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins over [0, 1]: count, mean predicted probability and observed rate in each."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(prob, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        rows.append(
            {
                "bin": f"[{edges[b]:.1f}, {edges[b + 1]:.1f}{']' if b == bins - 1 else ')'}",
                "count": count,
                "mean_predicted": round(float(prob[mask].mean()), 4) if count else None,
                "observed_rate": round(float(y_true[mask].mean()), 4) if count else None,
            }
        )
    return rows


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: sum over bins of |observed - predicted| weighted by the bin's share."""
    total = len(prob)
    ece = 0.0
    for row in reliability_table(y_true, prob, bins):
        if row["count"]:
            ece += row["count"] / total * abs(row["observed_rate"] - row["mean_predicted"])
    return ece


def set_metadata(model: onnx.ModelProto, props: dict[str, object]) -> None:
    """Write `props` into the model's metadata_props; non-string values are stored as compact JSON.

    The graph is also named after the model: skl2onnx names it with a random UUID, which would make every
    retrain a new file even when nothing else changed.
    """
    model.graph.name = str(props["switchyard.model_name"])
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def write_json(path: Path, payload: object) -> None:
    """Stable, diff-friendly JSON."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def rounded(value: float, digits: int = 4) -> float:
    """Round a metric for reports so reruns compare equal despite float noise in the last bits."""
    return round(float(value), digits)
