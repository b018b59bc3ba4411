// Sizes ("200GiB") and durations ("30d") as people write them, for settings,
// the admin API and the CLI: parsed strictly, formatted back the same way.

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/;
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/** Bytes from `1048576`, `"512MiB"`, `"64GiB"`, `"200GB"`; undefined when it is none of those (or not positive). */
export function parseSizeValue(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const match = typeof value === 'string' ? SIZE.exec(value.trim()) : null;
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS[match[2] ?? 'B']!);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** The largest unit that divides `bytes` exactly: `"200GiB"`, `"1500MB"`, `"123B"`. */
export function formatSizeValue(bytes: number): string {
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB', 'TB', 'GB', 'MB', 'KB']) {
    const size = SIZE_UNITS[unit]!;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds from `"30d"`, `"12h"`, `"90m"`, `"45s"`, `"500ms"`, `"2w"`; undefined when it is none of those (or not positive). */
export function parseDurationValue(value: unknown): number | undefined {
  const match = typeof value === 'string' ? DURATION.exec(value.trim()) : null;
  if (!match) return undefined;
  const ms = Math.round(Number(match[1]) * DURATION_UNITS[match[2]!]!);
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}

/** The largest unit that divides `ms` exactly: `"30d"`, `"36h"`, `"1500ms"`. */
export function formatDurationValue(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's']) {
    const size = DURATION_UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Bytes for people, rounded: `"1.2 GiB"`, `"340 B"`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
