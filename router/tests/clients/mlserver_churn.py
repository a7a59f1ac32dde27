"""Prepares an MLServer model directory serving the churn scorer as a scikit-learn pipeline (MLServer's sklearn
runtime), for router/tests/remote_scorer.rs: the shipped recipe (the candidate and calibration that
classical/models/churn-scorer/1.0.0/metrics.json records) fitted on train.csv with the training code itself, saved
with joblib, plus MLServer's settings on the given ports.

Usage: python mlserver_churn.py DIR HTTP_PORT GRPC_PORT METRICS_PORT
The fitted pipeline is cached as DIR/../churn-pipeline-<data sha256>.joblib (a fit takes ~20 s).
"""

import json
import shutil
import sys
from pathlib import Path

import joblib

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "classical" / "training"))
from switchyard_training import churn, common  # noqa: E402


def fitted(cache: Path) -> Path:
    metrics = json.loads((common.MODELS_DIR / churn.NAME / churn.VERSION / "metrics.json").read_text())
    path = cache / f"churn-pipeline-{metrics['data_sha256'][:16]}.joblib"
    if not path.exists():
        common.seed_everything()
        train_x, train_y = churn.load(churn.DATA / "train.csv")
        chosen = metrics["selection"]["chosen"]
        method = metrics["calibration"]["chosen"]
        model = churn.calibrated(train_x, churn.candidates()[chosen], method).fit(train_x, train_y)
        joblib.dump(model, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return path


def main() -> None:
    directory, http_port, grpc_port, metrics_port = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    directory.mkdir(parents=True, exist_ok=True)
    model_dir = directory / "churn-sklearn"
    model_dir.mkdir(exist_ok=True)
    shutil.copy(fitted(directory.parent), model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "churn-sklearn",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1.0.0"},
            }
        )
    )
    (directory / "settings.json").write_text(
        json.dumps(
            {
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )


if __name__ == "__main__":
    main()
