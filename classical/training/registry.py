"""Switchyard's model registry on MLflow (a local SQLite store unless MLFLOW_TRACKING_URI says otherwise).

    registry.py log MODEL_DIR [--alias champion]    log a model version directory as a run, register it
    registry.py alias NAME REGISTERED_VERSION ALIAS set an alias (champion, challenger) on a registered version
    registry.py export NAME@ALIAS --repository DIR  export a registered version into DIR/NAME/<version>/ with
                                                    mlflow_run.json (the gateway reports the run it serves)
    registry.py experiments                         log the variants of experiments/variants.json as runs

Training logs every run itself (train.py, train_encoder.py); this is for the rest of a version's life.
Run it in the training environment (train.sh's venv, or deploy/setup/python-env.sh classical/training/requirements.txt).
"""

import argparse
import json
from pathlib import Path

from switchyard_training import tracking

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    log = commands.add_parser("log")
    log.add_argument("model_dir", type=Path)
    log.add_argument("--alias")
    alias = commands.add_parser("alias")
    alias.add_argument("name")
    alias.add_argument("version")
    alias.add_argument("alias")
    export = commands.add_parser("export")
    export.add_argument("reference", help="NAME@ALIAS or NAME/REGISTERED_VERSION")
    export.add_argument("--repository", type=Path, required=True)
    commands.add_parser("experiments")
    args = parser.parse_args()
    if args.command == "log":
        print(json.dumps(tracking.log_model_dir(args.model_dir, args.alias)))
    elif args.command == "alias":
        tracking.set_alias(args.name, args.version, args.alias)
    elif args.command == "export":
        print(tracking.export(args.reference, args.repository))
    else:
        print(json.dumps(tracking.log_variants(HERE / "experiments" / "variants.json")))


if __name__ == "__main__":
    main()
