// Charts as inline SVG, drawn on the server: no script, no library, readable
// without JavaScript. Each point carries a <title>, which browsers show on hover.

import { formatDay } from './display.ts';
import { html, type Html } from './html.ts';

export interface ChartPoint {
  /** UTC midnight, ms. */
  readonly day: number;
  readonly value: number;
}

export interface ChartOptions {
  /** What the chart shows, for screen readers and as its caption. */
  readonly label: string;
  /** How a value is written on the axis and in the tooltips. */
  readonly format: (value: number) => string;
  readonly width?: number;
  readonly height?: number;
}

const PAD = { left: 8, right: 8, top: 18, bottom: 20 };

/** Fixed-precision coordinates keep the markup short and stable. */
function n(value: number): string {
  return value.toFixed(1);
}

/** A line with the area under it, one point per day (in order); an empty-state note without points. */
export function lineChart(points: readonly ChartPoint[], options: ChartOptions): Html {
  const width = options.width ?? 640;
  const height = options.height ?? 160;
  if (points.length === 0) {
    return html`<p class="chart-empty">${options.label}: no data yet.</p>`;
  }
  const first = points[0]!.day;
  const last = points[points.length - 1]!.day;
  const max = Math.max(...points.map((p) => p.value));
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const x = (day: number) => PAD.left + (last === first ? plotW / 2 : ((day - first) / (last - first)) * plotW);
  const y = (value: number) => PAD.top + plotH - (max === 0 ? 0 : (value / max) * plotH);
  const baseline = PAD.top + plotH;
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${n(x(p.day))} ${n(y(p.value))}`).join(' ');
  const area =
    points.length > 1 ? `${line} L${n(x(last))} ${n(baseline)} L${n(x(first))} ${n(baseline)} Z` : '';
  return html`<figure class="chart">
<svg viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${options.label}">
<line class="chart-axis" x1="${PAD.left}" y1="${n(baseline)}" x2="${width - PAD.right}" y2="${n(baseline)}"/>
<line class="chart-grid" x1="${PAD.left}" y1="${PAD.top}" x2="${width - PAD.right}" y2="${PAD.top}"/>
<text class="chart-label" x="${PAD.left}" y="${PAD.top - 5}">${options.format(max)}</text>
${area && html`<path class="chart-area" d="${area}"/>`}
<path class="chart-line" d="${line}"/>
${points.map((p) => html`<circle class="chart-point" cx="${n(x(p.day))}" cy="${n(y(p.value))}" r="${points.length > 60 ? 1.5 : 2.5}"><title>${formatDay(p.day)}: ${options.format(p.value)}</title></circle>`)}
<text class="chart-label" x="${PAD.left}" y="${height - 5}">${formatDay(first)}</text>
<text class="chart-label" x="${width - PAD.right}" y="${height - 5}" text-anchor="end">${formatDay(last)}</text>
</svg>
<figcaption>${options.label}</figcaption>
</figure>`;
}

export interface BarPoint {
  readonly day: number;
  /** Stacked from the bottom, drawn with the series' classes. */
  readonly values: readonly number[];
}

/** Stacked bars per day: e.g. narinfo hits and misses. */
export function stackedBars(points: readonly BarPoint[], series: readonly { name: string; className: string }[], options: ChartOptions): Html {
  const width = options.width ?? 640;
  const height = options.height ?? 120;
  if (points.length === 0) return html`<p class="chart-empty">${options.label}: no data yet.</p>`;
  const max = Math.max(1, ...points.map((p) => p.values.reduce((a, b) => a + b, 0)));
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const slot = plotW / points.length;
  const barW = Math.max(1, slot * 0.7);
  const baseline = PAD.top + plotH;
  const bars = points.map((p, i) => {
    let top = baseline;
    const x = PAD.left + i * slot + (slot - barW) / 2;
    const tip = `${formatDay(p.day)}: ${series.map((s, k) => `${options.format(p.values[k] ?? 0)} ${s.name}`).join(', ')}`;
    return html`<g><title>${tip}</title>${series.map((s, k) => {
      const h = ((p.values[k] ?? 0) / max) * plotH;
      top -= h;
      return h > 0 ? html`<rect class="${s.className}" x="${n(x)}" y="${n(top)}" width="${n(barW)}" height="${n(h)}"/>` : '';
    })}</g>`;
  });
  return html`<figure class="chart">
<svg viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${options.label}">
<line class="chart-axis" x1="${PAD.left}" y1="${n(baseline)}" x2="${width - PAD.right}" y2="${n(baseline)}"/>
<text class="chart-label" x="${PAD.left}" y="${PAD.top - 5}">${options.format(max)}</text>
${bars}
<text class="chart-label" x="${PAD.left}" y="${height - 5}">${formatDay(points[0]!.day)}</text>
<text class="chart-label" x="${width - PAD.right}" y="${height - 5}" text-anchor="end">${formatDay(points[points.length - 1]!.day)}</text>
</svg>
<figcaption>${options.label} ${series.map((s) => html`<span class="legend ${s.className}">${s.name}</span>`)}</figcaption>
</figure>`;
}
