"""Churn scorer: Telco customer record -> calibrated churn probability, all preprocessing in the ONNX graph."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from . import common
from .model_card import churn_card

NAME = "churn-scorer"
VERSION = "1.0.0"
DATA = common.DATA_DIR / "telco_churn"
TARGET = "churn"
IDENTIFIER = "customerid"
NUMERIC = ["seniorcitizen", "tenure", "monthlycharges", "totalcharges"]
# Plausible ranges: wide enough for any real customer, narrow enough to catch unit mistakes
# (cents for dollars, days for months). The training data's own range is recorded beside them.
PLAUSIBLE = {
    "seniorcitizen": (0, 1),
    "tenure": (0, 120),
    "monthlycharges": (0, 500),
    "totalcharges": (0, 60000),
}
INTEGER = {"seniorcitizen", "tenure"}
# Only `totalcharges` may be blank: the source leaves it empty for customers with tenure 0.
NULLABLE = {"totalcharges"}
CV_FOLDS = 5


def load(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw features (CSV column names, customerid dropped) and the 0/1 target."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    y = (frame[TARGET] == "Yes").astype(int).to_numpy()
    features = frame.drop(columns=[IDENTIFIER, TARGET])
    for column in NUMERIC:
        features[column] = pd.to_numeric(features[column].str.strip().replace("", np.nan)).astype(np.float32)
    for column in categorical_columns(features):
        features[column] = features[column].astype(object)
    return features, y


def categorical_columns(features: pd.DataFrame) -> list[str]:
    return [c for c in features.columns if c not in NUMERIC]


def preprocessing(features: pd.DataFrame, scale: bool) -> ColumnTransformer:
    """Blank totalcharges means nothing billed yet (tenure 0), so it is imputed as 0, inside the graph.

    Only linear models get a scaler: trees do not need one, and scaling in float32 (ONNX) versus float64
    (scikit-learn) moves values across split thresholds, so the exported trees would disagree with the trained ones.
    """
    steps = [("impute", SimpleImputer(strategy="constant", fill_value=0.0))]
    if scale:
        steps.append(("scale", StandardScaler()))
    numeric = Pipeline(steps)
    return ColumnTransformer(
        [
            ("numeric", numeric, NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical_columns(features)),
        ]
    )


def candidates() -> dict[str, object]:
    """The model families compared by cross-validation (issue: at least LR and a gradient-boosted model)."""
    return {
        "logistic_regression_c1": LogisticRegression(C=1.0, max_iter=5000),
        "logistic_regression_c0.1": LogisticRegression(C=0.1, max_iter=5000),
        "gradient_boosting_d2": GradientBoostingClassifier(
            n_estimators=300, learning_rate=0.05, max_depth=2, subsample=0.8, random_state=common.SEED
        ),
        "gradient_boosting_d3": GradientBoostingClassifier(
            n_estimators=300, learning_rate=0.03, max_depth=3, subsample=0.8, random_state=common.SEED
        ),
    }


def folds() -> StratifiedKFold:
    return StratifiedKFold(CV_FOLDS, shuffle=True, random_state=common.SEED)


def needs_scaling(estimator: object) -> bool:
    return isinstance(estimator, LogisticRegression)


def calibrated(features: pd.DataFrame, estimator: object, method: str) -> Pipeline:
    """Preprocessing, then one base model refit on all data plus a calibrator fit on its out-of-fold scores.

    The calibrator wraps the model only (skl2onnx converts a calibrated model, not a calibrated pipeline);
    preprocessing is unsupervised, so fitting it outside the calibration folds leaks no labels.
    """
    model = CalibratedClassifierCV(estimator, method=method, cv=folds(), ensemble=False)
    return Pipeline([("preprocess", preprocessing(features, needs_scaling(estimator))), ("model", model)])


# Knots per isotonic calibrator once densified (see `densify_isotonic`).
ISOTONIC_KNOTS = 8192


def densify_isotonic(model: Pipeline) -> None:
    """Make the exported isotonic calibrator agree with the trained one.

    scikit-learn interpolates linearly between isotonic knots; skl2onnx's converter returns the nearest knot's value.
    Adding knots on a fine grid (values interpolated, so the scikit-learn function is unchanged) shrinks the gap to
    the slope times half the grid step; `onnx_vs_sklearn_max_abs_diff` in metrics.json reports what remains.
    """
    calibrated_model = model.named_steps["model"]
    if calibrated_model.method != "isotonic":
        return
    for wrapper in calibrated_model.calibrated_classifiers_:
        for calibrator in wrapper.calibrators:
            knots_x, knots_y = calibrator.X_thresholds_, calibrator.y_thresholds_
            grid = np.union1d(knots_x, np.linspace(knots_x[0], knots_x[-1], ISOTONIC_KNOTS))
            calibrator.X_thresholds_ = grid
            calibrator.y_thresholds_ = np.interp(grid, knots_x, knots_y)
            calibrator._build_f(calibrator.X_thresholds_, calibrator.y_thresholds_)


def best_f1_threshold(y: np.ndarray, prob: np.ndarray) -> float:
    """The probability threshold that maximises F1 on out-of-fold predictions (grid of 0.01)."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    scores = [f1_score(y, prob >= t) for t in grid]
    return float(grid[int(np.argmax(scores))])


def feature_schema(features: pd.DataFrame) -> list[dict]:
    """Name, type, allowed categories / plausible range of every input, in the ONNX input order."""
    schema = []
    for column in features.columns:
        if column in NUMERIC:
            low, high = PLAUSIBLE[column]
            observed = features[column].dropna()
            schema.append(
                {
                    "name": column,
                    "type": "integer" if column in INTEGER else "number",
                    "min": low,
                    "max": high,
                    "nullable": column in NULLABLE,
                    "observed_min": common.rounded(observed.min(), 2),
                    "observed_max": common.rounded(observed.max(), 2),
                    # The typical customer's value: what attributions swap in to see how much this field moves
                    # the score.
                    "reference": common.rounded(observed.median(), 2),
                }
            )
        else:
            schema.append(
                {
                    "name": column,
                    "type": "string",
                    "categories": sorted(features[column].unique()),
                    "reference": str(features[column].mode().iloc[0]),
                }
            )
    return schema


def to_onnx(model: Pipeline, features: pd.DataFrame) -> onnx.ModelProto:
    inputs = [
        (c, FloatTensorType([None, 1]) if c in NUMERIC else StringTensorType([None, 1])) for c in features.columns
    ]
    return convert_sklearn(
        model, initial_types=inputs, options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3}
    )


def onnx_feeds(features: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        c: features[[c]].to_numpy().astype(np.float32 if c in NUMERIC else object) for c in features.columns
    }


def fixtures(session: ort.InferenceSession, test: pd.DataFrame) -> list[dict]:
    """Rows for the Rust parity test: ordinary test customers plus every tenure-0 (blank totalcharges) one."""
    picked = pd.concat([test.head(12), test[test["tenure"] == 0]])
    probabilities = session.run(["probabilities"], onnx_feeds(picked))[0][:, 1]
    cases = []
    for (_, row), prob in zip(picked.iterrows(), probabilities):
        record = {}
        for column in picked.columns:
            value = row[column]
            if column in NUMERIC:
                value = None if math.isnan(value) else (int(value) if column in INTEGER else float(value))
            record[column] = value
        cases.append({"features": record, "probability": float(prob)})
    return cases


def train() -> dict:
    """Select, calibrate, threshold, report on test once, export. Returns the metrics written."""
    train_x, train_y = load(DATA / "train.csv")
    test_x, test_y = load(DATA / "test.csv")

    selection = {}
    for name, estimator in candidates().items():
        pipeline = Pipeline([("preprocess", preprocessing(train_x, needs_scaling(estimator))), ("model", estimator)])
        oof = cross_val_predict(pipeline, train_x, train_y, cv=folds(), method="predict_proba")[:, 1]
        selection[name] = {"cv_roc_auc": common.rounded(roc_auc_score(train_y, oof))}
        print(f"churn: {name} cv roc-auc {selection[name]['cv_roc_auc']}", flush=True)
    chosen = max(selection, key=lambda n: selection[n]["cv_roc_auc"])

    calibration = {}
    oof_by_method = {}
    for method in ("sigmoid", "isotonic"):
        oof = cross_val_predict(calibrated(train_x, candidates()[chosen], method), train_x, train_y, cv=folds(), method="predict_proba")
        oof_by_method[method] = oof[:, 1]
        calibration[method] = {
            "cv_brier": common.rounded(brier_score_loss(train_y, oof[:, 1])),
            "cv_ece": common.rounded(common.expected_calibration_error(train_y, oof[:, 1])),
        }
        print(f"churn: calibration {method} {calibration[method]}", flush=True)
    # The policy thresholds on these probabilities, so calibration error is the criterion.
    method = min(calibration, key=lambda m: calibration[m]["cv_ece"])
    threshold = best_f1_threshold(train_y, oof_by_method[method])

    model = calibrated(train_x, candidates()[chosen], method).fit(train_x, train_y)
    densify_isotonic(model)
    sk_test = model.predict_proba(test_x)[:, 1]

    onnx_model = to_onnx(model, train_x)
    schema = feature_schema(train_x)
    data_sha = common.sha256_files([DATA / "train.csv", DATA / "test.csv"])
    common.set_metadata(
        onnx_model,
        {
            "switchyard.model_name": NAME,
            "switchyard.model_version": VERSION,
            "switchyard.model_kind": "churn_scorer",
            "switchyard.feature_schema": schema,
            "switchyard.positive_label": "churn",
            "switchyard.decision_threshold": threshold,
            "switchyard.threshold_objective": "max F1 on 5-fold out-of-fold calibrated probabilities (train.csv)",
            "switchyard.probability_output": "probabilities[:, 1]",
            "switchyard.training_data_sha256": data_sha,
            "switchyard.training_command": common.TRAINING_COMMAND,
        },
    )
    out_dir = common.MODELS_DIR / NAME / VERSION
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save_model(onnx_model, out_dir / "model.onnx")

    session = ort.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_test = session.run(["probabilities"], onnx_feeds(test_x))[0][:, 1]
    predicted = (onnx_test >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(test_y, predicted).ravel()
    metrics = {
        "model": NAME,
        "version": VERSION,
        "data_sha256": data_sha,
        "rows": {"train": int(len(train_y)), "test": int(len(test_y))},
        "positive_rate": {"train": common.rounded(train_y.mean()), "test": common.rounded(test_y.mean())},
        "selection": {"metric": "5-fold stratified CV ROC-AUC on train.csv", "candidates": selection, "chosen": chosen},
        "calibration": {"candidates": calibration, "chosen": method},
        "threshold": {"value": threshold, "objective": "max F1 on out-of-fold calibrated probabilities (train.csv)"},
        "test": {
            "roc_auc": common.rounded(roc_auc_score(test_y, onnx_test)),
            "pr_auc": common.rounded(average_precision_score(test_y, onnx_test)),
            "brier": common.rounded(brier_score_loss(test_y, onnx_test)),
            "ece_10_bins": common.rounded(common.expected_calibration_error(test_y, onnx_test)),
            "reliability": common.reliability_table(test_y, onnx_test),
            "at_threshold": {
                "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
                "precision": common.rounded(precision_score(test_y, predicted)),
                "recall": common.rounded(recall_score(test_y, predicted)),
                "f1": common.rounded(f1_score(test_y, predicted)),
            },
        },
        "onnx_vs_sklearn_max_abs_diff": float(f"{np.abs(onnx_test - sk_test).max():.1e}"),
    }
    common.write_json(out_dir / "metrics.json", metrics)
    common.write_json(
        out_dir / "parity_fixtures.json",
        {"model": NAME, "version": VERSION, "cases": fixtures(session, test_x)},
    )
    (out_dir / "MODEL_CARD.md").write_text(churn_card(metrics, schema))
    return metrics
