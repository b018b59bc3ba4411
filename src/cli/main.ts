// The `larder` command: each subcommand lives in its own file and registers
// itself here. Errors meant for the user are printed as one line, never as a
// stack trace.

import { Command, CommanderError } from 'commander';
import { registerCache } from './cache.ts';
import { registerGc } from './gc.ts';
import { registerKey } from './key.ts';
import { registerKeygen } from './keygen.ts';
import { registerLogin } from './login.ts';
import { registerMigrate } from './migrate.ts';
import { registerPath } from './path.ts';
import { registerPin } from './pin.ts';
import { registerUpstream } from './upstream.ts';
import { registerPush } from './push.ts';
import { registerReindex } from './reindex.ts';
import { registerQueue, registerWatch } from './watch.ts';
import { registerServe } from './serve.ts';
import { registerToken } from './token.ts';
import { registerUse } from './use.ts';
import { registerVerify } from './verify.ts';
import { UserError } from './user-error.ts';

export function buildProgram(): Command {
  const program = new Command('larder')
    .description('A private Nix binary cache you run yourself')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ outputError: (text, write) => write(`larder: ${text.replace(/^error: /, '')}`) })
    .exitOverride();
  registerKeygen(program);
  registerServe(program);
  registerPush(program);
  registerReindex(program);
  registerVerify(program);
  registerQueue(program);
  registerWatch(program);
  registerCache(program);
  registerPin(program);
  registerUpstream(program);
  registerPath(program);
  registerGc(program);
  registerKey(program);
  registerToken(program);
  registerLogin(program);
  registerUse(program);
  registerMigrate(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    if (error instanceof UserError) {
      process.stderr.write(`larder: ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}
