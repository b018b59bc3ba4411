// The two charts the overview and a cache's page share: stored size over time,
// and narinfo hits and misses per day.

import { HISTORY_DAYS } from '../cache-stats.ts';
import { lineChart, stackedBars, type BarPoint, type ChartPoint } from '../chart.ts';
import { formatBytes, formatCount } from '../display.ts';
import { html, type Html } from '../html.ts';

export function usageCharts(growth: readonly ChartPoint[], lookups: readonly BarPoint[]): Html {
  return html`<div class="grid">
<section class="card"><h2>Growth</h2>${lineChart(growth, { label: `Stored size, last ${HISTORY_DAYS} days`, format: formatBytes })}</section>
<section class="card"><h2>Lookups</h2>${stackedBars(
    lookups,
    [
      { name: 'hits', className: 'bar-hit' },
      { name: 'misses', className: 'bar-miss' },
    ],
    { label: 'Narinfo requests per day', format: formatCount },
  )}</section>
</div>`;
}
