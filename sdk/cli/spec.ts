/**
 * The shape of the CLI's command table (sdk/cli/table.ts) and the one argument parser that reads a
 * command line against it. `--help`, `tessera <command> --help` and docs/cli.md are all rendered from
 * the same entries (sdk/cli/help.ts), so they cannot drift apart.
 *
 * Every option's value is checked here, before a command runs and before anything reaches a node:
 * a bad command line is a UsageError (exit 2) that names the flag, never a validator path.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_CLUSTER_FILE } from './choices.js';

/** Exit statuses, documented in `tessera --help` and docs/cli.md. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A command line the CLI cannot run as given (unknown command or option, missing or bad value): exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose --help to point at, e.g. "sign" or "apikey revoke". */
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * How an option's value is read:
 *   flag      no value (boolean)
 *   string    any text
 *   int       a whole number (min/max checked)
 *   number    a decimal number (min checked)
 *   hex       hex bytes, an optional 0x; given to the command as lowercase hex without 0x
 *   players   node indexes, comma-separated: at least 2, distinct, 1..255
 *   duration  a whole number with a unit: ms, s, m, h or d (e.g. 30d)
 *   choice    one of `choices`
 */
export type OptionKind = 'flag' | 'string' | 'int' | 'number' | 'hex' | 'players' | 'duration' | 'choice';

export interface OptionSpec {
  readonly name: string;
  readonly kind: OptionKind;
  /** The placeholder shown for the value (e.g. ID, HEX, FILE). */
  readonly value?: string;
  readonly help: string;
  readonly required?: boolean;
  /** May be given more than once (each value is checked). */
  readonly multiple?: boolean;
  readonly choices?: readonly string[];
  /** The default, as shown in help (the command applies it). */
  readonly default?: string;
  readonly min?: number;
  readonly max?: number;
}

export interface ArgSpec {
  readonly name: string;
  readonly kind: 'string' | 'int';
  readonly help: string;
  readonly min?: number;
}

/** Which resources a command needs: the cluster file, nothing (offline), or a dev data dir. */
export type CommandUses = 'cluster' | 'offline' | 'dev';

export interface CommandSpec {
  /** The words after `tessera`, e.g. ['apikey', 'revoke']. */
  readonly path: readonly string[];
  /** One line: what the command does. */
  readonly summary: string;
  /** More paragraphs for `--help` and docs/cli.md. */
  readonly details?: readonly string[];
  readonly args?: readonly ArgSpec[];
  readonly options: readonly OptionSpec[];
  readonly uses: CommandUses;
  /** Accepts --json (default true). */
  readonly json?: boolean;
  /** When the exit status says more than success/failure (e.g. verify: 1 for an invalid signature). */
  readonly exitNote?: string;
  readonly examples?: readonly string[];
  run(args: Args): Promise<number>;
}

/** What every command of a kind also accepts (appended to its own options in help and parsing). */
export const JSON_OPTION: OptionSpec = { name: 'json', kind: 'flag', help: 'print exactly one JSON object on stdout' };
export const CLUSTER_OPTION: OptionSpec = {
  name: 'cluster',
  kind: 'string',
  value: 'FILE',
  help: 'the cluster file to use',
  default: `env TESSERA_CLUSTER, else ${DEFAULT_CLUSTER_FILE}`,
};
export const HELP_OPTION: OptionSpec = { name: 'help', kind: 'flag', help: 'show this help and exit' };

/** Every option a command accepts, in the order help lists them. */
export function optionsOf(c: CommandSpec): OptionSpec[] {
  return [...c.options, ...(c.json !== false ? [JSON_OPTION] : []), ...(c.uses === 'cluster' ? [CLUSTER_OPTION] : []), HELP_OPTION];
}

export const commandName = (c: CommandSpec): string => c.path.join(' ');

// ---------------------------------------------------------------------------------------------
// Values

/** A duration: a whole number with a unit, ms, s, m, h or d (e.g. 30d, 12h, 90s) → milliseconds. */
export function parseDuration(name: string, v: string): number {
  const m = /^(\d{1,12})(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) throw new UsageError(`--${name}: expected a duration such as 30d, 12h, 15m, 90s or 500ms, got "${shown(v)}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

/** A value quoted back in an error: printable and short (a mistyped flag could carry a secret). */
function shown(v: string): string {
  const clean = v.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 37)}...` : clean;
}

/** Hex options use the SDK's normalizeHex (optional 0x), loaded only when a command has one: spec.ts stays light for `--version`. */
type NormalizeHex = (value: string, what: string) => string;

function convert(o: OptionSpec, raw: string, normalizeHex: NormalizeHex): unknown {
  const flag = `--${o.name}`;
  switch (o.kind) {
    case 'flag':
    case 'string':
      return raw;
    case 'int': {
      if (!/^\d{1,15}$/.test(raw)) throw new UsageError(`${flag}: expected a whole number, got "${shown(raw)}"`);
      const n = Number(raw);
      const range = o.max !== undefined ? `${o.min ?? 0}..${o.max}` : `at least ${o.min ?? 0}`;
      if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) throw new UsageError(`${flag}: expected ${range}, got ${n}`);
      return n;
    }
    case 'number': {
      if (!/^\d{1,12}(\.\d{1,12})?$/.test(raw)) throw new UsageError(`${flag}: expected a number, got "${shown(raw)}"`);
      const n = Number(raw);
      if (o.min !== undefined && !(n > o.min)) throw new UsageError(`${flag}: expected more than ${o.min}, got ${raw}`);
      return n;
    }
    case 'hex':
      try {
        return normalizeHex(raw, flag);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    case 'players': {
      const parts = raw.split(',').map((x) => x.trim());
      if (parts.some((p) => !/^\d{1,3}$/.test(p))) throw new UsageError(`${flag}: expected comma-separated node numbers such as 1,3, got "${shown(raw)}"`);
      const players = parts.map(Number);
      if (players.length < 2) throw new UsageError(`${flag}: give at least 2 nodes (a threshold is at least 2), got ${players.length}`);
      if (new Set(players).size !== players.length) throw new UsageError(`${flag}: a node is listed twice in "${shown(raw)}"`);
      const bad = players.find((p) => p < 1 || p > 255);
      if (bad !== undefined) throw new UsageError(`${flag}: node numbers start at 1, got ${bad}`);
      return players;
    }
    case 'duration':
      return parseDuration(o.name, raw);
    case 'choice':
      if (!o.choices!.includes(raw)) throw new UsageError(`${flag}: unknown ${(o.value ?? 'value').toLowerCase()} "${shown(raw)}" (expected one of: ${o.choices!.join(', ')})`);
      return raw;
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** A command line read against one command's spec: every value already checked and converted. */
export class Args {
  constructor(
    readonly command: CommandSpec,
    private readonly values: ReadonlyMap<string, unknown>,
    private readonly positionals: ReadonlyMap<string, string | number>,
  ) {}

  get json(): boolean {
    return this.values.get('json') === true;
  }

  private declared(name: string, kinds: readonly OptionKind[]): OptionSpec {
    const o = optionsOf(this.command).find((x) => x.name === name);
    // A programming error in the table, not a user's: fail loudly in tests.
    if (!o || !kinds.includes(o.kind)) throw new Error(`tessera ${commandName(this.command)}: option --${name} is not declared as ${kinds.join('|')}`);
    return o;
  }

  flag(name: string): boolean {
    this.declared(name, ['flag']);
    return this.values.get(name) === true;
  }
  /** string, hex (normalized) or choice. */
  string(name: string): string | undefined {
    this.declared(name, ['string', 'hex', 'choice']);
    return this.values.get(name) as string | undefined;
  }
  strings(name: string): string[] {
    const o = this.declared(name, ['string', 'hex']);
    if (!o.multiple) throw new Error(`--${name} is not declared multiple`);
    return (this.values.get(name) as string[] | undefined) ?? [];
  }
  int(name: string): number | undefined {
    this.declared(name, ['int', 'number', 'duration']);
    return this.values.get(name) as number | undefined;
  }
  players(name = 'players'): number[] | undefined {
    this.declared(name, ['players']);
    return this.values.get(name) as number[] | undefined;
  }
  arg(name: string): string | number {
    const v = this.positionals.get(name);
    if (v === undefined) throw new Error(`tessera ${commandName(this.command)}: no argument ${name}`);
    return v;
  }
}

/** parseArgs' messages, in the CLI's words (it names the option; no advice about `--`). */
function rephrase(e: Error & { code?: string }): string {
  const opt = /'(-{1,2}[^' <]+)/.exec(e.message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${opt ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument missing/.test(e.message)) return `${opt} needs a value`;
      if (/does not take an argument/.test(e.message)) return `${opt} takes no value`;
      if (/ambiguous/.test(e.message)) return `${opt} needs a value (got another option after it; to pass a value starting with "-", write ${opt}=VALUE)`;
      return e.message.split('\n')[0]!;
    default:
      return e.message.split('\n')[0]!;
  }
}

/** Read `argv` (the words after the command's path) against `command`; { help: true } when --help/-h is given. */
export async function parseCommandLine(command: CommandSpec, argv: readonly string[]): Promise<{ help: true } | { help: false; args: Args }> {
  const name = commandName(command);
  const specs = optionsOf(command);
  // --help anywhere wins over everything else (even a bad option next to it).
  if (argv.some((w) => w === '--help' || w === '-h')) return { help: true };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: Object.fromEntries(specs.map((o) => [o.name, { type: o.kind === 'flag' ? 'boolean' : 'string', ...(o.multiple ? { multiple: true } : {}) }])),
    });
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(rephrase(err), name);
    throw e;
  }
  const values = new Map<string, unknown>();
  const { normalizeHex } = specs.some((o) => o.kind === 'hex' && parsed.values[o.name] !== undefined) ? await import('../formats.js') : { normalizeHex: undefined };
  for (const o of specs) {
    const raw = parsed.values[o.name];
    if (raw === undefined) {
      if (o.required) throw new UsageError(`--${o.name} is required`, name);
      continue;
    }
    try {
      if (o.kind === 'flag') values.set(o.name, raw === true);
      else if (o.multiple) values.set(o.name, (raw as string[]).map((v) => convert(o, v, normalizeHex!)));
      else values.set(o.name, convert(o, raw as string, normalizeHex!));
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(e.message, name);
      throw e;
    }
  }
  const wanted = command.args ?? [];
  const words = parsed.positionals;
  if (words.length > wanted.length) throw new UsageError(`unexpected argument "${shown(words[wanted.length]!)}"`, name);
  if (words.length < wanted.length) throw new UsageError(`missing argument ${wanted[words.length]!.name}`, name);
  const positionals = new Map<string, string | number>();
  wanted.forEach((a, k) => {
    const w = words[k]!;
    if (a.kind === 'int') {
      if (!/^\d{1,9}$/.test(w) || (a.min !== undefined && Number(w) < a.min)) throw new UsageError(`${a.name}: expected a whole number${a.min !== undefined ? ` of at least ${a.min}` : ''}, got "${shown(w)}"`, name);
      positionals.set(a.name, Number(w));
    } else positionals.set(a.name, w);
  });
  return { help: false, args: new Args(command, values, positionals) };
}
