"""Drives Switchyard's Open Inference Protocol endpoint with the standard client, PyPI `tritonclient[grpc]`
(router/tests/inference.rs runs it and compares its answers with the Router path's).

Usage: python tritonclient_check.py HOST:PORT REQUESTS.json ANSWERS.json
REQUESTS.json: {"records": [{field: value}, ...], "texts": [[text, has_record], ...]}
ANSWERS.json: what the server said, per call (errors as their gRPC status name and message).
"""

import json
import sys

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

SCORER, CLASSIFIER = "churn-scorer", "request-classifier"


def error_of(call):
    try:
        call()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    return None


def column(values, datatype):
    if datatype == "BYTES":
        return np.array([[str(v).encode()] for v in values], dtype=np.object_)
    return np.array([[np.nan if v is None else v] for v in values], dtype=np.float32)


def main() -> None:
    address, requests_path, answers_path = sys.argv[1:4]
    requests = json.load(open(requests_path))
    client = triton.InferenceServerClient(url=address)
    out = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "server": client.get_server_metadata(as_json=True),
        "models_ready": {m: client.is_model_ready(m) for m in (SCORER, CLASSIFIER, "no-such-model")},
    }
    scorer = client.get_model_metadata(SCORER, as_json=True)
    classifier = client.get_model_metadata(CLASSIFIER, as_json=True)
    out["metadata"] = {SCORER: scorer, CLASSIFIER: classifier}

    records = requests["records"]
    inputs = []
    for tensor in scorer["inputs"]:
        values = [r[tensor["name"]] for r in records]
        infer_input = triton.InferInput(tensor["name"], [len(records), 1], tensor["datatype"])
        infer_input.set_data_from_numpy(column(values, tensor["datatype"]))
        inputs.append(infer_input)
    result = client.infer(SCORER, inputs, request_id="scorer-1")
    out["scorer"] = {
        "id": result.get_response().id,
        "version": result.get_response().model_version,
        "probability": result.as_numpy("probability").reshape(-1).astype(float).tolist(),
        "churn": result.as_numpy("churn").reshape(-1).astype(bool).tolist(),
    }

    texts = requests["texts"]
    text = triton.InferInput("text", [len(texts), 1], "BYTES")
    text.set_data_from_numpy(np.array([[t.encode()] for t, _ in texts], dtype=np.object_))
    flag = triton.InferInput("has_record", [len(texts), 1], "BOOL")
    flag.set_data_from_numpy(np.array([[r] for _, r in texts], dtype=bool))
    result = client.infer(CLASSIFIER, [text, flag], outputs=[triton.InferRequestedOutput("probabilities"), triton.InferRequestedOutput("label")])
    out["classifier"] = {
        "probabilities": result.as_numpy("probabilities").astype(float).tolist(),
        "label": [v.decode() for v in result.as_numpy("label").reshape(-1)],
    }

    # Refusals: an unknown model, an out-of-range field, a missing input.
    out["errors"] = {
        "unknown_model": error_of(lambda: client.infer("no-such-model", [text])),
        "out_of_range": error_of(lambda: client.infer(SCORER, [i if i.name() != "tenure" else bad_tenure(len(records)) for i in inputs])),
        "missing_input": error_of(lambda: client.infer(SCORER, inputs[1:])),
    }
    json.dump(out, open(answers_path, "w"), indent=1)


def bad_tenure(rows):
    tenure = triton.InferInput("tenure", [rows, 1], "FP32")
    tenure.set_data_from_numpy(np.full((rows, 1), 999.0, dtype=np.float32))
    return tenure


if __name__ == "__main__":
    main()
