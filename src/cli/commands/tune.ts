/**
 * `rdpp tune`: measure which GEMM tile is fastest for each conv GEMM of a network on this GPU and save the
 * table where every later command finds it (platform/tile-cache.ts; what a table is: engine/tile-table.ts).
 */
import { existsSync } from 'node:fs';
import { parseTiles } from '../../../bench/shapes.js';
import { mergeTileTables, tuneTiles } from '../../../bench/tune.js';
import { useTileTable } from '../../engine/index.js';
import { writeFileAtomic } from '../../platform/node.js';
import { readTileTable, tileTablePath, writeTileTable } from '../../platform/tile-cache.js';
import { type Command, UsageError } from '../command.js';
import { PRECISION_OPTION, precisionOption, startEngine } from '../gpu.js';
import { checkOutputFile } from '../output-path.js';
import { parseE2eOptions } from './bench.js';

function batchList(spec: string): number[] {
  const list = spec.split(',').map((b) => Number(b.trim()));
  if (list.length === 0 || list.some((b) => !Number.isInteger(b) || b < 1))
    throw new UsageError(`--infer-batches must be positive integers separated by commas, got '${spec}'`);
  return list;
}

export const tune: Command = {
  name: 'tune',
  summary:
    "time every conv GEMM of a network with each GEMM tile on this GPU and keep the fastest (used by every command after; like cuDNN's benchmark mode)",
  usage:
    '[--teacher wrn50|resnet18|resnet50-keras] [--image-size N] [--batch N] [--infer-batches 1,8,16,32] [--tiles all|<names>] [--iters N] [--budget seconds] [--filter <regex>] [--precision f32|f16] [--table file.json] [--out report.json]',
  options: {
    teacher: {
      type: 'string',
      default: 'wrn50',
      help: 'the network whose GEMMs are tuned (its sizes; formula weights): wrn50, resnet18, resnet50-keras',
    },
    'image-size': {
      type: 'string',
      default: '256',
      help: 'image side the network runs at (a multiple of 32)',
    },
    batch: { type: 'string', default: '16', help: 'batch of the training step' },
    'infer-batches': {
      type: 'string',
      help: "inference batches, comma-separated (default 1, 8, the training batch and 32: bench's, test's and predict's, and training's evaluation)",
    },
    tiles: {
      type: 'string',
      default: 'all',
      help: 'candidate tiles: all, or a list such as t64x64,t128x128',
    },
    iters: { type: 'string', default: '5', help: 'timed runs per shape and tile (the median counts)' },
    budget: {
      type: 'string',
      help: 'seconds of timing at most: the largest GEMMs are timed first, and at the budget the table keeps those timed with every tile (default: no limit)',
    },
    filter: { type: 'string', help: 'only shapes whose "family name" (as bench shapes prints them) matches' },
    precision: PRECISION_OPTION,
    table: {
      type: 'string',
      help: "where to write the table (default: this adapter's file in the cache folder, found there by every command)",
    },
    out: { type: 'string', help: 'also write every timing as bench shapes JSON' },
  },
  async run({ values }) {
    const precision = precisionOption(values);
    const e2e = parseE2eOptions({ ...values, ssot: 'off' }, 'train');
    const inferBatches =
      values['infer-batches'] === undefined
        ? [...new Set([1, 8, e2e.batch, 32])].sort((a, b) => a - b)
        : batchList(String(values['infer-batches']));
    let tiles: string[];
    try {
      tiles = parseTiles(String(values.tiles));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (tiles.length < 2) throw new UsageError('--tiles: name at least two tiles to choose from');
    const filter = values.filter ? new RegExp(String(values.filter)) : undefined;
    const budgetS = values.budget === undefined ? undefined : Number(values.budget);
    if (budgetS !== undefined && !(budgetS > 0))
      throw new UsageError(`--budget: a number of seconds above 0, got '${String(values.budget)}'`);
    if (values.table)
      checkOutputFile(String(values.table), { option: '--table', extensions: ['.json'], inputs: [] });
    if (values.out)
      checkOutputFile(String(values.out), {
        option: '--out',
        extensions: ['.json'],
        inputs: values.table ? [{ option: '--table', path: String(values.table) }] : [],
      });

    // timings of forced tiles: no table in the way, and the baseline is the flag GEMM_TILE's tile
    const gpu = await startEngine({ precision, tileTable: false });
    const { table, report, choices, gains, shapes_tuned, shapes_total } = await tuneTiles({
      teacher: e2e.teacher,
      imageSize: e2e.imageSize,
      trainBatch: e2e.batch,
      inferBatches,
      tiles,
      iters: e2e.iters,
      ...(filter ? { filter } : {}),
      ...(budgetS === undefined ? {} : { budgetS }),
      log: (l) => console.error(l),
    });
    const path = values.table ? String(values.table) : tileTablePath(gpu.report, table.precision);
    let old = null;
    if (existsSync(path)) {
      try {
        old = readTileTable(path);
      } catch (e) {
        console.error(`replacing ${path}: ${(e as Error).message}`);
      }
    }
    const merged = mergeTileTables(old, table);
    useTileTable(merged); // checks the adapter before anything is written
    writeTileTable(path, merged);
    for (const g of gains)
      console.error(
        `${g.group}: ${g.flag_tile_ms} ms of convs per step with ${g.flag_tile} everywhere, ${g.tuned_ms} ms tuned (×${g.speedup}${shapes_tuned < shapes_total ? `; the ${g.shapes} shapes timed` : ''})`,
      );
    console.error(
      `wrote ${path}: ${Object.keys(table.tiles).length} GEMMs tuned now, ${Object.keys(merged.tiles).length} in the table`,
    );
    // stdout: what was written and what it gives (for scripts; the log above is for people)
    console.log(
      JSON.stringify(
        {
          table: path,
          gemms_tuned: Object.keys(table.tiles).length,
          gemms_in_table: Object.keys(merged.tiles).length,
          shapes_tuned,
          shapes_total,
          gains,
        },
        null,
        2,
      ),
    );
    if (values.out) {
      writeFileAtomic(
        String(values.out),
        `${JSON.stringify({ ...report, tune_gains: gains, tune_choices: choices }, null, 2)}\n`,
      );
      console.error(`wrote ${values.out}`);
    }
    return 0;
  },
};
