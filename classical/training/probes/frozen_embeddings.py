"""Probe (issue 14, session 8): record routing from frozen all-MiniLM-L6-v2 sentence embeddings (mean pooled, not
fine-tuned) and a logistic regression on the record training texts, against the evals' record phrasing sets.
Asks whether prior word knowledge without fine-tuning on templates routes unseen wordings better. Environment as
minilm_finetune.py; run from the repository root.
"""
import json, sys, random, numpy as np, torch
sys.path.insert(0, 'classical/training')
from switchyard_training import classifier, common, record_phrasings
from switchyard_training.encoder_finetune import base_dir
from transformers import AutoTokenizer, AutoModel
from sklearn.linear_model import LogisticRegression
torch.set_num_threads(2)
rng = random.Random(common.SEED)
corpus = classifier.record_corpus(rng)
S, E = record_phrasings.SCORE_LABEL, record_phrasings.EXPLAIN_LABEL
tr = [(t,0) for t in corpus[S]['train']] + [(t,1) for t in corpus[E]['train']]
print(random.Random(1).sample(tr, 8))
d = base_dir(); tok = AutoTokenizer.from_pretrained(d); m = AutoModel.from_pretrained(d).eval()
def emb(texts):
    out=[]
    with torch.no_grad():
        for i in range(0,len(texts),64):
            b=tok([classifier.normalize_text(t) for t in texts[i:i+64]],padding=True,truncation=True,max_length=48,return_tensors='pt')
            h=m(**b).last_hidden_state; a=b['attention_mask'].unsqueeze(-1).float()
            v=(h*a).sum(1)/a.sum(1); v=torch.nn.functional.normalize(v,dim=-1); out.append(v.numpy())
    return np.concatenate(out)
Xtr = emb([t for t,_ in tr]); ytr=np.array([y for _,y in tr])
rows=[json.loads(l) for l in open('evals/datasets/record_phrasings.jsonl')]
Xev = emb([r['text'] for r in rows]); yev=np.array([0 if r['label']==S else 1 for r in rows])
for C in [0.1,1,10,100]:
    lr=LogisticRegression(C=C,max_iter=2000).fit(Xtr,ytr); p=lr.predict(Xev)
    res={}
    for k in ['held_out_opener','held_out_template','independent','independent_v2','independent_v3']:
        idx=[i for i,r in enumerate(rows) if r['kind']==k]; res[k]=round(100*float((p[idx]==yev[idx]).mean()),2)
    print(C,res, round(100*float((p==yev).mean()),2))
