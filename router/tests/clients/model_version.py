"""Makes a new version of a model for router/tests/model_swap.rs: copies a version directory and sets the version
in the model's metadata (and in its reference profile), the way a retrain would publish one.

Usage: python model_version.py SOURCE_DIR TARGET_DIR VERSION
"""

import json
import shutil
import sys
from pathlib import Path

import onnx


def main() -> None:
    source, target, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    shutil.copytree(source, target)
    model = onnx.load(str(target / "model.onnx"))
    for entry in model.metadata_props:
        if entry.key == "switchyard.model_version":
            entry.value = version
    onnx.save(model, str(target / "model.onnx"))
    profile = target / "reference_profile.json"
    if profile.exists():
        document = json.loads(profile.read_text())
        document["version"] = version
        profile.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
