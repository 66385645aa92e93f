/**
 * How a frozen network runs — one no gradient flows through: the teacher always, the projection, OCBE and
 * decoder in evaluation. Its activations are stored in frozenActivationDtype(): f16 under PRECISION=f16
 * (flag F16_STORAGE), as AMP's autocast stores them, so every conv writes and reads half the bytes. What
 * it hands back is widened to f32 for callers that read f32 — unless they run in an activation scope of
 * the same type: the training forward when the student's activations are f16 too (F16_TRAIN_STORAGE; the
 * taps feed the projection and the cosine losses as halves), and evaluation (up to the maps' cosine).
 */
import {
  activationDtype,
  cast,
  frozenActivationDtype,
  noGrad,
  release,
  type Tensor,
  withActivations,
} from '../engine/index.js';

/**
 * Run `body` without autograd, its activations in frozenActivationDtype(); its results in f32 — unless it
 * runs inside an enclosing frozenActivations of the same type: then they stay in it, and the outer call
 * widens what leaves it (evaluation: the teacher's taps stay f16 up to the anomaly maps' cosine).
 */
export function frozenActivations<T extends Tensor[]>(body: () => T): T {
  return noGrad(() => {
    const dtype = frozenActivationDtype();
    if (dtype === 'f32' || activationDtype() === dtype) return body();
    const out = withActivations(dtype, body);
    const wide = out.map((t) => cast(t, 'f32')) as T;
    release(...out);
    return wide;
  });
}
