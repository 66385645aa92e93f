import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PNG } from 'pngjs';
import { gemmPrecision } from '../../engine/precision.js';
import { loadOpFixture } from '../../parity/fixture.js';
import { KERAS_TOLERANCE, type KerasFixture, runKerasParity } from '../../parity/keras.js';
import { type ModelCheck, runModelParity } from '../../parity/model.js';
import { type CaseResult, runOpCase } from '../../parity/ops.js';
import { loadKerasTeacher } from '../../platform/keras-teacher.js';
import '../../parity/cases/index.js';
import { type Command, UsageError } from '../command.js';
import { PRECISION_OPTION, precisionOption, startEngine } from '../gpu.js';

function fmt(e: number): string {
  return Number.isFinite(e) ? e.toExponential(2) : String(e);
}

export const parity: Command = {
  name: 'parity',
  summary: 'compare the engine with golden values from the official PyTorch code (exit 0 only if all pass)',
  usage: '<fixture.json> [--json] [--case <regex>] [--precision f32|f16]',
  positionals: true,
  options: {
    json: { type: 'boolean', help: 'print machine-readable results' },
    case: { type: 'string', help: 'run only the cases whose name matches this regular expression' },
    precision: {
      ...PRECISION_OPTION,
      help: `${PRECISION_OPTION.help}. Under f16, GEMM results are held to the f16 tolerances of src/parity/f16.ts`,
    },
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
      st = isKerasFixture(json) ? new Uint8Array() : new Uint8Array(readFileSync(stPath));
    } catch (e) {
      throw new Error(
        `cannot read ${stPath} (the fixture's tensors, expected beside the .json): ${(e as Error).message}`,
      );
    }
    const precision = precisionOption(values);
    await startEngine({ quiet: Boolean(values.json), precision });
    if (!values.json && gemmPrecision() === 'f16')
      console.log('precision f16: GEMM results against the f16 tolerances (src/parity/f16.ts), all else f32');
    if ('formula' in json) return runModel(path, json, st, Boolean(values.json));
    if (isKerasFixture(json)) return runKeras(path, json, Boolean(values.json));
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
        JSON.stringify(
          { fixture: path, precision: gemmPrecision(), passed: results.length - failed, failed, results },
          null,
          1,
        ),
      );
    else console.log(`${results.length - failed} passed, ${failed} failed`);
    return failed === 0 && results.length > 0 ? 0 : 1;
  },
};

async function runModel(
  path: string,
  json: Record<string, unknown>,
  st: Uint8Array,
  asJson: boolean,
): Promise<number> {
  const t0 = performance.now();
  const res = await runModelParity(json, st, (l) => console.error(l));
  const seconds = (performance.now() - t0) / 1000;
  if (asJson) {
    console.log(
      JSON.stringify(
        {
          fixture: path,
          precision: gemmPrecision(),
          pass: res.pass,
          seconds,
          skipped: res.skipped,
          checks: res.checks,
        },
        null,
        1,
      ),
    );
    return res.pass ? 0 : 1;
  }
  const byCat = new Map<string, ModelCheck[]>();
  for (const c of res.checks) byCat.set(c.category, [...(byCat.get(c.category) ?? []), c]);
  for (const [cat, cs] of byCat) {
    const worst = cs.reduce((a, b) => (b.error > a.error ? b : a));
    const failed = cs.filter((c) => !c.pass);
    const tag = cs[0]!.informational ? 'INFO' : failed.length ? 'FAIL' : 'PASS';
    console.log(
      `${tag}  ${cat.padEnd(18)} ${String(cs.length).padStart(4)} checks  worst ${fmt(worst.error)} (${worst.name})  tol ${fmt(worst.tolerance)}`,
    );
    for (const f of failed.slice(0, 10))
      console.log(`        ${f.name}: ${fmt(f.error)} > ${fmt(f.tolerance)}`);
  }
  if (res.skipped.length) console.log(`not in this fixture: ${res.skipped.join(', ')}`);
  const failed = res.checks.filter((c) => !c.pass).length;
  console.log(`${res.checks.length - failed} passed, ${failed} failed (${seconds.toFixed(1)} s)`);
  return res.pass ? 0 : 1;
}

function isKerasFixture(json: Record<string, unknown>): json is Record<string, unknown> & KerasFixture {
  const cases = json.cases as Record<string, Record<string, unknown>> | undefined;
  return !!cases && Object.values(cases).some((c) => 'activation_9' in c);
}

async function runKeras(path: string, fx: KerasFixture, asJson: boolean): Promise<number> {
  const teacher = await loadKerasTeacher(asJson ? undefined : (m) => console.error(m));
  const checks = await runKerasParity(fx, teacher, (rel) =>
    PNG.sync.read(readFileSync(join(dirname(path), rel))),
  );
  const failed = checks.filter((c) => !c.pass).length;
  if (asJson)
    console.log(
      JSON.stringify(
        { fixture: path, tolerance: KERAS_TOLERANCE, passed: checks.length - failed, failed, checks },
        null,
        1,
      ),
    );
  else {
    for (const c of checks)
      console.log(
        `${c.pass ? 'PASS' : 'FAIL'}  ${`${c.input}.${c.tap}`.padEnd(28)} ${fmt(c.error)}  tol ${fmt(KERAS_TOLERANCE)}`,
      );
    console.log(`${checks.length - failed} passed, ${failed} failed`);
  }
  return failed === 0 ? 0 : 1;
}
