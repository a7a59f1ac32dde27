"""Reference profiles for drift monitoring (issue 16): what each model's inputs and outputs looked like at training
time, as bin counts, written beside the model as `reference_profile.json`. The gateway counts live requests into
the same bins over a sliding window and compares the two distributions (Jensen-Shannon distance, PSI).

Binning contract (the gateway's `classical::profile` implements the same): numeric values and edges are float32;
a value falls in bin `i` = the number of edges strictly below it, so bins are (-inf, e0], (e0, e1], ..., (e_last,
inf); a nullable field's null is one more bin after those. A categorical field has one bin per schema category, in
schema order. Signals:
- churn-scorer: every schema field (numeric: deciles of train.csv, deduplicated; categorical: the categories) and
  `prediction`, the calibrated churn probability, in tenths.
- request-classifier: `label_group`, the group of the linear model's decided label (its own out-of-scope threshold
  applied), and `confidence`, its top probability, in tenths; over the evals' labelled requests (CLINC150
  validation without a record, the record phrasings with one), the set every classifier change is judged on.

`drift_fixtures.json` (beside the profile) holds replayed streams' counts with scipy's Jensen-Shannon distance and a
PSI computed as the symmetric Kullback-Leibler divergence (`scipy.special.rel_entr`) of the floored proportions:
the gateway's statistics are tested against them on the same counts.
"""

from __future__ import annotations

import json
import numpy as np
import onnxruntime as ort
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from . import churn, classifier, common

PROFILE_FILE = "reference_profile.json"
FIXTURES_FILE = "drift_fixtures.json"
NUMERIC_QUANTILES = [q / 10 for q in range(1, 10)]
TENTHS = [q / 10 for q in range(1, 10)]
# Evidently's and NannyML's defaults: drift at JS distance >= 0.1 or PSI >= 0.2.
JS_THRESHOLD = 0.1
PSI_THRESHOLD = 0.2
# Empty bins are floored at this proportion for PSI (as Evidently does), so a new bin gives a large, finite value.
PSI_FLOOR = 1e-4
EVALS_RECORD_PHRASINGS = common.CLASSICAL_DIR.parent / "evals" / "datasets" / "record_phrasings.jsonl"
# The shifted stream of the drift test: every test.csv row with these two fields rewritten.
SHIFT = "test.csv with contract = Month-to-month and tenure = row index mod 7 (0-6 months)"


def numeric_bins(values: np.ndarray, edges: list[float], nullable: bool) -> np.ndarray:
    """Counts per bin (see the module doc): float32 values against float32 edges, nulls last when nullable."""
    values = np.asarray(values, dtype=np.float32)
    edges32 = np.asarray(edges, dtype=np.float32)
    missing = np.isnan(values)
    index = np.searchsorted(edges32, values[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    if nullable:
        counts = np.append(counts, missing.sum())
    elif missing.any():
        raise ValueError("null in a field that is not nullable")
    return counts.astype(int)


def category_bins(values, categories: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(categories)}
    return np.bincount([index[v] for v in values], minlength=len(categories)).astype(int)


def deciles(values: np.ndarray) -> list[float]:
    present = np.asarray(values, dtype=np.float64)
    present = present[~np.isnan(present)]
    return [float(e) for e in np.unique(np.quantile(present, NUMERIC_QUANTILES).astype(np.float32))]


def scorer_signals(session: ort.InferenceSession, schema: list[dict], features: pd.DataFrame) -> list[dict]:
    """One signal per schema field, bins fitted on `features`, plus `prediction`."""
    signals = []
    for spec in schema:
        values = features[spec["name"]].to_numpy()
        if spec["type"] == "string":
            signals.append({"name": spec["name"], "kind": "categorical", "categories": spec["categories"]})
        else:
            signals.append(
                {"name": spec["name"], "kind": "numeric", "edges": deciles(values), "nullable": spec["nullable"]}
            )
    signals.append({"name": "prediction", "kind": "numeric", "edges": TENTHS, "nullable": False})
    return signals


def scorer_counts(signals: list[dict], session: ort.InferenceSession, features: pd.DataFrame) -> dict[str, list[int]]:
    probability = session.run(["probabilities"], churn.onnx_feeds(features))[0][:, 1]
    counts = {}
    for signal in signals:
        if signal["name"] == "prediction":
            counts["prediction"] = numeric_bins(probability, signal["edges"], False)
        elif signal["kind"] == "categorical":
            counts[signal["name"]] = category_bins(features[signal["name"]], signal["categories"])
        else:
            counts[signal["name"]] = numeric_bins(features[signal["name"]].to_numpy(), signal["edges"], signal["nullable"])
    return {name: [int(c) for c in values] for name, values in counts.items()}


def shifted(features: pd.DataFrame) -> pd.DataFrame:
    """The drift test's shifted stream (SHIFT): only contract and tenure change."""
    out = features.copy()
    out["contract"] = "Month-to-month"
    out["tenure"] = (np.arange(len(out)) % 7).astype(np.float32)
    return out


def classifier_requests() -> tuple[list[str], list[float]]:
    """The evals' labelled requests: CLINC150 validation (in scope and out of scope) without a record, then the
    record phrasings with one, in the files' order."""
    data = json.loads((classifier.CLINC / "clinc150_train_val.json").read_text())
    texts = [t for t, _ in data["val"]] + [t for t, _ in data["oos_val"]]
    flags = [0.0] * len(texts)
    for line in EVALS_RECORD_PHRASINGS.read_text().splitlines():
        if line.strip():
            texts.append(json.loads(line)["text"])
            flags.append(1.0)
    return texts, flags


def classifier_counts(session: ort.InferenceSession, texts: list[str], flags: list[float]) -> tuple[list[dict], dict]:
    meta = session.get_modelmeta().custom_metadata_map
    labels = json.loads(meta["switchyard.labels"])
    threshold = float(meta["switchyard.out_of_scope_threshold"])
    oos = meta["switchyard.out_of_scope_label"]
    groups = sorted({label["group"] for label in labels})
    group_of = [label["group"] for label in labels]
    oos_group = next(label["group"] for label in labels if label["label"] == oos)
    prob = classifier.run(session, texts, flags)
    top = prob.max(axis=1)
    decided = [oos_group if p < np.float32(threshold) else group_of[i] for i, p in zip(prob.argmax(axis=1), top)]
    signals = [
        {"name": "label_group", "kind": "categorical", "categories": groups},
        {"name": "confidence", "kind": "numeric", "edges": TENTHS, "nullable": False},
    ]
    counts = {
        "label_group": [int(c) for c in category_bins(decided, groups)],
        "confidence": [int(c) for c in numeric_bins(top, TENTHS, False)],
    }
    return signals, counts


def proportions(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum()


def statistics(reference: list[int], current: list[int]) -> dict:
    """scipy's Jensen-Shannon distance (natural log) and PSI as the symmetric KL divergence of the floored
    proportions: the independent check of the gateway's own arithmetic."""
    r, c = proportions(reference), proportions(current)
    rf, cf = np.maximum(r, PSI_FLOOR), np.maximum(c, PSI_FLOOR)
    js = float(jensenshannon(r, c))
    psi = float(np.sum(rel_entr(cf, rf) + rel_entr(rf, cf)))
    return {"js_distance": js, "psi": psi, "drifted": bool(js >= JS_THRESHOLD or psi >= PSI_THRESHOLD)}


def stream(name: str, profile: dict, counts: dict) -> dict:
    reference = {s["name"]: s["reference"] for s in profile["signals"]}
    per_signal = {k: {"counts": v, **statistics(reference[k], v)} for k, v in counts.items()}
    return {"stream": name, "signals": per_signal, "drifted": sorted(k for k, v in per_signal.items() if v["drifted"])}


def profile_document(model: str, version: str, source: str, rows: int, signals: list[dict], counts: dict) -> dict:
    return {
        "model": model,
        "version": version,
        "source": source,
        "rows": rows,
        "binning": "float32; bin i = number of edges below the value; a nullable field's null is the last bin",
        "signals": [{**s, "reference": counts[s["name"]]} for s in signals],
    }


def write() -> dict:
    """Writes both models' profiles and drift fixtures; returns what the fixtures flag, for the training log."""
    out = {}
    scorer_dir = common.MODELS_DIR / churn.NAME / churn.VERSION
    session = ort.InferenceSession(str(scorer_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    schema = json.loads(session.get_modelmeta().custom_metadata_map["switchyard.feature_schema"])
    train_x, _ = churn.load(churn.DATA / "train.csv")
    test_x, _ = churn.load(churn.DATA / "test.csv")
    signals = scorer_signals(session, schema, train_x)
    profile = profile_document(
        churn.NAME, churn.VERSION, "train.csv", len(train_x), signals, scorer_counts(signals, session, train_x)
    )
    common.write_json(scorer_dir / PROFILE_FILE, profile)
    fixtures = {
        "model": churn.NAME,
        "version": churn.VERSION,
        "thresholds": {"js_distance": JS_THRESHOLD, "psi": PSI_THRESHOLD, "psi_floor": PSI_FLOOR},
        "streams": [
            stream("test.csv", profile, scorer_counts(signals, session, test_x)),
            stream(SHIFT, profile, scorer_counts(signals, session, shifted(test_x))),
        ],
    }
    common.write_json(scorer_dir / FIXTURES_FILE, fixtures)
    out[churn.NAME] = {s["stream"]: s["drifted"] for s in fixtures["streams"]}

    classifier_dir = common.MODELS_DIR / classifier.NAME / classifier.VERSION
    session = ort.InferenceSession(str(classifier_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    texts, flags = classifier_requests()
    signals, counts = classifier_counts(session, texts, flags)
    profile = profile_document(
        classifier.NAME,
        classifier.VERSION,
        "the evals' labelled requests: CLINC150 val + oos_val (no record), evals/datasets/record_phrasings.jsonl (with a record)",
        len(texts),
        signals,
        counts,
    )
    common.write_json(classifier_dir / PROFILE_FILE, profile)
    banking = json.loads((classifier.CLINC / "domains.json").read_text())["banking"]
    data = json.loads((classifier.CLINC / "clinc150_train_val.json").read_text())
    banking_texts = [t for t, intent in data["val"] if intent in banking]
    fixtures = {
        "model": classifier.NAME,
        "version": classifier.VERSION,
        "thresholds": {"js_distance": JS_THRESHOLD, "psi": PSI_THRESHOLD, "psi_floor": PSI_FLOOR},
        "streams": [
            stream("reference requests", profile, counts),
            stream(
                "CLINC150 val, banking domain only",
                profile,
                classifier_counts(session, banking_texts, [0.0] * len(banking_texts))[1],
            ),
        ],
    }
    common.write_json(classifier_dir / FIXTURES_FILE, fixtures)
    out[classifier.NAME] = {s["stream"]: s["drifted"] for s in fixtures["streams"]}
    return out

