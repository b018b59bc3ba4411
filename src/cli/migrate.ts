// `larder migrate [--config F]`: brings the configured index's schema up to
// date and prints its version. `larder serve` migrates on start too; this runs
// it on its own, e.g. as a deployment step before new replicas roll out.
// Several runs at once (or replicas starting meanwhile) are safe.

import type { Command } from 'commander';
import { ConfigError, loadConfig, type ServerConfig } from '../config/config.ts';
import { IndexUnavailableError } from '../index/cache-index.ts';
import { migrate, SchemaTooNewError } from '../index/migrations.ts';
import { describeIndex, openIndexDriver } from '../index/open-index.ts';
import { UserError } from './user-error.ts';

interface MigrateFlags {
  config?: string;
  data?: string;
}

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description("bring the index's schema up to date and print its version")
    .option('--config <file>', 'larder.toml settings file')
    .option('--data <dir>', 'data directory, for the embedded SQLite index (default ./larder-data)')
    .action(async (flags: MigrateFlags) => {
      let config: ServerConfig;
      try {
        config = await loadConfig({
          ...(flags.config !== undefined && { configFile: flags.config }),
          env: process.env,
          flags: { 'data-dir': flags.data },
        });
      } catch (error) {
        if (error instanceof ConfigError) throw new UserError(error.message);
        throw error;
      }
      const where = describeIndex(config.index);
      try {
        const driver = await openIndexDriver(config.index);
        try {
          const { version, applied } = await migrate(driver);
          const what = applied.length === 0 ? 'up to date' : `applied ${applied.join(', ')}`;
          process.stdout.write(`${where}: schema version ${version} (${what})\n`);
        } finally {
          await driver.close();
        }
      } catch (error) {
        if (error instanceof IndexUnavailableError) {
          const reason = error.cause instanceof Error && error.cause.message ? error.cause.message : error.message;
          throw new UserError(`${where} is unavailable: ${reason}`);
        }
        if (error instanceof SchemaTooNewError) throw new UserError(`${where}: ${error.message}`);
        throw error;
      }
    });
}
