/**
 * The browser app (src/web/static/app.html): WebGPU check, teacher loading, training with progress and
 * Stop, checkpoint save/load (safetensors, the same bytes as the Node tool), inspection with heatmap
 * overlays, a threshold slider with live pass/fail, CSV and PNG export. No framework: DOM by id.
 * `globalThis.rdppApp` exposes the state for tests.
 */
import { initEngine } from '../../engine/index.js';
import { scoreImages } from '../../eval/evaluate.js';
import { type Decision, decide, mapRangeFor, parseDecision } from '../../eval/threshold.js';
import type { Rdpp } from '../../model/rdpp.js';
import type { KerasResnet50Teacher } from '../../model/teacher/keras-resnet50.js';
import { openBrowserGpu } from '../../platform/browser.js';
import { overlayHeatmap } from '../../report/overlay.js';
import type { Trainer } from '../../train/trainer.js';
import { decodeImageBlob, droppedFiles, imageFiles } from './decode.js';
import { appConfig, makeTrainer, modelFromCheckpoint, modelInput, type Rgb8 } from './pipeline.js';
import { fetchKerasTeacher, kerasTeacherFromChosenFiles } from './teacher.js';

export interface AppResult {
  name: string;
  score: number;
  map: Float32Array;
  image: Rgb8;
}

export interface AppState {
  phase: 'starting' | 'no-webgpu' | 'ready' | 'training' | 'trained' | 'scoring' | 'inspected' | 'error';
  error: string | null;
  losses: number[];
  imageSize: number;
  results: AppResult[];
  threshold: number;
  decision: Decision | null;
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`app.html has no #${id}`);
  return el as T;
};

export function startApp(): AppState {
  const state: AppState = {
    phase: 'starting',
    error: null,
    losses: [],
    imageSize: 64,
    results: [],
    threshold: 0,
    decision: null,
  };
  (globalThis as unknown as { rdppApp: AppState }).rdppApp = state;
  void new App(state).init();
  return state;
}

class StopTraining extends Error {}

class App {
  private teacher: KerasResnet50Teacher | null = null;
  private teacherLoading: Promise<KerasResnet50Teacher> | null = null;
  private model: Rdpp | null = null;
  private trainer: Trainer | null = null;
  private trainFiles: File[] = [];
  private stopRequested = false;
  private modelName = 'rdpp';

  constructor(private readonly s: AppState) {}

  private fail(where: HTMLElement, e: unknown): void {
    const msg = (e as Error)?.message ?? String(e);
    this.s.error = msg;
    where.textContent = msg;
    where.classList.add('error');
  }

  async init(): Promise<void> {
    const gpuStatus = $('gpu-status');
    try {
      const gpu = await openBrowserGpu();
      initEngine(gpu);
      const r = gpu.report;
      gpuStatus.textContent = `WebGPU ready: ${r.vendor} ${r.architecture} ${r.description}`.trim();
      this.s.phase = 'ready';
    } catch (e) {
      this.s.phase = 'no-webgpu';
      this.fail(gpuStatus, e);
      for (const b of Array.from(document.querySelectorAll('button'))) b.disabled = true;
      return;
    }
    this.wire();
  }

  private wire(): void {
    $('teacher-load').addEventListener('click', () => void this.ensureTeacher().catch(() => {}));
    $<HTMLInputElement>('teacher-files').addEventListener('change', (ev) => {
      const files = Array.from((ev.target as HTMLInputElement).files ?? []);
      this.teacherLoading = null;
      this.teacher = null;
      this.ensureTeacher(files).catch(() => {});
    });
    const setTrain = (files: File[]) => {
      this.trainFiles = imageFiles(files);
      $('train-count').textContent = `${this.trainFiles.length} image(s) chosen.`;
      $<HTMLButtonElement>('train').disabled = this.trainFiles.length === 0;
    };
    for (const id of ['train-files', 'train-folder'])
      $<HTMLInputElement>(id).addEventListener('change', (ev) =>
        setTrain(Array.from((ev.target as HTMLInputElement).files ?? [])),
      );
    this.dropZone($('train-drop'), setTrain);
    this.dropZone($('test-drop'), (f) => void this.inspect(imageFiles(f)));
    $<HTMLInputElement>('test-files').addEventListener('change', (ev) => {
      const input = ev.target as HTMLInputElement;
      const files = imageFiles(Array.from(input.files ?? []));
      input.value = ''; // choosing the same files again inspects them again
      void this.inspect(files);
    });
    $('train').addEventListener('click', () => void this.train());
    $('stop').addEventListener('click', () => {
      this.stopRequested = true;
      $('train-status').textContent = 'Stopping after the current step…';
    });
    $('save').addEventListener('click', () => void this.save());
    $<HTMLInputElement>('ckpt-file').addEventListener('change', (ev) => {
      const input = ev.target as HTMLInputElement;
      const f = input.files?.[0];
      input.value = '';
      if (f) void this.loadCheckpoint(f);
    });
    $<HTMLInputElement>('threshold').addEventListener('input', (ev) => {
      this.s.threshold = Number((ev.target as HTMLInputElement).value);
      this.applyThreshold();
    });
    $('csv').addEventListener('click', () => this.exportCsv());
    $('pngs').addEventListener('click', () => void this.exportPngs());
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

  private ensureTeacher(files?: File[]): Promise<KerasResnet50Teacher> {
    if (this.teacher) return Promise.resolve(this.teacher);
    if (!this.teacherLoading) {
      const st = $('teacher-status');
      st.classList.remove('error');
      st.textContent = 'Loading the teacher…';
      const t0 = performance.now();
      this.teacherLoading = (
        files
          ? kerasTeacherFromChosenFiles(files)
          : fetchKerasTeacher(undefined, (d, n) => {
              st.textContent = `Loading the teacher: ${d}/${n} weight files…`;
            })
      ).then(
        (t) => {
          this.teacher = t;
          st.textContent = `Teacher ready: Keras ResNet-50 (${((performance.now() - t0) / 1000).toFixed(1)} s).`;
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

  private disposeModel(): void {
    if (this.trainer) this.trainer.dispose();
    if (this.model) for (const st of this.model.studentStates()) st.dispose();
    this.trainer = null;
    this.model = null;
  }

  private num(id: string): number {
    return Number($<HTMLInputElement>(id).value);
  }

  private async train(): Promise<void> {
    const status = $('train-status');
    status.classList.remove('error');
    const buttons = { train: $<HTMLButtonElement>('train'), stop: $<HTMLButtonElement>('stop') };
    buttons.train.disabled = true;
    try {
      const cfg = appConfig({
        imageSize: this.num('size'),
        batch: this.num('batch'),
        epochs: this.num('epochs'),
        seed: this.num('seed'),
        accumulate: this.num('accumulate'),
      });
      const teacher = await this.ensureTeacher();
      status.textContent = `Decoding ${this.trainFiles.length} image(s)…`;
      const images: Float32Array[] = [];
      for (const f of this.trainFiles)
        images.push(modelInput(await decodeImageBlob(f, f.name), cfg.imageSize));
      this.disposeModel();
      this.s.losses = [];
      this.s.phase = 'training';
      this.s.imageSize = cfg.imageSize;
      this.stopRequested = false;
      buttons.stop.disabled = false;
      const progress = $<HTMLProgressElement>('train-progress');
      const batches = Math.ceil(images.length / cfg.batch);
      const total = batches * cfg.epochs;
      progress.max = total;
      progress.value = 0;
      status.textContent = `Training: ${images.length} images, ${total} steps (the first step compiles the GPU kernels)…`;
      const t0 = performance.now();
      const { model, trainer } = makeTrainer(teacher, cfg, images, {
        onStep: (st) => {
          this.s.losses.push(st.loss);
          progress.value = st.globalStep;
          const per = (performance.now() - t0) / 1000 / st.globalStep;
          const eta = per * (total - st.globalStep);
          status.textContent =
            `Epoch ${st.epoch}/${st.epochs}, step ${st.globalStep}/${total}: loss ${st.loss.toFixed(4)} ` +
            `(KD ${st.kd.toFixed(4)}), ${st.imagesPerSecond.toFixed(2)} images/s, ETA ${eta.toFixed(0)} s`;
          this.drawCurve();
          // the Trainer asks shouldStop at epoch ends; stop between steps too
          if (this.stopRequested && st.globalStep < total) throw new StopTraining();
        },
        shouldStop: () => this.stopRequested,
      });
      this.model = model;
      this.trainer = trainer;
      let stopped = false;
      try {
        await trainer.run();
      } catch (e) {
        if (!(e instanceof StopTraining)) throw e;
        stopped = true;
      }
      this.s.phase = 'trained';
      this.modelName = `rdpp-${cfg.imageSize}px-e${trainer.state.epoch}`;
      status.textContent = `${stopped ? 'Stopped after' : 'Trained'} ${trainer.state.globalStep} step(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s; last loss ${this.s.losses.at(-1)?.toFixed(4)}.`;
      $<HTMLButtonElement>('save').disabled = false;
      this.s.decision = null;
    } catch (e) {
      this.s.phase = 'error';
      this.fail(status, e);
    } finally {
      buttons.train.disabled = this.trainFiles.length === 0;
      buttons.stop.disabled = true;
    }
  }

  private drawCurve(): void {
    const c = $<HTMLCanvasElement>('loss-curve');
    const ctx = c.getContext('2d');
    const l = this.s.losses;
    if (!ctx || l.length === 0) return;
    ctx.clearRect(0, 0, c.width, c.height);
    const lo = Math.min(...l);
    const hi = Math.max(...l);
    const span = hi - lo || 1;
    const pad = 20;
    ctx.strokeStyle = '#1a73e8';
    ctx.lineWidth = 2;
    ctx.beginPath();
    l.forEach((v, i) => {
      const x = pad + ((c.width - 2 * pad) * i) / Math.max(1, l.length - 1);
      const y = c.height - pad - ((c.height - 2 * pad) * (v - lo)) / span;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.fillStyle = '#1a73e8';
    l.forEach((v, i) => {
      const x = pad + ((c.width - 2 * pad) * i) / Math.max(1, l.length - 1);
      const y = c.height - pad - ((c.height - 2 * pad) * (v - lo)) / span;
      ctx.fillRect(x - 2, y - 2, 4, 4);
    });
    ctx.fillStyle = '#1b1f24';
    ctx.font = '12px system-ui';
    ctx.fillText(`loss ${hi.toFixed(3)}`, 4, 12);
    ctx.fillText(`${lo.toFixed(3)} · ${l.length} steps`, 4, c.height - 4);
  }

  private download(bytes: BlobPart, name: string, type: string): void {
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  private async save(): Promise<void> {
    if (!this.trainer) return;
    const bytes = await this.trainer.checkpoint();
    this.download(
      bytes as Uint8Array<ArrayBuffer>,
      `${this.modelName}.safetensors`,
      'application/octet-stream',
    );
  }

  private async loadCheckpoint(f: File): Promise<void> {
    const status = $('train-status');
    status.classList.remove('error');
    try {
      const teacher = await this.ensureTeacher();
      const bytes = new Uint8Array(await f.arrayBuffer());
      this.disposeModel();
      const { model, imageSize, meta } = modelFromCheckpoint(teacher, bytes, f.name);
      this.model = model;
      this.s.imageSize = imageSize;
      this.s.decision = meta.decision ? parseDecision(meta.decision, f.name) : null;
      this.modelName = f.name.replace(/\.safetensors$/, '');
      this.s.phase = 'trained';
      $<HTMLButtonElement>('save').disabled = true;
      status.textContent = `Loaded ${f.name} (${imageSize}×${imageSize}${this.s.decision ? `, calibrated threshold ${this.s.decision.threshold.toFixed(4)}` : ''}).`;
    } catch (e) {
      this.fail(status, e);
    }
  }

  private async inspect(files: File[]): Promise<void> {
    const status = $('inspect-status');
    status.classList.remove('error');
    if (!this.model) {
      this.fail(status, new Error('Train or load a model first.'));
      return;
    }
    if (files.length === 0) {
      status.textContent = 'No images chosen.';
      return;
    }
    try {
      this.s.phase = 'scoring';
      status.textContent = `Decoding ${files.length} image(s)…`;
      const size = this.s.imageSize;
      const images: Rgb8[] = [];
      for (const f of files) images.push(await decodeImageBlob(f, f.name));
      const scored = await scoreImages(
        this.model,
        images.map((im) => modelInput(im, size)),
        size,
        4,
        (d, n) => {
          status.textContent = `Scoring ${d}/${n}…`;
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
    } catch (e) {
      this.s.phase = 'error';
      this.fail(status, e);
    }
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
      c.setAttribute('aria-label', `anomaly heatmap of ${r.name}`);
      const li = document.createElement('li');
      const cap = document.createElement('div');
      cap.innerHTML =
        '<span class="name"></span><br>score <span class="score"></span> · <span class="verdict"></span>';
      (cap.querySelector('.name') as HTMLElement).textContent = r.name;
      (cap.querySelector('.score') as HTMLElement).textContent = r.score.toFixed(4);
      li.append(c, cap);
      list.append(li);
    }
    // slider range: the scores (and the calibrated threshold), with a margin
    const scores = this.s.results.map((r) => r.score);
    const t = this.s.decision?.threshold;
    const lo = Math.min(...scores, t ?? Infinity);
    const hi = Math.max(...scores, t ?? -Infinity);
    const m = (hi - lo) * 0.1 || Math.abs(hi) * 0.05 || 0.01;
    const slider = $<HTMLInputElement>('threshold');
    slider.min = String(lo - m);
    slider.max = String(hi + m);
    slider.disabled = false;
    this.s.threshold = t ?? (lo + hi) / 2;
    slider.value = String(this.s.threshold);
    if (t !== undefined) slider.title = `calibrated threshold ${t.toFixed(4)}`;
    $<HTMLButtonElement>('csv').disabled = false;
    $<HTMLButtonElement>('pngs').disabled = false;
    this.applyThreshold();
  }

  private applyThreshold(): void {
    const t = this.s.threshold;
    const cal = this.s.decision ? ` (calibrated ${this.s.decision.threshold.toFixed(4)})` : '';
    $('threshold-value').textContent = `${t.toFixed(4)}${cal}`;
    const items = $('results').children;
    let fails = 0;
    this.s.results.forEach((r, i) => {
      const li = items[i] as HTMLElement;
      const v = decide(r.score, t);
      if (v === 'fail') fails++;
      li.className = v;
      (li.querySelector('.verdict') as HTMLElement).textContent = v === 'fail' ? 'FAIL' : 'pass';
    });
    $('inspect-status').textContent =
      `${this.s.results.length} image(s): ${fails} fail, ${this.s.results.length - fails} pass at threshold ${t.toFixed(4)}.`;
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
