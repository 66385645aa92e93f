// Builds the command-line program (dist/rdpp.js, dist/train.js) and the browser bundle (dist/web/)
// from the same sources with esbuild. Usage: node scripts/build.mjs [--watch]
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import * as esbuild from 'esbuild';

const common = { bundle: true, format: 'esm', sourcemap: true, target: 'es2022', logLevel: 'warning' };

await esbuild.build({
  ...common,
  platform: 'node',
  entryPoints: { rdpp: 'src/cli/main.ts', train: 'src/cli/train-entry.ts' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  // Dawn's native addon is loaded at run time from node_modules.
  external: ['webgpu'],
  // CommonJS dependencies (pngjs) call require() for Node built-ins; give the ESM bundle one.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __rdppCreateRequire } from 'node:module';\nconst require = __rdppCreateRequire(import.meta.url);",
  },
});

await esbuild.build({
  ...common,
  platform: 'browser',
  entryPoints: { 'rdpp-web': 'src/web/index.ts' },
  outdir: 'dist/web',
});
mkdirSync('dist/web', { recursive: true });
if (existsSync('src/web/static')) cpSync('src/web/static', 'dist/web', { recursive: true });
