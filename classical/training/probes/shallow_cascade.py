"""Probe (issue 14, session 8): the cascade (linear answers at confidence >= 0.99, else 0.4 x linear + 0.6 x
encoder) on CLINC150 validation with the probabilities shallow_encoder.py saved, for the 6- and 3-layer encoders.
"""
import json, sys, numpy as np, onnxruntime as ort
sys.path.insert(0, 'classical/training')
from switchyard_training import classifier
data = json.loads((classifier.CLINC / 'clinc150_train_val.json').read_text())
texts = [t for t,_ in data['val']] + [t for t,_ in data['oos_val']]
s = ort.InferenceSession('classical/models/request-classifier/1.1.0/model.onnx', providers=['CPUExecutionProvider'])
L = classifier.run(s, texts, 0.0)
L = np.asarray(L)
labels = json.load(open('/tmp/switchyard-probe/shallow/labels.json'))
vy = np.array([l for _,l in data['val']])
for name in ['shipped6','student3']:
    E = np.load(f'/tmp/switchyard-probe/shallow/{name}_probs.npy')
    esc = L.max(1) < 0.99
    B = np.where(esc[:,None], 0.4*L + 0.6*E, L)
    for t in [0.2,0.28,0.35,0.43]:
        pred = np.array(labels)[B.argmax(1)]; pred[B.max(1) < t] = 'oos'
        ins = 100*(pred[:3000]==vy).mean(); oos = 100*(pred[3000:]=='oos').mean()
        print(name, 't', t, 'in-scope %.2f oos %.1f escalated %.1f' % (ins, oos, 100*esc.mean()))
