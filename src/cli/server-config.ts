// What the server-side commands (serve, reindex, migrate) share: reading the
// configuration from --config, LARDER_* and flags, and opening the larder it
// describes.

import { ConfigError, loadConfig, type ConfigSources, type ServerConfig } from '../config/config.ts';
import { openConfiguredLarder, type Larder } from '../services/larder.ts';
import type { Telemetry } from '../services/telemetry.ts';
import { UserError } from './user-error.ts';

export async function serverConfig(configFile: string | undefined, flags: ConfigSources['flags']): Promise<ServerConfig> {
  try {
    return await loadConfig({ ...(configFile !== undefined && { configFile }), env: process.env, flags });
  } catch (error) {
    if (error instanceof ConfigError) throw new UserError(error.message);
    throw error;
  }
}

export async function openLarder(config: ServerConfig, telemetry?: Telemetry): Promise<Larder> {
  try {
    return await openConfiguredLarder(config, telemetry);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'ENOENT' || e.code === 'EROFS') throw new UserError(`cannot open ${config.dataDir}: ${e.message}`);
    if (e.name === 'IndexUnavailableError' || e.name === 'StorageUnavailableError') throw new UserError(e.message);
    throw error;
  }
}
