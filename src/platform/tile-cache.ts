/**
 * Tuned tile tables on disk (Node): where `rdpp tune` writes them and where every command that runs the
 * network finds them again (engine/tile-table.ts says what a table is).
 *
 * One file per adapter and precision under the cache folder (RDPP_CACHE, as for the teacher's weights):
 * `<cache>/tiles/<adapter slug>-<hash>.<precision>.json`. RDPP_TILE_TABLE chooses what is used:
 * unset or `auto` — that file when it exists (and RDPP_GEMM_TILE is not set: a tile named by hand wins);
 * `off` — none; anything else — the path of a table file, which must exist and match the adapter.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AdapterReport } from '../engine/device.js';
import { adapterIdentity } from '../engine/device.js';
import type { Precision } from '../engine/flags.js';
import { checkTileTable, type TileTable, useTileTable } from '../engine/tile-table.js';
import { writeFileAtomic } from './node.js';
import { defaultCacheDir } from './npm-cache.js';

/** The file `rdpp tune` writes for this adapter and precision. */
export function tileTablePath(report: AdapterReport, precision: Precision, env = process.env): string {
  const id = adapterIdentity(report);
  const slug = id
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 48);
  const hash = createHash('sha256').update(id).digest('hex').slice(0, 10);
  return join(defaultCacheDir(env), 'tiles', `${slug}-${hash}.${precision}.json`);
}

export function readTileTable(path: string): TileTable {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the tile table ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not JSON (${(e as Error).message}); make it again with \`rdpp tune\``);
  }
  return checkTileTable(json, path);
}

export function writeTileTable(path: string, table: TileTable): void {
  writeFileAtomic(path, `${JSON.stringify(table, null, 2)}\n`);
}

/**
 * Apply RDPP_TILE_TABLE for the engine's adapter and GEMM precision: returns the line to print (what is
 * used, or why not), null when there is nothing to say (no table made here yet, or off).
 */
export function loadTileTable(report: AdapterReport, precision: Precision, env = process.env): string | null {
  const choice = env.RDPP_TILE_TABLE ?? 'auto';
  useTileTable(null);
  if (choice === 'off') return null;
  const path = choice === 'auto' ? tileTablePath(report, precision, env) : choice;
  if (choice === 'auto') {
    if (!existsSync(path)) return null;
    if (env.RDPP_GEMM_TILE)
      return `GEMM tiles: RDPP_GEMM_TILE=${env.RDPP_GEMM_TILE} for every GEMM (the tuned table ${path} is not used while it is set)`;
  }
  const table = readTileTable(path);
  if (table.precision !== precision)
    throw new Error(
      `${path} was tuned for ${table.precision} GEMMs, and this run's are ${precision}: run \`rdpp tune --precision ${precision}\``,
    );
  useTileTable(table);
  return `GEMM tiles: tuned on this adapter (${path}, ${Object.keys(table.tiles).length} GEMMs, ${table.made}); RDPP_TILE_TABLE=off ignores it`;
}
