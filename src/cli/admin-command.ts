// What the commands that talk to the admin API share: the --server, --token
// and --json options, the client they resolve to, API failures turned into
// one-line user errors, and compact human output.

import type { Command } from 'commander';
import { ApiClient, ApiError, UnreachableError } from '../client/api-client.ts';
import { resolveServer } from './credentials-store.ts';
import { UserError } from './user-error.ts';

export interface OutputFlags {
  json?: boolean;
}

export interface ConnectionFlags extends OutputFlags {
  server?: string;
  token?: string;
}

export function withJsonOption(command: Command): Command {
  return command.option('--json', "print the API's JSON instead of text");
}

export function withConnectionOptions(command: Command): Command {
  return withJsonOption(
    command
      .option('--server <url>', 'larder server URL (default: $LARDER_SERVER, else the saved login)')
      .option('--token <token>', 'API token (default: $LARDER_TOKEN, else the saved login)'),
  );
}

export async function connect(flags: ConnectionFlags): Promise<ApiClient> {
  const { server, token } = await resolveServer({ flags, env: process.env });
  return new ApiClient(server, token);
}

/** An action whose API failures reach the user as one line, like any UserError. */
export function apiAction<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      if (error instanceof ApiError) {
        throw new UserError(error.status >= 500 ? `server error (${error.status}): ${error.message}` : error.message);
      }
      if (error instanceof UnreachableError) throw new UserError(error.message);
      throw error;
    }
  };
}

/** Prints `json` with --json, else the human lines. */
export function print(flags: OutputFlags, json: unknown, human: () => readonly string[]): void {
  process.stdout.write(flags.json ? `${JSON.stringify(json, null, 2)}\n` : human().map((line) => `${line}\n`).join(''));
}

/** Columns padded to their widest cell; no trailing blanks. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  return [header, ...rows].map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

/** `label: value` lines with the values aligned. */
export function fields(pairs: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...pairs.map(([label]) => label.length)) + 1;
  return pairs.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}`);
}

/** A timestamp in minutes, UTC: enough to tell tokens and keys apart. */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')}Z`;
}
