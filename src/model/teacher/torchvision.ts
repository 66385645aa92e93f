/**
 * The torchvision ImageNet teachers (spec §2.2): ResNet-18 (BasicBlock ×[2,2,2]) and WideResNet-50-2
 * (Bottleneck ×[3,4,6], width = 2·planes), stem + layer1..layer3 only (layer4 is never computed), frozen,
 * BN in eval mode, run without autograd (frozen.ts). Keys are torchvision's (`conv1.weight`, `layer1.0.bn1.running_mean`,
 * …) so the official `.pth` files load directly; `layer4.*`, `fc.*` and `num_batches_tracked` are ignored.
 * Preprocessing: RGB in [0, 1], ImageNet mean/std (see src/model/preprocess.ts).
 */
import { maxPool2d, release, type Tensor } from '../../engine/index.js';
import { basicBlock, bottleneck, convBn, declareBasicBlock, declareBottleneck } from '../blocks.js';
import { frozenActivations } from '../frozen.js';
import { NetState } from '../state.js';

export type TorchTeacherKind = 'resnet18' | 'wide_resnet50_2';

const LAYERS: Record<TorchTeacherKind, { blocks: number[]; bottleneck: boolean; widthFactor: number }> = {
  resnet18: { blocks: [2, 2, 2], bottleneck: false, widthFactor: 1 },
  wide_resnet50_2: { blocks: [3, 4, 6], bottleneck: true, widthFactor: 2 },
};

export interface Teacher {
  readonly name: string;
  readonly state: NetState;
  /** Channels of the three taps (T1, T2, T3). */
  readonly channels: [number, number, number];
  /** How input images must be normalised for this teacher. */
  readonly preprocess: 'imagenet' | 'caffe';
  /**
   * T1, T2, T3 (f32) for a preprocessed batch [B, 3, H, W] (no gradient is recorded; the activations in
   * between are f16 under PRECISION=f16, see frozen.ts).
   */
  forward(x: Tensor): [Tensor, Tensor, Tensor];
}

/**
 * The entries of a torchvision state_dict a teacher uses: everything except layer4, fc and the BN
 * counters `num_batches_tracked` (never computed or not weights).
 */
export function torchvisionTeacherSubset<T>(tensors: Map<string, T>): Map<string, T> {
  const out = new Map<string, T>();
  for (const [k, v] of tensors)
    if (!(k.endsWith('num_batches_tracked') || k.startsWith('layer4.') || k.startsWith('fc.'))) out.set(k, v);
  return out;
}

export class TorchvisionTeacher implements Teacher {
  readonly state = new NetState('encoder.', true);
  readonly channels: [number, number, number];
  readonly preprocess = 'imagenet' as const;

  constructor(readonly name: TorchTeacherKind) {
    const cfg = LAYERS[name];
    const s = this.state;
    s.conv('conv1', 64, 3, 7, { init: 'default' });
    s.bn('bn1', 64);
    let cin = 64;
    const planes = [64, 128, 256];
    cfg.blocks.forEach((n, li) => {
      const pl = planes[li]!;
      for (let b = 0; b < n; b++) {
        const stride = b === 0 && li > 0 ? 2 : 1;
        const p = `layer${li + 1}.${b}`;
        if (cfg.bottleneck) {
          declareBottleneck(s, p, cin, pl, pl * cfg.widthFactor, stride, 'default');
          cin = pl * 4;
        } else {
          declareBasicBlock(s, p, cin, pl, stride, 'default');
          cin = pl;
        }
      }
    });
    const e = cfg.bottleneck ? 4 : 1;
    this.channels = [64 * e, 128 * e, 256 * e];
  }

  forward(x: Tensor): [Tensor, Tensor, Tensor] {
    const cfg = LAYERS[this.name];
    const s = this.state;
    return frozenActivations((): [Tensor, Tensor, Tensor] => {
      const stem = convBn(s, x, 'conv1', 'bn1', { stride: 2, padding: 3, training: false, relu: true });
      let h = maxPool2d(stem, { kernel: 3, stride: 2, padding: 1 });
      release(stem);
      const taps: Tensor[] = [];
      cfg.blocks.forEach((n, li) => {
        for (let b = 0; b < n; b++) {
          const stride = b === 0 && li > 0 ? 2 : 1;
          const p = `layer${li + 1}.${b}`;
          const out = cfg.bottleneck
            ? bottleneck(s, p, h, stride, false)
            : basicBlock(s, p, h, stride, false);
          // the block input is a temporary unless it is a tap (the caller's)
          if (!taps.includes(h)) release(h);
          h = out;
        }
        taps.push(h);
      });
      return taps as [Tensor, Tensor, Tensor];
    });
  }
}
