"""Writes the classifier's record-request evaluation sets to evals/datasets/record_phrasings.jsonl, exactly as
training generates them (same seed, same draws), each text with its label and its kind of phrasing:

- held_out_template: a whole template never trained on, filled with a plain reference or a test-split customer;
- held_out_opener: an opener never trained on, composed with a topic;
- independent / independent_v2 / independent_v3: the human-written sets (never trained on; v3 is the large one,
  `switchyard_training/independent_v3.py`).

Run with the training environment: classical/training/.venv/bin/python classical/training/export_eval_sets.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from switchyard_training import classifier, common, independent_v3, record_phrasings as rp

OUT = Path(__file__).resolve().parents[2] / "evals" / "datasets" / "record_phrasings.jsonl"


def main() -> None:
    rng = random.Random(common.SEED)
    train_rows = pd.read_csv(classifier.TELCO / "train.csv", dtype=str, keep_default_na=False)
    test_rows = pd.read_csv(classifier.TELCO / "test.csv", dtype=str, keep_default_na=False)
    rows = []
    # The same calls, in the same order, as classifier.record_corpus: every draw from rng lines up.
    for label, templates, openers in (
        (rp.SCORE_LABEL, rp.SCORE_TEMPLATES, rp.SCORE_OPENERS),
        (rp.EXPLAIN_LABEL, rp.EXPLAIN_TEMPLATES, rp.EXPLAIN_OPENERS),
    ):
        seen, held_out = rp.split_templates(templates, rng, held_out_share=classifier.HELD_OUT_SHARE)
        seen_openers, held_out_openers = rp.split_templates(openers, rng, held_out_share=classifier.HELD_OUT_SHARE)
        seen += rp.compose(seen_openers)
        templates_held_out = len(held_out)
        held_out += rp.compose(held_out_openers)
        rp.generate(seen, train_rows, classifier.RECORD_TRAIN_PER_LABEL, rng)
        texts = rp.generate(held_out, test_rows, classifier.RECORD_EVAL_PER_LABEL, rng)
        for i, text in enumerate(texts):
            kind = "held_out_template" if i % len(held_out) < templates_held_out else "held_out_opener"
            rows.append({"text": text, "label": label, "kind": kind})
    # The same texts training evaluated on.
    corpus = classifier.record_corpus(random.Random(common.SEED))
    for label in (rp.SCORE_LABEL, rp.EXPLAIN_LABEL):
        assert [r["text"] for r in rows if r["label"] == label] == corpus[label]["eval"], label
    for kind, sets in (
        ("independent", ((rp.SCORE_LABEL, rp.INDEPENDENT_SCORE), (rp.EXPLAIN_LABEL, rp.INDEPENDENT_EXPLAIN))),
        ("independent_v2", ((rp.SCORE_LABEL, rp.INDEPENDENT_V2_SCORE), (rp.EXPLAIN_LABEL, rp.INDEPENDENT_V2_EXPLAIN))),
        (
            "independent_v3",
            (
                (rp.SCORE_LABEL, independent_v3.INDEPENDENT_V3_SCORE),
                (rp.EXPLAIN_LABEL, independent_v3.INDEPENDENT_V3_EXPLAIN),
            ),
        ),
    ):
        for label, texts in sets:
            rows.extend({"text": text, "label": label, "kind": kind} for text in texts)
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"wrote {OUT} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
