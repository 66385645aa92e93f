/**
 * The three chart kinds of the report and the browser app, as SVG strings (see svg.ts for the shared
 * frame, axes and legend): a line chart (series of x/y points; NaN values are gaps, optional log y axis,
 * markers with tooltips, vertical reference lines), a grouped bar chart (a value per category and
 * series) and a stacked histogram (values of several groups in shared bins, with vertical marker lines
 * such as a decision threshold). Every point, bar and marker carries a <title>, which browsers show as a
 * tooltip and screen readers read. Platform-neutral.
 */
import {
  axes,
  escapeXml,
  formatValue,
  GRID,
  heading,
  INK,
  type LegendEntry,
  legend,
  MUTED,
  makeScale,
  num,
  PALETTE,
  type Plot,
  type Scale,
  slug,
  svgOpen,
  textWidth,
} from './svg.js';

export interface XY {
  x: number;
  y: number;
  /** tooltip of this point (drawn with a marker) */
  tip?: string;
}

export interface LineSeries {
  name: string;
  points: XY[];
  color?: string;
  dash?: boolean;
  /** a dot at every point (sparse series, e.g. measured every few epochs), with its tooltip */
  markers?: boolean;
  /** tooltip of the whole line */
  tip?: string;
}

/** A vertical reference line across the plot (a threshold, a bound). */
export interface Marker {
  x: number;
  label: string;
  color?: string;
  dash?: boolean;
  /** extra class names on the marker's group, for styling and tests ("threshold") */
  className?: string;
}

interface Common {
  /** element id, unique in the page (default: from the title) */
  id?: string;
  title: string;
  /** the long description for screen readers (<desc>): what is plotted and the key numbers */
  desc: string;
  width?: number;
  height?: number;
}

export interface LineChartSpec extends Common {
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  logY?: boolean;
  /** axis extents kept exactly as given (e.g. [0, 1] for rates); default: the data's, widened to ticks */
  xExtent?: [number, number];
  yExtent?: [number, number];
  markers?: Marker[];
  /** x is a count (steps, epochs): whole-number ticks only */
  xIntegers?: boolean;
}

const colorOf = (c: string | undefined, i: number) => c ?? PALETTE[i % PALETTE.length]!;

function extent(values: number[], fallback: [number, number]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values)
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  return lo <= hi ? [lo, hi] : fallback;
}

/** Frame, heading and legend; returns the plot area left for the data. */
function layout(
  spec: Common,
  entries: LegendEntry[],
  margins: { left: number; bottom: number },
): { parts: string[]; plot: Plot; id: string } {
  const width = spec.width ?? 640;
  const height = spec.height ?? 360;
  const id = spec.id ?? slug(spec.title);
  const left = margins.left;
  const right = width - 16;
  const lg = legend(entries, right, 40, right - left);
  const plot: Plot = { width, height, left, right, top: 40 + lg.height + 4, bottom: height - margins.bottom };
  const parts = [svgOpen(id, width, height, spec.title, spec.desc), heading(plot, spec.title), lg.svg];
  return { parts, plot, id };
}

function markerSvg(m: Marker, x: Scale, p: Plot, i: number): string {
  const px = x(m.x);
  if (!(px >= p.left - 0.5 && px <= p.right + 0.5)) return '';
  const c = escapeXml(m.color ?? INK);
  const nearRight = px > p.right - textWidth(m.label) - 8;
  const tx = nearRight ? px - 4 : px + 4;
  return (
    `<g class="marker${m.className ? ` ${escapeXml(m.className)}` : ''}"><title>${escapeXml(m.label)}</title>` +
    `<line x1="${num(px)}" y1="${num(p.top)}" x2="${num(px)}" y2="${num(p.bottom)}" stroke="${c}" stroke-width="2"${m.dash ? ' stroke-dasharray="6 4"' : ''}/>` +
    `<text x="${num(tx)}" y="${num(p.top + 12 + 14 * i)}" text-anchor="${nearRight ? 'end' : 'start'}" fill="${c}" paint-order="stroke" stroke="#fff" stroke-width="3">${escapeXml(m.label)}</text></g>`
  );
}

function noData(p: Plot): string {
  return `<text x="${num((p.left + p.right) / 2)}" y="${num((p.top + p.bottom) / 2)}" text-anchor="middle" fill="${MUTED}">no data</text>`;
}

/** A line chart: each series a polyline through its finite points (gaps at NaN / non-positive on log). */
export function lineChart(spec: LineChartSpec): string {
  const entries: LegendEntry[] = spec.series.map((s, i) => ({
    name: s.name,
    color: colorOf(s.color, i),
    kind: 'line',
    ...(s.dash ? { dash: true } : {}),
  }));
  for (const m of spec.markers ?? [])
    entries.push({ name: m.label, color: m.color ?? INK, kind: 'line', dash: m.dash ?? false });
  const { parts, plot: p, id } = layout(spec, entries, { left: 64, bottom: 44 });
  const ok = (v: number) => Number.isFinite(v) && (!spec.logY || v > 0);
  const xs = spec.series.flatMap((s) => s.points.filter((q) => ok(q.y)).map((q) => q.x));
  const ys = spec.series.flatMap((s) => s.points.map((q) => q.y)).filter(ok);
  const x = makeScale(spec.xExtent ?? extent(xs, [0, 1]), p.left, p.right, { fixed: Boolean(spec.xExtent) });
  const y = makeScale(spec.yExtent ?? extent(ys, spec.logY ? [0.1, 1] : [0, 1]), p.bottom, p.top, {
    log: Boolean(spec.logY),
    fixed: Boolean(spec.yExtent),
  });
  if (spec.xIntegers) x.ticks = x.ticks.filter((t) => Number.isInteger(t));
  parts.push(axes(p, x, y, spec.xLabel, y.log ? `${spec.yLabel} (log scale)` : spec.yLabel));
  if (ys.length === 0) parts.push(noData(p));
  // clip to the plot: fixed extents may cut a curve (the PRO curve beyond its FPR range)
  parts.push(
    `<clipPath id="${escapeXml(id)}-clip"><rect x="${num(p.left)}" y="${num(p.top - 4)}" width="${num(p.right - p.left + 4)}" height="${num(p.bottom - p.top + 8)}"/></clipPath>`,
    `<g class="series" clip-path="url(#${escapeXml(id)}-clip)" fill="none">`,
  );
  spec.series.forEach((s, i) => {
    const c = escapeXml(colorOf(s.color, i));
    let d = '';
    // a point between two gaps draws no line: it gets a dot so it is not lost
    const lone: XY[] = [];
    let piece: XY[] = [];
    const endPiece = () => {
      if (piece.length === 1 && !s.markers) lone.push(piece[0]!);
      piece = [];
    };
    for (const q of s.points) {
      if (!ok(q.y) || !Number.isFinite(q.x)) {
        endPiece();
        continue;
      }
      d += `${piece.length ? 'L' : 'M'}${num(x(q.x))} ${num(y(q.y))}`;
      piece.push(q);
    }
    endPiece();
    parts.push(
      `<path class="line" d="${d}" stroke="${c}" stroke-width="2" stroke-linejoin="round"${s.dash ? ' stroke-dasharray="5 4"' : ''}><title>${escapeXml(s.tip ?? s.name)}</title></path>`,
    );
    for (const q of lone) parts.push(`<circle cx="${num(x(q.x))}" cy="${num(y(q.y))}" r="2.5" fill="${c}"/>`);
    if (s.markers)
      for (const q of s.points)
        if (ok(q.y) && Number.isFinite(q.x))
          parts.push(
            `<circle cx="${num(x(q.x))}" cy="${num(y(q.y))}" r="3.5" fill="${c}"><title>${escapeXml(q.tip ?? `${s.name}: ${formatValue(q.y)} at ${formatValue(q.x)}`)}</title></circle>`,
          );
  });
  parts.push('</g>');
  (spec.markers ?? []).forEach((m, i) => {
    parts.push(markerSvg(m, x, p, i));
  });
  parts.push('</svg>');
  return parts.join('');
}

export interface BarChartSpec extends Common {
  yLabel: string;
  categories: string[];
  /** one bar per category in each series (NaN: no bar, "n/a" shown) */
  series: { name: string; values: number[]; color?: string }[];
  yExtent?: [number, number];
}

/** Grouped bars: for each category, one bar per series side by side. */
export function barChart(spec: BarChartSpec): string {
  const entries: LegendEntry[] = spec.series.map((s, i) => ({
    name: s.name,
    color: colorOf(s.color, i),
    kind: 'box',
  }));
  const width = spec.width ?? 640;
  const band = (width - 80) / Math.max(1, spec.categories.length);
  // long category names are turned so they do not collide
  const longest = Math.max(0, ...spec.categories.map((c) => textWidth(c)));
  const turn = longest > band - 6;
  const bottom = turn ? Math.min(140, 30 + longest * 0.7) : 44;
  const { parts, plot: p } = layout(spec, entries, { left: 64, bottom });
  const all = spec.series.flatMap((s) => s.values);
  const y = makeScale(spec.yExtent ?? extent([0, ...all], [0, 1]), p.bottom, p.top, {
    fixed: Boolean(spec.yExtent),
  });
  parts.push(axes(p, null, y, '', spec.yLabel));
  const bw = (p.right - p.left) / Math.max(1, spec.categories.length);
  const inner = (bw * 0.8) / Math.max(1, spec.series.length);
  parts.push('<g class="bars">');
  spec.categories.forEach((cat, ci) => {
    const x0 = p.left + bw * ci + bw * 0.1;
    spec.series.forEach((s, si) => {
      const v = s.values[ci] ?? Number.NaN;
      const bx = x0 + inner * si;
      const tip = escapeXml(`${cat}, ${s.name}: ${formatValue(v, 4)}`);
      if (!Number.isFinite(v)) {
        parts.push(
          `<text x="${num(bx + inner / 2)}" y="${num(p.bottom - 4)}" text-anchor="middle" font-size="9" fill="${MUTED}"><title>${tip}</title>n/a</text>`,
        );
        return;
      }
      const top = y(Math.max(v, y.domain[0]));
      const base = y(Math.max(0, y.domain[0]));
      parts.push(
        `<rect x="${num(bx)}" y="${num(Math.min(top, base))}" width="${num(Math.max(1, inner - 1))}" height="${num(Math.abs(base - top))}" fill="${escapeXml(colorOf(s.color, si))}"><title>${tip}</title></rect>`,
      );
    });
    const cx = p.left + bw * (ci + 0.5);
    parts.push(
      turn
        ? `<text x="${num(cx)}" y="${num(p.bottom + 14)}" text-anchor="end" transform="rotate(-35 ${num(cx)} ${num(p.bottom + 14)})">${escapeXml(cat)}</text>`
        : `<text x="${num(cx)}" y="${num(p.bottom + 18)}" text-anchor="middle">${escapeXml(cat)}</text>`,
    );
  });
  parts.push('</g></svg>');
  return parts.join('');
}

export interface HistogramSpec extends Common {
  xLabel: string;
  yLabel?: string;
  /** the values of each group, counted in shared bins and stacked in group order */
  groups: { name: string; values: number[]; color?: string }[];
  /** number of bins (default from the number of values: 8 to 40) */
  bins?: number;
  markers?: Marker[];
}

/** Equal-width bin edges over [lo, hi] (a flat range is widened so it has width). */
export function binEdges(lo: number, hi: number, bins: number): number[] {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.05 || 0.5;
    [lo, hi] = [lo - pad, hi + pad];
  }
  return Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins);
}

/** Counts of `values` in the bins of `edges` (the last bin includes its upper edge; outside: ignored). */
export function binCounts(values: number[], edges: number[]): number[] {
  const n = edges.length - 1;
  const counts = new Array<number>(n).fill(0);
  const lo = edges[0]!;
  const w = (edges[n]! - lo) / n;
  for (const v of values) {
    if (!Number.isFinite(v) || v < lo || v > edges[n]!) continue;
    counts[Math.min(n - 1, Math.floor((v - lo) / w))]!++;
  }
  return counts;
}

/** A stacked histogram of several groups in shared bins, with vertical markers (thresholds). */
export function histogram(spec: HistogramSpec): string {
  const entries: LegendEntry[] = spec.groups.map((g, i) => ({
    name: g.name,
    color: colorOf(g.color, i),
    kind: 'box',
  }));
  for (const m of spec.markers ?? [])
    entries.push({ name: m.label, color: m.color ?? INK, kind: 'line', dash: m.dash ?? false });
  const { parts, plot: p } = layout(spec, entries, { left: 64, bottom: 44 });
  const all = spec.groups.flatMap((g) => g.values).filter(Number.isFinite);
  const [lo, hi] = extent([...all, ...(spec.markers ?? []).map((m) => m.x)], [0, 1]);
  const bins = spec.bins ?? Math.min(40, Math.max(8, Math.round(Math.sqrt(all.length) * 2)));
  // a small margin so the extreme values and markers are not on the frame
  const pad = (hi - lo) * 0.03 || Math.abs(hi) * 0.05 || 0.5;
  const edges = binEdges(lo - pad, hi + pad, bins);
  const counts = spec.groups.map((g) => binCounts(g.values, edges));
  const totals = edges.slice(1).map((_, b) => counts.reduce((a, c) => a + c[b]!, 0));
  const x = makeScale([edges[0]!, edges[bins]!], p.left, p.right, { fixed: true, count: 6 });
  const y = makeScale([0, Math.max(1, ...totals)], p.bottom, p.top);
  // counts are whole numbers: no 0.5 ticks
  y.ticks = y.ticks.filter((t) => Number.isInteger(t));
  parts.push(axes(p, x, y, spec.xLabel, spec.yLabel ?? 'images'));
  if (all.length === 0) parts.push(noData(p));
  parts.push('<g class="bars">');
  for (let b = 0; b < bins; b++) {
    let stack = 0;
    const x0 = x(edges[b]!);
    const x1 = x(edges[b + 1]!);
    const range = `${formatValue(edges[b]!, 4)} to ${formatValue(edges[b + 1]!, 4)}`;
    spec.groups.forEach((g, gi) => {
      const c = counts[gi]![b]!;
      if (c === 0) return;
      const y0 = y(stack);
      const y1 = y(stack + c);
      stack += c;
      parts.push(
        `<rect x="${num(x0 + 0.5)}" y="${num(y1)}" width="${num(Math.max(1, x1 - x0 - 1))}" height="${num(y0 - y1)}" fill="${escapeXml(colorOf(g.color, gi))}" stroke="#fff" stroke-width="0.5"><title>${escapeXml(`${g.name}: ${c} image${c === 1 ? '' : 's'} with score ${range}`)}</title></rect>`,
      );
    });
  }
  parts.push(
    `</g><line x1="${num(p.left)}" y1="${num(p.bottom)}" x2="${num(p.right)}" y2="${num(p.bottom)}" stroke="${GRID}"/>`,
  );
  (spec.markers ?? []).forEach((m, i) => {
    parts.push(markerSvg(m, x, p, i));
  });
  parts.push('</svg>');
  return parts.join('');
}
