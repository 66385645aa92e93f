/**
 * The browser app (src/web/static/app.html): WebGPU check; the teacher (Keras ResNet-50, served or chosen,
 * or a torchvision ResNet-18 / WideResNet-50-2 file); training with progress, Stop, a threshold calibrated
 * on held-out good images and in-memory snapshots; checkpoints (save/load safetensors, the same bytes as
 * the Node tool; official RD++ .pth import); inspection with heatmap overlays, a threshold slider with
 * live pass/fail and the calibrated threshold marked; CSV and PNG export; recovery from a lost GPU device
 * (new device, teacher loaded again, model restored from the latest snapshot). No framework: DOM by id.
 * `globalThis.rdppApp` exposes the state for tests, `globalThis.rdppAppDebug` a device-loss trigger.
 */
import {
  type GpuContext,
  gemmPrecision,
  initEngine,
  type Precision,
  parsePrecision,
  prepareMma,
  runtime,
  setFlags,
} from '../../engine/index.js';
import { type Decision, decide, mapRangeFor } from '../../eval/threshold.js';
import type { Rdpp } from '../../model/rdpp.js';
import { modelFromCheckpoint } from '../../pipeline/checkpoint.js';
import { evaluate } from '../../pipeline/evaluate.js';
import { modelInput, type Rgb8 } from '../../pipeline/images.js';
import type { LoadedTeacher } from '../../pipeline/teacher.js';
import { planImageTraining, trainOnImages } from '../../pipeline/train-images.js';
import { appConfig } from '../../pipeline/train-setup.js';
import { openBrowserGpu } from '../../platform/browser.js';
import { overlayHeatmap } from '../../report/overlay.js';
import type { TeacherChoice, TrainConfig } from '../../train/config.js';
import type { Trainer } from '../../train/trainer.js';
import { renderLossChart, renderScoreHistogram } from './charts.js';
import { decodeImageBlob, droppedFiles, imageFiles } from './decode.js';
import { loadTeacherFrom, type TeacherSource } from './teacher.js';
import { tuneHere, useStoredTiles } from './tiles.js';

export interface AppResult {
  name: string;
  score: number;
  map: Float32Array;
  image: Rgb8;
}

export type AppPhase =
  | 'starting'
  | 'no-webgpu'
  | 'ready'
  | 'training'
  | 'trained'
  | 'scoring'
  | 'inspected'
  | 'error'
  | 'device-lost'
  | 'recovering';

export interface AppState {
  phase: AppPhase;
  /** the last task's error message (null when it succeeded) */
  error: string | null;
  /** per-step training losses of the last training run */
  losses: number[];
  imageSize: number;
  results: AppResult[];
  threshold: number;
  /** the calibrated decision of the current model (from training or the checkpoint), if any */
  decision: Decision | null;
  teacher: { kind: TeacherChoice; description: string } | null;
  /** what the current model is (one line), null when there is none */
  model: string | null;
  /** the latest in-memory snapshot of the model (checkpoint bytes), for recovery and saving */
  snapshot: { label: string; bytes: number } | null;
  /** how often the device was lost / recovered */
  deviceLosses: number;
  recoveries: number;
  /** something is running (a training run, scoring, loading) */
  busy: string | null;
  /** the GEMM precision of the current or last task (the page's choice, applied when a task starts) */
  precision: Precision;
  /** whether f16 GEMMs run on tensor cores (subgroup matrices) on this device, and why (engine/mma.ts) */
  mma: string | null;
  /** the tuned GEMM tiles in use for the current precision (tiles.ts), null when none are stored */
  tiles: string | null;
}

export interface AppDebug {
  /** destroy the current GPU device (the app then sees a lost device) */
  loseDevice(): void;
  /** the engine's counters: dispatches, submits, compiled pipelines */
  counters(): { dispatches: number; submits: number; pipelines: number };
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`app.html has no #${id}`);
  return el as T;
};

const message = (e: unknown): string => (e as Error)?.message ?? String(e);

export function startApp(): AppState {
  const state: AppState = {
    phase: 'starting',
    error: null,
    losses: [],
    imageSize: 64,
    results: [],
    threshold: 0,
    decision: null,
    teacher: null,
    model: null,
    snapshot: null,
    deviceLosses: 0,
    recoveries: 0,
    busy: null,
    precision: 'f32',
    mma: null,
    tiles: null,
  };
  const app = new App(state);
  const g = globalThis as unknown as { rdppApp: AppState; rdppAppDebug: AppDebug };
  g.rdppApp = state;
  g.rdppAppDebug = { loseDevice: () => app.loseDevice(), counters: () => ({ ...runtime().counters }) };
  void app.init();
  return state;
}

interface Snapshot {
  bytes: Uint8Array;
  /** file name used in messages and when saving */
  name: string;
  label: string;
}

/** Buttons that need a live GPU device. */
const GPU_BUTTONS = ['teacher-load', 'train', 'tune'];
const GPU_INPUTS = ['teacher-files', 'teacher-torch', 'ckpt-file', 'test-files'];

class App {
  private gpu: GpuContext | null = null;
  private lost = false;
  private teacherSource: TeacherSource = { kind: 'keras-served' };
  private teacher: LoadedTeacher | null = null;
  private teacherLoading: Promise<LoadedTeacher> | null = null;
  private model: Rdpp | null = null;
  private trainer: Trainer | null = null;
  private snapshot: Snapshot | null = null;
  private trainFiles: File[] = [];
  private valFiles: File[] = [];
  private stopRequested = false;
  /** the task in progress (see task) */
  private running: Promise<void> | null = null;
  /** the device on which prepareMma last decided about tensor cores (a new device decides again) */
  private mmaDecidedOn: GpuContext | null = null;
  private modelName = 'rdpp';

  constructor(private readonly s: AppState) {}

  private fail(where: HTMLElement, e: unknown, prefix = ''): void {
    const msg = `${prefix}${message(e)}`;
    this.s.error = msg;
    where.textContent = msg;
    where.classList.add('error');
  }

  private ok(where: HTMLElement, text: string): void {
    where.classList.remove('error');
    where.textContent = text;
  }

  async init(): Promise<void> {
    const gpuStatus = $('gpu-status');
    try {
      this.attach(await openBrowserGpu());
      const r = this.gpu!.report;
      gpuStatus.textContent = `WebGPU ready: ${r.vendor} ${r.architecture} ${r.description}`.trim();
      this.showTiles(useStoredTiles(r, 'f32'));
      this.s.phase = 'ready';
    } catch (e) {
      this.s.phase = 'no-webgpu';
      this.fail(gpuStatus, e);
      for (const b of Array.from(document.querySelectorAll('button, input, select')))
        (b as HTMLInputElement).disabled = true;
      return;
    }
    this.wire();
  }

  // ---- the GPU device: attach, loss, recovery -------------------------------------------------------

  private attach(gpu: GpuContext): void {
    initEngine(gpu);
    this.gpu = gpu;
    this.lost = false;
    void gpu.device.lost.then((info) => {
      if (this.gpu === gpu) this.onDeviceLost(info);
    });
  }

  loseDevice(): void {
    this.gpu?.device.destroy();
  }

  private setGpuControls(enabled: boolean): void {
    for (const id of GPU_BUTTONS) $<HTMLButtonElement>(id).disabled = !enabled;
    for (const id of GPU_INPUTS) $<HTMLInputElement>(id).disabled = !enabled;
    if (enabled) $<HTMLButtonElement>('train').disabled = this.trainFiles.length === 0;
  }

  private onDeviceLost(info: GPUDeviceLostInfo): void {
    this.lost = true;
    this.s.deviceLosses++;
    this.s.phase = 'device-lost';
    // Everything on the device is gone with it. The objects are dropped, never disposed: their buffers
    // belong to the lost device, not to the pool of the next one.
    // (s.teacher keeps describing the teacher, which recovery loads again from its source)
    this.teacher = null;
    this.teacherLoading = null;
    this.model = null;
    this.trainer = null;
    this.stopRequested = true;
    $('gpu-status').textContent = 'WebGPU device lost.';
    const snap = this.snapshot;
    $('device-lost-text').textContent =
      `The GPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''}); everything on it is gone. ` +
      (snap
        ? `The model is kept in memory (snapshot: ${snap.label}). Recover to get a new device, load the teacher again and restore the model; “Save checkpoint” still saves the snapshot.`
        : 'No model snapshot was taken yet. Recover to get a new device and load the teacher again.') +
      ' If it keeps happening, the GPU may be out of memory: try a smaller batch or image size.';
    $('device-lost').hidden = false;
    $<HTMLButtonElement>('recover').disabled = false;
    $<HTMLButtonElement>('stop').disabled = true;
    $<HTMLButtonElement>('save').disabled = snap === null;
    this.setGpuControls(false);
    $<HTMLButtonElement>('recover').focus();
  }

  private async recover(): Promise<void> {
    const text = $('device-lost-text');
    const button = $<HTMLButtonElement>('recover');
    button.disabled = true;
    this.s.phase = 'recovering';
    this.s.error = null;
    try {
      // a task interrupted by the loss fails at its next GPU read; let it end before anything is rebuilt
      if (this.running) {
        text.textContent = `Recovering: waiting for the interrupted task (${this.s.busy}) to stop…`;
        await this.running.catch(() => {});
      }
      text.textContent = 'Recovering: requesting a new GPU device…';
      this.attach(await openBrowserGpu());
      const r = this.gpu!.report;
      $('gpu-status').textContent =
        `WebGPU ready again (recovered): ${r.vendor} ${r.architecture} ${r.description}`.trim();
      const parts = ['a new GPU device'];
      if (this.s.teacher || this.snapshot) {
        text.textContent = 'Recovering: loading the teacher again…';
        await this.ensureTeacher();
        parts.push('the teacher loaded again');
      }
      const snap = this.snapshot;
      if (snap) {
        text.textContent = `Recovering: restoring the model from the snapshot (${snap.label})…`;
        const loaded = await modelFromCheckpoint(
          this.teacher!.teacher,
          snap.bytes,
          snap.name,
          this.checkpointOptions(),
        );
        this.model = loaded.model;
        this.s.imageSize = loaded.imageSize;
        this.s.decision = loaded.decision ?? this.s.decision;
        parts.push(`the model restored from the snapshot (${snap.label})`);
      }
      this.s.recoveries++;
      $('device-lost').hidden = true;
      this.setGpuControls(true);
      $<HTMLButtonElement>('save').disabled = !this.snapshot;
      this.s.phase = this.model ? 'trained' : 'ready';
      this.ok($('train-status'), `Recovered: ${parts.join(', ')}.`);
      this.updateSlider(true);
    } catch (e) {
      this.s.phase = 'device-lost';
      this.s.error = `recovery failed: ${message(e)}`;
      text.textContent = `Recovery failed: ${message(e)}. Reload the page (your snapshot is lost then; save it first).`;
      button.disabled = false;
    }
  }

  /**
   * Run one GPU task at a time, never on a lost device. Errors go to `status`; when the device was lost
   * meanwhile, the error says so (the device-lost panel explains the rest).
   */
  private async task(name: string, status: HTMLElement, fn: () => Promise<void>): Promise<void> {
    if (this.lost) {
      this.fail(status, new Error('The GPU device was lost: press “Recover on a new GPU device” first.'));
      return;
    }
    if (this.s.busy) {
      this.fail(status, new Error(`Busy (${this.s.busy}): wait until it finishes.`));
      return;
    }
    this.s.busy = name;
    this.s.error = null;
    status.classList.remove('error');
    const run = this.applyPrecision().then(fn);
    this.running = run;
    try {
      await run;
    } catch (e) {
      if (this.lost) this.fail(status, e, `Interrupted (${name}): the GPU device was lost. `);
      else {
        if (this.s.phase !== 'ready' && this.s.phase !== 'trained') this.s.phase = 'error';
        this.fail(status, e);
      }
    } finally {
      this.s.busy = null;
      this.running = null;
    }
  }

  /**
   * The precision chosen on the page, applied as a task starts: every GEMM of a task (a training run,
   * scoring) runs in one precision, whatever is chosen meanwhile. Under f16, the first task on a device
   * decides whether the GEMMs can run on its tensor cores (subgroup matrices, where the browser offers
   * them) by checking them against the SIMT f16 kernel, as the Node program does at start.
   */
  private async applyPrecision(): Promise<void> {
    const p = parsePrecision($<HTMLSelectElement>('precision').value);
    const status = $('precision-status');
    setFlags({ PRECISION: p });
    this.s.precision = p;
    // the tiles tuned on this GPU for the precision the GEMMs run in (f16 may fall back to f32)
    if (this.gpu) this.showTiles(useStoredTiles(this.gpu.report, gemmPrecision()));
    if (p !== 'f16') {
      status.textContent = '';
      return;
    }
    if (this.mmaDecidedOn !== this.gpu) {
      status.textContent = 'Checking whether this GPU’s tensor cores (subgroup matrices) compute correctly…';
      this.s.mma = await prepareMma();
      this.mmaDecidedOn = this.gpu;
    }
    status.textContent = this.s.mma ?? '';
  }

  private showTiles(line: string | null): void {
    this.s.tiles = line;
    const el = $('tune-status');
    el.classList.remove('error');
    el.textContent = line ?? 'No tuned tiles for this GPU: every convolution runs the default tile.';
  }

  /**
   * Time the network's convolutions with every GEMM tile on this GPU (tiles.ts) for at most the seconds
   * asked, for the teacher, image size and batch on the page, and keep the fastest for the next tasks.
   */
  private async tune(): Promise<void> {
    const status = $('tune-status');
    const kind = this.s.teacher?.kind ?? 'resnet50-keras';
    const teacher = kind === 'wide_resnet50_2' ? 'wrn50' : kind;
    const seconds = this.num('tune-seconds');
    if (!(seconds > 0)) throw new Error('Tuning time: give a number of seconds greater than 0.');
    const line = await tuneHere(this.gpu!.report, {
      teacher,
      imageSize: this.num('size'),
      trainBatch: this.num('batch'),
      inferBatch: 4,
      seconds,
      log: (l) => {
        status.textContent = `Tuning (${teacher}, ${this.num('size')}², at most ${seconds} s): ${l}`;
      },
    });
    this.s.tiles = line;
    this.ok(status, line);
  }

  // ---- wiring ------------------------------------------------------------------------------------------

  /** `onFiles` on every choice; with `again`, the input is cleared so that choosing the same files acts again. */
  private files(id: string, onFiles: (f: File[]) => void, again = true): void {
    $<HTMLInputElement>(id).addEventListener('change', (ev) => {
      const input = ev.target as HTMLInputElement;
      const files = Array.from(input.files ?? []);
      if (again) input.value = '';
      onFiles(files);
    });
  }

  private wire(): void {
    // the engine flag PRECISION (README: Precision); f16 needs shader-f16, so it is not offered without it
    const precision = $<HTMLSelectElement>('precision');
    const f16 = precision.querySelector<HTMLOptionElement>('option[value="f16"]');
    if (f16 && !this.gpu?.has('shader-f16')) {
      f16.disabled = true;
      f16.textContent += ' (no shader-f16)';
    }
    // applied when the next task starts (applyPrecision), never in the middle of one
    precision.addEventListener('change', () => {
      $('precision-status').textContent = this.s.busy
        ? `${precision.value}: from the next task (${this.s.busy} runs in ${this.s.precision})`
        : '';
    });
    $('tune').addEventListener('click', () =>
      this.task('tuning the kernels', $('tune-status'), () => this.tune()),
    );
    const teacherStatus = $('teacher-status');
    $('teacher-load').addEventListener('click', () =>
      this.task('loading the teacher', teacherStatus, () => this.switchTeacher({ kind: 'keras-served' })),
    );
    this.files('teacher-files', (files) =>
      this.task('loading the teacher', teacherStatus, () =>
        this.switchTeacher({ kind: 'keras-files', files }),
      ),
    );
    this.files('teacher-torch', (files) => {
      if (files[0])
        void this.task('loading the teacher', teacherStatus, () =>
          this.switchTeacher({ kind: 'file', file: files[0]! }),
        );
    });
    const setTrain = (files: File[]) => {
      this.trainFiles = imageFiles(files);
      this.updateCounts();
      $<HTMLButtonElement>('train').disabled = this.trainFiles.length === 0 || this.lost;
    };
    this.files('train-files', setTrain, false);
    this.files('train-folder', setTrain, false);
    this.files(
      'val-files',
      (files) => {
        this.valFiles = imageFiles(files);
        this.updateCounts();
      },
      false,
    );
    this.dropZone($('train-drop'), setTrain);
    const inspectStatus = $('inspect-status');
    const inspect = (f: File[]) =>
      void this.task('scoring', inspectStatus, () => this.inspect(imageFiles(f)));
    this.dropZone($('test-drop'), inspect);
    this.files('test-files', inspect);
    const trainStatus = $('train-status');
    $('train').addEventListener('click', () => void this.task('training', trainStatus, () => this.train()));
    $('stop').addEventListener('click', () => {
      this.stopRequested = true;
      $<HTMLButtonElement>('stop').disabled = true;
      trainStatus.textContent = 'Stopping after the current step…';
    });
    $('save').addEventListener('click', () => {
      // saving after a device loss uses the snapshot and needs no GPU
      if (this.lost) void this.save().catch((e) => this.fail(trainStatus, e));
      else void this.task('saving', trainStatus, () => this.save());
    });
    this.files('ckpt-file', (files) => {
      if (files[0]) void this.task('loading a checkpoint', trainStatus, () => this.loadCheckpoint(files[0]!));
    });
    $<HTMLInputElement>('threshold').addEventListener('input', (ev) => {
      this.s.threshold = Number((ev.target as HTMLInputElement).value);
      this.applyThreshold();
    });
    $('threshold-reset').addEventListener('click', () => {
      if (!this.s.decision) return;
      this.s.threshold = this.s.decision.threshold;
      $<HTMLInputElement>('threshold').value = String(this.s.threshold);
      this.applyThreshold();
    });
    $('recover').addEventListener('click', () => void this.recover());
    $('csv').addEventListener('click', () => this.exportCsv());
    $('pngs').addEventListener('click', () => void this.exportPngs());
  }

  private updateCounts(): void {
    const v = this.valFiles.length;
    $('train-count').textContent =
      `${this.trainFiles.length} training image(s) chosen` +
      (v
        ? `; ${v} validation image(s) for the threshold.`
        : '; no validation images (a seeded part is held out).');
  }

  private dropZone(el: HTMLElement, onFiles: (f: File[]) => void): void {
    el.addEventListener('dragover', (e) => {
      e.preventDefault();
      el.classList.add('over');
    });
    el.addEventListener('dragleave', () => el.classList.remove('over'));
    el.addEventListener('drop', (e) => {
      e.preventDefault();
      el.classList.remove('over');
      if (e.dataTransfer) void droppedFiles(e.dataTransfer).then(onFiles);
    });
  }

  // ---- teacher ---------------------------------------------------------------------------------------

  /** The current teacher, loading it from its source on first use. */
  private ensureTeacher(): Promise<LoadedTeacher> {
    if (this.teacher) return Promise.resolve(this.teacher);
    if (!this.teacherLoading) {
      const st = $('teacher-status');
      this.ok(st, 'Loading the teacher…');
      const t0 = performance.now();
      this.teacherLoading = loadTeacherFrom(this.teacherSource, (line) => {
        st.textContent = line;
      }).then(
        (t) => {
          this.teacher = t;
          this.s.teacher = { kind: t.kind, description: t.description };
          this.ok(st, `Teacher ready: ${t.description} (${((performance.now() - t0) / 1000).toFixed(1)} s).`);
          return t;
        },
        (e) => {
          this.teacherLoading = null;
          this.fail(st, e);
          throw e;
        },
      );
    }
    return this.teacherLoading;
  }

  /** Load the teacher of `src`; only when it loads, replace the current teacher (and drop its model). */
  private async switchTeacher(src: TeacherSource): Promise<void> {
    const st = $('teacher-status');
    if (src.kind === 'keras-served' && this.teacherSource.kind === 'keras-served' && this.teacher) {
      this.ok(st, `Teacher ready: ${this.teacher.description} (already loaded).`);
      return;
    }
    const prev = this.teacher;
    const t0 = performance.now();
    this.ok(st, 'Loading the teacher…');
    let t: LoadedTeacher;
    try {
      if (this.teacherLoading && !this.teacher) await this.teacherLoading.catch(() => {});
      t = await loadTeacherFrom(src, (line) => {
        st.textContent = line;
      });
    } catch (e) {
      const keep = this.teacher ? ` The current teacher stays: ${this.teacher.description}.` : '';
      this.fail(st, new Error(`Rejected: ${message(e)}.${keep}`));
      return;
    }
    const hadModel = this.model !== null || this.snapshot !== null;
    this.disposeModel();
    this.snapshot = null;
    this.s.snapshot = null;
    this.s.model = null;
    this.s.decision = null;
    $<HTMLButtonElement>('save').disabled = true;
    prev?.teacher.state.dispose();
    this.teacherSource = src;
    this.teacher = t;
    this.teacherLoading = Promise.resolve(t);
    this.s.teacher = { kind: t.kind, description: t.description };
    this.s.phase = 'ready';
    this.ok(
      st,
      `Teacher ready: ${t.description} (${((performance.now() - t0) / 1000).toFixed(1)} s).` +
        (hadModel ? ' The previous model belonged to the previous teacher and was closed.' : ''),
    );
    this.updateSlider(false);
  }

  // ---- model, training, checkpoints ---------------------------------------------------------------------

  private disposeModel(): void {
    if (!this.lost) {
      this.trainer?.dispose();
      if (this.model) for (const st of this.model.studentStates()) st.dispose();
    }
    this.trainer = null;
    this.model = null;
  }

  private num(id: string): number {
    return Number($<HTMLInputElement>(id).value);
  }

  private checkpointOptions(): { imageSize: number; seed: number } {
    return { imageSize: this.num('size'), seed: this.num('seed') };
  }

  private setSnapshot(bytes: Uint8Array, name: string, label: string): void {
    this.snapshot = { bytes, name, label };
    this.s.snapshot = { label, bytes: bytes.byteLength };
    $('snapshot-status').textContent =
      `In-memory snapshot for recovery: ${label} (${(bytes.byteLength / 2 ** 20).toFixed(1)} MB).`;
  }

  private async train(): Promise<void> {
    const status = $('train-status');
    const buttons = { train: $<HTMLButtonElement>('train'), stop: $<HTMLButtonElement>('stop') };
    buttons.train.disabled = true;
    try {
      const loaded = await this.ensureTeacher();
      const cfg = appConfig({
        imageSize: this.num('size'),
        batch: this.num('batch'),
        epochs: this.num('epochs'),
        seed: this.num('seed'),
        accumulate: this.num('accumulate'),
        teacher: loaded.kind,
      });
      const holdout = this.num('holdout');
      if (!(holdout >= 0 && holdout <= 50)) throw new Error(`hold-out ${holdout} % must be between 0 and 50`);
      status.textContent = `Decoding ${this.trainFiles.length + this.valFiles.length} image(s)…`;
      const decode = async (files: File[]) => {
        const out: Float32Array[] = [];
        for (const f of files) out.push(modelInput(await decodeImageBlob(f, f.name), cfg.imageSize));
        return out;
      };
      const plan = planImageTraining(
        await decode(this.trainFiles),
        this.valFiles.length ? await decode(this.valFiles) : [],
        cfg.seed,
        holdout,
      );
      const { images, calibration, calibratedOn } = plan;
      this.disposeModel();
      this.s.losses = [];
      this.s.phase = 'training';
      this.s.imageSize = cfg.imageSize;
      this.s.decision = null;
      this.s.model = null;
      this.stopRequested = false;
      buttons.stop.disabled = false;
      const progress = $<HTMLProgressElement>('train-progress');
      const batches = Math.ceil(images.length / cfg.batch);
      const total = batches * cfg.epochs;
      progress.max = total;
      progress.value = 0;
      status.textContent = `Training: ${plan.plan}; ${total} steps (the first step compiles the GPU kernels)…`;
      const t0 = performance.now();
      let line = '';
      const r = await trainOnImages(loaded.teacher, cfg, plan, {
        started: (model, trainer) => {
          this.model = model;
          this.trainer = trainer;
        },
        step: (st) => {
          this.s.losses.push(st.loss);
          progress.value = st.globalStep;
          const per = (performance.now() - t0) / 1000 / st.globalStep;
          const eta = per * (total - st.globalStep);
          status.textContent =
            `Epoch ${st.epoch}/${st.epochs}, step ${st.globalStep}/${total}: loss ${st.loss.toFixed(4)} ` +
            `(KD ${st.kd.toFixed(4)}), ${st.imagesPerSecond.toFixed(2)} images/s, ETA ${eta.toFixed(0)} s`;
          this.drawCurve();
        },
        snapshot: (bytes, at) =>
          this.setSnapshot(
            bytes,
            `${this.nameFor(cfg, at.epoch)}.safetensors`,
            `epoch ${at.epoch}, step ${at.globalStep}`,
          ),
        trained: ({ steps, stopped }) => {
          const secs = ((performance.now() - t0) / 1000).toFixed(1);
          line = `${stopped ? 'Stopped after' : 'Trained'} ${steps} step(s) in ${secs} s; last loss ${this.s.losses.at(-1)?.toFixed(4)}.`;
          if (calibration.length)
            status.textContent = `${line} Calibrating the threshold on ${calibration.length} image(s)…`;
        },
        shouldStop: () => this.stopRequested,
      });
      const { steps, stopped } = r;
      this.modelName = this.nameFor(cfg, r.epoch);
      this.s.decision = r.decision;
      if (r.decision) {
        const few =
          calibration.length < 100
            ? ' (with fewer than 100 images the 1 % rule rejects none of them: the threshold is their highest score)'
            : '';
        line += ` Calibrated threshold ${r.decision.threshold.toPrecision(6)}: 1 % false-reject rule on ${calibratedOn} (${calibration.length} image(s))${few}.`;
      } else line += ` ${plan.plan}.`;
      this.setSnapshot(
        r.checkpoint,
        `${this.modelName}.safetensors`,
        `${stopped ? 'stopped' : 'end of training'} at step ${steps}`,
      );
      this.trainer = null; // disposed by trainOnImages: the model alone serves inspection
      this.s.model = `trained here: ${steps} step(s), ${cfg.imageSize}×${cfg.imageSize}, ${loaded.kind}`;
      this.s.phase = 'trained';
      this.ok(status, line);
      $<HTMLButtonElement>('save').disabled = false;
      this.updateSlider(false);
    } finally {
      buttons.train.disabled = this.trainFiles.length === 0 || this.lost;
      buttons.stop.disabled = true;
    }
  }

  private nameFor(cfg: TrainConfig, epoch: number): string {
    return `rdpp-${cfg.teacher}-${cfg.imageSize}px-e${epoch}`;
  }

  private drawCurve(): void {
    renderLossChart($('loss-curve'), this.s.losses);
  }

  private download(parts: BlobPart | BlobPart[], name: string, type: string): void {
    const url = URL.createObjectURL(new Blob(Array.isArray(parts) ? parts : [parts], { type }));
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  /**
   * Save the latest snapshot: after training here, the student weights with the configuration, the loop
   * position and the calibrated decision (what `rdpp test` / `rdpp predict` load; a quarter of the size of
   * a Node training checkpoint, which also holds the optimizer moments for --resume); a loaded checkpoint
   * as it was read; an official one converted to this project's format. Needs no GPU, so it also works
   * after the device was lost.
   */
  private async save(): Promise<void> {
    const snap = this.snapshot;
    if (!snap) throw new Error('nothing to save: train or load a model first');
    this.download(snap.bytes as Uint8Array<ArrayBuffer>, snap.name, 'application/octet-stream');
    this.ok(
      $('train-status'),
      `Saved ${snap.name} (${(snap.bytes.byteLength / 2 ** 20).toFixed(1)} MB, ${snap.label}${this.s.decision ? `, calibrated threshold ${this.s.decision.threshold.toPrecision(6)}` : ''}).`,
    );
  }

  private async loadCheckpoint(f: File): Promise<void> {
    const status = $('train-status');
    status.textContent = `Reading ${f.name}…`;
    const bytes = new Uint8Array(await f.arrayBuffer());
    const loaded = await this.ensureTeacher();
    const r = await modelFromCheckpoint(loaded.teacher, bytes, f.name, this.checkpointOptions());
    this.disposeModel();
    this.model = r.model;
    this.s.imageSize = r.imageSize;
    this.s.decision = r.decision;
    this.modelName = f.name.replace(/\.(safetensors|pth|pt)$/, '');
    const name = r.official ? `${this.modelName}.converted.safetensors` : f.name;
    this.setSnapshot(r.bytes, name, `${r.official ? 'imported' : 'loaded'} ${f.name}`);
    this.s.model = `${r.official ? 'imported official' : 'loaded'} ${f.name} (${r.imported}/${r.total} tensors)`;
    this.s.phase = 'trained';
    $<HTMLButtonElement>('save').disabled = false;
    this.ok(status, `${r.official ? 'Imported' : 'Loaded'} ${r.note}.`);
    this.updateSlider(false);
  }

  // ---- inspection ------------------------------------------------------------------------------------

  private async inspect(files: File[]): Promise<void> {
    const status = $('inspect-status');
    if (!this.model) throw new Error('Train or load a model first.');
    if (files.length === 0) {
      status.textContent = 'No images chosen.';
      return;
    }
    this.s.phase = 'scoring';
    status.textContent = `Decoding ${files.length} image(s)…`;
    const size = this.s.imageSize;
    const images: Rgb8[] = [];
    for (const f of files) images.push(await decodeImageBlob(f, f.name));
    // the pipeline's one evaluation (unlabelled images: scores and maps, no metrics)
    const { scored } = await evaluate(
      this.model,
      images.map((im) => ({ rgb: modelInput(im, size) })),
      {
        size,
        batch: 4,
        onProgress: (d, n) => {
          status.textContent = `Scoring ${d}/${n}…`;
        },
      },
    );
    this.s.results = scored.map((r, i) => ({
      name: files[i]!.name,
      score: r.score,
      map: r.map,
      image: images[i]!,
    }));
    this.render(); // ends with the pass/fail summary in the status line
    this.s.phase = 'inspected';
  }

  private colourRange(): { min: number; max: number } {
    if (this.s.decision) return mapRangeFor(this.s.decision);
    let min = Infinity;
    let max = -Infinity;
    for (const r of this.s.results)
      for (const v of r.map) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    return max > min ? { min, max } : { min, max: min + 1 };
  }

  private render(): void {
    const list = $('results');
    list.replaceChildren();
    const range = this.colourRange();
    const size = this.s.imageSize;
    for (const r of this.s.results) {
      const o = overlayHeatmap(r.image, r.map, size, size, range);
      const c = document.createElement('canvas');
      c.width = o.width;
      c.height = o.height;
      const id = new ImageData(o.width, o.height);
      for (let p = 0; p < o.width * o.height; p++) {
        id.data[p * 4] = o.rgb[p * 3]!;
        id.data[p * 4 + 1] = o.rgb[p * 3 + 1]!;
        id.data[p * 4 + 2] = o.rgb[p * 3 + 2]!;
        id.data[p * 4 + 3] = 255;
      }
      c.getContext('2d')?.putImageData(id, 0, 0);
      c.setAttribute('role', 'img');
      c.setAttribute('aria-label', `anomaly heatmap of ${r.name}, score ${r.score.toFixed(4)}`);
      const li = document.createElement('li');
      const cap = document.createElement('div');
      cap.innerHTML =
        '<span class="name"></span><br>score <span class="score"></span> · <span class="verdict"></span>';
      (cap.querySelector('.name') as HTMLElement).textContent = r.name;
      (cap.querySelector('.score') as HTMLElement).textContent = r.score.toFixed(4);
      li.append(c, cap);
      list.append(li);
    }
    $<HTMLButtonElement>('csv').disabled = false;
    $<HTMLButtonElement>('pngs').disabled = false;
    this.updateSlider(false);
  }

  /**
   * The slider's range covers the scores and the calibrated decision (its threshold and the normal
   * score spread), with a margin; the calibrated threshold is marked on it. `keep` keeps the chosen
   * threshold, otherwise it starts at the calibrated one (or the middle of the scores).
   */
  private updateSlider(keep: boolean): void {
    const slider = $<HTMLInputElement>('threshold');
    const mark = $('calibrated-mark');
    const d = this.s.decision;
    const values = this.s.results.map((r) => r.score);
    if (d) values.push(d.threshold, d.normalStats.min, d.normalStats.max);
    const info = $('calibration-info');
    info.textContent = d
      ? `Calibrated threshold ${d.threshold.toPrecision(6)} (${d.method === 'frr' ? `${((d.targetFrr ?? 0.01) * 100).toFixed(0)} % false-reject rule` : d.method === 'f1' ? 'F1-optimal on test labels' : 'manual'}${d.calibratedOn ? ` on ${d.calibratedOn}` : ''}), marked on the slider. An image fails when its score is above the threshold.`
      : 'No calibrated threshold for this model: set one with the slider (training calibrates one on held-out good images; checkpoints calibrated by rdpp test --calibrate carry one).';
    $<HTMLButtonElement>('threshold-reset').disabled = !d;
    if (values.length === 0) {
      slider.disabled = true;
      mark.hidden = true;
      $('threshold-value').textContent = '–';
      return;
    }
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const m = (hi - lo) * 0.1 || Math.abs(hi) * 0.05 || 0.01;
    const min = lo - m;
    const max = hi + m;
    slider.min = String(min);
    slider.max = String(max);
    slider.step = String((max - min) / 1000);
    slider.disabled = false;
    if (!keep || !(this.s.threshold >= min && this.s.threshold <= max))
      this.s.threshold = d?.threshold ?? (lo + hi) / 2;
    slider.value = String(this.s.threshold);
    if (d) {
      mark.hidden = false;
      mark.style.setProperty('--frac', String((d.threshold - min) / (max - min)));
      $('calibrated-mark-label').textContent = `calibrated ${d.threshold.toPrecision(4)}`;
    } else mark.hidden = true;
    this.applyThreshold();
  }

  private applyThreshold(): void {
    const t = this.s.threshold;
    const d = this.s.decision;
    const cal = d ? ` (calibrated ${d.threshold.toFixed(4)})` : '';
    $('threshold-value').textContent = `${t.toFixed(4)}${cal}`;
    renderScoreHistogram(
      $('score-chart'),
      this.s.results.map((r) => r.score),
      t,
      d?.threshold ?? null,
    );
    const items = $('results').children;
    let fails = 0;
    this.s.results.forEach((r, i) => {
      const li = items[i] as HTMLElement | undefined;
      const v = decide(r.score, t);
      if (v === 'fail') fails++;
      if (!li) return;
      li.className = v;
      (li.querySelector('.verdict') as HTMLElement).textContent = v === 'fail' ? 'FAIL' : 'pass';
    });
    const n = this.s.results.length;
    const summary = n ? `${fails} of ${n} fail` : 'no images inspected yet';
    $('threshold').setAttribute(
      'aria-valuetext',
      `${t.toFixed(4)}: ${summary}${d ? `; calibrated threshold ${d.threshold.toFixed(4)}` : ''}`,
    );
    if (n)
      this.ok(
        $('inspect-status'),
        `${n} image(s): ${fails} fail, ${n - fails} pass at threshold ${t.toFixed(4)}${d && t === d.threshold ? ' (the calibrated one)' : ''}.`,
      );
  }

  private exportCsv(): void {
    const q = (s: string) => `"${s.replaceAll('"', '""')}"`;
    const lines = ['file,score,threshold,decision'];
    for (const r of this.s.results)
      lines.push(`${q(r.name)},${r.score},${this.s.threshold},${decide(r.score, this.s.threshold)}`);
    this.download(`${lines.join('\n')}\n`, `${this.modelName}-results.csv`, 'text/csv');
  }

  private async exportPngs(): Promise<void> {
    const canvases = $('results').querySelectorAll('canvas');
    for (let i = 0; i < canvases.length; i++) {
      const blob = await new Promise<Blob | null>((res) => canvases[i]!.toBlob(res, 'image/png'));
      if (blob)
        this.download(blob, `${this.s.results[i]!.name.replace(/\.[^.]+$/, '')}-overlay.png`, 'image/png');
    }
  }
}
