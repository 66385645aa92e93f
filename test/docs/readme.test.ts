/**
 * The README is the user's manual: it must keep the sections a newcomer needs and stay true to the code.
 * These checks catch what review misses: a section lost in an unrelated edit (a tensor-core commit once
 * deleted six of them: Results, the browser app, GPU servers, layout, ownership, development), an in-page
 * link to a heading that was renamed, a file path that moved, an `RDPP_*` switch that no longer exists.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allFlags } from '../../src/engine/flags.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = readFileSync(join(repo, 'README.md'), 'utf8');

/** Markdown outside fenced code blocks (a `# comment` in a shell block is not a heading). */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function githubSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function headings(markdown: string): string[] {
  return [...prose(markdown).matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!);
}

describe('README', () => {
  it('computes anchors as GitHub does', () => {
    expect(githubSlug('Speed: `bench` and `profile`')).toBe('speed-bench-and-profile');
    expect(githubSlug('Precision: `--precision f16`')).toBe('precision---precision-f16');
    expect(githubSlug('Machines without network (air-gapped PCs, GPU servers)')).toBe(
      'machines-without-network-air-gapped-pcs-gpu-servers',
    );
  });

  it('has the sections a newcomer needs', () => {
    const top = headings(readme);
    for (const section of [
      'The two commands',
      'Requirements',
      'Command-line program',
      'Results',
      'The browser app',
      'Running on a GPU server',
      'Layout',
      'Engine: ownership rules',
      'Development',
      'Status',
    ]) {
      expect(top, `README section "${section}"`).toContain(section);
    }
  });

  it('links only to headings that exist', () => {
    const anchors = new Set(headings(readme).map(githubSlug));
    const links = [...prose(readme).matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(3);
    const broken = links.filter((l) => !anchors.has(l));
    expect(broken, 'in-page links without a heading').toEqual([]);
  });

  it('names only files that exist', () => {
    const paths = [...readme.matchAll(/`((?:src|test|bench|scripts)\/[^`\s*<>|]+)`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(20);
    const missing = [...new Set(paths)].filter((p) => !existsSync(join(repo, p)));
    expect(missing, 'paths named in the README').toEqual([]);
  });

  it('names only RDPP_* switches that exist', () => {
    const flags = new Set(Object.keys(allFlags()).map((k) => `RDPP_${k}`));
    const sources = ['src', 'scripts', 'bench'].map((d) => join(repo, d));
    const named = new Set([...readme.matchAll(/\bRDPP_[A-Z0-9_]+\b/g)].map((m) => m[0]!));
    const unknown = [...named].filter((v) => !flags.has(v) && !mentionedIn(sources, v));
    expect(unknown, 'RDPP_ variables that are neither flags nor read by the code').toEqual([]);
  });
});

/** Whether `text` occurs in any file under `dirs` (the few environment variables that are not flags). */
function mentionedIn(dirs: string[], text: string): boolean {
  const walk = (dir: string): boolean =>
    readdirSync(dir).some((name) => {
      const p = join(dir, name);
      if (name === 'results' || name === 'node_modules') return false;
      return statSync(p).isDirectory() ? walk(p) : readFileSync(p, 'utf8').includes(text);
    });
  return dirs.some(walk);
}
