// Numbers and times as the dashboard shows them: fixed formats (UTC, en-US
// digit grouping), so a page reads the same whatever the server's locale.

export { formatBytes } from '../services/units.ts';

const COUNT = new Intl.NumberFormat('en-US');

export function formatCount(n: number): string {
  return COUNT.format(n);
}

/** `2026-11-21 11:28 UTC` */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** `2026-11-21` */
export function formatDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** `just now`, `5 min ago`, `3 h ago`, `12 d ago`; `in …` for the future. */
export function formatAge(ms: number, now: number): string {
  const delta = now - ms;
  const abs = Math.abs(delta);
  let text: string;
  if (abs < 60_000) return 'just now';
  if (abs < 3_600_000) text = `${Math.floor(abs / 60_000)} min`;
  else if (abs < 86_400_000) text = `${Math.floor(abs / 3_600_000)} h`;
  else text = `${Math.floor(abs / 86_400_000)} d`;
  return delta >= 0 ? `${text} ago` : `in ${text}`;
}

/** Hits over all lookups, `97.5%`; `–` when there were none. */
export function formatHitRate(hits: number, misses: number): string {
  const total = hits + misses;
  if (total === 0) return '–';
  return `${((hits / total) * 100).toFixed(1)}%`;
}
