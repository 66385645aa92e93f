"""The Keras ImageNet ResNet-50 teacher (conv1..res4f, caffe preprocessing) in a few lines of torch, from the
project's `rdpp teacher export` file: shared by the reference scripts official_tire.py and
../../pytorch-interop/check_pth.py (reference experiments, not part of the project: they need PyTorch)."""
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def caffe(rgb01):  # [N,3,H,W] RGB in 0..1 -> BGR 0..255 minus means
    return rgb01.flip(1) * 255.0 - MEAN_BGR


def load_teacher(path):
    """The teacher as a function: caffe-preprocessed BGR [N,3,H,W] -> the taps of res2c, res3d, res4f."""
    W = load_file(path)

    def conv(x, name, stride=1, pad=0):
        return F.conv2d(x, W[name + '.weight'], W[name + '.bias'], stride, pad)

    def bn(x, name):
        return F.batch_norm(x, W[name + '.mean'], W[name + '.var'], W[name + '.gamma'], W[name + '.beta'], False, 0.0, 1e-3)

    def block(x, stage, blk, stride, shortcut):
        p = f'{stage}{blk}'
        y = F.relu(bn(conv(x, f'res{p}_branch2a', stride), f'bn{p}_branch2a'))
        y = F.relu(bn(conv(y, f'res{p}_branch2b', 1, 1), f'bn{p}_branch2b'))
        y = bn(conv(y, f'res{p}_branch2c'), f'bn{p}_branch2c')
        s = bn(conv(x, f'res{p}_branch1', stride), f'bn{p}_branch1') if shortcut else x
        return F.relu(y + s)

    def teacher(x):
        x = F.pad(x, (3, 3, 3, 3))
        x = F.relu(bn(conv(x, 'conv1', 2), 'bn_conv1'))
        x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)
        taps = []
        for stage, n, stride in [(2, 3, 1), (3, 4, 2), (4, 6, 2)]:
            for i in range(n):
                x = block(x, stage, 'abcdef'[i], stride if i == 0 else 1, i == 0)
            taps.append(x)
        return taps

    return teacher
