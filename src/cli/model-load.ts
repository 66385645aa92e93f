/**
 * The Node side of loading a trained checkpoint (shared by `rdpp predict` and `rdpp test`): the
 * `--teacher` / `--image-size` options, the file read, and the teacher from files and the npm cache; the
 * loading itself is src/pipeline/model.ts. A relative teacherPath in a checkpoint's config that does not
 * exist from the working folder is also looked up beside the checkpoint.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { type DecodedCheckpoint, decodeCheckpoint } from '../model/checkpoint.js';
import { type LoadedModel, loadModel as loadModelFromBytes, type ModelChoice } from '../pipeline/model.js';
import { type OptionSpec, UsageError } from './command.js';
import { loadTeacher, parseTeacher } from './teacher.js';

export type { LoadedModel, ModelChoice };

/** The command-line options behind ModelChoice (`rdpp test`, `rdpp predict`). */
export const MODEL_OPTIONS: Record<string, OptionSpec> = {
  teacher: {
    type: 'string',
    help: "override the checkpoint's teacher (resnet50-keras, resnet50-keras=<exported file> offline, wrn50=<file>, resnet18=<file>); required for official .pth checkpoints",
  },
  'image-size': {
    type: 'string',
    help: 'official RD++ .pth checkpoints only: the image side they were trained at (default 256)',
  },
};

export function parseModelOptions(values: Record<string, unknown>): ModelChoice {
  const out: ModelChoice = {};
  if (values.teacher !== undefined) out.teacher = parseTeacher(String(values.teacher));
  if (values['image-size'] !== undefined) {
    const n = Number(values['image-size']);
    if (!Number.isInteger(n) || n <= 0 || n % 32 !== 0)
      throw new UsageError(`--image-size must be a positive multiple of 32, got '${values['image-size']}'`);
    out.imageSize = n;
  }
  return out;
}

/** The bytes of a checkpoint file, with a clear error when it is missing. */
function checkpointBytes(path: string): Uint8Array {
  if (!existsSync(path)) throw new Error(`checkpoint not found: ${path}`);
  return new Uint8Array(readFileSync(path));
}

/** Read and decode a checkpoint file, with a clear error when it is missing. */
export function readCheckpoint(path: string): DecodedCheckpoint {
  return decodeCheckpoint(checkpointBytes(path), path);
}

/** Load a checkpoint file and its teacher into an Rdpp (src/pipeline/model.ts). The engine must be initialised. */
export async function loadModel(
  path: string,
  opts: ModelChoice & { log?: (l: string) => void } = {},
): Promise<LoadedModel> {
  const besideCheckpoint = (teacherPath: string) => {
    if (isAbsolute(teacherPath) || existsSync(teacherPath)) return teacherPath;
    const beside = join(dirname(resolve(path)), teacherPath);
    return existsSync(beside) ? beside : teacherPath;
  };
  return loadModelFromBytes(
    checkpointBytes(path),
    path,
    { loadTeacher, resolveTeacherPath: besideCheckpoint },
    opts,
  );
}
