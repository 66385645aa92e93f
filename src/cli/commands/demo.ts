import { runSelftest, selftestReference } from '../../engine/selftest.js';
import type { Command } from '../command.js';
import { startEngine } from '../gpu.js';

/**
 * The built-in default job (`npm start`). Until training lands it proves the whole stack: device,
 * kernels, autograd and readback, checked against a CPU reference.
 */
export const demo: Command = {
  name: 'demo',
  summary: 'run the built-in default job on data every machine has (now: an engine smoke test)',
  usage: '',
  options: {},
  async run() {
    await startEngine();
    const t0 = performance.now();
    const got = await runSelftest();
    const ref = selftestReference();
    let err = 0;
    for (let i = 0; i < ref.y.length; i++) {
      err = Math.max(err, Math.abs(got.y[i]! - ref.y[i]!), Math.abs(got.da[i]! - ref.da[i]!));
    }
    const ok = err < 1e-5;
    console.log(
      `engine smoke test: forward + backward of ${ref.y.length} elements, max error ${err.toExponential(2)} ` +
        `(${(performance.now() - t0).toFixed(0)} ms): ${ok ? 'ok' : 'FAILED'}`,
    );
    return ok ? 0 : 1;
  },
};
