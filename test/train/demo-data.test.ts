import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_MANIFEST, readDemoManifest, writeDemoDataset } from '../../src/platform/demo-writer.js';
import {
  DEMO_CATEGORY,
  DEMO_DEFAULTS,
  DEMO_DEFECT_TYPES,
  DEMO_GENERATOR_VERSION,
  type DemoDataset,
  type DemoDatasetOptions,
  generateDemoDataset,
  mulberry32,
  renderDemoImage,
} from '../../src/train/demo-data.js';

const SMALL: DemoDatasetOptions = {
  seed: 7,
  size: 40,
  trainCount: 5,
  validationCount: 2,
  testGoodCount: 3,
  testDefectCount: 2,
};

function hashDataset(d: DemoDataset): string {
  const h = createHash('sha256');
  for (const im of [...d.train, ...d.validation]) h.update(im.name).update(im.rgb);
  for (const g of d.test) {
    h.update(g.type);
    g.images.forEach((im, i) => {
      h.update(im.name).update(im.rgb);
      const m = g.masks[i];
      if (m) h.update(m);
    });
  }
  return h.digest('hex');
}

/** Largest channel difference per pixel. */
function diff(a: Uint8Array, b: Uint8Array, n: number): Uint8Array {
  const d = new Uint8Array(n);
  for (let p = 0; p < n; p++)
    d[p] = Math.max(
      Math.abs(a[3 * p]! - b[3 * p]!),
      Math.abs(a[3 * p + 1]! - b[3 * p + 1]!),
      Math.abs(a[3 * p + 2]! - b[3 * p + 2]!),
    );
  return d;
}

function dilate1(mask: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      if (!mask[y * size + x]) continue;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          const yy = y + dy;
          if (xx >= 0 && yy >= 0 && xx < size && yy < size) out[yy * size + xx] = 255;
        }
    }
  return out;
}

describe('generateDemoDataset', () => {
  it('mulberry32 is the reference generator', () => {
    // the first outputs of the published mulberry32 for seed 1
    const r = mulberry32(1);
    expect([r(), r(), r()]).toEqual([0.6270739405881613, 0.002735721180215478, 0.5274470399599522]);
  });

  it('has the requested structure, names and sizes', () => {
    const d = generateDemoDataset(SMALL);
    expect(d.category).toBe('demo_texture');
    expect(d.train.map((i) => i.name)).toEqual(['000', '001', '002', '003', '004']);
    expect(d.validation.length).toBe(2);
    expect(d.test.map((g) => g.type)).toEqual(['good', 'scratch', 'hole', 'stain', 'crack']);
    expect(d.test.map((g) => g.images.length)).toEqual([3, 2, 2, 2, 2]);
    for (const im of [...d.train, ...d.validation, ...d.test.flatMap((g) => g.images)]) {
      expect(im.width).toBe(40);
      expect(im.height).toBe(40);
      expect(im.rgb.length).toBe(40 * 40 * 3);
    }
  });

  it('is deterministic: same options give identical bytes, other seeds other images', () => {
    const a = hashDataset(generateDemoDataset(SMALL));
    const b = hashDataset(generateDemoDataset({ ...SMALL }));
    expect(b).toBe(a);
    const c = generateDemoDataset({ ...SMALL, seed: 8 });
    expect(hashDataset(c)).not.toBe(a);
    const d = generateDemoDataset(SMALL);
    for (let i = 0; i < c.train.length; i++)
      expect(Buffer.compare(Buffer.from(c.train[i]!.rgb), Buffer.from(d.train[i]!.rgb))).not.toBe(0);
  });

  it('gives an image the same bytes whatever the other counts are', () => {
    const a = generateDemoDataset(SMALL);
    const b = generateDemoDataset({ ...SMALL, trainCount: 2, testGoodCount: 0, testDefectCount: 3 });
    expect(Buffer.from(b.train[1]!.rgb).equals(Buffer.from(a.train[1]!.rgb))).toBe(true);
    expect(Buffer.from(b.test[3]!.images[1]!.rgb).equals(Buffer.from(a.test[3]!.images[1]!.rgb))).toBe(true);
    const single = renderDemoImage({ seed: 7, size: 40, split: 'test', type: 'hole', index: 1 });
    expect(Buffer.from(single.image.rgb).equals(Buffer.from(a.test[2]!.images[1]!.rgb))).toBe(true);
    expect(Buffer.from(single.mask!).equals(Buffer.from(a.test[2]!.masks[1]!))).toBe(true);
  });

  it('makes varied normal images: no two alike, a texture with streaks and mid-grey level', () => {
    const d = generateDemoDataset({ ...SMALL, size: 64, trainCount: 8 });
    const n = 64 * 64;
    const means: number[] = [];
    for (let i = 0; i < d.train.length; i++) {
      const rgb = d.train[i]!.rgb;
      let s = 0;
      let s2 = 0;
      for (let p = 0; p < n; p++) {
        const g = rgb[3 * p + 1]!;
        s += g;
        s2 += g * g;
      }
      const mean = s / n;
      const sd = Math.sqrt(s2 / n - mean * mean);
      means.push(mean);
      expect(mean).toBeGreaterThan(90);
      expect(mean).toBeLessThan(200);
      expect(sd).toBeGreaterThan(8); // a texture, not a flat field
      expect(sd).toBeLessThan(45);
      // brushed: neighbours along the brushing direction (x) are far more alike than across it (y)
      let dx = 0;
      let dy = 0;
      for (let y = 0; y < 63; y++)
        for (let x = 0; x < 63; x++) {
          const p = y * 64 + x;
          dx += Math.abs(rgb[3 * p + 1]! - rgb[3 * (p + 1) + 1]!);
          dy += Math.abs(rgb[3 * p + 1]! - rgb[3 * (p + 64) + 1]!);
        }
      expect(dy).toBeGreaterThan(1.5 * dx);
      for (let j = 0; j < i; j++) expect(diff(rgb, d.train[j]!.rgb, n).some((v) => v > 20)).toBe(true);
    }
    expect(Math.max(...means) - Math.min(...means)).toBeGreaterThan(3); // brightness varies per image
  });

  it('has masks exactly for defect images: 0/255, non-empty, null for good ones', () => {
    const d = generateDemoDataset({ ...SMALL, size: 64, testDefectCount: 8 });
    for (const g of d.test) {
      for (let i = 0; i < g.images.length; i++) {
        const m = g.masks[i];
        if (g.type === 'good') {
          expect(m).toBeNull();
          continue;
        }
        expect(m).toBeInstanceOf(Uint8Array);
        expect(m!.length).toBe(64 * 64);
        let on = 0;
        for (const v of m!) {
          expect(v === 0 || v === 255).toBe(true);
          if (v) on++;
        }
        expect(on, `${g.type}/${i}`).toBeGreaterThanOrEqual(8);
        expect(on, `${g.type}/${i}`).toBeLessThan(0.2 * 64 * 64);
      }
    }
  });

  for (const size of [64, 256]) {
    const count = size === 64 ? 12 : 2;
    it(`masks mark exactly the pixels each defect changes (size ${size})`, () => {
      const n = size * size;
      for (const type of DEMO_DEFECT_TYPES) {
        for (let index = 0; index < count; index++) {
          const spec = { seed: 3, size, split: 'test' as const, type, index };
          const withDefect = renderDemoImage(spec);
          const clean = renderDemoImage({ ...spec, defect: false });
          expect(clean.mask).toBeNull();
          const mask = withDefect.mask!;
          const d = diff(withDefect.image.rgb, clean.image.rgb, n);
          const near = dilate1(mask, size);
          // a pixel outside the mask is under a quarter covered, so it changed by under a quarter of the most
          // any pixel did: every pixel changed by more lies in the mask itself (no holes)
          const strong = 0.25 * Math.max(...d) + 1;
          let inMask = 0;
          let meaningful = 0;
          let sum = 0;
          for (let p = 0; p < n; p++) {
            // every changed pixel lies in the mask dilated by 1 px
            if (d[p]! > 0 && !near[p])
              expect.fail(`${type}/${index}: pixel ${p} changed by ${d[p]} outside the mask`);
            if (d[p]! > strong && !mask[p])
              expect.fail(`${type}/${index}: pixel ${p} changed by ${d[p]} but not in the mask`);
            if (mask[p]) {
              inMask++;
              sum += d[p]!;
              if (d[p]! > 8) meaningful++;
            }
          }
          // and the mask is where the change is meaningful: visible on average, most pixels changed
          expect(meaningful / inMask, `${type}/${index}`).toBeGreaterThan(0.7);
          expect(sum / inMask, `${type}/${index}`).toBeGreaterThan(10);
        }
      }
    });
  }

  it('good test images and the defect-free render of a defect image have no mask and differ from it', () => {
    const good = renderDemoImage({ seed: 1, size: 32, split: 'test', type: 'good', index: 0 });
    expect(good.mask).toBeNull();
    const a = renderDemoImage({ seed: 1, size: 32, split: 'test', type: 'crack', index: 0 });
    const b = renderDemoImage({ seed: 1, size: 32, split: 'test', type: 'crack', index: 0, defect: false });
    expect(Buffer.from(a.image.rgb).equals(Buffer.from(b.image.rgb))).toBe(false);
  });

  it('rejects bad options with clear errors', () => {
    expect(() => generateDemoDataset({ ...SMALL, size: 8 })).toThrow(
      /size must be an integer in 16…2048, got 8/,
    );
    expect(() => generateDemoDataset({ ...SMALL, trainCount: -1 })).toThrow(/trainCount/);
    expect(() => generateDemoDataset({ ...SMALL, seed: 0.5 })).toThrow(/seed must be a safe integer/);
    expect(() => renderDemoImage({ seed: 0, size: 32, split: 'train', type: 'hole', index: 0 })).toThrow(
      /train split holds only good images/,
    );
    expect(() =>
      renderDemoImage({ seed: 0, size: 32, split: 'test', type: 'dent' as 'hole', index: 0 }),
    ).toThrow(/unknown defect type 'dent'/);
  });

  it('defaults are CPU-sized', () => {
    expect(DEMO_DEFAULTS).toEqual({
      seed: 0,
      size: 64,
      trainCount: 40,
      validationCount: 8,
      testGoodCount: 10,
      testDefectCount: 6,
    });
  });
});

describe('writeDemoDataset', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rdpp-demo-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const listTree = (dir: string): string[] => {
    const out: string[] = [];
    const walk = (rel: string) => {
      for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(r);
        else out.push(r);
      }
    };
    walk('');
    return out.sort();
  };

  it('writes the MVTec layout with PNGs equal to the in-memory dataset, then reuses it', () => {
    const dir = join(tmp, 'a');
    const progress: [number, number][] = [];
    const r = writeDemoDataset(dir, { ...SMALL, onProgress: (d, t) => progress.push([d, t]) });
    expect(r.root).toBe(dir);
    expect(r.category).toBe(DEMO_CATEGORY);
    expect(r.path).toBe(join(dir, 'demo_texture'));
    expect(r.reused).toBe(false);
    const total = 5 + 2 + 3 + 4 * 2 * 2;
    expect(r.written).toBe(total);
    expect(progress.length).toBe(total);
    expect(progress.at(-1)).toEqual([total, total]);

    const expected = [DEMO_MANIFEST];
    const names = (n: number) => Array.from({ length: n }, (_, i) => String(i).padStart(3, '0'));
    for (const s of names(5)) expected.push(`train/good/${s}.png`);
    for (const s of names(2)) expected.push(`validation/good/${s}.png`);
    for (const s of names(3)) expected.push(`test/good/${s}.png`);
    for (const t of DEMO_DEFECT_TYPES)
      for (const s of names(2)) expected.push(`test/${t}/${s}.png`, `ground_truth/${t}/${s}_mask.png`);
    expect(listTree(r.path)).toEqual(expected.sort());

    const manifest = readDemoManifest(r.path)!;
    expect(manifest).toMatchObject({
      ...SMALL,
      version: DEMO_GENERATOR_VERSION,
      complete: true,
      files: total,
    });

    const d = generateDemoDataset(SMALL);
    const readPng = (rel: string) => {
      const bytes = readFileSync(join(r.path, rel));
      return { colorType: bytes[25], depth: bytes[24], png: PNG.sync.read(bytes) };
    };
    const checkRgb = (rel: string, rgb: Uint8Array) => {
      const { colorType, depth, png } = readPng(rel);
      expect(colorType).toBe(2);
      expect(depth).toBe(8);
      expect([png.width, png.height]).toEqual([40, 40]);
      for (let p = 0; p < 40 * 40; p++)
        for (let c = 0; c < 3; c++) if (png.data[4 * p + c] !== rgb[3 * p + c]) expect.fail(`${rel} differs`);
    };
    for (const im of d.train) checkRgb(`train/good/${im.name}.png`, im.rgb);
    for (const im of d.validation) checkRgb(`validation/good/${im.name}.png`, im.rgb);
    for (const g of d.test)
      g.images.forEach((im, i) => {
        checkRgb(`test/${g.type}/${im.name}.png`, im.rgb);
        const m = g.masks[i];
        if (!m) return;
        const { colorType, depth, png } = readPng(`ground_truth/${g.type}/${im.name}_mask.png`);
        expect(colorType).toBe(0);
        expect(depth).toBe(8);
        for (let p = 0; p < 40 * 40; p++)
          if (png.data[4 * p] !== m[p]) expect.fail(`mask ${g.type}/${im.name}`);
      });

    // a second call with the same options writes nothing
    const before = new Map(listTree(r.path).map((f) => [f, statSync(join(r.path, f)).mtimeMs]));
    let called = 0;
    const again = writeDemoDataset(dir, { ...SMALL, onProgress: () => called++ });
    expect(again.reused).toBe(true);
    expect(again.written).toBe(0);
    expect(called).toBe(0);
    for (const [f, t] of before) expect(statSync(join(r.path, f)).mtimeMs, f).toBe(t);
  });

  it('rewrites when the options change (no stale files), a file is missing or the run was cut short', () => {
    const dir = join(tmp, 'b');
    writeDemoDataset(dir, SMALL);
    const path = join(dir, 'demo_texture');
    const r = writeDemoDataset(dir, { ...SMALL, trainCount: 2, testDefectCount: 1 });
    expect(r.reused).toBe(false);
    expect(readdirSync(join(path, 'train/good')).sort()).toEqual(['000.png', '001.png']);
    expect(readdirSync(join(path, 'ground_truth/crack'))).toEqual(['000_mask.png']);

    rmSync(join(path, 'test/hole/000.png'));
    expect(writeDemoDataset(dir, { ...SMALL, trainCount: 2, testDefectCount: 1 }).reused).toBe(false);
    expect(writeDemoDataset(dir, { ...SMALL, trainCount: 2, testDefectCount: 1 }).reused).toBe(true);

    const m = JSON.parse(readFileSync(join(path, DEMO_MANIFEST), 'utf8'));
    writeFileSync(join(path, DEMO_MANIFEST), JSON.stringify({ ...m, complete: false }));
    expect(writeDemoDataset(dir, { ...SMALL, trainCount: 2, testDefectCount: 1 }).reused).toBe(false);
    writeFileSync(join(path, DEMO_MANIFEST), JSON.stringify({ ...m, version: m.version - 1 }));
    expect(writeDemoDataset(dir, { ...SMALL, trainCount: 2, testDefectCount: 1 }).reused).toBe(false);
  });

  it('fills in defaults for options not given', () => {
    const dir = join(tmp, 'c');
    const r = writeDemoDataset(dir, {
      size: 16,
      trainCount: 1,
      validationCount: 0,
      testGoodCount: 0,
      testDefectCount: 1,
    });
    expect(r.written).toBe(1 + 4 * 2);
    expect(r.options).toEqual({
      ...DEMO_DEFAULTS,
      size: 16,
      trainCount: 1,
      validationCount: 0,
      testGoodCount: 0,
      testDefectCount: 1,
    });
    expect(readdirSync(join(r.path, 'test')).sort()).toEqual(['crack', 'hole', 'scratch', 'stain']);
  });

  it('never overwrites a foreign folder', () => {
    const dir = join(tmp, 'd');
    mkdirSync(join(dir, 'demo_texture'), { recursive: true });
    writeFileSync(join(dir, 'demo_texture', 'mine.txt'), 'keep');
    expect(() => writeDemoDataset(dir, SMALL)).toThrow(
      /not empty and has no dataset\.json of the demo generator/,
    );
    expect(readFileSync(join(dir, 'demo_texture', 'mine.txt'), 'utf8')).toBe('keep');
  });
});
