/**
 * Parity runners for the metrics family (CPU only; the GPU is not involved):
 * - `auroc`: sklearn roc_auc_score on 200 labels/scores with ties (scalar `value`);
 * - `aupro`: the OFFICIAL RD/RD++ compute_pro on three 64×64 images — per image, their mean, and the
 *   whole three-image stack at once.
 */
import { auproOfficial, auproOfficialWholeSet, rocAuc } from '../../eval/metrics.js';
import { type Comparison, registerOpRunner } from '../ops.js';

function num(meta: Record<string, unknown>, key: string, caseName: string): number {
  const v = meta[key];
  if (typeof v !== 'number') throw new Error(`${caseName}: the fixture has no number '${key}'`);
  return v;
}

registerOpRunner({
  match: /^auroc$/,
  run: async (c): Promise<Comparison[]> => {
    const got = rocAuc(c.t('labels').data, c.t('scores').data);
    return [{ name: 'value', got, want: num(c.meta, 'value', c.name) }];
  },
});

registerOpRunner({
  match: /^aupro$/,
  run: async (c): Promise<Comparison[]> => {
    const masks = c.t('masks');
    const amaps = c.t('amaps');
    if (masks.shape.length !== 3) throw new Error(`${c.name}: masks must be [n, h, w], got [${masks.shape}]`);
    const [, h, w] = masks.shape as [number, number, number];
    const numTh = typeof c.meta.num_th === 'number' ? c.meta.num_th : 200;
    const fprLimit = typeof c.meta.fpr_limit === 'number' ? c.meta.fpr_limit : 0.3;
    const per = auproOfficial(masks.data, amaps.data, h, w, { numTh, fprLimit });
    const whole = auproOfficialWholeSet(masks.data, amaps.data, h, w, { numTh, fprLimit });
    const wantPer = c.meta.official_per_image;
    if (!Array.isArray(wantPer)) throw new Error(`${c.name}: the fixture has no official_per_image`);
    if (per.images.length !== wantPer.length)
      throw new Error(`${c.name}: ${per.images.length} anomalous images, fixture has ${wantPer.length}`);
    return [
      { name: 'official_per_image', got: per.perImage, want: wantPer as number[] },
      { name: 'official_mean', got: per.mean, want: num(c.meta, 'official_mean', c.name) },
      { name: 'official_whole_set', got: whole.aupro, want: num(c.meta, 'official_whole_set', c.name) },
    ];
  },
});
