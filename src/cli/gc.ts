// `larder gc CACHE [--dry-run] [--list] [--json]`: garbage collection through
// the admin API. Prints what is (or would be) freed and why the rest stays, in
// a few lines whatever the cache's size: counts, pins, and a few examples.

import type { Command } from 'commander';
import type { GcReportInfo } from '../client/api-client.ts';
import { formatBytes, formatDurationValue, formatSizeValue } from '../services/units.ts';
import { apiAction, connect, formatTime, print, withConnectionOptions, type ConnectionFlags } from './admin-command.ts';

interface GcFlags extends ConnectionFlags {
  dryRun?: boolean;
  list?: boolean;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function describeGc(report: GcReportInfo): string[] {
  const { kept, freed, quota, deleted, orphans, policy } = report;
  const retention = policy.retentionMs === null ? null : formatDurationValue(policy.retentionMs);
  const settings = [
    retention === null ? 'no retention period' : `retention ${retention}`,
    policy.maxSize === null ? 'no max-size' : `max-size ${formatSizeValue(policy.maxSize)}`,
  ];
  const lines = [
    `cache ${report.cache}: ${plural(report.paths, 'path')}, ${formatBytes(report.bytes)} (${settings.join(', ')})`,
    `kept ${plural(kept.paths, 'path')}, ${formatBytes(kept.bytes)}:`,
  ];
  if (kept.pins.length > 0) {
    lines.push(`  pinned: ${plural(kept.pins.length, 'pin')}`);
    for (const pin of kept.pins) {
      const closure = pin.paths === null ? '' : ` (closure: ${plural(pin.paths, 'path')}, ${formatBytes(pin.bytes ?? 0)})`;
      lines.push(`    ${pin.name}: ${pin.storePath}${closure}`);
    }
  }
  if (kept.unlimitedRoots > 0) lines.push(`  every path is kept: the cache has no retention period (${plural(kept.unlimitedRoots, 'path')})`);
  if (kept.recentRoots > 0) {
    lines.push(
      `  accessed within ${retention}: ${plural(kept.recentRoots, 'path')}, the least recently at ${formatTime(kept.oldestRecentAccess ?? 0)}`,
    );
  }
  for (const example of kept.examples) {
    if (example.reason === 'recent') lines.push(`    ${example.storePath} accessed ${formatTime(example.accessedAt ?? 0)}`);
  }
  if (kept.referenced > 0) {
    lines.push(`  referenced by kept paths (pinned closures included): ${plural(kept.referenced, 'path')}, e.g.`);
    for (const example of kept.examples) {
      if (example.reason === 'referenced') lines.push(`    ${example.storePath} referenced by ${example.referencedBy ?? '?'}`);
    }
  }
  const verb = report.dryRun ? 'would free' : 'planned to free';
  const reasons = [
    ...(freed.expired.paths > 0 ? [`${freed.expired.paths} not accessed within ${retention} (${formatBytes(freed.expired.bytes)})`] : []),
    ...(freed.evicted.paths > 0 ? [`${freed.evicted.paths} least recently used evicted for max-size (${formatBytes(freed.evicted.bytes)})`] : []),
  ];
  lines.push(`${verb} ${plural(freed.paths, 'path')}, ${formatBytes(freed.bytes)}${reasons.length > 0 ? `: ${reasons.join(', ')}` : ''}`);
  if (freed.list) {
    for (const path of freed.list) lines.push(`  ${path}`);
  } else {
    for (const example of freed.examples) lines.push(`  ${example.storePath} (${example.reason}, accessed ${formatTime(example.accessedAt)})`);
    if (freed.paths > freed.examples.length) lines.push(`  … and ${freed.paths - freed.examples.length} more (--list shows them all)`);
  }
  if (quota) {
    const state = quota.reached ? 'under it' : `cannot get under it: pinned closures alone take ${formatBytes(quota.pinnedBytes)}`;
    lines.push(`max-size ${formatBytes(quota.maxSize)}: ${formatBytes(quota.bytesBefore)} kept by retention, ${formatBytes(quota.bytesAfter)} after eviction (${state})`);
  }
  if (deleted) {
    const spared = Object.entries(deleted.spared).filter(([, n]) => n > 0).map(([why, n]) => `${n} ${why}`);
    lines.push(
      `deleted ${plural(deleted.paths, 'path')} and ${plural(deleted.nars, 'NAR')} (${formatBytes(deleted.bytes)})` +
        (spared.length > 0 ? `; spared because they changed since planning: ${spared.join(', ')}` : '') +
        (deleted.stopped ? '; stopped before the end' : ''),
    );
  }
  const orphanVerb = report.dryRun ? 'would remove' : 'removed';
  lines.push(
    `orphans ${orphanVerb}: ${plural(orphans.nars, 'NAR')} without a narinfo (${formatBytes(orphans.narBytes)}), ` +
      `${plural(orphans.files, 'file')} without a record, ${orphans.abandoned} abandoned uploads`,
  );
  lines.push(`took ${(report.timings.totalMs / 1000).toFixed(1)} s (planning ${report.timings.planMs} ms)`);
  return lines;
}

export function registerGc(program: Command): void {
  withConnectionOptions(
    program
      .command('gc')
      .description("collect a cache's garbage now: paths outside its retention and quota, and orphans")
      .argument('<cache>', 'cache name')
      .option('--dry-run', 'only report what would be deleted')
      .option('--list', 'list every path freed, not only examples'),
  ).action(
    apiAction(async (cache: string, flags: GcFlags) => {
      const report = await (await connect(flags)).gc(cache, { dryRun: flags.dryRun ?? false, list: flags.list ?? false });
      print(flags, report, () => describeGc(report));
    }),
  );
}
