/**
 * The browser path: headless Chromium loads the browser bundle (built from the same engine sources as
 * the Node program), runs the same kernels, and must return the same numbers as Node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSelftest, selftestReference } from '../../src/engine/selftest.js';
import { SHARED } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';
import { type Harness, openBrowser } from './harness.js';

let h: Harness;

/** Golden op cases run in Chromium too (one or more per kernel family). */
const BROWSER_CASES = [
  'conv2d_1',
  'deconv_0',
  'bn_train',
  'instnorm',
  'maxpool',
  'cos_map',
  'kd_loss',
  'cos_recon',
  'sinkhorn_0',
  'bilinear_1',
  'gauss_0',
  'adam',
];

beforeAll(async () => {
  h = await openBrowser('dist/web', { '/shared/': SHARED });
  await h.page.goto(h.url);
  await h.page.waitForFunction(() => (globalThis as { rdpp?: unknown }).rdpp !== undefined);
});

afterAll(async () => {
  await h?.close();
});

describe('browser bundle in headless Chromium', () => {
  it('opens WebGPU on a real adapter and runs the engine self-test like Node', async () => {
    const res = await h.page.evaluate(async () => {
      // biome-ignore lint/suspicious/noExplicitAny: runs in the page, where the bundle's global has no TS type
      const api = (globalThis as any).rdpp;
      const g = await api.openBrowserGpu();
      api.engine.initEngine(g);
      const out = await api.runSelftest();
      return {
        report: g.report,
        y: Array.from(out.y as Float32Array),
        da: Array.from(out.da as Float32Array),
      };
    });
    console.log(
      `browser adapter: ${res.report.vendor} / ${res.report.architecture} / ${res.report.description}`,
    );
    expect(res.report.platform).toBe('browser');
    // Chromium without a GPU: SwiftShader's Vulkan; with a GPU: the real one. Never "no adapter".
    expect(`${res.report.vendor} ${res.report.architecture} ${res.report.description}`).toMatch(
      /swiftshader|nvidia|amd|intel|apple|llvmpipe/i,
    );

    await gpu();
    const node = await runSelftest();
    const ref = selftestReference();
    expect(res.y.length).toBe(ref.y.length);
    for (let i = 0; i < ref.y.length; i++) {
      expect(Math.abs(res.y[i]! - node.y[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(node.y[i]!)));
      expect(Math.abs(res.da[i]! - node.da[i]!)).toBeLessThanOrEqual(
        1e-6 * Math.max(1, Math.abs(node.da[i]!)),
      );
      expect(Math.abs(res.y[i]! - ref.y[i]!)).toBeLessThan(1e-5);
    }
    expect(h.errors).toEqual([]);
  });

  it('passes golden op cases in the browser with the same runners as Node', async () => {
    const results = await h.page.evaluate(async (names: string[]) => {
      // biome-ignore lint/suspicious/noExplicitAny: runs in the page, where the bundle's global has no TS type
      const api = (globalThis as any).rdpp;
      const json = await (await fetch('/shared/fixtures/golden/ops.json')).json();
      const st = new Uint8Array(await (await fetch('/shared/fixtures/golden/ops.safetensors')).arrayBuffer());
      const fixture = api.parity.loadOpFixture(json, st, 'ops.safetensors');
      const out = [];
      for (const c of fixture.cases) if (names.includes(c.name)) out.push(await api.parity.runOpCase(c));
      return out;
    }, BROWSER_CASES);
    expect(results.map((r: { case: string }) => r.case).sort()).toEqual([...BROWSER_CASES].sort());
    for (const r of results) {
      expect(r.problem, r.case).toBeUndefined();
      expect(r.maxError, r.case).toBeLessThanOrEqual(r.tolerance);
      expect(r.pass, r.case).toBe(true);
    }
    expect(h.errors).toEqual([]);
  });

  it('shows the app page with the adapter, without console errors', async () => {
    await h.page.goto(h.url);
    await h.page.waitForFunction(() =>
      document.getElementById('status')?.textContent?.startsWith('WebGPU ready'),
    );
    expect(h.errors).toEqual([]);
  });
});
