/**
 * The browser bundle's entry point: the same engine (and, as they arrive, models, training and
 * evaluation) as the Node program, plus the browser platform layer. Exposed as `globalThis.rdpp` for
 * the app and the browser tests.
 */
import * as engine from '../engine/index.js';
import { runSelftest, selftestReference } from '../engine/selftest.js';
import '../parity/cases/index.js';
import { loadOpFixture } from '../parity/fixture.js';
import { runOpCase } from '../parity/ops.js';
import { openBrowserGpu } from '../platform/browser.js';
import { startApp } from './app/main.js';
import { runBrowserBench } from './bench.js';

const api = {
  engine,
  openBrowserGpu,
  runSelftest,
  selftestReference,
  parity: { loadOpFixture, runOpCase },
  startApp,
  bench: { run: runBrowserBench },
};
(globalThis as unknown as { rdpp: typeof api }).rdpp = api;
export default api;
