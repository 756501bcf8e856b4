/**
 * The `tessera` command line. Every command is an entry of the command table (sdk/cli/table.ts):
 * this file only finds the entry for a command line, runs it, and turns any error into one line on
 * stderr (never a stack trace) and an exit status: 0 success, 1 the operation failed, 2 usage error.
 */
import { isTesseraError } from '../core/errors.js';
import { TesseraClientError } from './http.js';
import { EXIT, UsageError, parseCommandLine } from './cli/spec.js';
import { packageVersion } from '../runtime/package-info.js';

import type { ClusterFile } from './cluster-file.js';
export type { ClusterFile };
export { parseDuration } from './cli/spec.js';

/** Run one command line; resolves with the exit status (errors are thrown: see run()). */
export async function main(argv: string[]): Promise<number> {
  const [first] = argv;
  if (first === '--version' || first === '-V') {
    if (argv.length > 1) throw new UsageError('--version takes nothing else');
    process.stdout.write(packageVersion() + '\n');
    return EXIT.ok;
  }
  // The table (and through it the SDK and its crypto) only now: `tessera --version` starts fast.
  const { resolveCommand } = await import('./cli/table.js');
  const { renderCommandHelp, renderGroupHelp, renderTopHelp } = await import('./cli/help.js');
  if (first === undefined) {
    process.stderr.write(renderTopHelp());
    return EXIT.usage;
  }
  // `tessera help`, `tessera help sign`, `tessera --help`: help on stdout, exit 0.
  if (first === 'help' || first === '--help' || first === '-h') {
    const words = argv.slice(1).filter((w) => !w.startsWith('-'));
    if (words.length === 0) process.stdout.write(renderTopHelp());
    else {
      const found = resolveCommand(words);
      if (found.kind === 'unknown') throw new UsageError(`unknown command "${printable(found.word)}"`);
      process.stdout.write(found.kind === 'command' ? renderCommandHelp(found.command) : renderGroupHelp(found.group, found.subcommands));
    }
    return EXIT.ok;
  }
  if (first.startsWith('-')) throw new UsageError(`expected a command before ${printable(first)}`);

  const found = resolveCommand(argv);
  if (found.kind === 'unknown') throw new UsageError(`unknown command "${printable(found.word)}"`);
  if (found.kind === 'group') {
    const sub = found.rest[0];
    if (sub === '--help' || sub === '-h') {
      process.stdout.write(renderGroupHelp(found.group, found.subcommands));
      return EXIT.ok;
    }
    const names = found.subcommands.map((c) => c.path[1]).join(', ');
    if (sub === undefined || sub.startsWith('-')) throw new UsageError(`${found.group} needs a subcommand: ${names}`, found.group);
    throw new UsageError(`unknown subcommand "${printable(sub)}" of tessera ${found.group} (${names})`, found.group);
  }
  const parsed = await parseCommandLine(found.command, found.rest);
  if (parsed.help) {
    process.stdout.write(renderCommandHelp(found.command));
    return EXIT.ok;
  }
  return found.command.run(parsed.args);
}

/** A word from the command line quoted back: printable and short. */
function printable(word: string): string {
  const clean = word.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 37)}...` : clean;
}

/** One line for any error: its code and message (a usage error points at the command's --help), never a stack. */
export function describeError(e: unknown): string {
  if (e instanceof TesseraClientError || isTesseraError(e)) {
    const culprits = e.culprits?.length ? ` (culprits: nodes ${e.culprits.join(', ')})` : '';
    return `tessera: ${e.code}: ${e.message}${culprits}`.replace(/\s*\n\s*/g, ' ');
  }
  if (e instanceof UsageError) return `tessera: ${e.message} (see tessera ${e.command ? `${e.command} ` : ''}--help)`.replace(/\s*\n\s*/g, ' ');
  return `tessera: ${(e as Error)?.message ?? String(e)}`.replace(/\s*\n\s*/g, ' ');
}

export function exitStatusOf(e: unknown): number {
  return e instanceof UsageError ? EXIT.usage : EXIT.failed;
}

export async function run(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (e) {
    process.stderr.write(describeError(e) + '\n');
    process.exitCode = exitStatusOf(e);
  }
}
