import { runBench } from '../../../bench/harness.js';
import { allBenchCases } from '../../../bench/index.js';
import { writeFileAtomic } from '../../platform/node.js';
import { type Command, UsageError } from '../command.js';
import { startEngine } from '../gpu.js';

export const bench: Command = {
  name: 'bench',
  summary: 'kernel micro-benchmarks: median/min/max time, GFLOP/s or GB/s, and the adapter, as JSON',
  usage: '[kernels] [--small] [--filter <regex>] [--iters N] [--out file.json]',
  positionals: true,
  options: {
    small: { type: 'boolean', help: 'small shapes (for CPU adapters such as lavapipe)' },
    filter: { type: 'string', help: 'only cases whose "family name" matches this regular expression' },
    iters: { type: 'string', default: '10', help: 'timed runs per case (after 2 warm-up runs)' },
    out: { type: 'string', help: 'write the JSON report to this file (default: print it)' },
  },
  async run({ values, positionals }) {
    const what = positionals[0] ?? 'kernels';
    if (what !== 'kernels') throw new UsageError(`unknown benchmark '${what}' (available: kernels)`);
    const iters = Number(values.iters);
    if (!Number.isInteger(iters) || iters < 1)
      throw new UsageError(`--iters must be a positive integer, got ${values.iters}`);
    await startEngine();
    const size = values.small ? 'small' : 'full';
    const filter = values.filter ? new RegExp(String(values.filter)) : null;
    const cases = allBenchCases(size).filter((c) => !filter || filter.test(`${c.family} ${c.name}`));
    if (cases.length === 0) throw new UsageError('no benchmark case matches');
    const report = await runBench(cases, size, { iters, log: (l) => console.error(l) });
    const json = JSON.stringify(report, null, 1);
    if (values.out) {
      writeFileAtomic(String(values.out), json);
      console.error(`wrote ${values.out}`);
    } else console.log(json);
    return 0;
  },
};
