"""Fine-tune, export, quantise and check the request encoder. Run through `train_encoder.sh`."""

from __future__ import annotations

import argparse

from switchyard_training import common, encoder_finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--finetune-only", action="store_true", help="stop after the (cached) fine-tuning stage")
    args = parser.parse_args()
    common.seed_everything()
    checkpoint = encoder_finetune.finetune()
    if args.finetune_only:
        return
    from switchyard_training import encoder_export, tracking

    encoder_export.export(checkpoint)
    # Every training run is logged and registered (MLflow; tracking.py says where).
    print(f"mlflow: {tracking.log_model_dir(common.MODELS_DIR / encoder_export.NAME / encoder_export.VERSION)}")


if __name__ == "__main__":
    main()
