/**
 * `rdpp bench --browser`: the benchmark run by the browser bundle (dist/web, src/web/bench.ts) in headless
 * Chromium, on the browser's own WebGPU — what users of the app get (on a machine without a GPU, Chromium's
 * SwiftShader, which is how a slower browser path is caught before it ships).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { E2eResult } from '../../bench/e2e.js';
import type { BenchReport } from '../../bench/harness.js';
import { launchChromium, serveFolder } from '../platform/chromium.js';
import type { BrowserBenchSpec } from '../web/bench.js';

/** The report, with `runtime` naming the browser; progress lines (the page's console) go to `log`. */
export async function benchInBrowser(
  spec: BrowserBenchSpec,
  log: (line: string) => void,
): Promise<(BenchReport | E2eResult) & { runtime: string }> {
  // dist/web beside the program (dist/rdpp.js)
  const root = join(dirname(process.argv[1] ?? '.'), 'web');
  if (!existsSync(join(root, 'rdpp-web.js')))
    throw new Error(`${root}/rdpp-web.js is missing: run \`npm run build\` first`);
  const { server, url } = await serveFolder(root);
  try {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      page.on('console', (m) => log(`browser: ${m.text()}`));
      await page.goto(`${url}bench.html`);
      await page.waitForFunction(() => 'rdpp' in globalThis);
      const report = await page.evaluate(
        (s) =>
          (
            globalThis as unknown as {
              rdpp: { bench: { run: (s: BrowserBenchSpec) => Promise<BenchReport | E2eResult> } };
            }
          ).rdpp.bench.run(s),
        spec,
      );
      return { ...report, runtime: `headless Chromium ${browser.version()}` };
    } finally {
      await browser.close();
    }
  } finally {
    server.close();
  }
}
