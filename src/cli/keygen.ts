// `larder keygen NAME --secret-file F --public-file F`: keys in Nix's format,
// interchangeable with `nix-store --generate-binary-cache-key`.

import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { formatPublicKey, formatSecretKey, generateSecretKey } from '../nix/signing-key.ts';
import { UserError } from './user-error.ts';

export async function writeKeyPair(name: string, secretFile: string, publicFile: string): Promise<string> {
  let key;
  try {
    key = generateSecretKey(name);
  } catch (error) {
    throw new UserError((error as Error).message);
  }
  try {
    // 'wx': never overwrite an existing secret key.
    await writeFile(secretFile, formatSecretKey(key), { mode: 0o600, flag: 'wx' });
    await writeFile(publicFile, formatPublicKey(key.publicKey), { mode: 0o644 });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new UserError(`${e.path ?? secretFile} already exists; refusing to overwrite a key`);
    if (e.code) throw new UserError(`cannot write ${e.path ?? ''}: ${e.code}`);
    throw error;
  }
  return formatPublicKey(key.publicKey);
}

export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .description('generate a Nix binary cache signing key pair')
    .argument('<name>', 'key name, e.g. cache.example.org-1')
    .requiredOption('--secret-file <file>', 'where to write the secret key (mode 0600)')
    .requiredOption('--public-file <file>', 'where to write the public key')
    .action(async (name: string, options: { secretFile: string; publicFile: string }) => {
      const publicKey = await writeKeyPair(name, options.secretFile, options.publicFile);
      process.stdout.write(`${publicKey}\n`);
    });
}
