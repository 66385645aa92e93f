/**
 * The decoder in inference runs its conv → BN (→ ReLU) chains as fused kernels — the 3×3 convs through
 * conv2dFused and the 2×2 s2 deconvs through convTranspose2dFused — and gives what the unfused ops give
 * (the path taken whenever a gradient could flow). Both reverse block kinds, formula weights.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { noGrad, runtime, scope, tensor } from '../../src/engine/index.js';
import { Decoder, type DecoderKind } from '../../src/model/decoder.js';
import { relErr } from '../helpers/conv-ref.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

describe('decoder inference: fused kernels against the unfused ops', () => {
  const kinds: [DecoderKind, number][] = [
    ['de_resnet18', 512],
    ['de_resnet50', 2048],
  ];
  for (const [kind, channels] of kinds)
    it(`${kind}: same three outputs, fewer dispatches`, async () => {
      const dec = new Decoder(kind);
      dec.state.initFormula('decoder.');
      const z = tensor(randn(2 * channels * 2 * 2, 5), [2, channels, 2, 2]);
      const rt = runtime();
      const run = (fused: boolean) => {
        const before = rt.counters.dispatches;
        // with gradients recorded the student's weights could be trained: every op unfused
        const outs = scope(() => (fused ? noGrad(() => dec.forward(z, false)) : dec.forward(z, false)));
        return { outs, dispatches: rt.counters.dispatches - before };
      };
      const fused = run(true);
      const plain = run(false);
      expect(fused.dispatches).toBeLessThan(plain.dispatches);
      for (let i = 0; i < 3; i++) {
        const [a, b] = [await fused.outs[i]!.read(), await plain.outs[i]!.read()];
        expect(a.length).toBe(b.length);
        expect(relErr(a, b), `output ${i}`).toBeLessThan(1e-5);
      }
      for (const t of [...fused.outs, ...plain.outs, z]) t.dispose();
      for (const [, t] of dec.state.named()) t.dispose();
    });
});
