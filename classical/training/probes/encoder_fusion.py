"""Probe (issue 14, session 8): can the encoder run faster without losing layers? Exports the fine-tuned checkpoint
(eager attention, so onnxruntime's BERT fusion applies), fuses (Attention, SkipLayerNorm, BiasGelu), quantises,
and times one request per run on one thread against the shipped int8 file. Run from the repository root.
"""
import json, sys, time, glob, numpy as np, onnxruntime as ort
sys.path.insert(0, 'classical/training')
from pathlib import Path
from switchyard_training.encoder_export import Probabilities, export_fp32, encode
from switchyard_training import classifier
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification
from onnxruntime.quantization import quantize_dynamic, QuantType
from onnxruntime.transformers import optimizer
ck = Path(glob.glob('/root/.cache/switchyard/encoder-train/*/')[0])
tok = Tokenizer.from_file('classical/models/request-encoder/1.0.0/tokenizer.json')
out = Path('/tmp/switchyard-probe'); out.mkdir(exist_ok=True)
if not (out/'fp32.onnx').exists():
    model = Probabilities(AutoModelForSequenceClassification.from_pretrained(ck/'model', attn_implementation='eager')).eval()
    export_fp32(model, tok, out/'fp32.onnx')
opt = optimizer.optimize_model(str(out/'fp32.onnx'), model_type='bert', num_heads=12, hidden_size=384, opt_level=1)
print(opt.get_fused_operator_statistics())
opt.save_model_to_file(str(out/'fp32_fused.onnx'))
import onnx
quantize_dynamic(str(out/'fp32_fused.onnx'), str(out/'int8_fused.onnx'), per_channel=True, weight_type=QuantType.QInt8, extra_options={'DefaultTensorType': onnx.TensorProto.FLOAT})
quantize_dynamic(str(out/'fp32.onnx'), str(out/'int8.onnx'), per_channel=True, weight_type=QuantType.QInt8)
data = json.loads((classifier.CLINC / 'clinc150_train_val.json').read_text())
texts = [classifier.normalize_text(t) for t,_ in data['val'][:600]]
def sess(p):
    o = ort.SessionOptions(); o.intra_op_num_threads=1; o.inter_op_num_threads=1
    return ort.InferenceSession(str(p), o, providers=['CPUExecutionProvider'])
res={}
for name in ['classical/models/request-encoder/1.0.0/model.onnx', out/'int8.onnx', out/'fp32.onnx', out/'fp32_fused.onnx', out/'int8_fused.onnx']:
    s=sess(name); feeds=[encode(tok,[t]) for t in texts]
    for f in feeds[:50]: s.run(None,f)
    lat=[]; probs=[]
    for f in feeds:
        t0=time.perf_counter(); p=s.run(None,f)[0]; lat.append(time.perf_counter()-t0); probs.append(p[0])
    lat=np.array(lat)*1e6; res[str(name)]=np.array(probs)
    print(Path(name).name, Path(name).stat().st_size//1024, 'KB p50 %.0f p99 %.0f us' % (np.percentile(lat,50), np.percentile(lat,99)))
base=res['classical/models/request-encoder/1.0.0/model.onnx']
for k,v in res.items(): print(k, 'agree with shipped', (v.argmax(1)==base.argmax(1)).mean())
