/** The Keras ResNet-50 teacher in the browser: fetched from the server (`npm run serve`) or chosen files. */
import type { KerasResnet50Teacher } from '../../model/teacher/keras-resnet50.js';
import { tfjsShardPaths } from '../../model/teacher/keras-weights.js';
import { kerasTeacherFromFiles } from './pipeline.js';

export const WEIGHTS_URL = 'weights/resnet50/model.json';

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok)
    throw new Error(
      `cannot fetch ${url} (HTTP ${r.status}); start the app with \`npm run serve\`, which serves the cached weights, or choose the model.json and shard files`,
    );
  return new Uint8Array(await r.arrayBuffer());
}

/** model.json + shards from `url` (shards are resolved relative to it). */
export async function fetchKerasTeacher(
  url = WEIGHTS_URL,
  onProgress?: (done: number, total: number) => void,
): Promise<KerasResnet50Teacher> {
  const base = new URL(url, location.href);
  const modelJson: unknown = JSON.parse(new TextDecoder().decode(await fetchBytes(base.href)));
  const paths = tfjsShardPaths(modelJson);
  let done = 0;
  const shards = await Promise.all(
    paths.map(async (p) => {
      const b = await fetchBytes(new URL(p, base).href);
      onProgress?.(++done, paths.length);
      return b;
    }),
  );
  return kerasTeacherFromFiles(modelJson, shards);
}

/** The same from user-chosen files: model.json and every shard it names. */
export async function kerasTeacherFromChosenFiles(files: File[]): Promise<KerasResnet50Teacher> {
  const byName = new Map(files.map((f) => [f.name, f]));
  const mj = byName.get('model.json');
  if (!mj) throw new Error('choose model.json together with its group1-shard*.bin files');
  const modelJson: unknown = JSON.parse(await mj.text());
  const paths = tfjsShardPaths(modelJson);
  const missing = paths.filter((p) => !byName.has(p.split('/').pop()!));
  if (missing.length) throw new Error(`missing shard files: ${missing.join(', ')}`);
  const shards = await Promise.all(
    paths.map(async (p) => new Uint8Array(await byName.get(p.split('/').pop()!)!.arrayBuffer())),
  );
  return kerasTeacherFromFiles(modelJson, shards);
}
