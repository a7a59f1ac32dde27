"""MLflow tracking and registry for Switchyard's models (issue 16): every training run is logged (parameters, data
sha256s, metrics, model card, ONNX file and everything else written beside it) and registered as a version of its
model; a registered version exported by alias (`champion`, `challenger`) lands in the gateway's model repository
layout with an `mlflow_run.json` naming the run, which the gateway reports for the version it serves.

The store is `MLFLOW_TRACKING_URI` when set, else a local SQLite store under the cache
(`$SWITCHYARD_CACHE/mlflow`, default `~/.cache/switchyard/mlflow`): no server needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import mlflow
import onnx
from mlflow import MlflowClient

from . import common

RUN_FILE = "mlflow_run.json"


def store() -> tuple[str, str]:
    """The tracking URI and where a new experiment's artifacts go."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    root = Path(os.environ.get("SWITCHYARD_CACHE", Path.home() / ".cache" / "switchyard")) / "mlflow"
    if uri is None:
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root / 'mlflow.db'}"
    return uri, (root / "artifacts").as_uri()


def client() -> MlflowClient:
    uri, _ = store()
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def experiment(name: str) -> str:
    """The experiment's id, created (artifacts under the store's root) when it does not exist."""
    c = client()
    found = c.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return c.create_experiment(name, artifact_location=f"{store()[1]}/{name}")


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested dicts as dotted keys (lists of scalars kept whole as strings)."""
    out: dict[str, object] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
    else:
        out[prefix.rstrip(".")] = value
    return out


def numeric(flat: dict[str, object]) -> dict[str, float]:
    return {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=common.CLASSICAL_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_metadata(model_dir: Path) -> dict[str, str]:
    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def log_model_dir(model_dir: Path, alias: str | None = None) -> dict:
    """Logs one model version directory as a run of the experiment named after the model, registers it as a version
    of the registered model of that name, and sets `alias` on it when given. Returns the run and version."""
    meta = model_metadata(model_dir)
    name, version = meta["switchyard.model_name"], meta["switchyard.model_version"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    # What chose the model (selection, calibration, threshold, the encoder's recipe and base) is its parameters.
    params = flatten({k: metrics[k] for k in ("selection", "calibration", "threshold", "recipe", "base") if k in metrics})
    c = client()
    with mlflow.start_run(experiment_id=experiment(name), run_name=f"{name} {version}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k.replace("%", "pct"): v for k, v in numeric(flatten(metrics)).items()})
        mlflow.set_tags(
            {
                "switchyard.model_name": name,
                "switchyard.model_version": version,
                "switchyard.training_data_sha256": meta.get("switchyard.training_data_sha256", ""),
                "switchyard.training_command": meta.get("switchyard.training_command", ""),
                "git_commit": git_commit(),
            }
        )
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        run_id = run.info.run_id
        artifact_uri = run.info.artifact_uri
    if not _registered(c, name):
        c.create_registered_model(name, description=f"Switchyard's {name}; versions exported with registry.py export")
    registered = c.create_model_version(name, source=f"{artifact_uri}/model", run_id=run_id, tags={"model_version": version})
    if alias:
        c.set_registered_model_alias(name, alias, registered.version)
    return {"run_id": run_id, "registered_model": name, "registered_version": registered.version, "model_version": version}


def _registered(c: MlflowClient, name: str) -> bool:
    try:
        c.get_registered_model(name)
        return True
    except mlflow.exceptions.MlflowException:
        return False


def set_alias(name: str, version: str, alias: str) -> None:
    client().set_registered_model_alias(name, alias, version)


def export(reference: str, repository: Path) -> Path:
    """Exports `NAME@ALIAS` or `NAME/VERSION` (registry numbering) into `repository/NAME/<model version>/`, with
    `mlflow_run.json` beside the model. Refuses to overwrite a different version directory's content."""
    c = client()
    if "@" in reference:
        name, alias = reference.split("@", 1)
        registered = c.get_model_version_by_alias(name, alias)
    else:
        name, number = reference.split("/", 1)
        alias = None
        registered = c.get_model_version(name, number)
    with tempfile.TemporaryDirectory() as tmp:
        downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=registered.source, dst_path=tmp))
        version = model_metadata(downloaded)["switchyard.model_version"]
        target = repository / name / version
        if target.exists():
            raise SystemExit(f"{target} exists: a version directory is never overwritten (publish a new version)")
        staging = repository / name / f".staging-{version}"
        shutil.copytree(downloaded, staging)
        uri, _ = store()
        (staging / RUN_FILE).write_text(
            json.dumps(
                {
                    "run_id": registered.run_id,
                    "registered_model": name,
                    "registered_version": str(registered.version),
                    "alias": alias,
                    "tracking_uri": uri,
                },
                indent=2,
            )
            + "\n"
        )
        staging.rename(target)
    return target


def log_variants(path: Path) -> list[str]:
    """Logs every variant of `path` (experiments/variants.json) as a run of its experiment; returns the run ids."""
    document = json.loads(path.read_text())
    ids = []
    for group in document["experiments"]:
        experiment_id = experiment(group["name"])
        for variant in group["runs"]:
            with mlflow.start_run(experiment_id=experiment_id, run_name=variant["name"]) as run:
                mlflow.log_params({k: str(v) for k, v in variant["params"].items()})
                mlflow.log_metrics({k: float(v) for k, v in variant["metrics"].items()})
                mlflow.set_tags({"measured_by": group["measured_by"], "source": "classical/training/EXPERIMENTS.md"})
                ids.append(run.info.run_id)
    return ids
