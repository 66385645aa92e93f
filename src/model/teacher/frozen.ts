/**
 * How a frozen teacher runs its forward: without autograd, its activations stored in
 * frozenActivationDtype() — f16 under PRECISION=f16 (flag F16_STORAGE), as AMP's autocast stores them —
 * and its three taps handed back in f32, because the student, the projection and the losses read f32.
 */
import {
  cast,
  frozenActivationDtype,
  noGrad,
  release,
  type Tensor,
  withActivations,
} from '../../engine/index.js';

export function frozenTaps(body: () => [Tensor, Tensor, Tensor]): [Tensor, Tensor, Tensor] {
  return noGrad(() => {
    const dtype = frozenActivationDtype();
    if (dtype === 'f32') return body();
    const taps = withActivations(dtype, body);
    const wide = taps.map((t) => cast(t, 'f32')) as [Tensor, Tensor, Tensor];
    release(...taps);
    return wide;
  });
}
