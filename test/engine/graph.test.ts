/**
 * Captured graphs (engine/graph.ts): a replay gives what running the function gives, bit for bit, for new
 * inputs; the graph's buffers stay its own while others allocate and write; uploads made inside the
 * function are replayed in order; a weight written or freed makes the graph stale; what a graph cannot
 * replay is refused and leaves nothing behind; GraphCache runs eager, captures, then replays.
 */
import { describe, expect, it } from 'vitest';
import {
  Adam,
  backward,
  binary,
  CapturedGraph,
  conv2d,
  GraphCache,
  keep,
  noGrad,
  param,
  release,
  runtime,
  scope,
  sizeClass,
  sum,
  type Tensor,
  tensor,
  unary,
} from '../../src/engine/index.js';
import { expectSameBits } from '../helpers/bits.js';
import { gpuAndFlags } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

const flags = gpuAndFlags();

const X = [2, 4, 9, 9];

/** A conv with bias, a ReLU, a constant uploaded inside (released, so a later op may reuse its buffer), a product. */
function network(w: Tensor, b: Tensor) {
  return ([x]: Tensor[]): Tensor[] =>
    noGrad(() => {
      const y = unary('relu', conv2d(x!, w, b, { padding: 1 }));
      const c = tensor(
        Float32Array.from({ length: y.size }, (_, i) => (i % 7) - 3),
        y.shape,
      );
      const s = binary('add', y, c);
      release(c);
      const p = binary('mul', s, s);
      const q = unary('scale', p, 0.5);
      release(s, p);
      return [q, y];
    });
}

async function readAll(ts: Tensor[]): Promise<Float32Array[]> {
  const out = await Promise.all(ts.map((t) => t.read()));
  for (const t of ts) t.dispose();
  return out;
}

function weights(seed: number) {
  return { w: tensor(randn(8 * 4 * 9, seed), [8, 4, 3, 3]), b: tensor(randn(8, seed + 1), [8]) };
}

describe('CapturedGraph', () => {
  it('replays new inputs to the bits an eager run gives, while others allocate and write between replays', async () => {
    const { w, b } = weights(1);
    const fn = network(w, b);
    const x0 = tensor(randn(2 * 4 * 81, 10), X);
    const eager0 = await readAll(scope(() => fn([x0])));
    const { graph, outputs } = CapturedGraph.capture([x0], fn);
    const captured = await readAll(outputs);
    expectSameBits(captured[0]!, eager0[0]!, 'the capture run');
    expect(graph.dispatches).toBeGreaterThanOrEqual(5);

    const noiseInput = tensor(randn(2 * 4 * 81, 99), X);
    const noiseWant = await readAll(scope(() => fn([noiseInput])));
    for (let k = 0; k < 3; k++) {
      const x = tensor(randn(2 * 4 * 81, 20 + k), X);
      const want = await readAll(scope(() => fn([x])));
      // others take buffers of every size the graph uses and hold results in them across the replay
      const noise = scope(() => [0, 1, 2].flatMap(() => fn([noiseInput])));
      const c0 = { ...runtime().counters };
      const got = await readAll(graph.replay([x]));
      expect(runtime().counters.dispatches - c0.dispatches).toBe(graph.dispatches);
      expect(runtime().counters.bindGroups - c0.bindGroups, 'bind groups made by a replay').toBe(0);
      expectSameBits(got[0]!, want[0]!, `replay ${k}: q`);
      expectSameBits(got[1]!, want[1]!, `replay ${k}: y`);
      const held = await readAll(noise);
      held.forEach((v, i) => {
        expectSameBits(v, noiseWant[i % 2]!, `replay ${k}: another computation's result ${i}`);
      });
      x.dispose();
    }
    noiseInput.dispose();
    graph.dispose();
    for (const t of [w, b, x0]) t.dispose();
  });

  it('owns its working set until disposed, and gives every byte back', async () => {
    const { w, b } = weights(2);
    const x = tensor(randn(2 * 4 * 81, 3), X);
    const pool = runtime().pool;
    await readAll(scope(() => network(w, b)([x])));
    const live = pool.snapshot().liveBytes;
    const { graph, outputs } = CapturedGraph.capture([x], network(w, b));
    await readAll(outputs);
    expect(pool.snapshot().liveBytes - live).toBe(graph.bytes);
    // more than its inputs and outputs: the intermediates (conv output, constant, sum, product) are its own
    const io = sizeClass(x.byteLength) + 2 * sizeClass(2 * 8 * 81 * 4);
    expect(graph.bytes).toBeGreaterThanOrEqual(io + 3 * sizeClass(2 * 8 * 81 * 4));
    graph.dispose();
    await runtime().sync();
    expect(pool.snapshot().liveBytes).toBe(live);
    expect(() => graph.replay([x])).toThrow(/disposed/);
    for (const t of [w, b, x]) t.dispose();
  });

  it('goes stale when a weight it reads is written or freed', async () => {
    const { w, b } = weights(3);
    const x = tensor(randn(2 * 4 * 81, 4), X);
    const { graph, outputs } = CapturedGraph.capture([x], network(w, b));
    await readAll(outputs);
    await readAll(graph.replay([x]));
    expect(graph.stale).toBeNull();
    runtime().write(w.buffer, randn(8 * 4 * 9, 5));
    expect(graph.stale).toMatch(/written or freed/);
    expect(() => graph.replay([x])).toThrow(/stale/);
    graph.dispose();

    const g2 = CapturedGraph.capture([x], network(w, b));
    await readAll(g2.outputs);
    b.dispose();
    expect(g2.graph.stale).not.toBeNull();
    g2.graph.dispose();
    for (const t of [w, x]) t.dispose();
  });

  it('refuses inputs of another shape or dtype', async () => {
    const { w, b } = weights(4);
    const x = tensor(randn(2 * 4 * 81, 6), X);
    const { graph, outputs } = CapturedGraph.capture([x], network(w, b));
    await readAll(outputs);
    const other = tensor(randn(4 * 81, 6), [1, 4, 9, 9]);
    expect(() => graph.replay([other])).toThrow(/differ from the captured .*capture a graph per shape/);
    graph.dispose();
    for (const t of [w, b, x, other]) t.dispose();
  });

  it('refuses what it cannot replay, keeping nothing: a read, a write to a buffer it did not make', async () => {
    const { w, b } = weights(5);
    const x = tensor(randn(2 * 4 * 81, 7), X);
    const pool = runtime().pool;
    await runtime().sync();
    const live = pool.snapshot().liveBytes;
    let reading: Promise<Float32Array> | null = null;
    expect(() =>
      CapturedGraph.capture([x], ([x1]) => {
        const y = unary('relu', x1!);
        reading = y.read();
        reading.catch(() => {});
        return [y];
      }),
    ).toThrow(/read a value back/);
    await expect(reading!).rejects.toThrow(/read back during a graph capture/);
    let leaked: Tensor | null = null;
    expect(() =>
      CapturedGraph.capture([x], ([x1]) => {
        leaked = keep(unary('relu', x1!));
        return [unary('neg', leaked)];
      }),
    ).toThrow(/still held outside it/);
    leaked!.dispose();
    expect(() =>
      CapturedGraph.capture([x], ([x1]) => {
        runtime().copy(x1!.buffer, 0, w.buffer, 0, 64);
        return [unary('relu', x1!)];
      }),
    ).toThrow(/writes a buffer it did not make/);
    expect(() => CapturedGraph.capture([x], () => [w])).toThrow(/returned .* which it did not make/);
    expect(runtime().capture).toBeNull();
    await runtime().sync();
    expect(pool.snapshot().liveBytes).toBe(live);
    for (const t of [w, b, x]) t.dispose();
  });
});

/** A training step: the loss of a conv with weight `w`, its gradient, Adam's update with the scalars input. */
function trainingStep(w: Tensor, opt: Adam) {
  return ([x, scalars]: Tensor[]): Tensor[] => {
    const y = conv2d(x!, w, null, { padding: 1 });
    const loss = sum(binary('mul', y, y));
    backward(loss);
    opt.stepWith(scalars!);
    opt.zeroGrad();
    return [noGrad(() => unary('scale', loss, 1))];
  };
}

describe('CapturedGraph with state written in place', () => {
  it('replays a training step bit for bit as it runs eagerly, updating the state every replay', async () => {
    const twins = [0, 1].map(() => {
      const w = param(tensor(randn(8 * 4 * 9, 50), [8, 4, 3, 3]));
      const opt = new Adam([w], { lr: 0.01, betas: [0.5, 0.999] });
      return { w, opt, step: trainingStep(w, opt) };
    });
    const [eager, graphed] = twins as [(typeof twins)[0], (typeof twins)[0]];
    const state = new Set(
      [graphed.w, ...graphed.opt.state().m, ...graphed.opt.state().v].map((t) => t.buffer),
    );
    // without naming its state, a step is refused: it writes buffers it did not make
    const scalars0 = tensor(graphed.opt.nextScalars(), [2]);
    const x0 = tensor(randn(2 * 4 * 81, 60), X);
    expect(() => CapturedGraph.capture([x0, scalars0], graphed.step)).toThrow(
      /writes a buffer it did not make/,
    );
    // (the refused run did update w: reset both twins' state by running the eager twin once as well)
    await readAll(scope(() => eager.step([x0, tensor(eager.opt.nextScalars(), [2])])));
    graphed.opt.countSteps();
    eager.opt.countSteps();

    const s1 = tensor(graphed.opt.nextScalars(), [2]);
    const x1 = tensor(randn(2 * 4 * 81, 61), X);
    const { graph, outputs } = CapturedGraph.capture([x1, s1], graphed.step, { state });
    graphed.opt.countSteps();
    const want1 = await readAll(scope(() => eager.step([x1, tensor(eager.opt.nextScalars(), [2])])));
    eager.opt.countSteps();
    expectSameBits((await readAll(outputs))[0]!, want1[0]!, 'the capture run');
    for (let k = 0; k < 3; k++) {
      const x = tensor(randn(2 * 4 * 81, 70 + k), X);
      const got = await readAll(graph.replay([x, tensor(graphed.opt.nextScalars(), [2])]));
      graphed.opt.countSteps();
      const want = await readAll(scope(() => eager.step([x, tensor(eager.opt.nextScalars(), [2])])));
      eager.opt.countSteps();
      expectSameBits(got[0]!, want[0]!, `replay ${k}: loss`);
      expectSameBits(await graphed.w.read(), await eager.w.read(), `replay ${k}: the weight`);
      const [gm, em] = [graphed.opt.state().m[0]!, eager.opt.state().m[0]!];
      expectSameBits(await gm.read(), await em.read(), `replay ${k}: Adam's first moment`);
      x.dispose();
    }
    expect(graphed.opt.state().step).toEqual([5]);
    expect(graphed.opt.state().step).toEqual(eager.opt.state().step);
    graph.dispose();
    for (const t of [x0, x1, scalars0, s1]) t.dispose();
    for (const t of twins) {
      t.opt.dispose();
      t.w.dispose();
    }
  });

  it('drops what depends on the state it writes: another graph reading it goes stale at a replay', async () => {
    const w = param(tensor(randn(8 * 4 * 9, 80), [8, 4, 3, 3]));
    const opt = new Adam([w], { lr: 0.01 });
    const state = new Set([w.buffer, opt.state().m[0]!.buffer, opt.state().v[0]!.buffer]);
    const x = tensor(randn(2 * 4 * 81, 81), X);
    const s = tensor(opt.nextScalars(), [2]);
    const train = CapturedGraph.capture([x, s], trainingStep(w, opt), { state });
    opt.countSteps();
    await readAll(train.outputs);
    // an evaluation graph reading w (watched: it did not make it)
    const evaluate = CapturedGraph.capture([x], ([x1]) => [
      noGrad(() => conv2d(x1!, w, null, { padding: 1 })),
    ]);
    await readAll(evaluate.outputs);
    expect(evaluate.graph.stale).toBeNull();
    await readAll(train.graph.replay([x, s]));
    expect(train.graph.stale, 'the training graph: its state may change').toBeNull();
    expect(evaluate.graph.stale).toMatch(/written or freed/);
    for (const g of [train.graph, evaluate.graph]) g.dispose();
    for (const t of [x, s]) t.dispose();
    opt.dispose();
    w.dispose();
  });
});

describe('GraphCache', () => {
  it('runs a shape eagerly, captures it the second time, replays it after; a new shape or a stale graph starts over', async () => {
    const { w, b } = weights(6);
    const fn = network(w, b);
    const cache = new GraphCache(fn);
    const xs = [0, 1, 2, 3].map((k) => tensor(randn(2 * 4 * 81, 30 + k), X));
    const want = await Promise.all(xs.map(async (x) => (await readAll(scope(() => fn([x]))))[0]!));

    const c0 = { ...runtime().counters };
    expectSameBits((await readAll(cache.run([xs[0]!])))[0]!, want[0]!, 'call 1 (eager)');
    expect(cache.current).toBeNull();
    const eagerBindGroups = runtime().counters.bindGroups - c0.bindGroups;
    expectSameBits((await readAll(cache.run([xs[1]!])))[0]!, want[1]!, 'call 2 (capture)');
    const graph = cache.current!;
    expect(graph).not.toBeNull();
    for (const k of [2, 3])
      expectSameBits((await readAll(cache.run([xs[k]!])))[0]!, want[k]!, `call ${k + 1} (replay)`);
    expect(cache.current).toBe(graph);
    expect(eagerBindGroups).toBeGreaterThanOrEqual(0);

    // a smaller batch: the graph goes, the new shape runs eagerly
    const one = tensor(randn(4 * 81, 40), [1, 4, 9, 9]);
    const wantOne = (await readAll(scope(() => fn([one]))))[0]!;
    expectSameBits((await readAll(cache.run([one])))[0]!, wantOne, 'new shape');
    expect(cache.current).toBeNull();
    expectSameBits((await readAll(cache.run([one])))[0]!, wantOne, 'new shape, captured');

    // new weights: the graph is stale, the next call runs eagerly with them
    runtime().write(w.buffer, randn(8 * 4 * 9, 41));
    const wantNew = (await readAll(scope(() => fn([one]))))[0]!;
    expectSameBits((await readAll(cache.run([one])))[0]!, wantNew, 'after a weight change');
    expect(cache.counts).toEqual({ eager: 3, captured: 2, replayed: 2 });
    cache.dispose();
    for (const t of [w, b, one, ...xs]) t.dispose();
  });

  it('runs a function whose capture is refused eagerly from then on, losing none of its results', async () => {
    const { w, b } = weights(8);
    const fn = network(w, b);
    const target = tensor(new Float32Array(16), [16]);
    // a function that also writes a buffer it did not make: its capture is refused
    const writing = (ins: Tensor[]) => {
      const out = fn(ins);
      runtime().copy(ins[0]!.buffer, 0, target.buffer, 0, 64);
      return out;
    };
    const told: string[] = [];
    const cache = new GraphCache(writing, { onRefused: (why) => told.push(why) });
    const xs = [0, 1, 2, 3].map((k) => tensor(randn(2 * 4 * 81, 90 + k), X));
    for (const [k, x] of xs.entries()) {
      const want = await readAll(scope(() => fn([x])));
      const got = await readAll(cache.run([x]));
      expectSameBits(got[0]!, want[0]!, `call ${k + 1}`);
      expectSameBits(await target.read(), (await x.read()).subarray(0, 16), `call ${k + 1}: its write`);
    }
    expect(told).toEqual([expect.stringMatching(/writes a buffer it did not make/)]);
    expect(cache.refused).toMatch(/writes a buffer it did not make/);
    expect(cache.current).toBeNull();
    expect(cache.counts).toEqual({ eager: 4, captured: 0, replayed: 0 });
    cache.dispose();
    for (const t of [w, b, target, ...xs]) t.dispose();
  });

  it('never captures with GRAPH_CAPTURE off', async () => {
    flags.set({ GRAPH_CAPTURE: false });
    const { w, b } = weights(7);
    const cache = new GraphCache(network(w, b));
    const x = tensor(randn(2 * 4 * 81, 8), X);
    for (let i = 0; i < 3; i++) await readAll(cache.run([x]));
    expect(cache.current).toBeNull();
    cache.dispose();
    for (const t of [w, b, x]) t.dispose();
  });
});
