/**
 * The residual blocks RD++ is made of, declared (names and shapes, official state_dict keys) and run
 * (forward on the engine). One place for all four kinds:
 *   - BasicBlock (ResNet-18 teacher, OCBE of the ResNet-18 variant): 3×3 → BN → ReLU → 3×3 → BN, shortcut.
 *   - Bottleneck (WRN50-2 teacher, OCBE): 1×1 → 3×3 (stride here, "v1.5") → 1×1, shortcut `downsample`.
 *   - reverse BasicBlock / reverse Bottleneck (decoder): the stride-2 conv becomes a 2×2 stride-2
 *     transposed conv, and the shortcut is `upsample` (deconv + BN).
 * BN runs with batch statistics when `training` (OCBE/decoder in training) and running stats otherwise.
 * Each block releases its temporaries as soon as their consumer is recorded (`release`): under noGrad
 * (the teacher, inference) they are freed at once, so inference memory is a few activations, not the
 * whole network's; in training only what a backward rule reads stays until that rule has run.
 * Where nothing needs a gradient and BN uses running statistics (the frozen teacher always; OCBE and the
 * decoder in evaluation), each conv → BN (→ + shortcut) (→ ReLU) chain is one fused kernel
 * (conv2dFused): the conv output is never written to memory and read back.
 */
import {
  addRelu,
  batchNorm,
  batchNormRelu,
  canFuseInference,
  conv2d,
  conv2dFused,
  convTranspose2d,
  convTranspose2dFused,
  type FusedBatchNorm,
  release,
  type Tensor,
} from '../engine/index.js';
import type { NetState } from './state.js';

export type ConvInit = 'kaiming' | 'default';

export function bnForward(s: NetState, name: string, x: Tensor, training: boolean, withRelu = false): Tensor {
  return (withRelu ? batchNormRelu : batchNorm)(
    x,
    s.get(`${name}.weight`),
    s.get(`${name}.bias`),
    s.get(`${name}.running_mean`),
    s.get(`${name}.running_var`),
    { training },
  );
}

/** A conv's bias, or null for the bias-free convs of the torchvision nets. */
function convBias(s: NetState, name: string): Tensor | null {
  return s.has(`${name}.bias`) ? s.get(`${name}.bias`) : null;
}

function conv(s: NetState, name: string, x: Tensor, stride: number, padding: number): Tensor {
  return conv2d(x, s.convWeight(`${name}.weight`), convBias(s, name), { stride, padding });
}

function bnParams(s: NetState, name: string): FusedBatchNorm {
  return {
    weight: s.get(`${name}.weight`),
    bias: s.get(`${name}.bias`),
    runningMean: s.get(`${name}.running_mean`),
    runningVar: s.get(`${name}.running_var`),
  };
}

/** Whether conv `convName` → BN `bnName` on x can run as one fused inference kernel. */
function fusable(s: NetState, x: Tensor, convName: string, bnName: string, training: boolean): boolean {
  if (training) return false;
  const bn = bnParams(s, bnName);
  return canFuseInference(x, s.convWeight(`${convName}.weight`), convBias(s, convName), bn.weight, bn.bias);
}

/** conv → BN (→ + residual) (→ ReLU) as one kernel (see fusable). */
function convBnFused(
  s: NetState,
  x: Tensor,
  convName: string,
  bnName: string,
  o: { stride: number; padding: number; relu: boolean; residual?: Tensor },
): Tensor {
  return conv2dFused(
    x,
    s.convWeight(`${convName}.weight`),
    convBias(s, convName),
    { stride: o.stride, padding: o.padding },
    { bn: bnParams(s, bnName), relu: o.relu, ...(o.residual ? { residual: o.residual } : {}) },
  );
}

/**
 * The last conv → BN of a block, then relu(· + shortcut): fused into one kernel where possible, else
 * convBn and residual. `sc` is computed first (it may read x), and released after (unless it is x).
 */
function convBnResidual(
  s: NetState,
  h: Tensor,
  convName: string,
  bnName: string,
  o: { stride: number; padding: number; training: boolean },
  shortcut: () => Tensor,
  x: Tensor,
): Tensor {
  if (fusable(s, h, convName, bnName, o.training)) {
    const sc = shortcut();
    const out = convBnFused(s, h, convName, bnName, {
      stride: o.stride,
      padding: o.padding,
      relu: true,
      residual: sc,
    });
    release(sc === x ? null : sc);
    return out;
  }
  const m = convBn(s, h, convName, bnName, { ...o, relu: false });
  return residual(m, shortcut(), x);
}

/** conv → BN (→ ReLU, fused into the BN kernel; the whole chain fused in inference, see fusable). */
export function convBn(
  s: NetState,
  x: Tensor,
  convName: string,
  bnName: string,
  o: { stride: number; padding: number; training: boolean; relu: boolean },
): Tensor {
  if (fusable(s, x, convName, bnName, o.training)) return convBnFused(s, x, convName, bnName, o);
  const c = conv(s, convName, x, o.stride, o.padding);
  const out = bnForward(s, bnName, c, o.training, o.relu);
  release(c);
  return out;
}

/** relu(m + shortcut), releasing m and the shortcut (unless it is the block's input `x`). */
export function residual(m: Tensor, sc: Tensor, x: Tensor): Tensor {
  const out = addRelu(m, sc);
  release(m, sc === x ? null : sc);
  return out;
}

// ---- BasicBlock ----

export function declareBasicBlock(
  s: NetState,
  p: string,
  cin: number,
  planes: number,
  stride: number,
  init: ConvInit,
): void {
  s.conv(`${p}.conv1`, planes, cin, 3, { init });
  s.bn(`${p}.bn1`, planes);
  s.conv(`${p}.conv2`, planes, planes, 3, { init });
  s.bn(`${p}.bn2`, planes);
  if (stride !== 1 || cin !== planes) {
    s.conv(`${p}.downsample.0`, planes, cin, 1, { init });
    s.bn(`${p}.downsample.1`, planes);
  }
}

export function basicBlock(s: NetState, p: string, x: Tensor, stride: number, training: boolean): Tensor {
  const h = convBn(s, x, `${p}.conv1`, `${p}.bn1`, { stride, padding: 1, training, relu: true });
  const shortcut = () =>
    s.has(`${p}.downsample.0.weight`)
      ? convBn(s, x, `${p}.downsample.0`, `${p}.downsample.1`, { stride, padding: 0, training, relu: false })
      : x;
  const out = convBnResidual(
    s,
    h,
    `${p}.conv2`,
    `${p}.bn2`,
    { stride: 1, padding: 1, training },
    shortcut,
    x,
  );
  release(h);
  return out;
}

// ---- Bottleneck ----

export function declareBottleneck(
  s: NetState,
  p: string,
  cin: number,
  planes: number,
  width: number,
  stride: number,
  init: ConvInit,
): void {
  s.conv(`${p}.conv1`, width, cin, 1, { init });
  s.bn(`${p}.bn1`, width);
  s.conv(`${p}.conv2`, width, width, 3, { init });
  s.bn(`${p}.bn2`, width);
  s.conv(`${p}.conv3`, planes * 4, width, 1, { init });
  s.bn(`${p}.bn3`, planes * 4);
  if (stride !== 1 || cin !== planes * 4) {
    s.conv(`${p}.downsample.0`, planes * 4, cin, 1, { init });
    s.bn(`${p}.downsample.1`, planes * 4);
  }
}

export function bottleneck(s: NetState, p: string, x: Tensor, stride: number, training: boolean): Tensor {
  const h1 = convBn(s, x, `${p}.conv1`, `${p}.bn1`, { stride: 1, padding: 0, training, relu: true });
  const h2 = convBn(s, h1, `${p}.conv2`, `${p}.bn2`, { stride, padding: 1, training, relu: true });
  release(h1);
  const shortcut = () =>
    s.has(`${p}.downsample.0.weight`)
      ? convBn(s, x, `${p}.downsample.0`, `${p}.downsample.1`, { stride, padding: 0, training, relu: false })
      : x;
  const out = convBnResidual(
    s,
    h2,
    `${p}.conv3`,
    `${p}.bn3`,
    { stride: 1, padding: 0, training },
    shortcut,
    x,
  );
  release(h2);
  return out;
}

// ---- reverse blocks (decoder) ----

/** Reverse BasicBlock: conv1 is a 2×2 s2 deconv when upsampling, else 3×3; shortcut `upsample`. */
export function declareDeBasicBlock(
  s: NetState,
  p: string,
  cin: number,
  planes: number,
  stride: number,
): void {
  if (stride === 2) s.deconv(`${p}.conv1`, cin, planes);
  else s.conv(`${p}.conv1`, planes, cin, 3, { init: 'kaiming' });
  s.bn(`${p}.bn1`, planes);
  s.conv(`${p}.conv2`, planes, planes, 3, { init: 'kaiming' });
  s.bn(`${p}.bn2`, planes);
  if (stride !== 1 || cin !== planes) {
    s.deconv(`${p}.upsample.0`, cin, planes);
    s.bn(`${p}.upsample.1`, planes);
  }
}

/** 2×2 s2 deconv → BN (→ ReLU): one kernel in inference (see fusable), else the deconv, then BN. */
function deconvBn(
  s: NetState,
  x: Tensor,
  convName: string,
  bnName: string,
  o: { training: boolean; relu: boolean },
): Tensor {
  const w = s.get(`${convName}.weight`);
  if (fusable(s, x, convName, bnName, o.training))
    return convTranspose2dFused(x, w, { bn: bnParams(s, bnName), relu: o.relu });
  const d = convTranspose2d(x, w);
  const out = bnForward(s, bnName, d, o.training, o.relu);
  release(d);
  return out;
}

/** A reverse block's conv → BN → ReLU that may upsample: a 2×2 s2 deconv at stride 2, else a 3×3 conv. */
function reverseConvBn(
  s: NetState,
  x: Tensor,
  conv: string,
  bn: string,
  stride: number,
  training: boolean,
): Tensor {
  return stride === 2
    ? deconvBn(s, x, conv, bn, { training, relu: true })
    : convBn(s, x, conv, bn, { stride: 1, padding: 1, training, relu: true });
}

function upsample(s: NetState, p: string, x: Tensor, training: boolean): Tensor {
  return deconvBn(s, x, `${p}.upsample.0`, `${p}.upsample.1`, { training, relu: false });
}

export function deBasicBlock(s: NetState, p: string, x: Tensor, stride: number, training: boolean): Tensor {
  const h = reverseConvBn(s, x, `${p}.conv1`, `${p}.bn1`, stride, training);
  const shortcut = () => (s.has(`${p}.upsample.0.weight`) ? upsample(s, p, x, training) : x);
  const out = convBnResidual(
    s,
    h,
    `${p}.conv2`,
    `${p}.bn2`,
    { stride: 1, padding: 1, training },
    shortcut,
    x,
  );
  release(h);
  return out;
}

/** Reverse Bottleneck: 1×1 → (2×2 s2 deconv | 3×3) → 1×1; shortcut `upsample`. */
export function declareDeBottleneck(
  s: NetState,
  p: string,
  cin: number,
  planes: number,
  width: number,
  stride: number,
): void {
  s.conv(`${p}.conv1`, width, cin, 1, { init: 'kaiming' });
  s.bn(`${p}.bn1`, width);
  if (stride === 2) s.deconv(`${p}.conv2`, width, width);
  else s.conv(`${p}.conv2`, width, width, 3, { init: 'kaiming' });
  s.bn(`${p}.bn2`, width);
  s.conv(`${p}.conv3`, planes * 4, width, 1, { init: 'kaiming' });
  s.bn(`${p}.bn3`, planes * 4);
  if (stride !== 1 || cin !== planes * 4) {
    s.deconv(`${p}.upsample.0`, cin, planes * 4);
    s.bn(`${p}.upsample.1`, planes * 4);
  }
}

export function deBottleneck(s: NetState, p: string, x: Tensor, stride: number, training: boolean): Tensor {
  const h1 = convBn(s, x, `${p}.conv1`, `${p}.bn1`, { stride: 1, padding: 0, training, relu: true });
  const h2 = reverseConvBn(s, h1, `${p}.conv2`, `${p}.bn2`, stride, training);
  release(h1);
  const shortcut = () => (s.has(`${p}.upsample.0.weight`) ? upsample(s, p, x, training) : x);
  const out = convBnResidual(
    s,
    h2,
    `${p}.conv3`,
    `${p}.bn3`,
    { stride: 1, padding: 0, training },
    shortcut,
    x,
  );
  release(h2);
  return out;
}
