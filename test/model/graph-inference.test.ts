/**
 * Inference through captured graphs (Rdpp.scorer, engine/graph.ts): `test`, `predict`, the evaluations
 * during training and `bench infer` replay batches from the third of a shape on. The maps and scores must
 * be those of anomalyMaps bit for bit — packed (rdpp test) or not (the browser app, whose weight copies are
 * kept on first use), in f32 and f16 — follow new weights, and leave no memory behind.
 * ResNet-18 RD++ with formula weights at 32², batch 2.
 */
import { describe, expect, it } from 'vitest';
import { runtime, scope, setFlags, type Tensor, tensor } from '../../src/engine/index.js';
import { scoreImages } from '../../src/eval/evaluate.js';
import type { Rdpp } from '../../src/model/rdpp.js';
import { expectSameBits } from '../helpers/bits.js';
import { formulaRdpp } from '../helpers/formula-teacher.js';
import { gpuAndFlags } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

const flags = gpuAndFlags();

const SHAPE = [2, 3, 32, 32];
const image = (seed: number) => tensor(randn(2 * 3 * 32 * 32, seed), SHAPE);

async function readAll(ts: Tensor[]): Promise<Float32Array[]> {
  const out = await Promise.all(ts.map((t) => t.read()));
  for (const t of ts) t.dispose();
  return out;
}

/** anomalyMaps' smooth maps and scores, op by op. */
const eager = (m: Rdpp, img: Tensor) =>
  readAll(
    scope(() => {
      const r = m.anomalyMaps(img);
      return [r.smooth, r.scores];
    }),
  );

/** Five batches through one scorer, each held against anomalyMaps; returns the dispatches of the last. */
async function scorerMatches(m: Rdpp, what: string): Promise<number> {
  const scorer = m.scorer();
  let dispatches = 0;
  for (let k = 0; k < 5; k++) {
    const img = image(50 + k);
    const want = await eager(m, img);
    const before = runtime().counters.dispatches;
    const got = await readAll(
      scope(() => {
        const r = scorer.maps(img);
        return [r.smooth, r.scores];
      }),
    );
    dispatches = runtime().counters.dispatches - before;
    expectSameBits(got[0]!, want[0]!, `${what}, batch ${k + 1}: maps`);
    expectSameBits(got[1]!, want[1]!, `${what}, batch ${k + 1}: scores`);
    expect(scorer.graphBytes() === null, `${what}, batch ${k + 1}: a graph`).toBe(k === 0);
    img.dispose();
  }
  scorer.dispose();
  return dispatches;
}

describe('Rdpp.scorer', () => {
  it('gives anomalyMaps’ maps and scores bit for bit, packed (rdpp test) and not (browser app)', async () => {
    const m = formulaRdpp();
    await scorerMatches(m, 'unpacked');
    m.packForInference();
    const replayed = await scorerMatches(m, 'packed');
    const img = image(1);
    const before = runtime().counters.dispatches;
    await eager(m, img);
    // a replay records the same dispatches as an eager batch
    expect(replayed).toBe(runtime().counters.dispatches - before);
    img.dispose();
    m.dispose();
  });

  it('gives the same bits in f16 (precision f16, f16 activations)', async () => {
    // lavapipe and every GPU in use have shader-f16; without it --precision f16 is refused anyway
    if (!runtime().gpu.has('shader-f16')) return;
    flags.set({ PRECISION: 'f16' });
    const m = formulaRdpp();
    m.packForInference();
    await scorerMatches(m, 'f16');
    m.dispose();
  });

  it('follows new weights (a stale graph is dropped) and gives its memory back when disposed', async () => {
    const rt = runtime();
    const m = formulaRdpp();
    const img = image(2);
    await eager(m, img);
    await rt.sync();
    const live = rt.pool.snapshot().liveBytes;
    const scorer = m.scorer();
    const run = () =>
      readAll(
        scope(() => {
          const r = scorer.maps(img);
          return [r.smooth, r.scores];
        }),
      );
    for (let k = 0; k < 3; k++) await run();
    expect(scorer.graphBytes()).toBeGreaterThan(0);
    // a student weight changes (as an optimizer step or a checkpoint load would)
    const w = m.decoder.state.get(m.decoder.state.decls[0]!.name);
    rt.write(w.buffer, randn(w.size, 3));
    const want = await eager(m, img);
    const got = await run();
    expectSameBits(got[0]!, want[0]!, 'maps after the weight change');
    expect(scorer.graphBytes()).toBeNull();
    scorer.dispose();
    await rt.sync();
    expect(rt.pool.snapshot().liveBytes).toBe(live);
    img.dispose();
    m.dispose();
  });
});

describe('scoreImages (test, predict, evaluations during training)', () => {
  it('scores the same with graphs as without, a last smaller batch included, and keeps no memory', async () => {
    const rt = runtime();
    const m = formulaRdpp();
    m.packForInference();
    const images = [0, 1, 2, 3, 4, 5, 6].map((k) => randn(3 * 32 * 32, 70 + k).map((v) => (v + 1) / 2));
    const off = setFlags({ GRAPH_CAPTURE: false });
    const plain = await scoreImages(m, images, 32, 2);
    off();
    await rt.sync();
    const live = rt.pool.snapshot().liveBytes;
    const graphs = await scoreImages(m, images, 32, 2);
    await rt.sync();
    expect(rt.pool.snapshot().liveBytes).toBe(live);
    expect(graphs.map((s) => s.score)).toEqual(plain.map((s) => s.score));
    graphs.forEach((s, i) => {
      expectSameBits(s.map, plain[i]!.map, `image ${i}`);
    });
    m.dispose();
  });
});
