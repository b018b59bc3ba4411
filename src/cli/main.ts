// The `larder` command: each subcommand lives in its own file and registers
// itself here. Errors meant for the user are printed as one line, never as a
// stack trace.

import { Command, CommanderError } from 'commander';
import { UserError } from './user-error.ts';

type Register = (program: Command) => void;

/**
 * Each command's module, in the order `larder --help` lists them. Only the
 * module of the command being run is loaded: all of them (the server with
 * pg, pino and prom-client among them) took half a second to load before any
 * command could start.
 */
const COMMANDS: ReadonlyArray<{ readonly names: readonly string[]; readonly load: () => Promise<Register> }> = [
  { names: ['keygen'], load: async () => (await import('./keygen.ts')).registerKeygen },
  { names: ['serve'], load: async () => (await import('./serve.ts')).registerServe },
  { names: ['push'], load: async () => (await import('./push.ts')).registerPush },
  { names: ['reindex'], load: async () => (await import('./reindex.ts')).registerReindex },
  { names: ['verify'], load: async () => (await import('./verify.ts')).registerVerify },
  { names: ['queue'], load: async () => (await import('./watch.ts')).registerQueue },
  { names: ['watch'], load: async () => (await import('./watch.ts')).registerWatch },
  { names: ['cache'], load: async () => (await import('./cache.ts')).registerCache },
  { names: ['pin'], load: async () => (await import('./pin.ts')).registerPin },
  { names: ['upstream'], load: async () => (await import('./upstream.ts')).registerUpstream },
  { names: ['path'], load: async () => (await import('./path.ts')).registerPath },
  { names: ['gc'], load: async () => (await import('./gc.ts')).registerGc },
  { names: ['key'], load: async () => (await import('./key.ts')).registerKey },
  { names: ['token'], load: async () => (await import('./token.ts')).registerToken },
  { names: ['login', 'logout'], load: async () => (await import('./login.ts')).registerLogin },
  { names: ['use'], load: async () => (await import('./use.ts')).registerUse },
  { names: ['migrate'], load: async () => (await import('./migrate.ts')).registerMigrate },
];

/** The program with `command` registered, or with every command when it names none (help, a typo). */
export async function buildProgram(command: string | undefined): Promise<Command> {
  const program = new Command('larder')
    .description('A private Nix binary cache you run yourself')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ outputError: (text, write) => write(`larder: ${text.replace(/^error: /, '')}`) })
    .exitOverride();
  const named = COMMANDS.filter(({ names }) => command !== undefined && names.includes(command));
  const registers = await Promise.all((named.length > 0 ? named : COMMANDS).map(({ load }) => load()));
  for (const register of registers) register(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await (await buildProgram(argv[2])).parseAsync(argv);
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
