/**
 * The RD++ training loop (spec §4.6), platform-neutral: the caller supplies decoded images and hooks for
 * progress and for writing checkpoint bytes.
 *
 * Per batch: clean images and pseudo-anomalous copies (simplex-noise patch, spec §5) are normalised for
 * the teacher, the loss L_KD + 0.2·L_proj is computed and back-propagated (gradients accumulate in the
 * parameters' .grad); every `accumulate`-th batch of an epoch both Adam optimizers step and zero the
 * gradients — with summed, not averaged, gradients, and leftover gradients carried into the next epoch
 * exactly like the official code. One seeded RNG drives shuffling, noise boxes and SSOT permutations;
 * its state is saved in checkpoints, so `resume` continues bit-identically.
 *
 * Steps are recorded in units: one batch, or a window of `accumulate` batches with the optimizers'
 * update that ends it, replayed from a captured graph (flag TRAIN_GRAPH_CAPTURE, engine/graph.ts) when
 * it starts with no gradients carried over and holds only full batches. A replay records the same
 * commands as the ops would, bit for bit, without their JavaScript; the batches, SSOT pairings and Adam's
 * step scalars are the graph's inputs, the weights, moments and running statistics its state.
 */
import {
  Adam,
  backward,
  clone,
  concat,
  flag,
  GraphCache,
  keep,
  noGrad,
  type RowPermutation,
  rowPermutation,
  scope,
  type Tensor,
  tensor,
} from '../engine/index.js';
import {
  type CheckpointMeta,
  type DecodedCheckpoint,
  encodeCheckpoint,
  encodeWeightsCheckpoint,
  loadStudent,
  studentTensors,
  WEIGHTS_FORMAT,
} from '../model/checkpoint.js';
import { Rng } from '../model/init.js';
import { normalise } from '../model/preprocess.js';
import type { Rdpp } from '../model/rdpp.js';
import type { HostArray } from '../model/state.js';
import type { TrainConfig } from './config.js';
import { PseudoAnomaly } from './noise.js';

export interface SelectionSample {
  rgb: Float32Array;
  label: 0 | 1;
  mask: Uint8Array | null;
}

export interface TrainData {
  /** normal training images, CHW RGB in [0, 1] at cfg.imageSize */
  train: Float32Array[];
  /** images for model selection: held-out normal images (or the test set with selectOn 'test') */
  selection: SelectionSample[];
}

export interface StepInfo {
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  globalStep: number;
  loss: number;
  kd: number;
  proj: number;
  /** the projection loss's parts (unweighted): L_Recon, L_Con and L_SSOT (null with --ssot off) */
  recon: number;
  contrast: number;
  ssot: number | null;
  imagesPerSecond: number;
}

export interface EpochInfo {
  epoch: number;
  loss: number;
  kd: number;
  proj: number;
  /** selection score of this epoch (see selectionScore) */
  score: number;
  best: boolean;
  seconds: number;
}

export interface TrainerHooks {
  onStep?: (s: StepInfo) => void;
  onEpoch?: (e: EpochInfo) => void | Promise<void>;
  /**
   * write checkpoint bytes: 'last' (to resume from) and 'best' (the best selection score's weights, when it
   * changed since the previous write), after an epoch when `saveEveryMs` has passed since the last write,
   * and always after the last epoch and when shouldStop() ends training
   */
  save?: (kind: 'last' | 'best', bytes: Uint8Array) => Promise<void>;
  /**
   * (not a callback) the least time between two writes of `save`; 0 or absent: after every epoch. On a GPU
   * an epoch can take seconds while a resume checkpoint at 256² is ~1.3 GB read back, encoded and written,
   * so saving after each one would cost as much as training. Between writes, the best epoch's weights are
   * kept as a copy on the GPU, so `best` holds the same bytes as if it had been written at once.
   */
  saveEveryMs?: number;
  /** asked after each epoch; returning true ends training after saving */
  shouldStop?: () => boolean;
  /** evaluation used for selection; returns a score where higher is better */
  select?: (model: Rdpp, samples: SelectionSample[]) => Promise<number>;
  /**
   * a line worth a log: the steps' graph was captured (from then on they are replayed), or its capture
   * was refused (they run op by op); default: the console
   */
  note?: (line: string) => void;
}

export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
}

interface PreparedBatch {
  size: number;
  /** the SSOT pairing */
  perm: number[];
  /** clean and pseudo-anomalous images, normalised for the teacher, [size, 3, S, S] */
  clean: Float32Array;
  noisy: Float32Array;
}

/** What the trainer records at once: one batch, or a window of `accumulate` batches through a graph. */
interface Unit {
  windowed: boolean;
  batches: PreparedBatch[];
}

/**
 * A recorded step whose losses are on their way back. The trainer records unit u + 1 (a batch, or a
 * window of batches with its optimizer update) before it waits for unit u's losses: waiting right after
 * recording a unit would leave the GPU idle while the CPU records the optimizer update and the next
 * unit's first commands (on a GPU, a few milliseconds per step). The price: a non-finite loss is seen one
 * unit later, after that unit's commands (training stops there; checkpoints are only written at epoch
 * ends, after every step of the epoch has been checked).
 */
interface StepInFlight {
  /** index of the batch in its epoch */
  batch: number;
  /** the step's number in the run (from 1) */
  globalStep: number;
  size: number;
  /** the loss parts, one tensor */
  packed: Tensor;
  reading: Promise<Float32Array>;
}

type LossSums = { loss: number; kd: number; proj: number };

function add(a: LossSums, b: LossSums): LossSums {
  return { loss: a.loss + b.loss, kd: a.kd + b.kd, proj: a.proj + b.proj };
}

export interface TrainerState {
  epoch: number;
  globalStep: number;
  rng: number[];
  history: EpochInfo[];
  bestScore: number | null;
  bestEpoch: number | null;
}

/**
 * What a training step writes in place, as the buffers a captured step's graph takes as its state: the
 * student's weights and running statistics, and the optimizers' moments.
 */
export function trainingState(model: Rdpp, optimizers: readonly Adam[]): GPUBuffer[] {
  const tensors = model.studentStates().flatMap((st) => st.named().map(([, t]) => t));
  for (const opt of optimizers) {
    const { m, v } = opt.state();
    tensors.push(...m, ...v);
  }
  return tensors.map((t) => t.buffer);
}

/** The noise field's seed, derived from the training seed (the reference draws it once per dataset). */
export function noiseSeed(seed: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) >>> 0) - 2 ** 31;
}

export class Trainer {
  readonly optProj: Adam;
  readonly optStudent: Adam;
  private rng: Rng;
  private readonly noise: PseudoAnomaly;
  private saving: Promise<void> | null = null;
  private saveError: Error | null = null;
  /** when `save` last ran (performance.now(); the run's start before the first) */
  private savedAt = 0;
  /** the best epoch's weights and checkpoint metadata, kept on the GPU until the next write */
  private bestKept: { tensors: [string, Tensor][]; meta: CheckpointMeta } | null = null;
  /** windows of `accumulate` batches through captured graphs (see the file header; public for tests and benchmarks) */
  readonly windows: GraphCache;
  /** the state buffers the window graph was captured with (a graph must see the same ones) */
  private windowState: GPUBuffer[] = [];
  state: TrainerState;

  constructor(
    readonly model: Rdpp,
    readonly cfg: TrainConfig,
    private readonly data: TrainData,
    private readonly hooks: TrainerHooks = {},
  ) {
    if (data.train.length === 0) throw new Error('no training images');
    this.initStudent();
    const groups = model.parameterGroups();
    this.optProj = new Adam(groups.proj, { lr: cfg.lrProj, betas: cfg.betas });
    this.optStudent = new Adam(groups.ocbeDecoder, { lr: cfg.lrStudent, betas: cfg.betas });
    this.rng = new Rng(cfg.seed + 1);
    this.noise = new PseudoAnomaly({ seed: noiseSeed(cfg.seed), imageSize: cfg.imageSize });
    this.windows = new GraphCache((ins) => this.windowSteps(ins), {
      enabled: () => flag('TRAIN_GRAPH_CAPTURE'),
      // recordWindow keeps windowState current before every run
      state: () => new Set(this.windowState),
      onRefused: (why) => this.note(`training steps run op by op: their graph capture was refused (${why})`),
    });
    this.state = {
      epoch: 0,
      globalStep: 0,
      rng: this.rng.state(),
      history: [],
      bestScore: null,
      bestEpoch: null,
    };
  }

  /** Fresh student weights with the official initialisation (seeded); `resume` overwrites them in place. */
  private initStudent(): void {
    const init = new Rng(this.cfg.seed);
    for (const st of this.model.studentStates()) st.init(init);
  }

  /**
   * A batch's CPU work: the SSOT pairing, the pseudo-anomalies and the teacher normalisation, drawing from
   * the RNG in the same order as ever (pairing, then each image's noise). Done for the next batch while
   * the GPU runs the current one.
   */
  private prepareBatch(indices: number[]): PreparedBatch {
    const perm = this.rng.permutation(indices.length);
    const s = this.cfg.imageSize;
    const per = 3 * s * s;
    const clean = new Float32Array(indices.length * per);
    const noisy = new Float32Array(indices.length * per);
    const mode = this.model.teacher.preprocess;
    indices.forEach((idx, k) => {
      const rgb = this.data.train[idx]!;
      normalise(rgb, s, s, mode, clean.subarray(k * per, (k + 1) * per));
      const copy = Float32Array.from(rgb);
      this.noise.apply(copy, s, this.rng);
      normalise(copy, s, s, mode, noisy.subarray(k * per, (k + 1) * per));
    });
    return { size: indices.length, perm, clean, noisy };
  }

  /** Train until cfg.epochs (continuing from the current state). */
  async run(): Promise<TrainerState> {
    const { cfg } = this;
    const n = this.data.train.length;
    const batches = Math.ceil(n / cfg.batch);
    this.savedAt = performance.now();
    while (this.state.epoch < cfg.epochs) {
      const t0 = performance.now();
      const order = this.rng.permutation(n);
      let sums = { loss: 0, kd: 0, proj: 0 };
      const batchAt = (b: number) => this.prepareBatch(order.slice(b * cfg.batch, (b + 1) * cfg.batch));
      // a unit's batches, prepared while the GPU runs the previous unit (never across an epoch's end, so
      // the RNG state saved with the epoch's checkpoint is exactly what resuming needs)
      const unitAt = (b: number): Unit => {
        const windowed = this.windowAt(b, batches, n);
        const size = windowed ? cfg.accumulate : 1;
        return { windowed, batches: Array.from({ length: size }, (_, k) => batchAt(b + k)) };
      };
      let next: Unit | null = unitAt(0);
      // a unit's losses are read back while the next unit runs (see StepInFlight): `done` is when the
      // previous unit's losses arrived, so that unit-to-unit time is what images/s reports
      let inFlight: StepInFlight[] = [];
      let done = performance.now();
      try {
        for (let b = 0; b < batches; ) {
          const unit = next!;
          const steps = unit.windowed
            ? this.recordWindow(unit.batches, b)
            : [this.recordBatch(unit.batches[0]!, b)];
          b += unit.batches.length;
          next = b < batches ? unitAt(b) : null;
          // the previous unit's losses: this unit is queued behind it, so the GPU does not idle meanwhile
          const previous = inFlight;
          inFlight = steps;
          if (previous.length > 0) {
            sums = add(sums, await this.finishUnit(previous, done, batches));
            done = performance.now();
          }
        }
        const last = inFlight;
        inFlight = [];
        if (last.length > 0) sums = add(sums, await this.finishUnit(last, done, batches));
      } finally {
        // steps left in flight by an error (their losses are not reported: the run ends here)
        for (const step of inFlight) {
          step.reading.catch(() => undefined);
          step.packed.dispose();
        }
      }
      this.state.epoch++;
      this.state.rng = this.rng.state();
      const score = this.hooks.select
        ? await this.hooks.select(this.model, this.data.selection)
        : -sums.loss / batches;
      const best = this.state.bestScore === null || score > this.state.bestScore;
      if (best) {
        this.state.bestScore = score;
        this.state.bestEpoch = this.state.epoch;
      }
      const info: EpochInfo = {
        epoch: this.state.epoch,
        loss: sums.loss / batches,
        kd: sums.kd / batches,
        proj: sums.proj / batches,
        score,
        best,
        seconds: (performance.now() - t0) / 1000,
      };
      this.state.history.push(info);
      await this.hooks.onEpoch?.(info);
      const stop = this.hooks.shouldStop?.() ?? false;
      await this.saveOrKeep(best, stop || this.state.epoch >= cfg.epochs);
      if (stop) break;
    }
    await this.savesDone();
    return this.state;
  }

  /**
   * Whether the batches from `b` on run as one captured window: capture is on, a window starts there
   * (b a multiple of `accumulate`) and ends within the epoch with full batches only, and no gradient is
   * carried over (after an odd batch count, the next epoch's first window adds to the leftover ones).
   */
  private windowAt(b: number, batches: number, n: number): boolean {
    const a = this.cfg.accumulate;
    return (
      flag('TRAIN_GRAPH_CAPTURE') &&
      b % a === 0 &&
      b + a <= batches &&
      (b + a) * this.cfg.batch <= n &&
      [...this.optProj.params, ...this.optStudent.params].every((p) => !p.grad)
    );
  }

  /** One batch's forward and backward pass (gradients accumulate); every loss part in one tensor. */
  private forwardBackward(x: Tensor, xn: Tensor, perm: readonly number[] | RowPermutation): Tensor {
    return scope(() => {
      const f = this.model.trainForward(x, xn, perm, this.cfg.ssot);
      backward(f.loss);
      return noGrad(() =>
        concat([f.loss, f.kd, f.proj, f.recon, f.contrast, ...(f.ssot ? [f.ssot] : [])], 0),
      );
    });
  }

  /** Record one batch op by op (and the optimizers' update when it ends an accumulation window). */
  private recordBatch(batch: PreparedBatch, b: number): StepInFlight {
    const { cfg } = this;
    const shape = [batch.size, 3, cfg.imageSize, cfg.imageSize];
    const packed = scope(() =>
      this.forwardBackward(tensor(batch.clean, shape), tensor(batch.noisy, shape), batch.perm),
    );
    const reading = packed.read();
    if ((b + 1) % cfg.accumulate === 0) {
      this.optProj.step();
      this.optStudent.step();
      this.optProj.zeroGrad();
      this.optStudent.zeroGrad();
    }
    this.state.globalStep++;
    return { batch: b, globalStep: this.state.globalStep, size: batch.size, packed, reading };
  }

  /**
   * Record a window of `accumulate` batches and the update that ends it through the window graph: op by
   * op the first time, captured the second, replayed after (GraphCache).
   */
  private recordWindow(unit: PreparedBatch[], b: number): StepInFlight[] {
    const { cfg } = this;
    const state = trainingState(this.model, [this.optProj, this.optStudent]);
    if (state.length !== this.windowState.length || state.some((x, i) => x !== this.windowState[i])) {
      // other buffers (a model whose tensors were replaced): a graph of the old ones must not replay
      this.windows.dispose();
      this.windowState = state;
    }
    const shape = [cfg.batch, 3, cfg.imageSize, cfg.imageSize];
    const inputs: Tensor[] = [];
    for (const batch of unit) {
      const { perm, inverse } = rowPermutation(batch.perm);
      inputs.push(tensor(batch.clean, shape), tensor(batch.noisy, shape), perm, inverse);
    }
    inputs.push(tensor(this.optProj.nextScalars(), [2 * this.optProj.params.length]));
    inputs.push(tensor(this.optStudent.nextScalars(), [2 * this.optStudent.params.length]));
    const captured = this.windows.counts.captured;
    let packed: Tensor[];
    try {
      packed = this.windows.run(inputs);
    } finally {
      for (const t of inputs) t.dispose();
    }
    const graph = this.windows.current;
    if (graph && captured === 0 && this.windows.counts.captured === 1)
      this.note(
        `training steps: captured as a graph at steps ${this.state.globalStep + 1}–${this.state.globalStep + unit.length} ` +
          `(a window of ${unit.length} batch${unit.length > 1 ? 'es' : ''} and the update, ${graph.dispatches} dispatches, ` +
          `holding ${(graph.bytes / 2 ** 20).toFixed(0)} MiB); later windows are replayed from it ` +
          '(RDPP_TRAIN_GRAPH_CAPTURE=0 records every step op by op)',
      );
    // the update was recorded or replayed: its parameters' step counts go up (those with gradients)
    this.optProj.countSteps();
    this.optStudent.countSteps();
    return packed.map((p, k) => ({
      batch: b + k,
      globalStep: ++this.state.globalStep,
      size: unit[k]!.size,
      packed: p,
      reading: p.read(),
    }));
  }

  /**
   * The window graph's function. Inputs: per batch the clean and noisy images, the SSOT pairing and its
   * inverse; then the two optimizers' step scalars. Outputs: each batch's loss parts.
   */
  private windowSteps(ins: Tensor[]): Tensor[] {
    const a = this.cfg.accumulate;
    const packed: Tensor[] = [];
    for (let k = 0; k < a; k++) {
      const [x, xn, perm, inverse] = ins.slice(4 * k, 4 * k + 4) as [Tensor, Tensor, Tensor, Tensor];
      packed.push(this.forwardBackward(x, xn, { perm, inverse }));
    }
    this.optProj.stepWith(ins[4 * a]!);
    this.optStudent.stepWith(ins[4 * a + 1]!);
    this.optProj.zeroGrad();
    this.optStudent.zeroGrad();
    return packed;
  }

  private note(line: string): void {
    (this.hooks.note ?? ((l: string) => console.warn(l)))(line);
  }

  /**
   * A unit's losses, once read back: each step checked (a non-finite loss stops training) and reported
   * in order; images/s over the unit (`since`: when the previous unit's losses arrived).
   */
  private async finishUnit(steps: StepInFlight[], since: number, batches: number): Promise<LossSums> {
    let values: Float32Array[];
    try {
      values = await Promise.all(steps.map((s) => s.reading));
    } finally {
      for (const s of steps) s.packed.dispose();
    }
    const images = steps.reduce((a, s) => a + s.size, 0);
    const imagesPerSecond = images / ((performance.now() - since) / 1000);
    let sums: LossSums = { loss: 0, kd: 0, proj: 0 };
    steps.forEach((step, k) => {
      sums = add(sums, this.report(step, values[k]!, imagesPerSecond, batches));
    });
    return sums;
  }

  /** A step's losses, read back: checked (a non-finite loss stops training) and reported. */
  private report(
    step: StepInFlight,
    values: Float32Array,
    imagesPerSecond: number,
    batches: number,
  ): LossSums {
    const [loss, kd, proj, recon, contrast] = Array.from(values.subarray(0, 5)) as [
      number,
      number,
      number,
      number,
      number,
    ];
    const ssot = values.length > 5 ? values[5]! : null;
    const epoch = this.state.epoch + 1;
    if (!Number.isFinite(loss))
      throw new NonFiniteLossError(
        `the loss became ${loss} at epoch ${epoch}, batch ${step.batch + 1} (L_KD ${kd}, L_proj ${proj}); ` +
          'training stopped — the last good checkpoint is kept. Try a lower learning rate or check the images.',
      );
    this.hooks.onStep?.({
      epoch,
      epochs: this.cfg.epochs,
      batch: step.batch + 1,
      batches,
      globalStep: step.globalStep,
      loss,
      kd,
      proj,
      recon,
      contrast,
      ssot,
      imagesPerSecond,
    });
    return { loss, kd, proj };
  }

  /**
   * After an epoch: write `last` (and `best` when it changed since the previous write) if the caller saves
   * and it is time (`force`, no saveEveryMs, or saveEveryMs passed), else keep a copy of a new best's
   * weights on the GPU for the next write.
   */
  private async saveOrKeep(best: boolean, force: boolean): Promise<void> {
    const save = this.hooks.save;
    if (!save) return;
    const every = this.hooks.saveEveryMs ?? 0;
    if (!force && every > 0 && performance.now() - this.savedAt < every) {
      if (best) this.keepBest();
      return;
    }
    const student = await studentTensors(this.model);
    const lastBytes = await this.checkpoint(student);
    // best holds weights only (no optimizer state): this epoch's, or the kept copy of an earlier best's
    let bestBytes: Uint8Array | null = null;
    if (best) bestBytes = encodeWeightsCheckpoint(student, this.meta());
    else if (this.bestKept)
      bestBytes = encodeWeightsCheckpoint(await keptToHost(this.bestKept.tensors), this.bestKept.meta);
    this.dropBest();
    // written behind the next epoch's steps (a checkpoint is ~1 GB at 256²); the previous write is
    // complete before this one starts, and every write is atomic. best first: a run killed between the
    // two writes resumes from the older `last`, redoes its epochs bit-identically and writes the same best
    // again
    await this.savesDone();
    this.savedAt = performance.now();
    this.saving = (async () => {
      if (bestBytes) await save('best', bestBytes);
      await save('last', lastBytes);
    })().catch((e: unknown) => {
      this.saveError = e instanceof Error ? e : new Error(String(e));
    });
  }

  /** Keep this epoch's student weights (a GPU copy) and checkpoint metadata as the best's, for the next write. */
  private keepBest(): void {
    this.dropBest();
    const tensors: [string, Tensor][] = [];
    noGrad(() => {
      for (const st of this.model.studentStates())
        for (const [k, t] of st.named()) tensors.push([st.prefix + k, keep(clone(t))]);
    });
    // a deep copy: the history goes on growing
    this.bestKept = { tensors, meta: JSON.parse(JSON.stringify(this.meta())) as CheckpointMeta };
  }

  private dropBest(): void {
    for (const [, t] of this.bestKept?.tensors ?? []) t.dispose();
    this.bestKept = null;
  }

  /** Wait for the checkpoint files being written; a failed write is thrown here. */
  async savesDone(): Promise<void> {
    await this.saving;
    this.saving = null;
    const e = this.saveError;
    this.saveError = null;
    if (e) throw e;
  }

  /** Student weights, optimizer moments, pending gradients and the loop state, as checkpoint bytes. */
  async checkpoint(student?: Map<string, HostArray>): Promise<Uint8Array> {
    const tensors = new Map(student ?? (await studentTensors(this.model)));
    const groups: [string, Adam][] = [
      ['proj', this.optProj],
      ['student', this.optStudent],
    ];
    const steps: Record<string, number[]> = {};
    // every read is issued before any is awaited: one wait for the GPU instead of one per tensor
    // (inserted in a fixed order, so the file's bytes do not depend on which read finishes first)
    const reads: { key: string; shape: number[]; data: Promise<Float32Array> }[] = [];
    const put = (key: string, shape: readonly number[], t: Tensor) =>
      reads.push({ key, shape: [...shape], data: t.read() });
    for (const [name, opt] of groups) {
      const st = opt.state();
      steps[name] = st.step;
      for (let i = 0; i < st.m.length; i++) {
        const p = opt.params[i]!;
        put(`optim.${name}.m.${i}`, p.shape, st.m[i]!);
        put(`optim.${name}.v.${i}`, p.shape, st.v[i]!);
        if (p.grad) put(`grad.${name}.${i}`, p.shape, p.grad);
      }
    }
    const data = await Promise.all(reads.map((r) => r.data));
    for (const [i, r] of reads.entries()) tensors.set(r.key, { shape: r.shape, data: data[i]! });
    const meta = this.meta();
    return encodeCheckpoint(tensors, { ...meta, training: { ...meta.training, adamSteps: steps } });
  }

  private meta(): CheckpointMeta {
    return {
      config: { ...this.cfg, teacherPath: undefined },
      training: { ...this.state, format: 'rdpp-train/1' },
    };
  }

  /** Continue from a checkpoint written by `checkpoint()`: weights, optimizer state, gradients, RNG, epoch. */
  resume(ck: DecodedCheckpoint, source: string): void {
    const tr = ck.meta.training as
      | (TrainerState & { adamSteps: Record<string, number[]>; format?: string })
      | undefined;
    if (!tr?.adamSteps)
      throw new Error(
        tr?.format === WEIGHTS_FORMAT
          ? `${source} holds weights only (best and calibrated checkpoints have no optimizer state): resume from last.safetensors`
          : `${source} has no training state (it is not a checkpoint written by train)`,
      );
    loadStudent(this.model, ck.tensors, source);
    const groups: [string, Adam][] = [
      ['proj', this.optProj],
      ['student', this.optStudent],
    ];
    for (const [name, opt] of groups) {
      const get = (k: string): HostArray => {
        const t = ck.tensors.get(k);
        if (!t) throw new Error(`${source}: missing optimizer tensor '${k}'`);
        return t;
      };
      opt.loadState({
        step: tr.adamSteps[name]!,
        m: opt.params.map((_, i) => get(`optim.${name}.m.${i}`).data),
        v: opt.params.map((_, i) => get(`optim.${name}.v.${i}`).data),
      });
      opt.zeroGrad();
      opt.params.forEach((p, i) => {
        const g = ck.tensors.get(`grad.${name}.${i}`);
        if (g) {
          p.grad = tensor(g.data, p.shape);
        }
      });
    }
    this.state = {
      epoch: tr.epoch,
      globalStep: tr.globalStep,
      rng: tr.rng,
      history: tr.history,
      bestScore: tr.bestScore,
      bestEpoch: tr.bestEpoch,
    };
    this.rng = Rng.fromState(tr.rng);
  }

  dispose(): void {
    this.windows.dispose();
    this.dropBest();
    this.optProj.zeroGrad();
    this.optStudent.zeroGrad();
    this.optProj.dispose();
    this.optStudent.dispose();
  }
}

/** Kept tensors read back to the CPU (every read issued before any is awaited). */
async function keptToHost(tensors: [string, Tensor][]): Promise<Map<string, HostArray>> {
  const data = await Promise.all(tensors.map(([, t]) => t.read()));
  return new Map(tensors.map(([k, t], i) => [k, { shape: [...t.shape], data: data[i]! }]));
}
