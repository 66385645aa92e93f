import { activeTileTable, adapterLine, gemmTileSource } from '../../engine/index.js';
import type { Command } from '../command.js';
import { startEngine } from '../gpu.js';

export const info: Command = {
  name: 'info',
  summary: 'show the GPU adapter the engine uses (vendor, architecture, features, limits) and its GEMM tiles',
  usage: '[--json] [--unsafe]',
  options: {
    json: { type: 'boolean', help: 'print the full adapter report as JSON' },
    unsafe: { type: 'boolean', help: "request Dawn's allow_unsafe_apis (subgroup matrices)" },
  },
  async run({ values }) {
    const gpu = await startEngine({ quiet: true, allowUnsafeApis: Boolean(values.unsafe) });
    if (values.json) {
      console.log(JSON.stringify(gpu.report, null, 2));
      return 0;
    }
    console.log(adapterLine(gpu.report));
    // which GEMM tiles a run here gets (a table from `rdpp tune`, platform/tile-cache.ts, or the flag)
    const note = activeTileTable() ? '' : ' (`rdpp tune` measures the fastest per conv on this GPU)';
    console.log(`GEMM tiles: ${gemmTileSource()}${note}`);
    return 0;
  },
};
