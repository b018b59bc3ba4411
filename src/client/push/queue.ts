// The push queue: a directory of small files, one per build, each listing the
// store paths it produced. Writers (the post-build hook, `larder queue`)
// rename a finished file into place; `larder watch` reads, pushes, deletes.

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface QueueEntry {
  readonly file: string;
  readonly paths: readonly string[];
}

export function defaultQueueDir(env: NodeJS.ProcessEnv): string {
  if (env.LARDER_QUEUE_DIR) return env.LARDER_QUEUE_DIR;
  if (process.getuid?.() === 0) return '/var/lib/larder/queue';
  const state = env.XDG_STATE_HOME || join(env.HOME ?? '/tmp', '.local', 'state');
  return join(state, 'larder', 'queue');
}

export async function enqueue(dir: string, paths: readonly string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = `${Date.now()}${process.hrtime.bigint() % 1_000_000n}.${randomBytes(4).toString('hex')}`;
  const temp = join(dir, `.tmp.${name}`);
  await writeFile(temp, paths.map((p) => `${p}\n`).join(''));
  await rename(temp, join(dir, name));
  return join(dir, name);
}

/** Finished entries, oldest first; temporary files of writers in progress are skipped. */
export async function readQueue(dir: string): Promise<QueueEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const entries: QueueEntry[] = [];
  for (const name of names.filter((n) => !n.startsWith('.')).sort()) {
    const file = join(dir, name);
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    entries.push({ file, paths: text.split(/\s+/).filter(Boolean) });
  }
  return entries;
}

export async function removeEntries(entries: readonly QueueEntry[]): Promise<void> {
  for (const entry of entries) await rm(entry.file, { force: true });
}
