/**
 * The pipeline layer (src/pipeline) bundles for the browser: no file it reaches through its imports
 * loads a Node built-in (`node:*`, or a bare `fs`/`path`/…). Node I/O belongs in src/platform and the
 * CLI's adapters, which hand it in as functions and objects. A static walk of the import graph, so it
 * needs neither a GPU nor a bundler.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s(?:[^'"]*?from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every module specifier a source file imports or re-exports (type-only ones included: harmless). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT_RE)].map((m) => (m[1] ?? m[2])!);
}

describe('src/pipeline', () => {
  it('reaches no Node built-in through its imports', () => {
    const start = readdirSync(join(ROOT, 'src/pipeline'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(ROOT, 'src/pipeline', f));
    const seen = new Set<string>();
    const offenders: string[] = [];
    const todo = [...start];
    while (todo.length) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const spec of specifiers(file)) {
        if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else if (spec.startsWith('node:') || builtinModules.includes(spec))
          offenders.push(`${relative(ROOT, file)} imports ${spec}`);
      }
    }
    expect(seen.size).toBeGreaterThan(start.length);
    expect(offenders).toEqual([]);
  });
});
