/**
 * OCBE, the official `BN_layer` (spec §2.4): multi-scale feature fusion of the three projected features,
 * then a one-class bottleneck stage. e = 4 (Bottleneck nets, width 1024 because width_per_group 128 is
 * forwarded) or 1 (ResNet-18, BasicBlocks).
 *   branch 1: conv3×3 s2 (64e→128e) BN ReLU, conv3×3 s2 (128e→256e) BN ReLU
 *   branch 2: conv3×3 s2 (128e→256e) BN ReLU
 *   concat [b1, b2, P3] → bn_layer: n_oc blocks, block 0 stride 2 with a 1×1 s2 downsample from 768e.
 * `conv4`/`bn4` are declared (they are in official checkpoints and the optimizer) but never used.
 */
import { concat, release, type Tensor } from '../engine/index.js';
import { basicBlock, bottleneck, convBn, declareBasicBlock, declareBottleneck } from './blocks.js';
import { NetState } from './state.js';

export class Ocbe {
  readonly state = new NetState('bn.');
  private readonly blocks: number;

  constructor(readonly kind: 'bottleneck' | 'basic') {
    const s = this.state;
    const e = kind === 'bottleneck' ? 4 : 1;
    this.blocks = kind === 'bottleneck' ? 3 : 2;
    let cin = 768 * e;
    for (let b = 0; b < this.blocks; b++) {
      const p = `bn_layer.${b}`;
      if (kind === 'bottleneck') {
        declareBottleneck(s, p, cin, 512, 1024, b === 0 ? 2 : 1, 'kaiming');
        cin = 2048;
      } else {
        declareBasicBlock(s, p, cin, 512, b === 0 ? 2 : 1, 'kaiming');
        cin = 512;
      }
    }
    s.conv('conv1', 128 * e, 64 * e, 3, { init: 'kaiming' });
    s.bn('bn1', 128 * e);
    s.conv('conv2', 256 * e, 128 * e, 3, { init: 'kaiming' });
    s.bn('bn2', 256 * e);
    s.conv('conv3', 256 * e, 128 * e, 3, { init: 'kaiming' });
    s.bn('bn3', 256 * e);
    s.conv('conv4', 512 * e, 1024 * e, 1, { init: 'kaiming' });
    s.bn('bn4', 512 * e);
  }

  forward(p: readonly Tensor[], training: boolean): Tensor {
    const s = this.state;
    const o = { stride: 2, padding: 1, training, relu: true };
    const l0 = convBn(s, p[0]!, 'conv1', 'bn1', o);
    const l1 = convBn(s, l0, 'conv2', 'bn2', o);
    const l2 = convBn(s, p[1]!, 'conv3', 'bn3', o);
    let h = concat([l1, l2, p[2]!], 1);
    release(l0, l1, l2);
    for (let b = 0; b < this.blocks; b++) {
      const stride = b === 0 ? 2 : 1;
      const out =
        this.kind === 'bottleneck'
          ? bottleneck(s, `bn_layer.${b}`, h, stride, training)
          : basicBlock(s, `bn_layer.${b}`, h, stride, training);
      release(h);
      h = out;
    }
    return h;
  }
}
