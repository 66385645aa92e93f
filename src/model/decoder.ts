/**
 * The student decoder (spec §2.5): a "reverse" ResNet whose stride-2 convs are 2×2 stride-2 transposed
 * convs. `de_wide_resnet50_2` (reverse Bottleneck ×[3,4,6], width 2·planes), `de_resnet50` (width = planes)
 * and `de_resnet18` (reverse BasicBlock ×[2,2,2]). Block counts are in decoder order (3, 4, 6 from the
 * bottleneck outwards); outputs are returned as (layer3, layer2, layer1) = (S1, S2, S3) to pair with the
 * teacher's (T1, T2, T3).
 */
import { release, type Tensor } from '../engine/index.js';
import { deBasicBlock, deBottleneck, declareDeBasicBlock, declareDeBottleneck } from './blocks.js';
import { NetState } from './state.js';

export type DecoderKind = 'de_wide_resnet50_2' | 'de_resnet50' | 'de_resnet18';

const CFG: Record<DecoderKind, { blocks: number[]; bottleneck: boolean; widthFactor: number }> = {
  de_wide_resnet50_2: { blocks: [3, 4, 6], bottleneck: true, widthFactor: 2 },
  de_resnet50: { blocks: [3, 4, 6], bottleneck: true, widthFactor: 1 },
  de_resnet18: { blocks: [2, 2, 2], bottleneck: false, widthFactor: 1 },
};

export class Decoder {
  readonly state = new NetState('decoder.');

  constructor(readonly kind: DecoderKind) {
    const cfg = CFG[kind];
    const s = this.state;
    const e = cfg.bottleneck ? 4 : 1;
    let cin = 512 * e;
    const planes = [256, 128, 64];
    cfg.blocks.forEach((n, li) => {
      const pl = planes[li]!;
      for (let b = 0; b < n; b++) {
        const p = `layer${li + 1}.${b}`;
        const stride = b === 0 ? 2 : 1;
        if (cfg.bottleneck) declareDeBottleneck(s, p, cin, pl, pl * cfg.widthFactor, stride);
        else declareDeBasicBlock(s, p, cin, pl, stride);
        cin = pl * e;
      }
    });
  }

  forward(z: Tensor, training: boolean): [Tensor, Tensor, Tensor] {
    const cfg = CFG[this.kind];
    const outs: Tensor[] = [];
    let h = z;
    cfg.blocks.forEach((n, li) => {
      for (let b = 0; b < n; b++) {
        const p = `layer${li + 1}.${b}`;
        const stride = b === 0 ? 2 : 1;
        const out = cfg.bottleneck
          ? deBottleneck(this.state, p, h, stride, training)
          : deBasicBlock(this.state, p, h, stride, training);
        // the block input is a temporary unless it is the caller's z or an output
        if (h !== z && !outs.includes(h)) release(h);
        h = out;
      }
      outs.push(h);
    });
    return [outs[2]!, outs[1]!, outs[0]!];
  }
}
