// Builds the command-line program (dist/rdpp.js, dist/train.js) and the browser bundle (dist/web/)
// from the same sources with esbuild. Usage: node scripts/build.mjs [--watch]
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import * as esbuild from 'esbuild';

// .wasm imports (the JPEG and WebP decoders, src/platform/wasm-codecs.ts) are inlined as bytes, so dist/
// runs with no node_modules but `webgpu`.
const common = {
  bundle: true,
  format: 'esm',
  sourcemap: true,
  target: 'es2022',
  logLevel: 'warning',
  loader: { '.wasm': 'binary' },
};

const node = await esbuild.build({
  ...common,
  metafile: true,
  platform: 'node',
  entryPoints: { rdpp: 'src/cli/main.ts', train: 'src/cli/train-entry.ts' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  // Dawn's native addon is loaded at run time from node_modules, as is playwright-core (only by `rdpp bench
  // --browser`, a development tool).
  external: ['webgpu', 'playwright-core'],
  // CommonJS dependencies (pngjs) call require() for Node built-ins; give the ESM bundle one.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __rdppCreateRequire } from 'node:module';\nconst require = __rdppCreateRequire(import.meta.url);",
  },
});

// Chunk names carry a content hash, so every change leaves old chunks behind: drop the ones this build
// did not write (after the build, so a program started from the previous build keeps working meanwhile).
const written = new Set(Object.keys(node.metafile.outputs).map((f) => relative('dist/chunks', resolve(f))));
for (const f of existsSync('dist/chunks') ? readdirSync('dist/chunks') : [])
  if (!written.has(f)) rmSync(`dist/chunks/${f}`, { force: true });

await esbuild.build({
  ...common,
  platform: 'browser',
  entryPoints: { 'rdpp-web': 'src/web/index.ts' },
  outdir: 'dist/web',
});
mkdirSync('dist/web', { recursive: true });
if (existsSync('src/web/static')) cpSync('src/web/static', 'dist/web', { recursive: true });
