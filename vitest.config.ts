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
    // Dawn's native addon is happiest in its own process per test file.
    pool: 'forks',
    // a tile table `rdpp tune` left in the user's cache must not change the kernels the tests run
    // (test/cli/tune.test.ts turns it on where it tests it)
    env: { RDPP_TILE_TABLE: 'off' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // Two groups, one after the other. The browser files drive Chromium, whose software GPU (SwiftShader)
    // runs a thread pool as wide as the machine; beside a Node file on lavapipe (another such pool) both
    // starve on 2 cores: the app's first case, 150 s alone, ran past 400 s in CI. So the Node files run
    // two at a time first, then the browser files one at a time with the machine to themselves.
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/**/*.test.ts'],
          exclude: ['test/browser/**'],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
