// Runs the larder command as a user would, in a child process.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const larderBin = fileURLToPath(new URL('../../bin/larder.ts', import.meta.url));

/** Resolves with stdout; rejects with an error carrying stdout, stderr and the exit code. */
export function larder(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [larderBin, ...args], { env, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(new Error(`larder ${args.join(' ')} exited ${error.code}: ${stderr}`), { stdout, stderr, code: error.code }));
      else resolve(stdout);
    });
  });
}
