import { readFileSync } from 'node:fs';
import { loadOpFixture } from '../../parity/fixture.js';
import { type CaseResult, runOpCase } from '../../parity/ops.js';
import '../../parity/cases/index.js';
import { type Command, UsageError } from '../command.js';
import { startEngine } from '../gpu.js';

function fmt(e: number): string {
  return Number.isFinite(e) ? e.toExponential(2) : String(e);
}

export const parity: Command = {
  name: 'parity',
  summary: 'compare the engine with golden values from the official PyTorch code (exit 0 only if all pass)',
  usage: '<fixture.json> [--json] [--case <regex>]',
  positionals: true,
  options: {
    json: { type: 'boolean', help: 'print machine-readable results' },
    case: { type: 'string', help: 'run only the cases whose name matches this regular expression' },
  },
  async run({ values, positionals }) {
    const path = positionals[0];
    if (!path || positionals.length > 1)
      throw new UsageError('give exactly one fixture file (a .json with its .safetensors beside it)');
    if (!path.endsWith('.json')) throw new UsageError(`${path}: expected the fixture's .json file`);
    let json: Record<string, unknown>;
    let st: Uint8Array;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read fixture ${path}: ${(e as Error).message}`);
    }
    const stPath = path.replace(/\.json$/, '.safetensors');
    try {
      st = new Uint8Array(readFileSync(stPath));
    } catch (e) {
      throw new Error(
        `cannot read ${stPath} (the fixture's tensors, expected beside the .json): ${(e as Error).message}`,
      );
    }
    if ('formula' in json)
      throw new Error(`${path} is a whole-model fixture; model parity is not implemented yet`);
    await startEngine({ quiet: Boolean(values.json) });
    const fixture = loadOpFixture(json, st, stPath);
    const filter = values.case ? new RegExp(String(values.case)) : null;
    const results: CaseResult[] = [];
    for (const c of fixture.cases) {
      if (filter && !filter.test(c.name)) continue;
      const r = await runOpCase(c);
      results.push(r);
      if (!values.json) {
        const detail = r.problem ?? r.errors.map((e) => `${e.name} ${fmt(e.error)}`).join(', ');
        console.log(
          `${r.pass ? 'PASS' : 'FAIL'}  ${r.case.padEnd(24)} max ${fmt(r.maxError).padEnd(9)} tol ${fmt(r.tolerance)}  ${detail}`,
        );
      }
    }
    const failed = results.filter((r) => !r.pass).length;
    if (values.json)
      console.log(
        JSON.stringify({ fixture: path, passed: results.length - failed, failed, results }, null, 1),
      );
    else console.log(`${results.length - failed} passed, ${failed} failed`);
    return failed === 0 && results.length > 0 ? 0 : 1;
  },
};
