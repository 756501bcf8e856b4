/**
 * THE command table of the `tessera` CLI: every command, its options and its handler, in the
 * sections `tessera --help` and docs/cli.md list them in. Parsing (sdk/cli/spec.ts), help and the
 * reference docs (sdk/cli/help.ts, scripts/gen-cli-docs.ts) all read this one list.
 */
import { ADMIN_COMMANDS } from './admin.js';
import { CLUSTER_COMMANDS } from './cluster.js';
import { DEV_COMMANDS } from './dev.js';
import { HPKE_COMMANDS } from './hpke.js';
import { KEK_COMMANDS } from './kek.js';
import { KEY_COMMANDS } from './keys.js';
import { OFFLINE_COMMANDS } from './offline.js';
import { UNSEAL_COMMANDS } from './unseal.js';
import { commandName, type CommandSpec } from './spec.js';

export interface Section {
  readonly title: string;
  readonly commands: readonly CommandSpec[];
}

const pick = (list: readonly CommandSpec[], names: readonly string[]): CommandSpec[] =>
  names.map((n) => {
    const c = list.find((x) => commandName(x) === n);
    if (!c) throw new Error(`command table: no command "${n}"`);
    return c;
  });

export const SECTIONS: readonly Section[] = [
  { title: 'Local cluster', commands: DEV_COMMANDS },
  {
    title: 'Keys',
    commands: pick(KEY_COMMANDS, ['keygen', 'keys list', 'keys report', 'keys info', 'public-key', 'sign', 'verify', 'refresh', 'reshare', 'repair', 'rotate', 'retire', 'archive', 'activate', 'destroy']),
  },
  { title: 'Encryption (HPKE, RFC 9180)', commands: HPKE_COMMANDS },
  {
    title: 'Moving keys (wrapped export and import)',
    commands: [...pick(KEY_COMMANDS, ['import-key', 'export', 'import']), ...OFFLINE_COMMANDS],
  },
  { title: 'Administration (admin API key)', commands: ADMIN_COMMANDS },
  { title: 'Cluster membership (admin API keys of every node)', commands: CLUSTER_COMMANDS },
  { title: "A node's key-encryption key (on the node's host)", commands: KEK_COMMANDS },
  { title: 'Sealed nodes (shamir-unseal KEK provider; admin API key)', commands: UNSEAL_COMMANDS },
];

export const COMMANDS: readonly CommandSpec[] = SECTIONS.flatMap((s) => s.commands);

/** How the words of a command line name a command. */
export type Resolved =
  | { kind: 'command'; command: CommandSpec; rest: string[] }
  /** A group word (e.g. `apikey`) without a known subcommand after it. */
  | { kind: 'group'; group: string; subcommands: CommandSpec[]; rest: string[] }
  | { kind: 'unknown'; word: string };

export function resolveCommand(argv: readonly string[]): Resolved {
  const depth = Math.max(...COMMANDS.map((c) => c.path.length));
  for (let k = Math.min(depth, argv.length); k >= 1; k--) {
    const words = argv.slice(0, k);
    const command = COMMANDS.find((c) => c.path.length === k && c.path.every((w, i) => w === words[i]));
    if (command) return { kind: 'command', command, rest: argv.slice(k) };
  }
  const first = argv[0] ?? '';
  const subcommands = COMMANDS.filter((c) => c.path.length > 1 && c.path[0] === first);
  if (subcommands.length) return { kind: 'group', group: first, subcommands, rest: argv.slice(1) };
  return { kind: 'unknown', word: first };
}

// Every command's table entry is checked once at load: a typo in the table fails every test at once.
for (const c of COMMANDS) {
  const names = c.options.map((o) => o.name);
  if (new Set(names).size !== names.length) throw new Error(`command table: tessera ${commandName(c)} declares an option twice`);
  for (const o of c.options) {
    if (['json', 'cluster', 'help'].includes(o.name)) throw new Error(`command table: --${o.name} is added to every command; tessera ${commandName(c)} declares it`);
    if (o.kind === 'choice' && !o.choices?.length) throw new Error(`command table: --${o.name} of tessera ${commandName(c)} has no choices`);
  }
}
if (new Set(COMMANDS.map(commandName)).size !== COMMANDS.length) throw new Error('command table: a command is listed twice');
