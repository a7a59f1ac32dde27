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
    from switchyard_training import encoder_export

    encoder_export.export(checkpoint)


if __name__ == "__main__":
    main()
