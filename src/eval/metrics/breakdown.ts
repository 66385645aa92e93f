/**
 * Metrics per defect type (MVTec folders: test/good, test/crack, test/hole, …). For each defect type the
 * subset is that type's images plus all good images, and on it:
 * - image AUROC: the type's image scores vs the good images' scores (NaN when there are no good images);
 * - pixel AUROC over all pixels of the subset;
 * - STANDARD MVTec AUPRO over the subset (good images add normal pixels);
 * - OFFICIAL RD/RD++ per-image AUPRO: the mean over the type's anomalous images.
 */
import { auproOfficial } from './aupro-official.js';
import { auproStandard } from './aupro-standard.js';
import { rocAuc } from './roc.js';
import { type ImageStack, stackImages } from './stack.js';

export interface DefectTypeMetrics {
  type: string;
  /** Images of this type, and good images in the subset. */
  images: number;
  goodImages: number;
  imageAuroc: number;
  pixelAuroc: number;
  /** STANDARD MVTec AUPRO (Bergmann et al., FPR ≤ 0.3, whole subset). */
  auproStandard: number;
  /** OFFICIAL RD/RD++ per-image AUPRO (mean over this type's anomalous images). */
  auproOfficial: number;
}

export interface BreakdownInput {
  /** Defect type name per image, e.g. 'good', 'crack'. */
  types: readonly string[];
  /** Image score per image (e.g. max of the smoothed map). */
  imageScores: ArrayLike<number>;
  /** 0/1 masks and anomaly maps, n images of h×w. */
  masks: ImageStack;
  maps: ImageStack;
  h: number;
  w: number;
  /** The type name of normal images; default 'good'. */
  goodType?: string;
  fprLimit?: number;
}

function concat(parts: ArrayLike<number>[]): Float32Array | Float64Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = parts.every((p) => p instanceof Float32Array) ? new Float32Array(n) : new Float64Array(n);
  let o = 0;
  for (const p of parts) {
    if (ArrayBuffer.isView(p)) out.set(p as Float32Array, o);
    else for (let i = 0; i < p.length; i++) out[o + i] = p[i]!;
    o += p.length;
  }
  return out;
}

/** Per defect type metrics, in order of first appearance of each type (the good type excluded). */
export function metricsByDefectType(input: BreakdownInput): DefectTypeMetrics[] {
  const what = 'metricsByDefectType';
  const { types, imageScores, h, w } = input;
  const good = input.goodType ?? 'good';
  const masks = stackImages(input.masks, h, w, what, 'masks');
  const maps = stackImages(input.maps, h, w, what, 'maps');
  if (types.length !== masks.length || maps.length !== masks.length || imageScores.length !== masks.length)
    throw new Error(
      `${what}: ${types.length} types, ${imageScores.length} image scores, ${masks.length} masks and ` +
        `${maps.length} maps; all must be one per image`,
    );
  const goodIdx = types.flatMap((t, i) => (t === good ? [i] : []));
  const kinds = [...new Set(types.filter((t) => t !== good))];
  return kinds.map((type) => {
    const own = types.flatMap((t, i) => (t === type ? [i] : []));
    const sub = [...own, ...goodIdx];
    const labels = sub.map((i) => (types[i] === good ? 0 : 1));
    const scores = sub.map((i) => imageScores[i]!);
    const imageAuroc = goodIdx.length > 0 ? rocAuc(labels, scores) : Number.NaN;
    const subMasks = sub.map((i) => masks[i]!);
    const subMaps = sub.map((i) => maps[i]!);
    const pixelLabels = concat(subMasks);
    let hasPos = false;
    let hasNeg = false;
    for (let i = 0; i < pixelLabels.length; i++) {
      if (pixelLabels[i] === 0) hasNeg = true;
      else hasPos = true;
    }
    const pixelAuroc = hasPos && hasNeg ? rocAuc(pixelLabels, concat(subMaps)) : Number.NaN;
    const std =
      hasPos && hasNeg ? auproStandard(subMasks, subMaps, h, w, input.fprLimit ?? 0.3).aupro : Number.NaN;
    const ownMasks = own.map((i) => masks[i]!);
    const anyRegion = ownMasks.some((m) => Array.prototype.some.call(m, (v: number) => v !== 0));
    const off = anyRegion
      ? auproOfficial(
          ownMasks,
          own.map((i) => maps[i]!),
          h,
          w,
        ).mean
      : Number.NaN;
    return {
      type,
      images: own.length,
      goodImages: goodIdx.length,
      imageAuroc,
      pixelAuroc,
      auproStandard: std,
      auproOfficial: off,
    };
  });
}
