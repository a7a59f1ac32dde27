"""The Python peer for the benchmark: FastAPI + onnxruntime serving Switchyard's two ONNX models the way most
teams would, so the gateway's numbers have a same-run baseline. Same models, same record, same work for a
structured request: classify (text + record flag), then score the record. Not part of Switchyard."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

ROOT = Path(os.environ.get("SWITCHYARD_ROOT", Path(__file__).resolve().parents[3]))
MODELS = ROOT / "classical" / "models"


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


classifier = session(next(MODELS.glob("request-classifier/*/model.onnx")))
scorer = session(next(MODELS.glob("churn-scorer/*/model.onnx")))
scorer_inputs = [(i.name, i.type) for i in scorer.get_inputs()]
app = FastAPI()


class RouteRequest(BaseModel):
    text: str = ""
    features: dict | None = None


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/route")
def route(request: RouteRequest) -> dict:
    text = " ".join(request.text.split())
    probabilities = classifier.run(
        ["probabilities"],
        {
            "text": np.asarray([[text]], dtype=object),
            "has_record": np.asarray([[1.0 if request.features else 0.0]], dtype=np.float32),
        },
    )[0][0]
    answer = {"label_index": int(probabilities.argmax()), "confidence": float(probabilities.max())}
    if request.features:
        feeds = {}
        for name, kind in scorer_inputs:
            value = request.features.get(name)
            if kind == "tensor(string)":
                feeds[name] = np.asarray([[str(value)]], dtype=object)
            else:
                number = float(value) if value not in (None, "") else math.nan
                feeds[name] = np.asarray([[number]], dtype=np.float32)
        answer["score"] = float(scorer.run(["probabilities"], feeds)[0][0][1])
    return answer
