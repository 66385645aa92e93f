import { adapterLine } from '../../engine/index.js';
import type { Command } from '../command.js';
import { startEngine } from '../gpu.js';

export const info: Command = {
  name: 'info',
  summary: 'show the GPU adapter the engine uses (vendor, architecture, features, limits)',
  usage: '[--json] [--unsafe]',
  options: {
    json: { type: 'boolean', help: 'print the full adapter report as JSON' },
    unsafe: { type: 'boolean', help: "request Dawn's allow_unsafe_apis (subgroup matrices)" },
  },
  async run({ values }) {
    const gpu = await startEngine({ quiet: true, allowUnsafeApis: Boolean(values.unsafe) });
    console.log(values.json ? JSON.stringify(gpu.report, null, 2) : adapterLine(gpu.report));
    return 0;
  },
};
