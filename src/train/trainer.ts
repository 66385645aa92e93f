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
import { Adam, backward, concat, noGrad, scope, type Tensor, tensor } from '../engine/index.js';
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
  /** write checkpoint bytes ('last' after every epoch, 'best' when the selection score improves) */
  save?: (kind: 'last' | 'best', bytes: Uint8Array) => Promise<void>;
  /** asked between steps; returning true ends training after saving */
  shouldStop?: () => boolean;
  /** evaluation used for selection; returns a score where higher is better */
  select?: (model: Rdpp, samples: SelectionSample[]) => Promise<number>;
}

export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
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

  private batchTensors(indices: number[]): { x: Tensor; xn: Tensor } {
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
    const shape = [indices.length, 3, s, s];
    return { x: tensor(clean, shape), xn: tensor(noisy, shape) };
  }

  /** Train until cfg.epochs (continuing from the current state). */
  async run(): Promise<TrainerState> {
    const { cfg } = this;
    const n = this.data.train.length;
    const batches = Math.ceil(n / cfg.batch);
    while (this.state.epoch < cfg.epochs) {
      const t0 = performance.now();
      const order = this.rng.permutation(n);
      let sums = { loss: 0, kd: 0, proj: 0 };
      for (let b = 0; b < batches; b++) {
        const tb = performance.now();
        const idx = order.slice(b * cfg.batch, (b + 1) * cfg.batch);
        const perm = this.rng.permutation(idx.length);
        // every loss part in one tensor, so the step costs one read-back
        const packed = scope(() => {
          const { x, xn } = this.batchTensors(idx);
          const f = this.model.trainForward(x, xn, perm, cfg.ssot);
          backward(f.loss);
          return noGrad(() =>
            concat([f.loss, f.kd, f.proj, f.recon, f.contrast, ...(f.ssot ? [f.ssot] : [])], 0),
          );
        });
        const values = await packed.read();
        packed.dispose();
        const [loss, kd, proj, recon, contrast] = Array.from(values.subarray(0, 5)) as [
          number,
          number,
          number,
          number,
          number,
        ];
        const ssot = values.length > 5 ? values[5]! : null;
        if (!Number.isFinite(loss))
          throw new NonFiniteLossError(
            `the loss became ${loss} at epoch ${this.state.epoch + 1}, batch ${b + 1} (L_KD ${kd}, L_proj ${proj}); ` +
              'training stopped — the last good checkpoint is kept. Try a lower learning rate or check the images.',
          );
        if ((b + 1) % cfg.accumulate === 0) {
          this.optProj.step();
          this.optStudent.step();
          this.optProj.zeroGrad();
          this.optStudent.zeroGrad();
        }
        this.state.globalStep++;
        sums = { loss: sums.loss + loss, kd: sums.kd + kd, proj: sums.proj + proj };
        this.hooks.onStep?.({
          epoch: this.state.epoch + 1,
          epochs: cfg.epochs,
          batch: b + 1,
          batches,
          globalStep: this.state.globalStep,
          loss,
          kd,
          proj,
          recon,
          contrast,
          ssot,
          imagesPerSecond: idx.length / ((performance.now() - tb) / 1000),
        });
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
      if (this.hooks.save) {
        const student = await studentTensors(this.model);
        // best first: a run killed between the two writes resumes from the older `last`, redoes this epoch
        // bit-identically and writes the same best again. best holds weights only (no optimizer state).
        if (best) await this.hooks.save('best', encodeWeightsCheckpoint(student, this.meta()));
        await this.hooks.save('last', await this.checkpoint(student));
      }
      await this.hooks.onEpoch?.(info);
      if (this.hooks.shouldStop?.()) break;
    }
    return this.state;
  }

  /** Student weights, optimizer moments, pending gradients and the loop state, as checkpoint bytes. */
  async checkpoint(student?: Map<string, HostArray>): Promise<Uint8Array> {
    const tensors = new Map(student ?? (await studentTensors(this.model)));
    const groups: [string, Adam][] = [
      ['proj', this.optProj],
      ['student', this.optStudent],
    ];
    const steps: Record<string, number[]> = {};
    for (const [name, opt] of groups) {
      const st = opt.state();
      steps[name] = st.step;
      for (let i = 0; i < st.m.length; i++) {
        const p = opt.params[i]!;
        tensors.set(`optim.${name}.m.${i}`, { shape: [...p.shape], data: await st.m[i]!.read() });
        tensors.set(`optim.${name}.v.${i}`, { shape: [...p.shape], data: await st.v[i]!.read() });
        if (p.grad) tensors.set(`grad.${name}.${i}`, { shape: [...p.shape], data: await p.grad.read() });
      }
    }
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
    this.optProj.zeroGrad();
    this.optStudent.zeroGrad();
    this.optProj.dispose();
    this.optStudent.dispose();
  }
}
