"""Reference check, NOT part of the project (it needs PyTorch, which the project never uses): does a
checkpoint written by `rdpp export` load into the OFFICIAL RD++ modules and score images as rdpp does?

It torch.load()s the .pth, loads its 'proj', 'bn' and 'decoder' state_dicts with strict=True into the
official modules imported from a clone of github.com/tientrandinh/Revisiting-Reverse-Distillation
(`MultiProjectionLayer(base=64)`, the OCBE `BN_layer` of `wide_resnet50_2`, `de_wide_resnet50_2`),
puts them in eval mode and scores each image as `evaluation_multi_proj` does: teacher taps → proj → bn →
decoder, `cal_anomaly_map(inputs, outputs, size, amap_mode='a')` (1 − cos per level, bilinear
align_corners=True, summed), scipy `gaussian_filter(σ=4)`, image score = max. The teacher is the Keras
ImageNet ResNet-50 (caffe preprocessing) rebuilt in a few lines of torch from `rdpp teacher export`'s file
(../tire-cpu-lavapipe/official-modules/keras_teacher.py, shared with official_tire.py). It then compares
the scores with `rdpp predict`'s predictions.jsonl for the same images (already at the model's size, so
neither side resizes).

usage: OFFICIAL=<clone> python check_pth.py <rdpp.pth> <teacher.safetensors> <images dir> <predictions.jsonl> <out.json>
"""
import glob, json, os, sys, types

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter

sys.path.insert(0, os.environ.get('OFFICIAL', '/work/official'))
sys.modules['geomloss'] = types.SimpleNamespace(SamplesLoss=None)  # imported by utils_train, unused here
for name in ['cv2', 'pandas', 'skimage', 'sklearn', 'sklearn.metrics']:  # imported by the official utils,
    sys.modules.setdefault(name, types.ModuleType(name))  # unused by the modules loaded here
from model.resnet import wide_resnet50_2  # noqa: E402
from model.de_resnet import de_wide_resnet50_2  # noqa: E402
from utils.utils_train import MultiProjectionLayer  # noqa: E402

# the Keras teacher of the tire experiment, shared with it
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tire-cpu-lavapipe', 'official-modules'))
from keras_teacher import caffe, load_teacher  # noqa: E402

PTH, TEACHER, IMAGES, PRED, OUT = sys.argv[1:6]
torch.set_num_threads(2)
teacher = load_teacher(TEACHER)

ckp = torch.load(PTH, map_location='cpu')
print('checkpoint keys', sorted(ckp.keys()), flush=True)
_, ocbe = wide_resnet50_2(pretrained=False)
decoder = de_wide_resnet50_2(pretrained=False)
proj = MultiProjectionLayer(base=64)
loaded = {}
for name, module in [('proj', proj), ('bn', ocbe), ('decoder', decoder)]:
    r = module.load_state_dict(ckp[name], strict=True)  # raises on a missing, unexpected or mis-shaped tensor
    loaded[name] = {'tensors': len(ckp[name]), 'missing': list(r.missing_keys), 'unexpected': list(r.unexpected_keys)}
    module.eval()
print('loaded with strict=True:', loaded, flush=True)

ours = {os.path.basename(json.loads(l)['path']): json.loads(l)['score'] for l in open(PRED)}
rows = []
with torch.no_grad():
    for p in sorted(glob.glob(os.path.join(IMAGES, '*.png'))):
        rgb = np.asarray(Image.open(p).convert('RGB'), dtype=np.float32) / 255.0
        x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]
        size = x.shape[-1]
        inputs = teacher(caffe(x))
        outputs = decoder(ocbe(proj(inputs)))
        amap = np.zeros((size, size))
        for fs, ft in zip(inputs, outputs):
            a = (1 - F.cosine_similarity(fs, ft)).unsqueeze(1)
            amap += F.interpolate(a, size=size, mode='bilinear', align_corners=True)[0, 0].numpy()
        score = float(np.max(gaussian_filter(amap, sigma=4)))
        rdpp = ours[os.path.basename(p)]
        rows.append({'image': os.path.basename(p), 'pytorch': score, 'rdpp': rdpp, 'rel_diff': abs(score - rdpp) / abs(score)})
        print(f"{os.path.basename(p):28s} pytorch {score:.7f}  rdpp {rdpp:.7f}  rel {rows[-1]['rel_diff']:.1e}", flush=True)

worst = max(r['rel_diff'] for r in rows)
order_py = [r['image'] for r in sorted(rows, key=lambda r: r['pytorch'])]
order_us = [r['image'] for r in sorted(rows, key=lambda r: r['rdpp'])]
result = {
    'torch': torch.__version__,
    'official_commit': os.environ.get('OFFICIAL_COMMIT'),
    'pth': os.path.basename(PTH),
    'loaded_strict': loaded,
    'images': len(rows),
    'max_rel_diff': worst,
    'same_ranking': order_py == order_us,
    'scores': rows,
}
json.dump(result, open(OUT, 'w'), indent=2)
print(f'{len(rows)} images: largest relative score difference {worst:.2e}; same ranking: {order_py == order_us}')
