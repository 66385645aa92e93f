import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // `.wasm` imports are the module's bytes, as esbuild's binary loader makes them (scripts/build.mjs)
  plugins: [
    {
      name: 'wasm-as-bytes',
      enforce: 'pre',
      load(id) {
        if (!id.endsWith('.wasm')) return null;
        const b64 = readFileSync(id).toString('base64');
        return `export default new Uint8Array(Buffer.from(${JSON.stringify(b64)}, 'base64'));`;
      },
    },
  ],
  test: {
    // through vite (and the plugin above), not Node's loader: the decoders import their .wasm
    server: { deps: { inline: [/@jsquash/] } },
    include: ['test/**/*.test.ts'],
    // Dawn's native addon is happiest in its own process per test file.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
