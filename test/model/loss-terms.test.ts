/**
 * The loss terms' wiring in the model (src/model/rdpp.ts): which parameters each term trains (spec §4.2–4.4:
 * L_Recon, L_Con and L_SSOT train the projections only), and `--ssot pairwise` (one OT problem per sample
 * pair over per-pixel unit feature vectors): the term equals the mean of per-pair Sinkhorn divergences
 * computed directly and is ~0 for the identity pairing. The golden step has L_Con = 0 (below its margin),
 * so parity alone cannot catch a term whose gradient is lost.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backward,
  noGrad,
  normalizeChannels,
  scope,
  sinkhornClouds,
  type Tensor,
  tensor,
  transposeLast2,
} from '../../src/engine/index.js';
import { Rng } from '../../src/model/init.js';
import { Rdpp } from '../../src/model/rdpp.js';
import { formulaTeacher } from '../helpers/formula-teacher.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

function r18Model(): Rdpp {
  const m = new Rdpp(formulaTeacher());
  const rng = new Rng(5);
  for (const s of m.studentStates()) s.init(rng);
  return m;
}

const B = 3;
const S = 32; // projected maps 8×8, 4×4, 2×2: clouds of 64, 16 and 4 points
const img = () => tensor(randn(B * 3 * S * S, 21), [B, 3, S, S]);
const noisy = () => tensor(randn(B * 3 * S * S, 22), [B, 3, S, S]);

async function gradNorm(ts: readonly Tensor[]): Promise<number> {
  let s = 0;
  for (const t of ts) if (t.grad) for (const v of await t.grad.read()) s += v * v;
  return Math.sqrt(s);
}

describe('projection loss terms', () => {
  it('L_Recon trains the projection layers and nothing else', async () => {
    const m = r18Model();
    const groups = m.parameterGroups();
    const f = m.trainForward(img(), noisy(), [1, 2, 0], 'off');
    expect((await f.recon.read())[0]).toBeGreaterThan(0);
    backward(f.recon);
    expect(await gradNorm(groups.proj)).toBeGreaterThan(0);
    expect(await gradNorm(groups.ocbeDecoder)).toBe(0);
    m.dispose();
  });

  // Regression: L_Con's per-sample vectors and the official SSOT's softmax rows were flattened with an
  // unrecorded view, so neither term was connected to the projections. At this initialisation every
  // cos(T̃, P) is ≈ 0.35–0.41, below L_Con's margin 0.5, so its gradient is legitimately zero here: the
  // check is that the graph reaches the projections (backward would throw otherwise).
  it('L_Con and the official L_SSOT are connected to the projection layers only', async () => {
    const m = r18Model();
    const groups = m.parameterGroups();
    const f = m.trainForward(img(), noisy(), [1, 2, 0], 'official');
    for (const t of [f.contrast, f.ssot!]) {
      expect(t.requiresGrad).toBe(true);
      backward(t);
    }
    for (const p of groups.proj) expect(p.grad).not.toBeNull();
    expect(await gradNorm(groups.ocbeDecoder)).toBe(0);
    m.dispose();
  });
});

describe('SSOT pairwise', () => {
  it('is the mean over pairs of the Sinkhorn divergence between unit pixel clouds', async () => {
    const m = r18Model();
    const perm = [2, 0, 1];
    const f = noGrad(() => m.trainForward(img(), noisy(), perm, 'pairwise'));
    const got = (await f.ssot!.read())[0]!;
    let want = 0;
    for (const pk of f.projected) {
      const [b, c] = pk.shape as [number, number];
      const flat = (await pk.read()).slice();
      const permuted = new Float32Array(flat.length);
      const per = flat.length / b;
      perm.forEach((p, i) => {
        permuted.set(flat.subarray(p * per, (p + 1) * per), i * per);
      });
      const cloud = (d: Float32Array) =>
        noGrad(() => transposeLast2(normalizeChannels(tensor(d, pk.shape)).view([b, c, -1])));
      const s = await noGrad(() => sinkhornClouds(cloud(flat), cloud(permuted))).read();
      want += s.reduce((a, v) => a + v, 0) / b;
    }
    expect(got).toBeGreaterThan(1e-4); // different images: a real transport cost
    expect(Math.abs(got - want)).toBeLessThan(1e-5 + 1e-4 * Math.abs(want));
    m.dispose();
  });

  it('is ~0 when every sample is paired with itself', async () => {
    const m = r18Model();
    const f = noGrad(() => m.trainForward(img(), noisy(), [0, 1, 2], 'pairwise'));
    expect(Math.abs((await f.ssot!.read())[0]!)).toBeLessThan(1e-5);
    m.dispose();
  });

  it('trains the projection layers only', async () => {
    const m = r18Model();
    const groups = m.parameterGroups();
    scope(() => {
      const f = m.trainForward(img(), noisy(), [1, 2, 0], 'pairwise');
      backward(f.ssot!);
    });
    expect(await gradNorm(groups.proj)).toBeGreaterThan(0);
    expect(await gradNorm(groups.ocbeDecoder)).toBe(0);
    m.dispose();
  });
});
