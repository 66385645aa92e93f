/**
 * Threshold calibration, overlays, and the `rdpp predict` / `rdpp test` commands end to end on a tiny
 * model (ResNet-18 formula teacher written to a weights file, official student init, 64×64) with real
 * tire images (300×400).
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from '../../src/cli/command.js';
import { runExport } from '../../src/cli/commands/export.js';
import { predict, predictOptions } from '../../src/cli/commands/predict.js';
import { test as testCommand, testOptions } from '../../src/cli/commands/test.js';
import { readCheckpoint } from '../../src/cli/model-load.js';
import { runPredict } from '../../src/cli/predict-run.js';
import { runTest } from '../../src/cli/test-run.js';
import { f1Max } from '../../src/eval/metrics.js';
import {
  calibrateThreshold,
  decide,
  f1Decision,
  f1Threshold,
  mapRangeFor,
  normalStats,
  parseDecision,
} from '../../src/eval/threshold.js';
import { encodeCheckpoint, studentTensors } from '../../src/model/checkpoint.js';
import { Rng } from '../../src/model/init.js';
import { Rdpp } from '../../src/model/rdpp.js';
import { calibratedPath } from '../../src/pipeline/model.js';
import { writeFileAtomic } from '../../src/platform/node.js';
import { escapeHtml } from '../../src/report/html.js';
import { jet, overlayHeatmap, upsampleMap } from '../../src/report/overlay.js';
import { defaultConfig } from '../../src/train/config.js';
import { sharedPath } from '../helpers/fixtures.js';
import { writeFormulaTeacher } from '../helpers/formula-teacher.js';
import { gpu, runtime } from '../helpers/gpu.js';

describe('calibrateThreshold', () => {
  it('takes the smallest threshold with at most ⌊FRR·n⌋ normal scores above it', () => {
    // sorted 0.1 … 0.5, FRR 0.2 → k = 1 → threshold = 4th smallest = 0.4 (only 0.5 is above)
    const d = calibrateThreshold([0.5, 0.1, 0.3, 0.2, 0.4], { targetFrr: 0.2 });
    expect(d.threshold).toBe(0.4);
    expect(d.method).toBe('frr');
    expect(d.targetFrr).toBe(0.2);
    // 1 % of 5 images < 1 → k = 0 → the largest score, nothing rejected
    expect(calibrateThreshold([0.5, 0.1, 0.3, 0.2, 0.4]).threshold).toBe(0.5);
    // 1..10, FRR 0.25 → k = ⌊2.5⌋ = 2 → 8th smallest = 8 (9 and 10 above)
    const ten = Array.from({ length: 10 }, (_, i) => 10 - i);
    expect(calibrateThreshold(ten, { targetFrr: 0.25 }).threshold).toBe(8);
    // FRR 0.3 of 10: 0.3·10 = 3.0000000000000004 → k = 3 → 7
    expect(calibrateThreshold(ten, { targetFrr: 0.3 }).threshold).toBe(7);
    // ties: [1, 2, 2, 2, 3], FRR 0.4 → k = 2 → 3rd smallest = 2; only one score (3) is above
    const tied = calibrateThreshold([2, 1, 3, 2, 2], { targetFrr: 0.4 });
    expect(tied.threshold).toBe(2);
    expect([2, 1, 3, 2, 2].filter((s) => decide(s, tied.threshold) === 'fail')).toEqual([3]);
    // FRR 0 → the maximum
    expect(calibrateThreshold([3, 9, 4], { targetFrr: 0 }).threshold).toBe(9);
  });

  it('records normal-score statistics and rejects bad input', () => {
    const s = normalStats([1, 2, 3, 4]);
    expect(s).toEqual({ count: 4, mean: 2.5, std: Math.sqrt(1.25), min: 1, max: 4 });
    expect(calibrateThreshold([1, 2, 3, 4]).normalStats).toEqual(s);
    expect(() => calibrateThreshold([])).toThrow(/no scores/);
    expect(() => calibrateThreshold([1, 2], { targetFrr: 1 })).toThrow(/targetFrr/);
    expect(() => calibrateThreshold([1, Number.NaN])).toThrow(/not finite/);
  });

  it('f1Threshold finds the F1-optimal cut under score > threshold', () => {
    const labels = [0, 0, 1, 1, 0, 1];
    const scores = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9];
    // flagging the top 4 (0.9, 0.8, 0.4, 0.35): tp 3, fp 1 → F1 = 6/7, cut halfway to 0.2
    const f = f1Threshold(labels, scores);
    expect(f.f1).toBeCloseTo(6 / 7, 12);
    expect(f.threshold).toBeCloseTo(0.275, 12);
    expect(f.recall).toBe(1);
    expect(f.precision).toBe(0.75);
    expect(f.f1).toBeCloseTo(f1Max(labels, scores).f1, 12);
    const d = f1Decision(labels, scores, 'test');
    expect(d.method).toBe('f1');
    expect(d.normalStats.count).toBe(3);
    expect(d.normalStats.max).toBe(0.4);
    expect(scores.map((s) => decide(s, d.threshold))).toEqual([
      'pass',
      'fail',
      'fail',
      'fail',
      'pass',
      'fail',
    ]);
    expect(() => f1Threshold([0, 0], [1, 2])).toThrow(/no anomalous/);
    expect(() => f1Threshold([0, 1], [1])).toThrow(/pair up/);
  });

  it('parses decision metadata and gives a colour range with the threshold in the middle', () => {
    const d = calibrateThreshold([1, 2, 3, 4], { targetFrr: 0.25 });
    expect(d.threshold).toBe(3);
    // w = max(3 − 1, 4 − 1) = 3 → [0, 6]
    expect(mapRangeFor(d)).toEqual({ min: 0, max: 6 });
    const close = calibrateThreshold([1, 1.5], { targetFrr: 0 });
    expect(mapRangeFor(close)).toEqual({ min: 1, max: 2 });
    expect(parseDecision(JSON.parse(JSON.stringify(d)), 'x')).toEqual(d);
    expect(parseDecision(undefined, 'x')).toBeNull();
    expect(() => parseDecision({ threshold: 'a' }, 'ck')).toThrow(/ck: decision metadata has no finite/);
  });
});

describe('overlay', () => {
  it('upsamples to the original size, with a fixed value range', () => {
    expect(jet(0)).toEqual([0, 0, 128]);
    expect(jet(1)).toEqual([128, 0, 0]);
    expect(jet(0.5)).toEqual([128, 255, 128]);
    // constant map stays constant; a 2×1 ramp upsampled to 4×1 with half-pixel centres: 0, .25, .75, 1
    expect(Array.from(upsampleMap([5, 5, 5, 5], 2, 2, 3, 5))).toEqual(new Array(15).fill(5));
    expect(Array.from(upsampleMap([0, 1], 2, 1, 4, 1))).toEqual([0, 0.25, 0.75, 1]);
    const w = 7;
    const h = 5;
    const image = { width: w, height: h, rgb: new Uint8Array(w * h * 3).fill(100) };
    const hot = overlayHeatmap(image, new Float32Array(16).fill(9), 4, 4, { min: 0, max: 2 });
    expect([hot.width, hot.height, hot.rgb.length]).toEqual([w, h, w * h * 3]);
    // above max → clamped to red [128, 0, 0], blended 50/50 with grey 100
    expect(Array.from(hot.rgb.subarray(0, 3))).toEqual([114, 50, 50]);
    const cold = overlayHeatmap(image, new Float32Array(16).fill(0), 4, 4, { min: 0, max: 2, alpha: 1 });
    expect(Array.from(cold.rgb.subarray(w * h * 3 - 3))).toEqual([0, 0, 128]);
    expect(() => overlayHeatmap(image, new Float32Array(16), 4, 4, { min: 1, max: 1 })).toThrow(/max > min/);
    expect(() => overlayHeatmap(image, new Float32Array(15), 4, 4, { min: 0, max: 1 })).toThrow(/15 values/);
  });

  it('html helpers escape', () => {
    expect(escapeHtml('<a href="x">&\'')).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
  });
});

const TIRE = sharedPath('datasets', 'mvtec3d-tire-half');
const dir = mkdtempSync(join(tmpdir(), 'rdpp-predict-'));
const teacherPath = join(dir, 'resnet18-formula.safetensors');
const ckPath = join(dir, 'model.safetensors');

function pngSize(path: string): [number, number] {
  const p = PNG.sync.read(readFileSync(path));
  return [p.width, p.height];
}

beforeAll(async () => {
  await gpu();
  const t = writeFormulaTeacher(teacherPath);
  // the student from the official init (the teacher state stays uninitialised: only student tensors are saved)
  const model = new Rdpp(t);
  const rng = new Rng(5);
  for (const st of model.studentStates()) st.init(rng);
  const student = await studentTensors(model);
  model.dispose();
  const config = { ...defaultConfig('tire'), teacher: 'resnet18', teacherPath, imageSize: 64, batch: 2 };
  writeFileAtomic(ckPath, encodeCheckpoint(student, { config }));
});

describe('rdpp predict and rdpp test (tiny model, tire images)', () => {
  it('predicts overlays at the original size, lists a corrupt file, and tests + calibrates', async () => {
    const liveBefore = runtime().pool.snapshot().liveBytes;
    const input = join(dir, 'input');
    const good = sharedPath('datasets', 'mvtec3d-tire-half', 'tire', 'test', 'good');
    const cut = sharedPath('datasets', 'mvtec3d-tire-half', 'tire', 'test', 'cut');
    mkdirSync(input);
    copyFileSync(join(good, '000.png'), join(input, 'good0.png'));
    copyFileSync(join(good, '001.png'), join(input, 'good1.png'));
    copyFileSync(join(cut, '000.png'), join(input, 'cut0.png'));
    writeFileSync(join(input, 'broken.png'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5]));
    writeFileSync(join(input, 'notes.txt'), 'not an image');

    const out = join(dir, 'pred');
    const args = parse(predict, ['--checkpoint', ckPath, '--input', input, '--out', out, '--batch', '2']);
    if (args === 'help') throw new Error('unexpected help');
    const logs: string[] = [];
    const r = await runPredict({ ...predictOptions(args.values), log: (l) => logs.push(l) });
    expect(r.thresholdSource).toBe('none');
    expect(logs.join('\n')).toMatch(/no calibrated threshold/);
    expect(r.predictions.map((p) => p.decision).sort()).toEqual([
      'error',
      'uncalibrated',
      'uncalibrated',
      'uncalibrated',
    ]);
    const csv = readFileSync(join(out, 'predictions.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('path,score,decision,threshold,width,height,overlay,error');
    expect(csv.length).toBe(1 + 4);
    const broken = csv.find((l) => l.includes('broken.png'))!;
    expect(broken).toMatch(/,error,/);
    expect(broken).toMatch(/corrupt PNG/);
    const jsonl = readFileSync(join(out, 'predictions.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(jsonl.length).toBe(4);
    for (const p of r.predictions.filter((q) => q.decision !== 'error')) {
      expect(Number.isFinite(p.score)).toBe(true);
      expect(p.score!).toBeGreaterThan(0);
      expect(pngSize(join(out, p.overlay!))).toEqual([300, 400]);
    }
    expect(existsSync(join(out, 'cut0_overlay.png'))).toBe(true);

    // rdpp test on a reduced tire test set, calibrating on 4 validation images; the examples link to the
    // overlays of a predict folder that lists every test image (a stand-in predictions.jsonl)
    const reportDir = join(dir, 'report');
    const predDir = join(dir, 'pred-all');
    mkdirSync(predDir);
    const testRoot = join(TIRE, 'tire', 'test');
    writeFileSync(
      join(predDir, 'predictions.jsonl'),
      readdirSync(testRoot)
        .flatMap((t) => readdirSync(join(testRoot, t)).map((f) => ({ t, f })))
        .map(({ t, f }) => JSON.stringify({ path: join(testRoot, t, f), overlay: `${t}-${f}_overlay.png` }))
        .join('\n'),
    );
    const targs = parse(testCommand, [
      '--data',
      TIRE,
      '--category',
      'tire',
      '--checkpoint',
      ckPath,
      '--out',
      reportDir,
      '--max-test',
      '8',
      '--max-calibration',
      '4',
      '--frr',
      '0.25',
      '--predictions',
      predDir,
      '--calibrate',
    ]);
    if (targs === 'help') throw new Error('unexpected help');
    const t = await runTest({ ...testOptions(targs.values, targs.positionals), log: () => {} });
    expect(t.metrics.images).toBe(8);
    expect(t.metrics.anomalous).toBeGreaterThan(0);
    expect(t.metrics.anomalous).toBeLessThan(8);
    const m = JSON.parse(readFileSync(join(reportDir, 'metrics.json'), 'utf8'));
    for (const k of ['imageAuroc', 'pixelAuroc', 'auproStandard', 'auproOfficial']) {
      expect(m[k], k).toBeGreaterThanOrEqual(0);
      expect(m[k], k).toBeLessThanOrEqual(1);
    }
    expect(m.decision.method).toBe('frr');
    expect(m.decision.normalStats.count).toBe(4);
    const html = readFileSync(join(reportDir, 'report.html'), 'utf8');
    expect(html).toMatch(/AUPRO \(standard MVTec\)/);
    expect(html).toMatch(/AUPRO \(official RD\+\+ per-image\)/);
    const srcs = [...html.matchAll(/<img src="([^"]+)" alt="([^"]+)"/g)];
    // three groups × two examples × four panels (an image may be in two groups of this small set)
    expect(srcs.length).toBeGreaterThanOrEqual(12);
    for (const [, src] of srcs) expect(existsSync(join(reportDir, src!)), src).toBe(true);
    // the charts are inline SVG: ROC, PRO, the score histogram with the calibrated threshold
    for (const id of ['image-roc', 'pro-curve', 'score-histogram'])
      expect(html, id).toMatch(new RegExp(`<svg [^>]*id="${id}"`));
    expect(html).toMatch(/class="marker threshold"/);
    expect(existsSync(join(reportDir, 'roc.png'))).toBe(false);
    // panels at the original resolution (400×300 tire images)
    const ex = srcs.find((s) => s[1]!.endsWith('-overlay.png'))![1]!;
    expect(pngSize(join(reportDir, ex))).toEqual([300, 400]);
    expect(html).toMatch(/<a href="\.\.\/pred-all\/[a-z_]+-\d+\.png_overlay\.png">full-resolution overlay/);

    // the calibrated copy carries the decision, and predict uses it
    const cal = calibratedPath(ckPath);
    expect(t.calibrated).toBe(cal);
    const ck = readCheckpoint(cal);
    expect(ck.meta.decision?.threshold).toBe(t.decision!.threshold);
    expect(ck.meta.config.imageSize).toBe(64);
    const out2 = join(dir, 'pred2');
    const r2 = await runPredict({ ...predictOptions({ checkpoint: cal, input, out: out2 }), log: () => {} });
    expect(r2.thresholdSource).toBe('checkpoint');
    for (const p of r2.predictions.filter((q) => q.decision !== 'error')) {
      expect(p.decision).toBe(p.score! > t.decision!.threshold ? 'fail' : 'pass');
      expect(p.threshold).toBe(t.decision!.threshold);
    }
    // predict and test leave nothing allocated on the GPU
    expect(runtime().pool.snapshot().liveBytes).toBe(liveBefore);
  }, 120_000);

  it('an official-format .pth (rdpp export) predicts exactly like the checkpoint it came from', async () => {
    const input = sharedPath('datasets', 'mvtec3d-tire-half', 'tire', 'test', 'cut', '000.png');
    const pth = join(dir, 'official.pth');
    runExport(ckPath, pth);
    const scores = async (checkpoint: string, extra: Record<string, string>) => {
      const r = await runPredict({
        ...predictOptions({
          checkpoint,
          input,
          out: join(dir, `pred-${extra.teacher ? 'pth' : 'st'}`),
          ...extra,
        }),
        log: () => {},
      });
      return r.predictions.map((p) => p.score);
    };
    const want = await scores(ckPath, {});
    const got = await scores(pth, { teacher: `resnet18=${teacherPath}`, 'image-size': '64' });
    expect(got).toEqual(want);
    expect(Number.isFinite(got[0])).toBe(true);
  });

  it('official RD++ .pth checkpoints need their teacher and must be complete', async () => {
    const official = sharedPath('fixtures', 'pth', 'official_rdpp_checkpoint_subset.pth');
    const input = sharedPath('datasets', 'mvtec3d-tire-half', 'tire', 'test', 'good', '000.png');
    const out = join(dir, 'pred-official');
    const run = (teacher?: string) =>
      runPredict({
        ...predictOptions({ checkpoint: official, input, out, ...(teacher ? { teacher } : {}) }),
        log: () => {},
      });
    await expect(run()).rejects.toThrow(/is an official RD\+\+ checkpoint .*--teacher wrn50=/);
    // the shared fixture holds a handful of tensors of each module: refused, naming what is missing
    await expect(run(`resnet18=${teacherPath}`)).rejects.toThrow(
      /does not fit this model[\s\S]*missing 'proj\./,
    );
    await expect(run(`resnet18=${teacherPath}`)).rejects.toThrow(/… and \d+ more/);
  });
});
