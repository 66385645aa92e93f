/**
 * Dataset discovery: find the training, validation and test images (and the test masks) in one of three
 * folder layouts, through a small FileSystem interface (Node: src/platform/files.ts; a browser can supply
 * one built from dropped files). No Node API here.
 *
 * Layouts (`<dir>` = `<root>/<category>`, or `<root>` itself when it is already a category folder):
 * - mvtec:  <dir>/train/good/*            normal training images
 *           <dir>/validation/good/*       normal validation images (optional; MVTec 3D-AD has it)
 *           <dir>/test/<type>/*           test images; type 'good' is normal (label 0), others label 1
 *           <dir>/ground_truth/<type>/<stem>_mask.png   masks of the anomalous test images
 *           (MVTec 3D-AD's original nesting, <split>/<type>/rgb/* with masks in <split>/<type>/gt/<stem>.png,
 *           is recognised too.)
 * - btad:   <dir>/train/ok/*, <dir>/test/ok/* (label 0), <dir>/test/ko/* (label 1),
 *           <dir>/ground_truth/ko/<stem>.png|.bmp
 * - folder: <dir>/good/* (or image files directly in <dir>) are normal → train;
 *           <dir>/anomalous|bad|defect/* (optional; subfolders there are defect types) → test, label 1;
 *           <dir>/masks/<stem>[_mask].<ext> (or masks/<type>/…) optional masks for them. There is no
 *           normal test split in this layout: hold out normal images yourself if you need image-level AUROC.
 *
 * Masks are matched to images BY NAME (`<stem>_mask.<ext>` preferred, else `<stem>.<ext>`, any supported
 * extension). The reference instead pairs the sorted image list with the sorted mask list of each folder;
 * where the two pairings would differ we add a warning. An anomalous image without a mask is an error
 * listing every such image (opts.requireMasks = false turns that off: maskPath is then null).
 *
 * File names are sorted by Unicode code point (Python's sorted(), which the reference uses; locale-free
 * and deterministic). Only .png .jpg .jpeg .bmp .tif .tiff .webp files (any case) are images; names
 * starting with '.' (e.g. macOS "._x.png" resource forks) are skipped, as Python's glob does. Nothing
 * else in an image folder is skipped silently: files of image formats we cannot read (GIF, HEIC, …) are
 * listed in `unsupported` (bad files: the run stops or, with skip-bad, leaves them out and names them),
 * any other file is named in a warning.
 */

/** File access the data code needs. Paths are joined with '/'. */
export interface FileSystem {
  /** names (not paths) of the entries of a folder */
  list(dir: string): string[];
  /** true for an existing folder, false otherwise (missing paths included) */
  isDir(path: string): boolean;
  readBytes(path: string): Uint8Array;
}

export type Layout = 'mvtec' | 'btad' | 'folder';

export interface Sample {
  path: string;
  label: 0 | 1;
  /** test/<type> folder name ('good', 'ok', 'anomalous', …); 'good' for training/validation images */
  defectType: string;
  maskPath: string | null;
}

export interface Dataset {
  layout: Layout;
  /** the folder the splits were found in (root, or root/category) */
  root: string;
  category?: string;
  train: Sample[];
  validation: Sample[];
  test: Sample[];
  /** things worth telling the user that do not stop loading (unmatched masks, ignored files, …) */
  warnings: string[];
  /** files in the image folders whose format cannot be read (GIF, HEIC, …): bad files, with the reason */
  unsupported: { path: string; reason: string }[];
}

export interface DiscoverOptions {
  category?: string;
  layout?: 'auto' | Layout;
  /** default true: an anomalous test image without a mask is an error */
  requireMasks?: boolean;
}

/** The dataset folders are not laid out as expected. */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp'] as const;

/** Image formats known by name that no decoder here reads: named as bad files, never skipped silently. */
const UNREADABLE_IMAGE_EXTENSIONS = [
  '.gif',
  '.heic',
  '.heif',
  '.avif',
  '.jp2',
  '.j2k',
  '.jxl',
  '.exr',
  '.hdr',
  '.pgm',
  '.ppm',
  '.pbm',
  '.pnm',
  '.tga',
  '.psd',
  '.dng',
  '.raw',
  '.ico',
  '.svg',
];

/** The extension (lower case, with the dot) when it names an image format we cannot read, else null. */
export function unreadableImageExtension(name: string): string | null {
  const lower = name.toLowerCase();
  return UNREADABLE_IMAGE_EXTENSIONS.find((e) => lower.endsWith(e) && lower.length > e.length) ?? null;
}

/** The bad-file reason for a file of an image format we cannot read. */
export function unreadableReason(ext: string): string {
  return `${ext.slice(1).toUpperCase()} images are not supported (supported: PNG, JPEG, BMP, TIFF, WebP): convert it, e.g. to PNG`;
}

export function isImageName(name: string): boolean {
  if (name.startsWith('.')) return false;
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e) && lower.length > e.length);
}

/** Name without its (last) extension. */
export function stemOf(name: string): string {
  const i = name.lastIndexOf('.');
  return i > 0 ? name.slice(0, i) : name;
}

/** Code-point order, as Python's sorted() on str. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

export function joinPath(a: string, b: string): string {
  return a.endsWith('/') || a.endsWith('\\') ? a + b : `${a}/${b}`;
}

export function baseName(p: string): string {
  const t = p.replace(/[/\\]+$/, '');
  const i = Math.max(t.lastIndexOf('/'), t.lastIndexOf('\\'));
  return i >= 0 ? t.slice(i + 1) : t;
}

function stripTrailing(p: string): string {
  const t = p.replace(/[/\\]+$/, '');
  return t === '' ? p.slice(0, 1) : t;
}

const ANOMALOUS_DIRS = ['anomalous', 'bad', 'defect'] as const;
const NORMAL_TYPES = new Set(['good', 'ok']);
const MAX_LISTED = 20;

function listFew(items: string[]): string {
  const shown = items.slice(0, MAX_LISTED).join(', ');
  return items.length > MAX_LISTED ? `${shown}, … (${items.length} in all)` : shown;
}

class Finder {
  constructor(private readonly fs: FileSystem) {}

  isDir(p: string): boolean {
    return this.fs.isDir(p);
  }

  private names(dir: string): string[] {
    try {
      return this.fs.list(dir);
    } catch (e) {
      throw new DatasetError(`cannot list folder ${dir}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** sorted subfolder names */
  subdirs(dir: string): string[] {
    if (!this.fs.isDir(dir)) return [];
    return this.names(dir)
      .filter((n) => !n.startsWith('.') && this.fs.isDir(joinPath(dir, n)))
      .sort(compareNames);
  }

  /** sorted image file names */
  images(dir: string): string[] {
    if (!this.fs.isDir(dir)) return [];
    return this.names(dir).filter(isImageName).sort(compareNames);
  }

  /**
   * Tell about the files of an image folder that are not images we read: unreadable image formats become
   * bad files, anything else (notes, thumbnails databases) a warning naming them.
   */
  reportOthers(dir: string, ds: Dataset): void {
    const others = this.names(dir)
      .filter((n) => !n.startsWith('.') && !isImageName(n) && !this.fs.isDir(joinPath(dir, n)))
      .sort(compareNames);
    const ignored: string[] = [];
    for (const n of others) {
      const ext = unreadableImageExtension(n);
      if (ext) ds.unsupported.push({ path: joinPath(dir, n), reason: unreadableReason(ext) });
      else ignored.push(n);
    }
    if (ignored.length > 0)
      ds.warnings.push(
        `ignored ${ignored.length} file(s) in ${dir} that are not images (${IMAGE_EXTENSIONS.join(' ')}): ${listFew(ignored)}`,
      );
  }
}

/** MVTec 3D-AD keeps the RGB images in <type>/rgb/ (and masks in <type>/gt/): use that when present. */
function imageDir(f: Finder, dir: string): { dir: string; nested: boolean } {
  const rgb = joinPath(dir, 'rgb');
  if (f.images(dir).length === 0 && f.isDir(rgb)) return { dir: rgb, nested: true };
  return { dir, nested: false };
}

function detect(f: Finder, dir: string): Layout | null {
  if (f.isDir(joinPath(dir, 'train/good'))) return 'mvtec';
  if (f.isDir(joinPath(dir, 'train/ok'))) return 'btad';
  if (f.isDir(joinPath(dir, 'good')) || f.images(dir).length > 0) return 'folder';
  return null;
}

function layoutHelp(): string {
  return (
    'expected one of: MVTec (<category>/train/good, <category>/test/<type>, <category>/ground_truth/<type>), ' +
    'BTAD (<product>/train/ok, <product>/test/ok|ko, <product>/ground_truth/ko), ' +
    'or a plain folder (good/ or images directly, optional anomalous|bad|defect/ and masks/)'
  );
}

/**
 * Find the splits of a dataset. `root` is the dataset folder (holding categories) or a category folder;
 * `opts.category` picks a category under root; `opts.layout` forces a layout (default: detect).
 */
export function discoverDataset(fs: FileSystem, root: string, opts: DiscoverOptions = {}): Dataset {
  const f = new Finder(fs);
  root = stripTrailing(root);
  const want = opts.layout ?? 'auto';
  if (!['auto', 'mvtec', 'btad', 'folder'].includes(want))
    throw new DatasetError(`unknown dataset layout '${want}' (expected auto, mvtec, btad or folder)`);
  if (!f.isDir(root)) throw new DatasetError(`dataset folder not found: ${root}`);
  const requireMasks = opts.requireMasks ?? true;

  // which folder holds the splits
  let dir = root;
  let category: string | undefined;
  const categoryLike = (d: string) => {
    const l = detect(f, d);
    return l === 'mvtec' || l === 'btad' ? l : null;
  };
  if (opts.category) {
    const c = joinPath(root, opts.category);
    if (f.isDir(c)) dir = c;
    else if (baseName(root) === opts.category && detect(f, root)) dir = root;
    else {
      const subs = f.subdirs(root);
      const cats = subs.filter((s) => categoryLike(joinPath(root, s)));
      const found = cats.length > 0 ? cats : subs;
      throw new DatasetError(
        `no category '${opts.category}' under ${root} (found: ${found.length > 0 ? listFew(found) : 'no subfolders'})`,
      );
    }
    category = opts.category;
  } else if (
    want === 'folder' ||
    categoryLike(root) ||
    (detect(f, root) && !f.subdirs(root).some((s) => categoryLike(joinPath(root, s))))
  ) {
    dir = root;
    if (categoryLike(root)) category = baseName(root);
  } else {
    const cats = f.subdirs(root).filter((s) => categoryLike(joinPath(root, s)));
    if (cats.length === 1) {
      category = cats[0]!;
      dir = joinPath(root, category);
    } else if (cats.length > 1) {
      throw new DatasetError(
        `${root} holds several categories (${listFew(cats)}): choose one (category option)`,
      );
    } else {
      throw new DatasetError(`no dataset found in ${root}: ${layoutHelp()}`);
    }
  }

  const layout: Layout | null = want === 'auto' ? detect(f, dir) : want;
  if (!layout) throw new DatasetError(`no dataset found in ${dir}: ${layoutHelp()}`);
  const ds: Dataset = {
    layout,
    root: dir,
    train: [],
    validation: [],
    test: [],
    warnings: [],
    unsupported: [],
  };
  if (category !== undefined) ds.category = category;
  if (layout === 'folder') discoverFolder(f, dir, ds, requireMasks);
  else discoverSplits(f, dir, layout, ds, requireMasks);
  return ds;
}

interface MaskIndex {
  dir: string;
  files: string[];
  byStem: Map<string, string>;
}

function maskIndex(f: Finder, dir: string): MaskIndex {
  const files = f.images(dir);
  const plain = new Map<string, string>();
  const suffixed = new Map<string, string>();
  for (const n of files) {
    const s = stemOf(n);
    if (s.endsWith('_mask') && s.length > 5) {
      if (!suffixed.has(s.slice(0, -5))) suffixed.set(s.slice(0, -5), n);
    } else if (!plain.has(s)) plain.set(s, n);
  }
  const byStem = new Map(plain);
  for (const [k, v] of suffixed) byStem.set(k, v);
  return { dir, files, byStem };
}

/**
 * Set maskPath of the anomalous samples of one folder from the mask index; returns the samples left
 * without a mask. With `check`, warns about masks that no image uses and about folders where the
 * reference's sorted-order pairing would differ from pairing by name.
 */
function attachMasks(list: Sample[], idx: MaskIndex | null, ds: Dataset, check: boolean): Sample[] {
  const missing: Sample[] = [];
  const used = new Set<string>();
  for (const s of list) {
    const m = idx?.byStem.get(stemOf(baseName(s.path))) ?? null;
    s.maskPath = m !== null && idx ? joinPath(idx.dir, m) : null;
    if (m === null) missing.push(s);
    else used.add(m);
  }
  if (idx && check) {
    const unused = idx.files.filter((n) => !used.has(n));
    if (unused.length > 0)
      ds.warnings.push(`${unused.length} mask file(s) in ${idx.dir} match no image: ${listFew(unused)}`);
    const differs =
      idx.files.length !== list.length ||
      list.some((s, i) => s.maskPath !== joinPath(idx.dir, idx.files[i]!));
    if (missing.length === 0 && differs)
      ds.warnings.push(
        `in ${idx.dir}, pairing masks with images by sorted order (as the reference does) would differ from pairing by name; using names`,
      );
  }
  return missing;
}

function missingMaskError(missing: { image: string; expected: string }[]): DatasetError {
  const lines = missing.slice(0, MAX_LISTED).map((m) => `  ${m.image} (expected ${m.expected})`);
  if (missing.length > MAX_LISTED) lines.push(`  … and ${missing.length - MAX_LISTED} more`);
  return new DatasetError(
    `${missing.length} anomalous test image(s) have no ground-truth mask:\n${lines.join('\n')}\n` +
      'add the masks (rdpp train --no-eval trains without the test set and needs none)',
  );
}

/** The samples of one image folder; its other files are reported (Finder.reportOthers). */
function samples(
  f: Finder,
  ds: Dataset,
  dir: string,
  names: string[],
  label: 0 | 1,
  defectType: string,
): Sample[] {
  f.reportOthers(dir, ds);
  return names.map((n) => ({ path: joinPath(dir, n), label, defectType, maskPath: null }));
}

/** MVTec and BTAD: train/<normal>, validation/<normal>, test/<type>, ground_truth/<type>. */
function discoverSplits(
  f: Finder,
  dir: string,
  layout: 'mvtec' | 'btad',
  ds: Dataset,
  requireMasks: boolean,
): void {
  const normal = layout === 'mvtec' ? 'good' : 'ok';
  const trainDir = joinPath(dir, `train/${normal}`);
  if (!f.isDir(trainDir))
    throw new DatasetError(
      `${layout === 'mvtec' ? 'MVTec' : 'BTAD'} layout: missing folder ${trainDir} (${layoutHelp()})`,
    );
  const tr = imageDir(f, trainDir);
  const trainNames = f.images(tr.dir);
  if (trainNames.length === 0)
    throw new DatasetError(`no training images in ${tr.dir} (expected ${IMAGE_EXTENSIONS.join(' ')} files)`);
  ds.train = samples(f, ds, tr.dir, trainNames, 0, normal);
  for (const other of f.subdirs(joinPath(dir, 'train')))
    if (other !== normal)
      ds.warnings.push(`ignored ${joinPath(dir, `train/${other}`)}: training uses ${trainDir} only`);

  const valDir = joinPath(dir, `validation/${normal}`);
  if (f.isDir(valDir)) {
    const v = imageDir(f, valDir);
    ds.validation = samples(f, ds, v.dir, f.images(v.dir), 0, normal);
  }

  const testDir = joinPath(dir, 'test');
  const types = f.subdirs(testDir);
  if (types.length === 0) ds.warnings.push(`no test folders in ${testDir}: only training is possible`);
  const missing: { image: string; expected: string }[] = [];
  for (const type of types) {
    const t = imageDir(f, joinPath(testDir, type));
    const names = f.images(t.dir);
    if (names.length === 0) {
      f.reportOthers(t.dir, ds);
      ds.warnings.push(`test folder ${t.dir} has no images`);
      continue;
    }
    if (NORMAL_TYPES.has(type)) {
      ds.test.push(...samples(f, ds, t.dir, names, 0, type));
      continue;
    }
    const gtDir = t.nested ? joinPath(joinPath(testDir, type), 'gt') : joinPath(dir, `ground_truth/${type}`);
    const idx = f.isDir(gtDir) ? maskIndex(f, gtDir) : null;
    const list = samples(f, ds, t.dir, names, 1, type);
    const suffix = layout === 'mvtec' && !t.nested ? '_mask.png' : '.png';
    for (const s of attachMasks(list, idx, ds, true))
      missing.push({ image: s.path, expected: joinPath(gtDir, stemOf(baseName(s.path)) + suffix) });
    ds.test.push(...list);
  }
  if (missing.length > 0 && requireMasks) throw missingMaskError(missing);
}

/** Plain folders: good/ (or loose images) → train; anomalous|bad|defect/ → test; masks/ optional. */
function discoverFolder(f: Finder, dir: string, ds: Dataset, requireMasks: boolean): void {
  const goodDir = joinPath(dir, 'good');
  const loose = f.images(dir);
  let normalDir = dir;
  let normalNames = loose;
  if (f.isDir(goodDir)) {
    normalDir = goodDir;
    normalNames = f.images(goodDir);
    if (loose.length > 0)
      ds.warnings.push(
        `ignored ${loose.length} image(s) directly in ${dir}: normal images are read from ${goodDir}`,
      );
  }
  if (normalNames.length === 0)
    throw new DatasetError(`no normal images in ${normalDir} (expected ${IMAGE_EXTENSIONS.join(' ')} files)`);
  ds.train = samples(f, ds, normalDir, normalNames, 0, 'good');

  const maskRoot = joinPath(dir, 'masks');
  const hasMasks = f.isDir(maskRoot);
  const missing: { image: string; expected: string }[] = [];
  for (const a of ANOMALOUS_DIRS) {
    const aDir = joinPath(dir, a);
    if (!f.isDir(aDir)) continue;
    // images directly inside are defect type <a>; subfolders are defect types of their own
    const groups: { type: string; dir: string; maskDir: string }[] = [
      { type: a, dir: aDir, maskDir: maskRoot },
    ];
    for (const sub of f.subdirs(aDir)) {
      const typed = joinPath(maskRoot, sub);
      groups.push({ type: sub, dir: joinPath(aDir, sub), maskDir: f.isDir(typed) ? typed : maskRoot });
    }
    for (const g of groups) {
      const names = f.images(g.dir);
      if (names.length === 0) continue;
      const list = samples(f, ds, g.dir, names, 1, g.type);
      if (hasMasks)
        for (const s of attachMasks(list, maskIndex(f, g.maskDir), ds, false))
          missing.push({ image: s.path, expected: joinPath(g.maskDir, `${stemOf(baseName(s.path))}.png`) });
      ds.test.push(...list);
    }
  }
  if (missing.length > 0 && requireMasks) throw missingMaskError(missing);
}
