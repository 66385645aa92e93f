/**
 * Teachers in the browser: the Keras ResNet-50 fetched from the server (`npm run serve`) or chosen as
 * model.json + shard files, or a weights file chosen by the user: an exported teacher file (`rdpp teacher
 * export`, e.g. the Keras ResNet-50 in 17 MB as f16) or a torchvision ResNet-18 / WideResNet-50-2 `.pth` /
 * `.safetensors` state_dict. A TeacherSource remembers where a teacher came from, so that it can be loaded
 * again on a new GPU device after the old one was lost.
 */
import type { KerasResnet50Teacher } from '../../model/teacher/keras-resnet50.js';
import { tfjsShardPaths } from '../../model/teacher/keras-weights.js';
import {
  kerasTeacherFromFiles,
  type LoadedTeacher,
  TEACHER_LABEL,
  teacherFromFileBytes,
} from '../../pipeline/teacher.js';

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

/** Where a teacher comes from. */
export type TeacherSource =
  | { kind: 'keras-served'; url?: string }
  | { kind: 'keras-files'; files: File[] }
  /** an exported teacher file (`rdpp teacher export`) or a torchvision state_dict */
  | { kind: 'file'; file: File };

/** Load (or load again, on a new device) the teacher of `src`. */
export async function loadTeacherFrom(
  src: TeacherSource,
  onProgress?: (line: string) => void,
): Promise<LoadedTeacher> {
  if (src.kind === 'file') {
    onProgress?.(`Reading ${src.file.name} (${(src.file.size / 2 ** 20).toFixed(1)} MB)…`);
    return teacherFromFileBytes(new Uint8Array(await src.file.arrayBuffer()), src.file.name);
  }
  const teacher =
    src.kind === 'keras-files'
      ? await kerasTeacherFromChosenFiles(src.files)
      : await fetchKerasTeacher(src.url, (d, n) =>
          onProgress?.(`Loading the teacher: ${d}/${n} weight files…`),
        );
  const from = src.kind === 'keras-files' ? 'the chosen model.json + shards' : 'the server';
  return { teacher, kind: 'resnet50-keras', description: `${TEACHER_LABEL['resnet50-keras']} from ${from}` };
}
