/**
 * The app's training plan (src/pipeline/train-images.ts): validation images calibrate when given; else
 * the seeded hold-out of the Node trainer decides which good images train and which set the threshold,
 * and too few images (or 0 %) train on everything with no calibrated threshold. No GPU needed.
 */
import { describe, expect, it } from 'vitest';
import { planImageTraining } from '../../src/pipeline/train-images.js';
import { holdoutSplit } from '../../src/pipeline/train-setup.js';

const images = (n: number, tag = 0) => Array.from({ length: n }, (_, i) => new Float32Array([tag, i]));

describe('planImageTraining', () => {
  it('trains on every good image and calibrates on the validation images when there are some', () => {
    const all = images(5);
    const val = images(2, 1);
    const p = planImageTraining(all, val, 111, 10);
    expect(p.images).toEqual(all);
    expect(p.calibration).toEqual(val);
    expect(p.calibratedOn).toBe('the validation images');
    expect(p.plan).toBe('5 training images; the threshold from 2 validation image(s)');
  });

  it('holds out the seeded split of the Node trainer otherwise', () => {
    const all = images(20);
    const p = planImageTraining(all, [], 111, 10);
    const split = holdoutSplit(20, 111, 0.1);
    expect(split.held.length).toBe(2);
    expect(p.images).toEqual(split.train.map((i) => all[i]));
    expect(p.calibration).toEqual(split.held.map((i) => all[i]));
    expect(p.calibratedOn).toBe('held-out good images (a seeded 10 % of the 20 chosen, not trained on)');
    expect(p.plan).toBe(
      'no validation images: 2 of 20 good images held out (seeded) for the threshold, 18 trained on',
    );
  });

  it('trains on everything without a threshold when nothing can be held out', () => {
    expect(planImageTraining(images(1), [], 111, 10)).toMatchObject({
      calibration: [],
      plan: 'no validation images and none held out (too few images): no calibrated threshold',
    });
    const none = planImageTraining(images(4), [], 111, 0);
    expect(none.images.length).toBe(4);
    expect(none.plan).toContain('(hold-out 0 %)');
  });
});
