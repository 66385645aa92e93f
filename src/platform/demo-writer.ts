/**
 * Writes the built-in demo dataset (src/train/demo-data.ts) to disk in the MVTec AD layout, as PNG files:
 *
 *   <dir>/demo_texture/dataset.json                    the manifest (generator, version, seed, size, counts)
 *   <dir>/demo_texture/train/good/000.png …            8-bit RGB
 *   <dir>/demo_texture/validation/good/000.png …
 *   <dir>/demo_texture/test/good/000.png …
 *   <dir>/demo_texture/test/<type>/000.png …           type ∈ scratch, hole, stain, crack
 *   <dir>/demo_texture/ground_truth/<type>/000_mask.png …   8-bit gray, 0 or 255
 *
 * Every file is written atomically (temp file + rename). The manifest is written first with
 * `complete: false` and rewritten with `complete: true` after the last image, so a run cut short is
 * recognised. A later call with the same options finds a complete manifest with the same generator
 * version, seed, size and counts and every file present, and writes nothing. Anything else that the
 * generator wrote earlier (other options, an older version, a partial run) is removed and written afresh;
 * a non-empty `demo_texture` folder without our manifest is never touched (an Error says so).
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  DEMO_CATEGORY,
  DEMO_DEFAULTS,
  DEMO_DEFECT_TYPES,
  DEMO_GENERATOR_VERSION,
  type DemoDatasetOptions,
  type DemoDefectType,
  type DemoSplit,
  demoStem,
  renderDemoImage,
  validateDemoOptions,
} from '../train/demo-data.js';
import { writeFileAtomic } from './node.js';
import { encodePng } from './png.js';

export const DEMO_MANIFEST = 'dataset.json';
const GENERATOR = 'rdpp-demo-texture';

export interface DemoManifest extends DemoDatasetOptions {
  generator: typeof GENERATOR;
  version: number;
  category: typeof DEMO_CATEGORY;
  defectTypes: string[];
  /** Image and mask files (the manifest not counted). */
  files: number;
  complete: boolean;
}

export interface WriteDemoOptions extends Partial<DemoDatasetOptions> {
  /** Called after each file written: (files done, files in all). Not called when the dataset is reused. */
  onProgress?: (done: number, total: number) => void;
}

export interface DemoWriteResult {
  /** The MVTec-style root (`dir`, resolved): `<root>/<category>/train/good/…`. */
  root: string;
  category: typeof DEMO_CATEGORY;
  /** `<root>/<category>`. */
  path: string;
  /** True when a complete dataset with the same options was already there (nothing written). */
  reused: boolean;
  /** Image and mask files written by this call. */
  written: number;
  options: DemoDatasetOptions;
}

interface PlannedImage {
  split: DemoSplit;
  type: 'good' | DemoDefectType;
  index: number;
  image: string;
  mask: string | null;
}

function plan(o: DemoDatasetOptions): PlannedImage[] {
  const out: PlannedImage[] = [];
  const add = (split: DemoSplit, type: 'good' | DemoDefectType, count: number) => {
    for (let index = 0; index < count; index++) {
      const stem = demoStem(index, count);
      out.push({
        split,
        type,
        index,
        image: join(split, type, `${stem}.png`),
        mask: type === 'good' ? null : join('ground_truth', type, `${stem}_mask.png`),
      });
    }
  };
  add('train', 'good', o.trainCount);
  add('validation', 'good', o.validationCount);
  add('test', 'good', o.testGoodCount);
  for (const t of DEMO_DEFECT_TYPES) add('test', t, o.testDefectCount);
  return out;
}

function fileCount(p: PlannedImage[]): number {
  return p.reduce((n, e) => n + (e.mask ? 2 : 1), 0);
}

function manifestFor(o: DemoDatasetOptions, files: number, complete: boolean): DemoManifest {
  return {
    generator: GENERATOR,
    version: DEMO_GENERATOR_VERSION,
    category: DEMO_CATEGORY,
    seed: o.seed,
    size: o.size,
    trainCount: o.trainCount,
    validationCount: o.validationCount,
    testGoodCount: o.testGoodCount,
    testDefectCount: o.testDefectCount,
    defectTypes: [...DEMO_DEFECT_TYPES],
    files,
    complete,
  };
}

/** The manifest in `<dir>/demo_texture`, or null when absent or not ours. */
export function readDemoManifest(categoryDir: string): DemoManifest | null {
  try {
    const m = JSON.parse(readFileSync(join(categoryDir, DEMO_MANIFEST), 'utf8')) as DemoManifest;
    return m && m.generator === GENERATOR ? m : null;
  } catch {
    return null;
  }
}

function sameDataset(m: DemoManifest, want: DemoManifest): boolean {
  const keys: (keyof DemoManifest)[] = [
    'version',
    'category',
    'seed',
    'size',
    'trainCount',
    'validationCount',
    'testGoodCount',
    'testDefectCount',
    'files',
  ];
  return (
    m.complete === true &&
    keys.every((k) => m[k] === want[k]) &&
    JSON.stringify(m.defectTypes) === JSON.stringify(want.defectTypes)
  );
}

/**
 * Make sure `<dir>/demo_texture` holds the demo dataset for `opts` (DEMO_DEFAULTS for what is not given),
 * writing it only when it is not already there complete.
 */
export function writeDemoDataset(dir: string, opts: WriteDemoOptions = {}): DemoWriteResult {
  const { onProgress, ...given } = opts;
  const o: DemoDatasetOptions = { ...DEMO_DEFAULTS };
  for (const [k, v] of Object.entries(given))
    if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  validateDemoOptions(o);
  const root = resolve(dir);
  const path = join(root, DEMO_CATEGORY);
  const planned = plan(o);
  const total = fileCount(planned);
  const want = manifestFor(o, total, true);
  const result = { root, category: DEMO_CATEGORY, path, options: o };

  const have = readDemoManifest(path);
  if (
    have &&
    sameDataset(have, want) &&
    planned.every((p) => existsSync(join(path, p.image)) && (!p.mask || existsSync(join(path, p.mask))))
  )
    return { ...result, reused: true, written: 0 };

  if (existsSync(path)) {
    if (have) rmSync(path, { recursive: true, force: true });
    else if (readdirSync(path).length > 0)
      throw new Error(
        `demo dataset: ${path} exists, is not empty and has no ${DEMO_MANIFEST} of the demo generator; ` +
          'refusing to overwrite it (remove it or choose another folder)',
      );
  }

  writeFileAtomic(join(path, DEMO_MANIFEST), `${JSON.stringify(manifestFor(o, total, false), null, 2)}\n`);
  let written = 0;
  for (const p of planned) {
    const { image, mask } = renderDemoImage({
      seed: o.seed,
      size: o.size,
      split: p.split,
      type: p.type,
      index: p.index,
    });
    writeFileAtomic(join(path, p.image), encodePng(image.width, image.height, image.rgb, 3));
    written++;
    onProgress?.(written, total);
    if (p.mask) {
      if (!mask) throw new Error(`demo dataset: no mask for ${p.image}`);
      writeFileAtomic(join(path, p.mask), encodePng(image.width, image.height, mask, 1));
      written++;
      onProgress?.(written, total);
    }
  }
  writeFileAtomic(join(path, DEMO_MANIFEST), `${JSON.stringify(want, null, 2)}\n`);
  return { ...result, reused: false, written };
}
