/**
 * SVG building blocks for the report and the browser app's charts: escaping, "nice" axis ticks (linear
 * 1-2-5 steps, and decades for log scales), tick labels, scales and the pieces every chart shares (the
 * accessible <svg> frame with <title>/<desc>, axes with ticks and labels, a legend). Charts are strings of
 * SVG markup with real <text> in the system font stack, so they stay sharp at any size, can be searched
 * and read by screen readers, and need no graphics library or font. Platform-neutral (no DOM, no node:).
 */

export const FONT_STACK =
  "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Noto Sans', sans-serif";

/** Tableau 10: distinguishable colours, readable on white. */
export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
] as const;

export const INK = '#1b1f24';
export const GRID = '#e3e6ea';
export const MUTED = '#57606a';

/** Text or attribute value safe inside SVG/HTML markup. */
export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A coordinate with at most two decimals (keeps the markup small; sub-pixel precision is invisible). */
export function num(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/**
 * Evenly spaced "nice" ticks (steps of 1, 2 or 5 × 10^k) covering [lo, hi] with about `count` intervals;
 * the first tick is ≤ lo and the last ≥ hi, so the axis can be extended to them.
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) return [0, 1];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
    // a flat series: a unit-sized window around it
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 0.5;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  // round away float noise (0.30000000000000004) at the step's precision
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toFixed(Math.min(20, digits))));
  return ticks;
}

/**
 * Ticks for a log axis over [lo, hi] (both > 0): the decades 10^k from below lo to above hi; when that
 * gives fewer than three ticks, also 2·10^k and 5·10^k.
 */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0 && hi > 0 && Number.isFinite(lo) && Number.isFinite(hi))) return [1, 10];
  if (hi < lo) [lo, hi] = [hi, lo];
  const k0 = Math.floor(Math.log10(lo) + 1e-9);
  let k1 = Math.ceil(Math.log10(hi) - 1e-9);
  if (k1 === k0) k1++;
  const decades: number[] = [];
  for (let k = k0; k <= k1; k++) decades.push(Number((10 ** k).toPrecision(1)));
  if (decades.length >= 3) return decades;
  const fine: number[] = [];
  for (let k = k0; k <= k1; k++)
    for (const m of k === k1 ? [1] : [1, 2, 5]) fine.push(Number((m * 10 ** k).toPrecision(1)));
  return fine;
}

/** A short tick label: plain decimals in a readable range, otherwise exponent notation (1e-4, 2.5e6). */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return Number(v.toPrecision(3)).toExponential().replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

/**
 * A value for tooltips and captions with `digits` significant digits, trailing zeros kept (a score of
 * 0.19997 must not read as a threshold of 0.2).
 */
export function formatValue(v: number, digits = 5): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(digits - 1).replace('e+', 'e');
  return v.toPrecision(digits);
}

export interface Scale {
  /** data value → pixel */
  (v: number): number;
  domain: [number, number];
  ticks: number[];
  log: boolean;
}

/**
 * A scale from a data extent to pixels [r0, r1]. Linear scales widen the extent to nice ticks; log scales
 * (all values > 0) to whole decades (or the 1-2-5 ticks of a narrow range). `fixed` keeps the extent as
 * given (e.g. [0, 1] for rates) with ticks inside it.
 */
export function makeScale(
  extent: [number, number],
  r0: number,
  r1: number,
  opts: { log?: boolean; fixed?: boolean; count?: number } = {},
): Scale {
  let [lo, hi] = extent;
  const log = Boolean(opts.log) && lo > 0 && hi > 0;
  let ticks: number[];
  if (log) {
    ticks = logTicks(lo, hi);
    if (!opts.fixed) [lo, hi] = [ticks[0]!, ticks.at(-1)!];
    else ticks = ticks.filter((t) => t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9));
  } else {
    ticks = niceTicks(lo, hi, opts.count ?? 5);
    if (!opts.fixed) [lo, hi] = [ticks[0]!, ticks.at(-1)!];
    else {
      const span = hi - lo;
      ticks = ticks.filter((t) => t >= lo - span * 1e-9 && t <= hi + span * 1e-9);
    }
  }
  const t = log ? Math.log10 : (v: number) => v;
  const a = t(lo);
  const b = t(hi);
  const span = b - a || 1;
  const f = ((v: number) => r0 + ((t(v) - a) / span) * (r1 - r0)) as Scale;
  f.domain = [lo, hi];
  f.ticks = ticks;
  f.log = log;
  return f;
}

/** Estimated rendered width of `s` at `size` px in a proportional sans-serif (for layout only). */
export function textWidth(s: string, size = 12): number {
  return s.length * size * 0.6;
}

export interface Plot {
  width: number;
  height: number;
  /** the plotting area */
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/**
 * The opening of an accessible chart: role="img", aria-labelledby its own <title> and <desc> (ids made
 * unique per chart by `id`), the font and a white background. Close it with `</svg>`.
 */
export function svgOpen(id: string, width: number, height: number, title: string, desc: string): string {
  const e = escapeXml;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" id="${e(id)}" class="chart" role="img" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ` +
    `aria-labelledby="${e(id)}-title ${e(id)}-desc" font-family="${e(FONT_STACK)}" font-size="12" fill="${INK}">` +
    `<title id="${e(id)}-title">${e(title)}</title><desc id="${e(id)}-desc">${e(desc)}</desc>` +
    `<rect width="${width}" height="${height}" fill="#fff"/>`
  );
}

/** The chart's visible heading (the same words as its <title>). */
export function heading(p: Plot, title: string): string {
  return `<text class="chart-title" x="${num(p.left)}" y="20" font-size="15" font-weight="600">${escapeXml(title)}</text>`;
}

/** Grid lines, axes, tick labels and axis labels. */
export function axes(p: Plot, x: Scale | null, y: Scale, xLabel: string, yLabel: string): string {
  const out: string[] = ['<g class="axes">'];
  for (const t of y.ticks) {
    const py = num(y(t));
    out.push(
      `<line x1="${num(p.left)}" y1="${py}" x2="${num(p.right)}" y2="${py}" stroke="${GRID}"/>`,
      `<text x="${num(p.left - 6)}" y="${py}" text-anchor="end" dominant-baseline="middle" fill="${MUTED}">${escapeXml(formatTick(t))}</text>`,
    );
  }
  if (x)
    for (const t of x.ticks) {
      const px = num(x(t));
      out.push(
        `<line x1="${px}" y1="${num(p.bottom)}" x2="${px}" y2="${num(p.bottom + 5)}" stroke="${INK}"/>`,
        `<text x="${px}" y="${num(p.bottom + 18)}" text-anchor="middle" fill="${MUTED}">${escapeXml(formatTick(t))}</text>`,
      );
    }
  out.push(
    `<line x1="${num(p.left)}" y1="${num(p.top)}" x2="${num(p.left)}" y2="${num(p.bottom)}" stroke="${INK}"/>`,
    `<line x1="${num(p.left)}" y1="${num(p.bottom)}" x2="${num(p.right)}" y2="${num(p.bottom)}" stroke="${INK}"/>`,
  );
  if (xLabel)
    out.push(
      `<text class="axis-label" x="${num((p.left + p.right) / 2)}" y="${num(p.height - 8)}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    );
  if (yLabel) {
    const cy = num((p.top + p.bottom) / 2);
    out.push(
      `<text class="axis-label" x="14" y="${cy}" text-anchor="middle" transform="rotate(-90 14 ${cy})">${escapeXml(yLabel)}</text>`,
    );
  }
  out.push('</g>');
  return out.join('');
}

export interface LegendEntry {
  name: string;
  color: string;
  /** 'line' (a stroke, dashed when `dash`) or 'box' (a filled square, for bars) */
  kind: 'line' | 'box';
  dash?: boolean;
}

/**
 * A legend in rows above the plot, right-aligned, wrapping when the entries do not fit on one line.
 * Returns the markup and the height it takes (the caller moves the plot down by it).
 */
export function legend(
  entries: LegendEntry[],
  right: number,
  top: number,
  maxWidth: number,
): { svg: string; height: number } {
  if (entries.length === 0) return { svg: '', height: 0 };
  const rows: LegendEntry[][] = [[]];
  let used = 0;
  const w = (e: LegendEntry) => 22 + textWidth(e.name) + 14;
  for (const e of entries) {
    if (used + w(e) > maxWidth && rows.at(-1)!.length > 0) {
      rows.push([]);
      used = 0;
    }
    rows.at(-1)!.push(e);
    used += w(e);
  }
  const out: string[] = ['<g class="legend">'];
  rows.forEach((row, r) => {
    let x = right - row.reduce((a, e) => a + w(e), 0) + 14;
    const y = top + r * 18;
    for (const e of row) {
      const c = escapeXml(e.color);
      out.push(
        e.kind === 'box'
          ? `<rect x="${num(x)}" y="${num(y - 5)}" width="12" height="10" fill="${c}"/>`
          : `<line x1="${num(x)}" y1="${num(y)}" x2="${num(x + 16)}" y2="${num(y)}" stroke="${c}" stroke-width="2.5"${e.dash ? ' stroke-dasharray="4 3"' : ''}/>`,
        `<text x="${num(x + 22)}" y="${num(y)}" dominant-baseline="middle">${escapeXml(e.name)}</text>`,
      );
      x += w(e);
    }
  });
  out.push('</g>');
  return { svg: out.join(''), height: rows.length * 18 };
}

/** A slug usable as an element id ("Image ROC" → "image-roc"). */
export function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'chart'
  );
}
