/**
 * RD++ assembled (spec §1): frozen teacher → projection layers → OCBE → decoder, the training loss
 * (spec §4) and the anomaly maps (spec §7).
 *
 * Training loss, exactly as the official code:
 *   L = L_KD(T, S) + 0.2 · (L_SSOT + 0.01·L_Recon + 0.1·L_Con) / 1.11
 *   T = E(x), T̃ = E(x̃), P = Proj(T), P̃ = Proj(T̃), S = D(OCBE(P))
 *   L_KD    = Σ_k mean_b (1 − cos(vec T_k[b], vec S_k[b]))
 *   L_SSOT  = Σ_k Sinkhorn({softmax(vec P_k[b])}_b, {softmax(vec P_k[π(b)])}_b)   ('official')
 *           = Σ_k mean_b Sinkhorn(cloud(P_k[b]), cloud(P_k[π(b)]))                 ('pairwise')
 *   L_Recon = Σ_k mean_{b,h,w} (1 − cos_c(P̃_k, P_k))
 *   L_Con   = Σ_k mean_b max(0, cos(vec T̃_k[b], vec P_k[b]) − 0.5)
 *
 * 'pairwise' is what the paper's figure describes and the code does not do (spec §4.2): one optimal
 * transport problem per sample pair (b, π(b)), each sample's projected map a cloud of H·W points in C
 * dimensions. Our choices where the paper is silent, so that the loss means something:
 *   - points are the per-pixel channel vectors scaled to unit length, so the transport cost
 *     ½‖a − b‖² = 1 − cos(a, b) is the same cosine distance RD++ uses for every other loss and for the
 *     anomaly maps (raw features would make the loss scale with feature magnitude and swamp L_KD);
 *   - no softmax over the whole map (that is what makes the official term vanish, spec §4.2);
 *   - geomloss's settings of the official call (p = 2, blur 0.05, scaling 0.95, debiased) except the
 *     diameter, which is geomloss's own default (the clouds' bounding-box diagonal) instead of 1e7;
 *   - the mean over the B pairs, so the weight 0.2/1.11 does not grow with the batch size.
 */

import {
  add,
  cast,
  cosineEmbeddingLoss,
  cosineMap,
  cosineReconLoss,
  GraphCache,
  gaussianBlur,
  gemmPrecision,
  kdLoss,
  maxRows,
  mean,
  noGrad,
  normalizeChannels,
  oneMinus,
  permuteRows,
  type RowPermutation,
  release,
  resizeBilinear,
  runtime,
  scale,
  sinkhornClouds,
  sinkhornLoss,
  softmaxRows,
  type Tensor,
  trainingActivationDtype,
  transposeLast2,
  withActivations,
} from '../engine/index.js';
import { Decoder } from './decoder.js';
import { frozenActivations } from './frozen.js';
import { Ocbe } from './ocbe.js';
import { Projection } from './projection.js';
import type { NetState } from './state.js';
import type { Teacher } from './teacher/torchvision.js';

export type SsotMode = 'official' | 'pairwise' | 'off';
export const SSOT_MODES: readonly SsotMode[] = ['official', 'pairwise', 'off'];

export interface LossParts {
  loss: Tensor;
  kd: Tensor;
  proj: Tensor;
  ssot: Tensor | null;
  recon: Tensor;
  contrast: Tensor;
}

/** A training forward's tensors; activations in trainingActivationDtype() (f16 under --precision f16). */
export interface TrainForward extends LossParts {
  teacher: Tensor[];
  teacherNoise: Tensor[];
  projected: Tensor[];
  projectedNoise: Tensor[];
  bottleneck: Tensor;
  student: Tensor[];
}

export class Rdpp {
  readonly proj: Projection;
  readonly ocbe: Ocbe;
  readonly decoder: Decoder;

  constructor(readonly teacher: Teacher) {
    const c1 = teacher.channels[0];
    if (c1 !== 64 && c1 !== 256)
      throw new Error(`RD++: unsupported teacher with ${c1} channels at its first tap (64 or 256)`);
    const wide = c1 === 256;
    this.proj = new Projection(wide ? 64 : 16);
    this.ocbe = new Ocbe(wide ? 'bottleneck' : 'basic');
    this.decoder = new Decoder(wide ? 'de_wide_resnet50_2' : 'de_resnet18');
  }

  /** The student side (trained, saved in checkpoints), with the official module prefixes. */
  studentStates(): NetState[] {
    return [this.proj.state, this.ocbe.state, this.decoder.state];
  }

  /**
   * For a model that will only run inference (test, predict, `bench infer`): every multi-tap conv weight
   * of teacher and student stored as the forward GEMM reads it, the originals freed (NetState.packConvWeights):
   * no weight copy per batch (one permute dispatch per 3×3 conv of the student before), nothing resident
   * twice (the teacher's kept copies, 65 MiB for WRN50-2); under PRECISION=f16 as halves, 1×1 weights
   * included. The model can no longer be trained or saved.
   */
  packForInference(): void {
    this.pack([this.teacher.state, ...this.studentStates()]);
  }

  /**
   * The frozen teacher's multi-tap conv weights packed the same way, for a process whose GEMM precision
   * stays what it is now (`rdpp train`, `bench train`): the student trains as before, the teacher's
   * weights are held once (65 MiB less for WRN50-2 than keeping copies beside the originals; as halves
   * under PRECISION=f16). Not for the browser app, whose page may switch an f16-packed teacher to f32.
   */
  packTeacher(): void {
    this.pack([this.teacher.state]);
  }

  private pack(states: NetState[]): void {
    // f16 GEMMs round every weight to f16 as they stage it: rounded once here instead, the same products
    // from half the bytes (and half the memory)
    const dtype = gemmPrecision() === 'f16' ? 'f16' : 'f32';
    // (the teacher's kept copies in runtime().derived go with their freed originals)
    for (const s of states) s.packConvWeights(dtype);
    // the originals' buffers go back to the device, not to the pool's idle list: under f16 no later
    // buffer has their size, and f32 inference would reuse few of them
    const rt = runtime();
    rt.flush();
    rt.pool.trim();
  }

  /** Parameters of optimizer A (projection, lr 1e-3) and B (OCBE + decoder, lr 5e-3). */
  parameterGroups(): { proj: Tensor[]; ocbeDecoder: Tensor[] } {
    return {
      proj: this.proj.state.parameters(),
      ocbeDecoder: [...this.decoder.state.parameters(), ...this.ocbe.state.parameters()],
    };
  }

  /** One training forward pass (OCBE/decoder BN in train mode). Call `backward(out.loss)` after it. */
  trainForward(
    img: Tensor,
    imgNoise: Tensor,
    perm: readonly number[] | RowPermutation,
    ssot: SsotMode = 'official',
  ): TrainForward {
    // Every activation from the teacher's taps to the losses is stored as trainingActivationDtype(): f16
    // under --precision f16, as AMP stores them (the taps stay halves, frozen.ts). The cosine losses read
    // halves; the SSOT term's softmax and normalisation take a widened copy (cast: gradient straight through).
    const act = trainingActivationDtype();
    const [t, tn, pn, p] = withActivations(act, () => {
      const t = this.teacher.forward(img);
      const tn = this.teacher.forward(imgNoise);
      return [t, tn, this.proj.forward(tn), this.proj.forward(t)];
    });
    let ssotLoss: Tensor | null = null;
    if (ssot === 'official') {
      for (const pk of p) {
        const wide = widened(pk);
        const rows = wide.view([pk.shape[0]!, -1]);
        const flat = softmaxRows(rows);
        release(rows);
        if (wide !== pk) release(wide);
        const s = sinkhornLoss(flat, permuteRows(flat, perm));
        ssotLoss = ssotLoss ? add(ssotLoss, s) : s;
      }
    } else if (ssot === 'pairwise') {
      for (const pk of p) {
        const wide = widened(pk);
        const cloud = pixelCloud(wide);
        if (wide !== pk) release(wide);
        // unit vectors: every coordinate lies in [−1, 1], so the bounding-box diagonal is ≤ 2√C; the
        // GPU measures the actual diameter and skips the ε steps it does not need
        const diameterBound = 2 * Math.sqrt(pk.shape[1]!);
        const s = mean(sinkhornClouds(cloud, permuteRows(cloud, perm), { diameterBound }));
        ssotLoss = ssotLoss ? add(ssotLoss, s) : s;
      }
    }
    let recon = cosineReconLoss(pn[0]!, p[0]!);
    let contrast = cosineEmbeddingLoss(flat2(tn[0]!), flat2(p[0]!), 0.5);
    for (let k = 1; k < 3; k++) {
      recon = add(recon, cosineReconLoss(pn[k]!, p[k]!));
      contrast = add(contrast, cosineEmbeddingLoss(flat2(tn[k]!), flat2(p[k]!), 0.5));
    }
    let inner = add(scale(recon, 0.01), scale(contrast, 0.1));
    if (ssotLoss) inner = add(ssotLoss, inner);
    const projLoss = scale(inner, 1 / 1.11);
    const z = withActivations(act, () => this.ocbe.forward(p, true));
    const s = withActivations(act, () => this.decoder.forward(z, true));
    const kd = kdLoss(t, s);
    const loss = add(kd, scale(projLoss, 0.2));
    return {
      loss,
      kd,
      proj: projLoss,
      ssot: ssotLoss,
      recon,
      contrast,
      teacher: t,
      teacherNoise: tn,
      projected: p,
      projectedNoise: pn,
      bottleneck: z,
      student: s,
    };
  }

  /**
   * Anomaly maps in eval mode (spec §7): per scale 1 − cos over channels, bilinear (align_corners) to
   * the input size, summed → raw [B, H, W]; gaussian σ = 4 → smooth; image score = max of smooth.
   * Runs without recording gradients (evaluation; the blur has no backward).
   */
  anomalyMaps(img: Tensor): { raw: Tensor; smooth: Tensor; scores: Tensor } {
    return noGrad(() => this.anomalyMapsNoGrad(img));
  }

  /**
   * Smoothed maps and image scores through graphs (engine/graph.ts): the same values, bit for bit, as
   * anomalyMaps, with the ops' JavaScript run for the first two batches of a shape only (the flag
   * GRAPH_CAPTURE). The scorer holds one batch's working set until it is disposed.
   */
  scorer(): {
    maps(img: Tensor): { smooth: Tensor; scores: Tensor };
    /** bytes the current graph holds, or null when there is none */
    graphBytes(): number | null;
    dispose(): void;
  } {
    const graphs = new GraphCache(([img]) => {
      const m = this.anomalyMaps(img!);
      return [m.smooth, m.scores];
    });
    return {
      maps: (img) => {
        const [smooth, scores] = graphs.run([img]);
        return { smooth: smooth!, scores: scores! };
      },
      graphBytes: () => graphs.current?.bytes ?? null,
      dispose: () => graphs.dispose(),
    };
  }

  private anomalyMapsNoGrad(img: Tensor): { raw: Tensor; smooth: Tensor; scores: Tensor } {
    const [, , h, w] = img.shape as [number, number, number, number];
    // every activation up to the cosines is f16 under --precision f16 (frozen.ts): the teacher's taps
    // and the decoder's outputs too, read as halves by cosineMap; the cosines are f32
    const cosines = frozenActivations(() => {
      const t = this.teacher.forward(img);
      const p = this.proj.forward(t);
      const z = this.ocbe.forward(p, false);
      release(...p);
      const s = this.decoder.forward(z, false);
      release(z);
      return [0, 1, 2].map((k) => {
        const cos = cosineMap(t[k]!, s[k]!);
        release(t[k], s[k]);
        return cos;
      });
    });
    let raw: Tensor | null = null;
    for (const cos of cosines) {
      const m = oneMinus(cos);
      release(cos);
      const up = resizeBilinear(m, h, w);
      release(m);
      if (raw) {
        const sum = add(raw, up);
        release(raw, up);
        raw = sum;
      } else raw = up;
    }
    const smooth = gaussianBlur(raw!, 4);
    return { raw: raw!, smooth, scores: maxRows(smooth) };
  }

  dispose(): void {
    for (const s of [this.teacher.state, ...this.studentStates()]) s.dispose();
  }
}

/** `x` as f32 for an op that reads f32 only: x itself, or a widened copy (its gradient passes to x). */
function widened(x: Tensor): Tensor {
  return x.dtype === 'f32' ? x : cast(x, 'f32');
}

/** [B, C, H, W] → [B, H·W, C]: each sample's pixels as unit vectors in C dimensions. */
function pixelCloud(x: Tensor): Tensor {
  const [b, c] = x.shape as [number, number];
  return transposeLast2(normalizeChannels(x).view([b, c, -1]));
}

function flat2(x: Tensor): Tensor {
  return x.view([x.shape[0]!, -1]);
}
