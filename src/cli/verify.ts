// `larder verify [--cache NAME] [--json] [--no-nar-hashes]`: an fsck of the
// configured index and blob store (services/verify.ts). Problems are printed one
// per line as they are found; the exit code is 0 when clean, 1 when problems
// were found, 2 when it could not check (usage error, unknown cache, index or
// storage not answering).

import { CommanderError, type Command } from 'commander';
import { Rejection } from '../services/rejection.ts';
import { formatBytes } from '../services/units.ts';
import { verify, type VerifyProblem, type VerifyReport } from '../services/verify.ts';
import { openLarder, serverConfig } from './server-config.ts';
import { UserError } from './user-error.ts';

interface VerifyFlags {
  cache?: string;
  json?: boolean;
  narHashes: boolean;
  data?: string;
  config?: string;
}

const CANNOT_CHECK = 2;

export function problemLine(problem: VerifyProblem): string {
  const where = problem.cache === '' ? problem.subject : `${problem.cache} ${problem.subject}`;
  return `${where}: ${problem.message}`;
}

export function summaryLines(report: VerifyReport): string[] {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const lines = report.caches.map((c) => {
    const read = report.narHashes ? `${formatBytes(c.bytesRead)} read and hashed` : 'sizes only (--no-nar-hashes)';
    const extras = [
      ...(c.upstreamReferences > 0 ? [`${plural(c.upstreamReferences, 'reference')} held by upstreams`] : []),
      ...(c.inFlight.nars + c.inFlight.files > 0 ? [`in flight: ${plural(c.inFlight.nars, 'NAR')} without a narinfo yet, ${plural(c.inFlight.files, 'file')} without a record yet`] : []),
    ];
    return `cache ${c.cache}: ${plural(c.paths, 'path')}, ${plural(c.nars, 'NAR')} (${read})${extras.length > 0 ? `; ${extras.join('; ')}` : ''}`;
  });
  lines.push(report.ok ? 'verify: no problems found' : `verify: ${plural(report.problems.length, 'problem')} found`);
  return lines;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description("check every path's narinfo, NAR, hashes, references and signatures against the blob store, and report orphans")
    .option('--cache <name>', 'only this cache (default: every cache)')
    .option('--json', 'print the whole report as JSON')
    .option('--no-nar-hashes', 'only check that each NAR file is there with its size (no decompressing and hashing)')
    .option('--data <dir>', 'data directory (default ./larder-data)')
    .option('--config <file>', 'larder.toml settings file')
    .exitOverride((error: CommanderError) => {
      // Help and version exit 0; every other usage error is "could not check".
      if (error.exitCode !== 0) error.exitCode = CANNOT_CHECK;
      throw error;
    })
    .action(async (flags: VerifyFlags) => {
      let larder;
      try {
        larder = await openLarder(await serverConfig(flags.config, { 'data-dir': flags.data }));
      } catch (error) {
        if (error instanceof UserError) return cannotCheck(error.message);
        throw error;
      }
      try {
        const report = await verify(larder, {
          ...(flags.cache !== undefined && { cache: flags.cache }),
          narHashes: flags.narHashes,
          ...(!flags.json && { onProblem: (problem: VerifyProblem) => process.stdout.write(`${problemLine(problem)}\n`) }),
        });
        if (flags.json) process.stdout.write(`${JSON.stringify(report)}\n`);
        else process.stdout.write(`${summaryLines(report).join('\n')}\n`);
        process.exitCode = report.ok ? 0 : 1;
      } catch (error) {
        const e = error as Error;
        if (e instanceof Rejection || e.name === 'IndexUnavailableError' || e.name === 'StorageUnavailableError') return cannotCheck(e.message);
        throw error;
      } finally {
        await larder.close();
      }
    });
}

function cannotCheck(message: string): void {
  process.stderr.write(`larder: verify could not check: ${message}\n`);
  process.exitCode = CANNOT_CHECK;
}
