/**
 * MultiProjectionLayer (spec §2.3): one ProjLayer per teacher scale, `proj_a/b/c`, each
 * conv3×3(+bias) → InstanceNorm → LeakyReLU(0.01), four times: C → C/2 → C/4 → C/2 → C, at sequential
 * indices 0, 3, 6, 9 (`proj_a.proj.0.weight` …). PyTorch's default conv init. Used on the normal and the
 * noisy teacher features with the same weights.
 */
import {
  canFuseInference,
  conv2d,
  conv2dFused,
  instanceNormLeakyRelu,
  release,
  type Tensor,
} from '../engine/index.js';
import { NetState } from './state.js';

const NAMES = ['proj_a', 'proj_b', 'proj_c'] as const;

export class Projection {
  readonly state = new NetState('proj.');

  /** @param base 64 for WRN50-2/ResNet-50 teachers (C = 256, 512, 1024), 16 for ResNet-18 (64, 128, 256). */
  constructor(readonly base: number) {
    const s = this.state;
    NAMES.forEach((n, k) => {
      const c = base * 4 * 2 ** k;
      const chans = [c, c / 2, c / 4, c / 2, c];
      for (let i = 0; i < 4; i++)
        s.conv(`${n}.proj.${3 * i}`, chans[i + 1]!, chans[i]!, 3, { bias: true, init: 'default' });
    });
  }

  /** Project one scale (k = 0, 1, 2). */
  scale(k: number, x: Tensor): Tensor {
    const s = this.state;
    const n = NAMES[k]!;
    let h = x;
    for (let i = 0; i < 4; i++) {
      const p = `${n}.proj.${3 * i}`;
      const w = s.convWeight(`${p}.weight`);
      const b = s.get(`${p}.bias`);
      // in inference the fused conv (no epilogue) stores in the activations' type (f16 under --precision f16)
      const c = canFuseInference(h, w, b)
        ? conv2dFused(h, w, b, { stride: 1, padding: 1 }, {})
        : conv2d(h, w, b, { stride: 1, padding: 1 });
      if (h !== x) release(h);
      h = instanceNormLeakyRelu(c, 0.01);
      release(c);
    }
    return h;
  }

  forward(feats: readonly Tensor[]): [Tensor, Tensor, Tensor] {
    return [this.scale(0, feats[0]!), this.scale(1, feats[1]!), this.scale(2, feats[2]!)];
  }
}
