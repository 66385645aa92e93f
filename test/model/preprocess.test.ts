import { describe, expect, it } from 'vitest';
import { normalise } from '../../src/model/preprocess.js';
import { KERAS_CAFFE_BGR_MEAN } from '../../src/model/teacher/keras-weights.js';

describe('teacher preprocessing', () => {
  // a 1×2 image, CHW RGB in [0, 1]: pixel 0 = (10, 20, 30)/255, pixel 1 = (200, 100, 0)/255
  const rgb = Float32Array.from([10, 200, 20, 100, 30, 0].map((v) => v / 255));

  it('caffe (Keras): RGB → BGR, ×255, minus the BGR mean, no std', () => {
    const x = normalise(rgb, 1, 2, 'caffe');
    const [mb, mg, mr] = KERAS_CAFFE_BGR_MEAN;
    const want = [30 - mb, 0 - mb, 20 - mg, 100 - mg, 10 - mr, 200 - mr];
    x.forEach((v, i) => {
      expect(v).toBeCloseTo(want[i]!, 4);
    });
    expect(KERAS_CAFFE_BGR_MEAN).toEqual([103.939, 116.779, 123.68]);
  });

  it('imagenet (torchvision): (v − mean) / std per RGB channel', () => {
    const x = normalise(rgb, 1, 2, 'imagenet');
    expect(x[0]).toBeCloseTo((10 / 255 - 0.485) / 0.229, 5);
    expect(x[3]).toBeCloseTo((100 / 255 - 0.456) / 0.224, 5);
    expect(x[5]).toBeCloseTo((0 - 0.406) / 0.225, 5);
  });

  it('rejects a wrong size', () => {
    expect(() => normalise(rgb, 2, 2, 'caffe')).toThrow(/expected 12 values/);
  });
});
