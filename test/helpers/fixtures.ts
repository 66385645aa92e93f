/** Where the shared fixtures are: $RDPP_SHARED or ../shared beside the repository. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOpFixture, type OpFixture } from '../../src/parity/fixture.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED = process.env.RDPP_SHARED ?? join(repo, '..', 'shared');

export function sharedPath(...parts: string[]): string {
  return join(SHARED, ...parts);
}

export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8'));
}

let ops: OpFixture | null = null;

/** The golden op cases (ops.json + ops.safetensors). */
export function opsFixture(): OpFixture {
  if (!ops) {
    const base = sharedPath('fixtures', 'golden', 'ops');
    ops = loadOpFixture(
      readJson(`${base}.json`),
      new Uint8Array(readFileSync(`${base}.safetensors`)),
      `${base}.safetensors`,
    );
  }
  return ops;
}
