"""Reference experiment, NOT part of the project (it needs PyTorch, which the project never uses):
the OFFICIAL RD++ modules, imported from a clone of github.com/tientrandinh/Revisiting-Reverse-Distillation
(OCBE `BN_layer` via wide_resnet50_2, `de_wide_resnet50_2`, `MultiProjectionLayer`, `loss_fucntion`, the
simplex noise), trained on CPU on MVTec 3D-AD tire with the Keras ImageNet ResNet-50 teacher (rebuilt in
keras_teacher.py beside this file, in a few lines of torch, from the project's `rdpp teacher export` file,
and checked against ../shared/fixtures/keras), with main.py's recipe (batch 16, Adam lr 1e-3 / 5e-3, betas (0.5, 0.999),
backward every batch, step every 2nd, loss = L_distill + 0.2 L_proj, SSOT term 0 as in that code) and the
project's data semantics at any size (OpenCV bilinear images, PIL-antialiased masks > 0.5, the 10-31 px
noise box of the 256² recipe), evaluated after every epoch like evaluation_multi_proj (image and pixel AUROC).
Question it answers: is the epoch-1 inversion the project shows at 64²/128² also there in the official code?
usage: OFFICIAL=<clone> DATA=<.../mvtec3d-tire-half/tire> TEACHER=<export.safetensors> \
       python official_tire.py SIZE EPOCHS OUT.jsonl [max_train]
"""
import json, os, random, sys, time, types, glob
import numpy as np
import cv2
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.environ.get('OFFICIAL', '/work/official'))
sys.modules['geomloss'] = types.SimpleNamespace(SamplesLoss=None)  # SSOT is off (≡ 0 in that code)
from model.resnet import wide_resnet50_2  # noqa: E402
from model.de_resnet import de_wide_resnet50_2  # noqa: E402
from utils.utils_train import MultiProjectionLayer, loss_fucntion  # noqa: E402
from dataset.noise import Simplex_CLASS  # noqa: E402
from keras_teacher import caffe, load_teacher  # noqa: E402  (beside this file)

SIZE, EPOCHS, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
MAX_TRAIN = int(sys.argv[4]) if len(sys.argv) > 4 else 0
ROOT = os.path.abspath(os.environ.get('DATA', '/work/shared/datasets/mvtec3d-tire-half/tire'))
torch.set_num_threads(int(os.environ.get('THREADS', '2')))

# ---- Keras ResNet-50 (caffe v1) teacher from the project's exported safetensors (keras_teacher.py) ----
teacher = load_teacher(os.environ.get('TEACHER', '/work/analysis/keras50.safetensors'))


def check_teacher():
    fixture = os.environ.get('KERAS_FIXTURE', os.path.join(os.path.dirname(ROOT), '..', '..', 'fixtures', 'keras', 'keras_resnet50.json'))
    ref = json.load(open(fixture))
    c = ref['cases']['tire_crop256']
    img = np.asarray(Image.open(os.path.join(ROOT, 'train', 'good', '000.png')).convert('RGB'), dtype=np.float64)[:256, :256]
    x = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255.0
    with torch.no_grad():
        taps = teacher(caffe(x))
    for t, k in zip(taps, ['activation_9', 'activation_21', 'activation_39']):
        f = t[0].double().flatten().numpy()
        d = c[k]
        err = np.abs(f[d['idx']] - np.array(d['val'])).max() / d['absmax']
        print('teacher check', k, list(t.shape[1:]), 'rel err', f'{err:.2e}', flush=True)
        assert err < 1e-4


# ---- data (the project's semantics: OpenCV bilinear images, PIL-antialiased masks, 256-px noise boxes) ----
def load_img(p):
    img = cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB)
    return cv2.resize(img / 255.0, (SIZE, SIZE))


def load_mask(p):
    m = Image.open(p).convert('L').resize((SIZE, SIZE), Image.BILINEAR)
    return (np.asarray(m, dtype=np.float64) / 255.0 > 0.5).astype(np.int64)


simplex = Simplex_CLASS()


def noisy(img):
    h = np.random.randint(10, 256 // 8)
    w = np.random.randint(10, 256 // 8)
    sh = np.random.randint(1, SIZE - h)
    sw = np.random.randint(1, SIZE - w)
    z = np.zeros((SIZE, SIZE, 3))
    z[sh:sh + h, sw:sw + w, :] = 0.2 * simplex.rand_3d_octaves((3, h, w), 6, 0.6).transpose(1, 2, 0)
    return img + z


def to_t(a):
    return torch.from_numpy(a.transpose(2, 0, 1).copy()).float()


def main():
    random.seed(111); np.random.seed(111); torch.manual_seed(111)
    check_teacher()
    train_paths = sorted(glob.glob(os.path.join(ROOT, 'train', 'good', '*.png')))
    if MAX_TRAIN:
        train_paths = train_paths[:MAX_TRAIN]
    train_imgs = [load_img(p) for p in train_paths]
    test = []
    for t in sorted(os.listdir(os.path.join(ROOT, 'test'))):
        for p in sorted(glob.glob(os.path.join(ROOT, 'test', t, '*.png'))):
            gt = os.path.join(ROOT, 'ground_truth', t, os.path.basename(p)[:-4] + '_mask.png')
            mask = load_mask(gt) if t != 'good' else np.zeros((SIZE, SIZE), np.int64)
            test.append((to_t(load_img(p)), mask, 0 if t == 'good' else 1))
    print(f'{len(train_imgs)} train, {len(test)} test images at {SIZE}²', flush=True)

    _, ocbe = wide_resnet50_2(pretrained=False)
    decoder = de_wide_resnet50_2(pretrained=False)
    proj = MultiProjectionLayer(base=64)
    opt_proj = torch.optim.Adam(list(proj.parameters()), lr=0.001, betas=(0.5, 0.999))
    opt_distill = torch.optim.Adam(list(decoder.parameters()) + list(ocbe.parameters()), lr=0.005, betas=(0.5, 0.999))
    cos_embed = torch.nn.CosineEmbeddingLoss(margin=0.5)

    def recon(a, b):
        return torch.mean(1 - F.cosine_similarity(a, b))

    def proj_loss(noised, pn, pc):
        tgt = -torch.ones(pc[0].shape[0])
        r = sum(recon(pn[i], pc[i]) for i in range(3))
        c = sum(cos_embed(noised[i].flatten(1), pc[i].flatten(1), tgt) for i in range(3))
        return (0.0 + 0.01 * r + 0.1 * c) / 1.11

    def evaluate(epoch):
        proj.eval(); ocbe.eval(); decoder.eval()
        px_gt, px_pr, sp_gt, sp_pr = [], [], [], []
        with torch.no_grad():
            for img, mask, label in test:
                inputs = teacher(caffe(img[None]))
                outs = decoder(ocbe(proj(inputs)))
                amap = np.zeros((SIZE, SIZE))
                for a, b in zip(inputs, outs):
                    m = 1 - F.cosine_similarity(a, b)[:, None]
                    amap += F.interpolate(m, size=SIZE, mode='bilinear', align_corners=True)[0, 0].numpy()
                amap = gaussian_filter(amap, sigma=4)
                px_gt.append(mask.ravel()); px_pr.append(amap.ravel())
                sp_gt.append(label); sp_pr.append(amap.max())
        px = roc_auc_score(np.concatenate(px_gt), np.concatenate(px_pr))
        sp = roc_auc_score(sp_gt, sp_pr)
        return {'epoch': epoch, 'image_auroc': round(sp, 4), 'pixel_auroc': round(px, 4)}

    log = open(OUT, 'w')
    g = torch.Generator().manual_seed(111)
    for epoch in range(1, EPOCHS + 1):
        proj.train(); ocbe.train(); decoder.train()
        order = torch.randperm(len(train_imgs), generator=g).tolist()
        t0 = time.time()
        losses = []
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            img = torch.stack([to_t(train_imgs[j]) for j in idx])
            img_n = torch.stack([to_t(noisy(train_imgs[j])) for j in idx])
            with torch.no_grad():
                inputs = teacher(caffe(img))
                inputs_n = teacher(caffe(img_n))
            pn, pc = proj(inputs, features_noise=inputs_n)  # returns (proj(noise), proj(clean)) as in main.py
            lp = proj_loss(inputs_n, pn, pc)
            outs = decoder(ocbe(pc))
            ld = loss_fucntion(inputs, outs)
            loss = ld + 0.2 * lp
            loss.backward()
            b = i // 16
            if (b + 1) % 2 == 0:
                opt_proj.step(); opt_distill.step(); opt_proj.zero_grad(); opt_distill.zero_grad()
            losses.append(loss.item())
            print(f'epoch {epoch} batch {b} loss {loss.item():.4f} kd {ld.item():.4f} proj {lp.item():.4f}', flush=True)
        r = evaluate(epoch)
        r.update({'loss_mean': round(float(np.mean(losses)), 4), 'train_s': round(time.time() - t0, 1)})
        print(json.dumps(r), flush=True)
        log.write(json.dumps(r) + '\n'); log.flush()


main()
