"""Train, evaluate and export both Switchyard models. Run through `train.sh`, which pins the environment."""

from __future__ import annotations

import argparse
import warnings

from switchyard_training import churn, classifier, common, reference_profile, tracking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["churn", "classifier", "profiles"],
        help="train one model instead of both, or only rewrite the drift reference profiles")
    args = parser.parse_args()
    # skl2onnx warns about text-vectorizer options it cannot verify; `onnx_vs_sklearn_max_abs_diff` in each
    # metrics.json is the real check.
    warnings.filterwarnings("ignore", category=UserWarning, module="skl2onnx")
    common.seed_everything()
    if args.only in (None, "churn"):
        metrics = churn.train()
        print(f"churn-scorer: test {({k: v for k, v in metrics['test'].items() if k != 'reliability'})}")
    if args.only in (None, "classifier"):
        metrics = classifier.train()
        print(f"request-classifier: val {metrics['clinc150_val']} records {metrics['record_requests']['routing_accuracy_pct']}")
    # The profiles describe the models as exported, so they are written after any retrain.
    print(f"reference profiles: drifted signals per fixture stream {reference_profile.write()}")
    # Every training run is logged and registered (MLflow; tracking.py says where).
    trained = {"churn": [churn], "classifier": [classifier], None: [churn, classifier]}.get(args.only, [])
    for model in trained:
        print(f"mlflow: {tracking.log_model_dir(common.MODELS_DIR / model.NAME / model.VERSION)}")


if __name__ == "__main__":
    main()
