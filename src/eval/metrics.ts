/**
 * Evaluation metrics of RD++ (spec §7), on the CPU, platform-neutral (typed arrays, no Node API):
 *
 * - `rocAuc` / `rocCurve` — sklearn `roc_auc_score` / `roc_curve` for binary labels (image and pixel AUROC);
 * - `f1Max` — the best F1 over thresholds, with its threshold;
 * - `auproStandard` — the STANDARD MVTec AD AUPRO (Bergmann et al.; per region over the whole set, FPR over
 *   all normal pixels, every distinct score, integrated to FPR 0.3 and divided by 0.3);
 * - `auproOfficial` — the OFFICIAL RD/RD++ code's per-image AUPRO (200 numpy-arange thresholds per image,
 *   FPR < 0.3 rescaled by the largest kept FPR; the paper's number), and `auproOfficialWholeSet` (the same
 *   compute_pro called on a whole stack);
 * - `connectedComponents8` — 8-connected components of a mask;
 * - `metricsByDefectType` — all of the above per MVTec defect type.
 *
 * The implementations live in ./metrics/ (one file per topic); this module is the entry point.
 */
export {
  type AuproOfficialResult,
  arangeThresholds,
  auproOfficial,
  auproOfficialWholeSet,
  type OfficialCurve,
  type OfficialOptions,
} from './metrics/aupro-official.js';
export { type AuproStandardResult, auproStandard, type ProCurve } from './metrics/aupro-standard.js';
export { type BreakdownInput, type DefectTypeMetrics, metricsByDefectType } from './metrics/breakdown.js';
export { type Components, connectedComponents8 } from './metrics/components.js';
export { type F1Max, f1Max, type RocCurve, rocAuc, rocAucAndF1Max, rocCurve } from './metrics/roc.js';
export { type ImageStack, stackImages } from './metrics/stack.js';
