/**
 * Everything checked before the first training step (issue 15): every file of every split the run will
 * use — training, model selection, and, when the run ends with an evaluation, the test images with their
 * masks (sizes included) and the normal images the threshold is calibrated on — is read and decoded now,
 * not hours later. All bad files come back in ONE list (with the split that uses them), together with the
 * files of formats we cannot read that discovery found in the image folders. With skipBad they are all
 * left out and named; otherwise the caller stops before anything is trained.
 *
 * The splits to keep (training, selection) come back decoded so they are not read twice; the others are
 * only checked. Images smaller than the network input are listed too (they are upscaled, which blurs
 * small defects: worth a warning, not an error).
 *
 * Platform-neutral: files come through the FileSystem interface.
 */
import { type LoadedSample, type LoadFailure, loadSample, reasonOf } from './dataset.js';
import type { FileSystem, Sample } from './layouts.js';

export interface SplitToCheck {
  /** what the split is for, in messages: 'training', 'selection', 'test', 'calibration' */
  name: string;
  samples: Sample[];
  /** return the decoded samples (training and selection) instead of only checking them */
  keep: boolean;
}

export interface CheckedSplit {
  name: string;
  /** decoded samples (only for keep splits), bad ones left out, in input order */
  samples: LoadedSample[];
  /** the Sample each entry of `samples` came from; for check-only splits, the good samples */
  items: Sample[];
}

export interface BadFile extends LoadFailure {
  /** the splits that use the file */
  splits: string[];
}

export interface DataCheck {
  splits: CheckedSplit[];
  bad: BadFile[];
  /** images smaller than the network input on either side */
  small: { path: string; width: number; height: number }[];
}

/** Bad files found before training; the message lists every one and says what to do. */
export class DataCheckError extends Error {
  override name = 'DataCheckError';
  constructor(readonly bad: BadFile[]) {
    super(`${bad.length} file(s) cannot be used:\n${listBadFiles(bad)}\n${BAD_FILES_FIX}`);
  }
}

const BAD_FILES_FIX =
  'Nothing was trained and no output was changed. Fix or remove these files, or pass --skip-bad to leave them all out.';

export function listBadFiles(bad: readonly BadFile[], max = 50): string {
  const lines = bad.slice(0, max).map((b) => `  ${b.path} (${b.splits.join(', ')}): ${b.reason}`);
  if (bad.length > max) lines.push(`  … and ${bad.length - max} more`);
  return lines.join('\n');
}

/**
 * Decode every sample of every split (each file once, even when two splits share it). `unsupported` are
 * files the discovery could not take (unreadable formats): they join the bad list. Throws DataCheckError
 * unless skipBad; with skipBad the bad files are left out of every split.
 */
export async function checkData(
  fs: FileSystem,
  splits: SplitToCheck[],
  size: number,
  opts: {
    skipBad: boolean;
    unsupported?: readonly LoadFailure[];
    onProgress?: (done: number, total: number) => void;
  },
): Promise<DataCheck> {
  const bad = new Map<string, BadFile>();
  for (const u of opts.unsupported ?? []) bad.set(u.path, { ...u, splits: ['not used'] });
  const seen = new Map<string, { ok: LoadedSample | null }>();
  const small = new Map<string, { path: string; width: number; height: number }>();
  const total = splits.reduce((a, s) => a + s.samples.length, 0);
  let done = 0;
  const out: CheckedSplit[] = [];
  for (const split of splits) {
    const res: CheckedSplit = { name: split.name, samples: [], items: [] };
    for (const s of split.samples) {
      let entry = seen.get(s.path);
      if (!entry || (split.keep && entry.ok === null && !bad.has(s.path))) {
        try {
          const l = loadSample(fs, s, size);
          if (l.origWidth < size || l.origHeight < size)
            small.set(s.path, { path: s.path, width: l.origWidth, height: l.origHeight });
          entry = { ok: split.keep ? l : null };
        } catch (e) {
          bad.set(s.path, { path: s.path, reason: reasonOf(e, s), splits: [] });
          entry = { ok: null };
        }
        seen.set(s.path, entry);
      }
      const b = bad.get(s.path);
      if (b) {
        if (!b.splits.includes(split.name)) b.splits.push(split.name);
      } else {
        res.items.push(s);
        if (split.keep) res.samples.push(entry.ok!);
      }
      opts.onProgress?.(++done, total);
      if ((done & 15) === 15) await new Promise<void>((r) => setTimeout(r, 0));
    }
    out.push(res);
  }
  const badList = [...bad.values()];
  if (badList.length > 0 && !opts.skipBad) throw new DataCheckError(badList);
  return { splits: out, bad: badList, small: [...small.values()] };
}

/** The warning for images smaller than the network input, or null. */
export function smallImagesWarning(small: DataCheck['small'], size: number): string | null {
  if (small.length === 0) return null;
  const shown = small
    .slice(0, 10)
    .map((s) => `${s.path} (${s.width}×${s.height})`)
    .join(', ');
  return (
    `warning: ${small.length} image(s) are smaller than the network input ${size}×${size} and are upscaled, ` +
    `which blurs small defects: ${shown}${small.length > 10 ? ', …' : ''}`
  );
}
