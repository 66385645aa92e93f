/**
 * Golden fixtures (../shared/fixtures/golden): a JSON file with settings and scalars, and a safetensors
 * file beside it with tensors named `<case>.<name>`. This module turns the pair into op cases; it is
 * platform-neutral (the caller reads the bytes).
 */
import { readSafetensors, toFloat32 } from '../engine/io/safetensors.js';

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface OpCase {
  name: string;
  /** The case's settings from the JSON (for `gauss_0` also the shared `gauss` entry). */
  meta: Record<string, unknown>;
  tensors: Map<string, HostTensor>;
  /** The tensor `<case>.<key>`; throws a clear error when the fixture lacks it. */
  t(key: string): HostTensor;
  has(key: string): boolean;
  /** Tolerance from the fixture's `tolerance` table (undefined when it has none for this case). */
  tolerance: number | undefined;
}

export interface OpFixture {
  json: Record<string, unknown>;
  cases: OpCase[];
}

const RESERVED = new Set(['note', 'float32_pytorch_error', 'tolerance', 'tolerance_rule']);

/** Build the op cases of a fixture: every tensor-name prefix and every JSON case entry. */
export function loadOpFixture(
  json: Record<string, unknown>,
  safetensors: Uint8Array,
  source = 'fixture',
): OpFixture {
  const file = readSafetensors(safetensors, source);
  const byCase = new Map<string, Map<string, HostTensor>>();
  for (const [full, t] of file.tensors) {
    const dot = full.indexOf('.');
    if (dot < 0) continue;
    const c = full.slice(0, dot);
    if (!byCase.has(c)) byCase.set(c, new Map());
    byCase.get(c)!.set(full.slice(dot + 1), { shape: t.shape, data: toFloat32(t) });
  }
  const names = new Set<string>([...byCase.keys()]);
  for (const [k, v] of Object.entries(json)) {
    // a JSON entry is a case of its own when no tensor family claims it (e.g. sinkhorn_self_permuted)
    if (RESERVED.has(k) || typeof v !== 'object' || v === null) continue;
    if (![...byCase.keys()].some((c) => c === k || c.replace(/_\d+$/, '') === k)) names.add(k);
  }
  const tolerances = (json.tolerance ?? {}) as Record<string, number>;
  const cases: OpCase[] = [...names].map((name) => {
    const family = name.replace(/_\d+$/, '');
    const meta = {
      ...((json[family] as Record<string, unknown>) ?? {}),
      ...((json[name] as Record<string, unknown>) ?? {}),
    };
    const tensors = byCase.get(name) ?? new Map<string, HostTensor>();
    return {
      name,
      meta,
      tensors,
      tolerance: tolerances[name] ?? tolerances[family],
      has: (k: string) => tensors.has(k),
      t: (k: string) => {
        const t = tensors.get(k);
        if (!t)
          throw new Error(
            `${source}: case '${name}' has no tensor '${k}' (has: ${[...tensors.keys()].join(', ')})`,
          );
        return t;
      },
    };
  });
  return { json, cases };
}
