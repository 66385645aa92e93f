/**
 * End-to-end benchmarks: one RD++ training step (teacher on clean + noisy images, projections, losses,
 * OCBE, decoder, backward, both Adam updates) and inference (anomaly maps + scores), with the median time,
 * images/s and the engine's peak GPU memory. Weights are formula weights: speed does not depend on them.
 */
import { Adam, adapterLine, backward, runtime, scope, tensor } from '../src/engine/index.js';
import { Rdpp, type SsotMode } from '../src/model/rdpp.js';
import { KerasResnet50Teacher } from '../src/model/teacher/keras-resnet50.js';
import { type Teacher, TorchvisionTeacher } from '../src/model/teacher/torchvision.js';

export type BenchTeacher = 'wrn50' | 'resnet18' | 'resnet50-keras';

export interface E2eResult {
  kind: 'train' | 'infer';
  adapter: string;
  date: string;
  teacher: BenchTeacher;
  ssot: SsotMode;
  batch: number;
  imageSize: number;
  iters: number;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  images_per_s: number;
  peak_gpu_mib: number;
}

function makeModel(teacher: BenchTeacher): Rdpp {
  const t: Teacher =
    teacher === 'resnet50-keras'
      ? new KerasResnet50Teacher()
      : new TorchvisionTeacher(teacher === 'wrn50' ? 'wide_resnet50_2' : 'resnet18');
  t.state.initFormula('encoder.');
  const m = new Rdpp(t);
  for (const [p, s] of [
    ['bn.', m.ocbe.state],
    ['decoder.', m.decoder.state],
    ['proj.', m.proj.state],
  ] as const)
    s.initFormula(p);
  return m;
}

function stats(times: number[]): { median: number; min: number; max: number } {
  const s = [...times].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
}

export async function benchE2e(
  kind: 'train' | 'infer',
  o: {
    teacher: BenchTeacher;
    batch: number;
    imageSize: number;
    iters: number;
    warmup: number;
    ssot?: SsotMode;
  },
): Promise<E2eResult> {
  const rt = runtime();
  const ssot = o.ssot ?? 'official';
  const m = makeModel(o.teacher);
  const shape = [o.batch, 3, o.imageSize, o.imageSize];
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i * 0.37));
  const groups = m.parameterGroups();
  const optA = new Adam(groups.proj, { lr: 1e-3, betas: [0.5, 0.999] });
  const optB = new Adam(groups.ocbeDecoder, { lr: 5e-3, betas: [0.5, 0.999] });
  const perm = [...Array(o.batch).keys()].map((i) => (i + 1) % o.batch);
  const once = () => {
    if (kind === 'train') {
      scope(() => {
        const f = m.trainForward(tensor(data, shape), tensor(data, shape), perm, ssot);
        backward(f.loss);
      });
      optA.step();
      optB.step();
      optA.zeroGrad();
      optB.zeroGrad();
    } else {
      scope(() => {
        m.anomalyMaps(tensor(data, shape));
      });
    }
  };
  for (let i = 0; i < o.warmup; i++) {
    once();
    await rt.sync();
  }
  rt.pool.resetPeak();
  const times: number[] = [];
  for (let i = 0; i < o.iters; i++) {
    const t0 = performance.now();
    once();
    await rt.sync();
    times.push(performance.now() - t0);
  }
  const peak = rt.pool.snapshot().peakLiveBytes;
  optA.dispose();
  optB.dispose();
  m.dispose();
  const s = stats(times);
  return {
    kind,
    adapter: adapterLine(rt.gpu.report),
    date: new Date().toISOString(),
    teacher: o.teacher,
    ssot,
    batch: o.batch,
    imageSize: o.imageSize,
    iters: o.iters,
    median_ms: +s.median.toFixed(3),
    min_ms: +s.min.toFixed(3),
    max_ms: +s.max.toFixed(3),
    images_per_s: +((o.batch * 1000) / s.median).toFixed(2),
    peak_gpu_mib: +(peak / 2 ** 20).toFixed(1),
  };
}
