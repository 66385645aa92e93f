/**
 * The benchmarks in the browser: `rdpp bench kernels --browser` (the Node program driving the browser
 * bundle in headless Chromium) writes a report that names the browser's adapter and the browser, with a
 * time for every case that ran; a filter that matches nothing is a clear error; and the page itself
 * (bench.html) runs a case from its form and offers the JSON. One cheap case each, on SwiftShader here.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Harness, openBrowser } from './harness.js';

const CASE = 'gaussian';
const tmp = mkdtempSync(join(tmpdir(), 'rdpp-bench-browser-'));
let h: Harness | null = null;

afterAll(async () => {
  await h?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function rdpp(...args: string[]) {
  return spawnSync(process.execPath, ['dist/rdpp.js', ...args], { encoding: 'utf8', timeout: 300_000 });
}

describe('rdpp bench --browser', () => {
  it('writes the report of the browser bundle run in headless Chromium, naming adapter and browser', () => {
    const out = join(tmp, 'kernels.json');
    const r = rdpp(
      'bench',
      'kernels',
      '--small',
      '--browser',
      '--filter',
      CASE,
      '--iters',
      '2',
      '--out',
      out,
    );
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    expect(report.adapter).toMatch(/^browser: /);
    expect(report.runtime).toMatch(/^headless Chromium \d+\./);
    expect(report.size).toBe('small');
    expect(report.results.length).toBeGreaterThan(0);
    for (const c of report.results) {
      expect(`${c.family} ${c.name}`).toMatch(new RegExp(CASE));
      expect(c.iters).toBe(2);
      expect(c.median_ms).toBeGreaterThan(0);
    }
    // progress came through from the page's console
    expect(r.stderr).toMatch(/browser: .*gaussian/);
  });

  it('applies the RDPP_* flags of its environment in the page; SwiftShader refuses the tiles it cannot survive', () => {
    const run = (tile: string) =>
      spawnSync(
        process.execPath,
        ['dist/rdpp.js', 'bench', 'kernels', '--small', '--browser', '--filter', 'matmul', '--iters', '1'],
        { encoding: 'utf8', timeout: 300_000, env: { ...process.env, RDPP_GEMM_TILE: tile } },
      );
    const ok = run('t128x128');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toContain('browser: flags: {"GEMM_TILE":"t128x128"}');
    // on SwiftShader (the browser's WebGPU on a machine without a GPU, as in CI) t32x32 would lose the device
    // after minutes: a clear error at once instead
    if (/swiftshader/i.test(JSON.parse(ok.stdout).adapter)) {
      const refused = run('t32x32');
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(/GEMM_TILE=t32x32: tile t32x32x16 stages 2 groups .* SwiftShader/);
    }
  });

  it('says so when no case matches, and refuses bench shapes', () => {
    const none = rdpp('bench', 'kernels', '--small', '--browser', '--filter', 'no-such-case');
    expect(none.status).not.toBe(0);
    expect(none.stderr).toMatch(/no benchmark case matches/);
    const shapes = rdpp('bench', 'shapes', '--browser');
    expect(shapes.status).not.toBe(0);
    expect(shapes.stderr).toMatch(/--browser applies to bench kernels, train and infer/);
  });
});

describe('bench.html', () => {
  it('runs the cases its form selects and offers the JSON report', async () => {
    h = await openBrowser();
    const { page } = h;
    await page.goto(`${h.url}bench.html`);
    await page.getByLabel('Filter (regular expression)').fill(CASE);
    await page.getByLabel('Timed runs').fill('1');
    await page.getByRole('button', { name: 'Run' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: /^Done on browser: / })
      .waitFor({ timeout: 240_000 });
    expect(await page.getByRole('log').textContent()).toMatch(/gaussian/);
    const link = page.getByRole('link', { name: 'Download the JSON report' });
    expect(await link.isVisible()).toBe(true);
    const href = await link.getAttribute('href');
    const report = await page.evaluate(async (u) => (await fetch(u!)).json(), href);
    expect(report.results.length).toBeGreaterThan(0);
    expect(h.errors).toEqual([]);
  });
});
