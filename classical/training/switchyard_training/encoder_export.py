"""Stage 2 of the request encoder (issue 14): ONNX export, int8 quantisation, parity, metrics and the model card.

The graph takes `input_ids` and `attention_mask` (int64, dynamic batch and sequence axes) and returns
`probabilities` (softmax over the classifier's labels, in `switchyard.labels` order). The shipped file is the int8
one (dynamic quantisation, per-channel weights); the fp32 export exists only to check it against PyTorch. The
tokenizer ships beside it as `tokenizer.json`, with the package's fixed 128-token padding turned off and truncation
at `MAX_TOKENS`, so the gateway pays for a query's own length.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer

from . import classifier, common, independent_v3, record_phrasings
from .encoder_finetune import MAX_TOKENS, RECORD_PREFIX, with_flag
from .model_card import encoder_card

NAME = "request-encoder"
VERSION = "1.0.0"
TRAINING_COMMAND = "classical/training/train_encoder.sh"
# The committed file's ceiling (issue 14): every retrain stays in history.
MAX_FILE_BYTES = 25 * 1024 * 1024
OPSET = 17


class Probabilities(torch.nn.Module):
    """The fine-tuned classifier with its softmax inside the graph, like the linear model's output."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(input_ids=input_ids, attention_mask=attention_mask).logits, dim=-1)


def serving_tokenizer(source: Path, target: Path) -> Tokenizer:
    """The package's tokenizer.json with fixed padding off and truncation at MAX_TOKENS (right side)."""
    spec = json.loads(source.read_text())
    spec["padding"] = None
    spec["truncation"] = {"direction": "Right", "max_length": MAX_TOKENS, "strategy": "LongestFirst", "stride": 0}
    target.write_text(json.dumps(spec, ensure_ascii=False, separators=(",", ":")))
    return Tokenizer.from_file(str(target))


def encode(tokenizer: Tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    """Pad to the longest in the batch (the runtime does the same), int64 like the graph's inputs."""
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def run(session: ort.InferenceSession, tokenizer: Tokenizer, texts: list[str], batch: int = 1) -> np.ndarray:
    """One text per run by default, as the gateway runs the encoder: dynamic int8 quantisation scales the
    activations per run, so a batched run's answers depend on the batch."""
    out = [session.run(["probabilities"], encode(tokenizer, texts[b : b + batch]))[0] for b in range(0, len(texts), batch)]
    return np.concatenate(out)


def torch_probabilities(model: Probabilities, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    with torch.no_grad():
        feeds = encode(tokenizer, texts)
        return model(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])).numpy()


def export_fp32(model: Probabilities, tokenizer: Tokenizer, path: Path) -> None:
    sample = encode(tokenizer, ["what is my balance", "[record] why might this customer leave us"])
    torch.onnx.export(
        model,
        (torch.from_numpy(sample["input_ids"]), torch.from_numpy(sample["attention_mask"])),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["probabilities"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "probabilities": {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,
    )


def fixtures(session: ort.InferenceSession, tokenizer: Tokenizer, val: list, corpus: dict) -> list[dict]:
    """Edge cases and ordinary inputs for the Rust parity test: token ids and the int8 model's probabilities."""
    cases = [
        ("", True),
        ("", False),
        ("  what's   my\tbalance \n\n in  checking ", False),
        ("¿Cuál es el saldo de mi cuenta? 残高を教えてください café", False),
        ("Why is this customer — Ünïcödé & émojis 🚀 — likely to leave?", True),
        (" ".join(["please tell me my account balance"] * 300)[:10240], False),
        ("x" * 10240, True),
    ]
    cases += [(text, False) for text, _ in val[:8]]
    cases += [(corpus[label]["eval"][0], True) for label in corpus]
    texts = with_flag([t for t, _ in cases], [1.0 if f else 0.0 for _, f in cases])
    rows = []
    for (text, flag), model_text in zip(cases, texts):
        ids = tokenizer.encode(model_text).ids
        probs = run(session, tokenizer, [model_text])[0]
        rows.append({"text": text, "has_record": flag, "input_ids": ids, "probabilities": [float(p) for p in probs]})
    return rows


def predicted(prob: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
    return classifier.predict_with_threshold(prob, classes, threshold)


def routing_pct(prob: np.ndarray, classes: np.ndarray, label: str) -> float:
    """Argmax routing share, as the linear model's routing numbers are reported."""
    return common.rounded(100 * float((classes[prob.argmax(axis=1)] == label).mean()), 2)


def export(checkpoint: Path) -> dict:
    from transformers import AutoModelForSequenceClassification

    trained = json.loads((checkpoint / "done.json").read_text())
    classes = np.array(trained["labels"], dtype=object)
    group_of = classifier.groups()
    label_list = [{"label": str(c), "group": group_of[str(c)]} for c in classes]
    model = Probabilities(AutoModelForSequenceClassification.from_pretrained(checkpoint / "model")).eval()

    out_dir = common.MODELS_DIR / NAME / VERSION
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = serving_tokenizer(checkpoint / "model" / "tokenizer.json", out_dir / "tokenizer.json")
    rng = random.Random(common.SEED)
    data = json.loads((classifier.CLINC / "clinc150_train_val.json").read_text())
    corpus = classifier.record_corpus(rng)
    val_texts = with_flag([t for t, _ in data["val"]], [0.0] * len(data["val"]))
    oos_texts = with_flag([t for t, _ in data["oos_val"]], [0.0] * len(data["oos_val"]))
    val_y = np.asarray([lab for _, lab in data["val"]], dtype=object)

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_fp32(model, tokenizer, fp32_path)
        fp32 = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
        torch_val = torch_probabilities(model, tokenizer, val_texts[:256])
        fp32_val = run(fp32, tokenizer, val_texts, batch=64)
        fp32_oos = run(fp32, tokenizer, oos_texts, batch=64)
        int8_path = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(fp32_path), str(int8_path), per_channel=True, weight_type=QuantType.QInt8)
        quantized = onnx.load(str(int8_path))

    data_sha = trained["recipe"]["training_data_sha256"]
    session_probe = ort.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])
    val_prob, oos_prob = run(session_probe, tokenizer, val_texts), run(session_probe, tokenizer, oos_texts)
    threshold = classifier.choose_threshold(val_prob, val_y, oos_prob, classes)
    common.set_metadata(
        quantized,
        {
            "switchyard.model_name": NAME,
            "switchyard.model_version": VERSION,
            "switchyard.model_kind": "request_encoder",
            "switchyard.labels": label_list,
            "switchyard.out_of_scope_label": classifier.OOS,
            "switchyard.out_of_scope_threshold": threshold["value"],
            "switchyard.threshold_objective": classifier.THRESHOLD_OBJECTIVE,
            "switchyard.text_normalization": "collapse_whitespace",
            "switchyard.record_prefix": RECORD_PREFIX,
            "switchyard.max_tokens": MAX_TOKENS,
            "switchyard.tokenizer": "tokenizer.json",
            "switchyard.inputs": [
                {"name": "input_ids", "type": "int64", "shape": [-1, -1], "meaning": "tokenizer.json ids, 0-padded"},
                {"name": "attention_mask", "type": "int64", "shape": [-1, -1], "meaning": "1 for tokens, 0 for padding"},
            ],
            "switchyard.probability_output": "probabilities (columns in switchyard.labels order)",
            "switchyard.base_model": trained["base"],
            "switchyard.training_data_sha256": data_sha,
            "switchyard.training_command": TRAINING_COMMAND,
        },
    )
    onnx.save_model(quantized, out_dir / "model.onnx")
    size = (out_dir / "model.onnx").stat().st_size
    if size > MAX_FILE_BYTES:
        raise SystemExit(f"{out_dir / 'model.onnx'} is {size} bytes, over the {MAX_FILE_BYTES}-byte ceiling")
    session = ort.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])

    score, explain = record_phrasings.SCORE_LABEL, record_phrasings.EXPLAIN_LABEL
    protocol = {}
    for name, t in (("oos-train", 0.0), ("oos-train+threshold", threshold["value"])):
        protocol[name] = {
            "threshold": t,
            "in_scope_accuracy": common.rounded(100 * (predicted(val_prob, classes, t) == val_y).mean(), 2),
            "oos_recall": common.rounded(100 * (predicted(oos_prob, classes, t) == classifier.OOS).mean(), 2),
        }
    record_sets = {
        "held_out_phrasings": (corpus[score]["eval"], corpus[explain]["eval"]),
        "independent": (record_phrasings.INDEPENDENT_SCORE, record_phrasings.INDEPENDENT_EXPLAIN),
        "independent_v2": (record_phrasings.INDEPENDENT_V2_SCORE, record_phrasings.INDEPENDENT_V2_EXPLAIN),
        "independent_v3": (independent_v3.INDEPENDENT_V3_SCORE, independent_v3.INDEPENDENT_V3_EXPLAIN),
    }
    routing = {}
    for name, (score_texts, explain_texts) in record_sets.items():
        routing[name] = {
            score: routing_pct(run(session, tokenizer, with_flag(score_texts, [1.0] * len(score_texts))), classes, score),
            explain: routing_pct(run(session, tokenizer, with_flag(explain_texts, [1.0] * len(explain_texts))), classes, explain),
            "texts": [len(score_texts), len(explain_texts)],
        }
    plain = np.concatenate([predicted(val_prob, classes, threshold["value"]), predicted(oos_prob, classes, threshold["value"])])
    agreement = float((fp32_val.argmax(1) == val_prob.argmax(1)).mean())
    top = val_prob.max(axis=1)
    metrics = {
        "model": NAME,
        "version": VERSION,
        "data_sha256": data_sha,
        "labels": len(classes),
        "base": trained["base"],
        "recipe": trained["recipe"],
        "training_history": trained["history"],
        "file_bytes": size,
        "threshold": threshold,
        "threshold_objective": classifier.THRESHOLD_OBJECTIVE,
        "clinc150_val": protocol,
        "paper_table2_full": {
            k: {m: {"in_scope_accuracy": a, "oos_recall": r} for m, (a, r) in v.items()} for k, v in classifier.PAPER.items()
        },
        "record_routing_argmax_pct": routing,
        "plain_questions_sent_to_record_labels_pct": common.rounded(
            100 * np.isin(plain, [score, explain]).mean(), 3
        ),
        "calibration_val_top_label": {
            "ece_10_bins": common.rounded(
                common.expected_calibration_error((classes[val_prob.argmax(1)] == val_y).astype(int), top)
            )
        },
        "parity": {
            "fp32_onnx_vs_torch_max_abs_diff": float(f"{np.abs(fp32_val[:256] - torch_val).max():.1e}"),
            "int8_vs_fp32_top_label_agreement_val": common.rounded(agreement, 4),
            "int8_vs_fp32_max_abs_diff_val": float(f"{np.abs(val_prob - fp32_val).max():.1e}"),
            "fp32_in_scope_accuracy_no_threshold": common.rounded(
                100 * (predicted(fp32_val, classes, 0.0) == val_y).mean(), 2
            ),
            "fp32_oos_recall_no_threshold": common.rounded(
                100 * (predicted(fp32_oos, classes, 0.0) == classifier.OOS).mean(), 2
            ),
        },
    }
    common.write_json(out_dir / "metrics.json", metrics)
    common.write_json(
        out_dir / "parity_fixtures.json",
        {
            "model": NAME,
            "version": VERSION,
            "labels": [str(c) for c in classes],
            "cases": fixtures(session, tokenizer, data["val"], corpus),
        },
    )
    (out_dir / "MODEL_CARD.md").write_text(encoder_card(metrics))
    print(f"encoder: {json.dumps({k: metrics[k] for k in ('clinc150_val', 'record_routing_argmax_pct', 'parity', 'file_bytes')})}")
    return metrics
