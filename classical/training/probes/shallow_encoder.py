"""Probe (issue 14, session 8): half the encoder's cost. The shipped 6-layer checkpoint cut to layers 0, 2, 4 and
trained again for 3 epochs (lr 5e-5, half cross-entropy, half distillation from the 6-layer model at T = 2),
exported and quantised as shipped; reports in-scope accuracy (argmax) and one-thread latency for both, and saves
their validation probabilities for shallow_cascade.py. Usage: python shallow_encoder.py [EPOCHS] from the root.
"""
import json, sys, time, glob, numpy as np, torch, onnxruntime as ort
sys.path.insert(0, 'classical/training')
from pathlib import Path
from switchyard_training import classifier
from switchyard_training.encoder_finetune import training_data, batches, MAX_TOKENS
from switchyard_training.encoder_export import Probabilities, export_fp32, encode
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from tokenizers import Tokenizer
from onnxruntime.quantization import quantize_dynamic, QuantType
torch.manual_seed(0); torch.set_num_threads(2)
ck = Path(glob.glob('/root/.cache/switchyard/encoder-train/*/')[0]) / 'model'
out = Path('/tmp/switchyard-probe/shallow'); out.mkdir(parents=True, exist_ok=True)
tok = AutoTokenizer.from_pretrained(ck)
teacher = AutoModelForSequenceClassification.from_pretrained(ck).eval()
student = AutoModelForSequenceClassification.from_pretrained(ck, attn_implementation='eager')
keep = [0, 2, 4]
student.bert.encoder.layer = torch.nn.ModuleList([student.bert.encoder.layer[i] for i in keep])
student.config.num_hidden_layers = len(keep)
texts, y, labels = training_data()
lengths = np.array([len(ids) for ids in tok(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]])
EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
steps = EPOCHS * len(batches(lengths, 0))
opt = torch.optim.AdamW(student.parameters(), lr=5e-5, weight_decay=0.01)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (steps - s) / steps))
T = 2.0; t0 = time.time(); student.train()
for epoch in range(EPOCHS):
    tot = 0.0
    for idx in batches(lengths, epoch):
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors='pt')
        with torch.no_grad():
            tl = teacher(**enc).logits
        sl = student(**enc).logits
        kd = torch.nn.functional.kl_div(torch.log_softmax(sl / T, -1), torch.softmax(tl / T, -1), reduction='batchmean') * T * T
        loss = 0.5 * torch.nn.functional.cross_entropy(sl, torch.tensor(y[idx])) + 0.5 * kd
        loss.backward(); opt.step(); sched.step(); opt.zero_grad(); tot += loss.item() * len(idx)
    print('epoch', epoch, round(tot / len(texts), 4), round(time.time() - t0), flush=True)
student.eval()
stok = Tokenizer.from_file('classical/models/request-encoder/1.0.0/tokenizer.json')
export_fp32(Probabilities(student), stok, out / 'fp32.onnx')
quantize_dynamic(str(out / 'fp32.onnx'), str(out / 'int8.onnx'), per_channel=True, weight_type=QuantType.QInt8)
data = json.loads((classifier.CLINC / 'clinc150_train_val.json').read_text())
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
res = {}
for name, path in [('shipped6', 'classical/models/request-encoder/1.0.0/model.onnx'), ('student3', out / 'int8.onnx')]:
    s = ort.InferenceSession(str(path), o, providers=['CPUExecutionProvider'])
    val = [classifier.normalize_text(t) for t, _ in data['val']]
    oos = [classifier.normalize_text(t) for t, _ in data['oos_val']]
    lat = []; P = []
    for t in val + oos:
        f = encode(stok, [t]); a = time.perf_counter(); P.append(s.run(None, f)[0][0]); lat.append(time.perf_counter() - a)
    P = np.array(P); lat = np.array(lat) * 1e6
    np.save(out / f'{name}_probs.npy', P)
    vy = np.array([l for _, l in data['val']])
    pred = np.array(labels)[P[:3000].argmax(1)]
    print(name, 'in-scope argmax %.2f' % (100 * (pred == vy).mean()), 'lat p50 %.0f p99 %.0f' % (np.percentile(lat, 50), np.percentile(lat, 99)), flush=True)
json.dump(labels, open(out / 'labels.json', 'w'))
