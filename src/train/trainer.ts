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
 */
import { Adam, backward, clone, concat, keep, noGrad, scope, type Tensor, tensor } from '../engine/index.js';
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

/**
 * A recorded step whose losses are on their way back. The trainer records step b + 1 (and step b's
 * optimizer update) before it waits for step b's losses: waiting right after recording a step would
 * leave the GPU idle while the CPU records the optimizer update and the next step's first commands (on a
 * GPU, a few milliseconds per step). The price: a non-finite loss is seen one step later, after that
 * step's commands (training stops there; checkpoints are only written at epoch ends, after every step of
 * the epoch has been checked).
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
      let next: PreparedBatch | null = batchAt(0);
      // a step's losses are read back while the next step runs (see StepInFlight): `done` is when the
      // previous step's losses arrived, so that step-to-step time is what images/s reports
      let inFlight: StepInFlight | null = null;
      let done = performance.now();
      try {
        for (let b = 0; b < batches; b++) {
          const batch = next!;
          const shape = [batch.size, 3, cfg.imageSize, cfg.imageSize];
          // every loss part in one tensor, so the step costs one read-back
          const packed = scope(() => {
            const x = tensor(batch.clean, shape);
            const xn = tensor(batch.noisy, shape);
            const f = this.model.trainForward(x, xn, batch.perm, cfg.ssot);
            backward(f.loss);
            return noGrad(() =>
              concat([f.loss, f.kd, f.proj, f.recon, f.contrast, ...(f.ssot ? [f.ssot] : [])], 0),
            );
          });
          const reading = packed.read();
          if ((b + 1) % cfg.accumulate === 0) {
            this.optProj.step();
            this.optStudent.step();
            this.optProj.zeroGrad();
            this.optStudent.zeroGrad();
          }
          this.state.globalStep++;
          const step: StepInFlight = {
            batch: b,
            globalStep: this.state.globalStep,
            size: batch.size,
            packed,
            reading,
          };
          // the next batch's CPU work overlaps this step on the GPU (never across an epoch's end, so the
          // RNG state saved with the epoch's checkpoint is exactly what resuming needs)
          next = b + 1 < batches ? batchAt(b + 1) : null;
          // the previous step's losses: this step is queued behind it, so the GPU does not idle meanwhile
          const previous = inFlight;
          inFlight = step;
          if (previous) {
            sums = add(sums, await this.finishStep(previous, done, batches));
            done = performance.now();
          }
        }
        const last = inFlight;
        inFlight = null;
        if (last) sums = add(sums, await this.finishStep(last, done, batches));
      } finally {
        // a step left in flight by an error (its losses are not reported: the run ends here)
        if (inFlight) {
          inFlight.reading.catch(() => undefined);
          inFlight.packed.dispose();
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
   * A step's losses, once read back: checked (a non-finite loss stops training) and reported.
   * `since`: when the previous step's losses arrived (or this epoch's first step began).
   */
  private async finishStep(step: StepInFlight, since: number, batches: number): Promise<LossSums> {
    let values: Float32Array;
    try {
      values = await step.reading;
    } finally {
      step.packed.dispose();
    }
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
      imagesPerSecond: step.size / ((performance.now() - since) / 1000),
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
