/**
 * Help and reference text, rendered from the command table (sdk/cli/table.ts): `tessera --help`,
 * `tessera <command> --help`, and docs/cli.md (scripts/gen-cli-docs.ts writes it; a test checks the
 * file equals renderMarkdown()). Nothing here names a version, so the docs change only with the table.
 */
import { DEFAULT_CLUSTER_FILE } from './choices.js';
import { SECTIONS } from './table.js';
import { EXIT, commandName, optionsOf, type CommandSpec, type OptionSpec } from './spec.js';

export const CLUSTER_FILE_NOTE = `Commands that talk to a cluster read the cluster file: --cluster FILE, else env TESSERA_CLUSTER, else ${DEFAULT_CLUSTER_FILE} (written by \`tessera dev\`).`;

export const EXIT_STATUSES: readonly [number, string][] = [
  [EXIT.ok, 'success'],
  [EXIT.failed, 'the operation failed: a node refused or could not be reached, a file was missing or invalid, a signature or audit log did not verify'],
  [EXIT.usage, 'usage error: unknown command or option, a required option missing, or a malformed value (checked before anything is sent)'],
];

const isRequired = (o: OptionSpec) => o.required === true;

/** `--key-id ID`, `--wrapping-key FILE ...` */
function optionSyntax(o: OptionSpec): string {
  return o.kind === 'flag' ? `--${o.name}` : `--${o.name} ${o.value ?? 'VALUE'}${o.multiple ? ' ...' : ''}`;
}

/** The option's help with its choices, default and whether it is required or repeatable. */
function optionText(o: OptionSpec): string {
  const notes: string[] = [];
  if (o.kind === 'choice') notes.push(`one of: ${o.choices!.join(', ')}`);
  if (o.default !== undefined) notes.push(`default: ${o.default}`);
  if (o.multiple) notes.push('repeatable');
  if (o.required) notes.push('required');
  return `${o.help}${notes.length ? ` (${notes.join('; ')})` : ''}`;
}

/** `tessera sign --key-id ID --message HEX [--players LIST] [--version V] [--json] [--cluster FILE]` */
export function usageLine(c: CommandSpec): string {
  const parts = [`tessera ${commandName(c)}`, ...(c.args ?? []).map((a) => a.name)];
  for (const o of optionsOf(c)) {
    if (o.name === 'help') continue;
    parts.push(isRequired(o) ? optionSyntax(o) : `[${optionSyntax(o)}]`);
  }
  return parts.join(' ');
}

function exitText(c: CommandSpec): string {
  return `exit status: 0 success, 1 the operation failed, 2 usage error${c.exitNote ? `; ${c.exitNote}` : ''}`;
}

/** Word-wrap a paragraph to `width` columns with `indent` (help text only; the markdown is not wrapped). */
function wrap(text: string, width = 100, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

/** Two columns: names padded to the widest. */
function columns(rows: readonly [string, string][], indent = '  ', width?: number): string {
  const w = width ?? Math.min(34, Math.max(...rows.map(([a]) => a.length)));
  return rows.map(([a, b]) => (a.length > w ? `${indent}${a}\n${indent}${' '.repeat(w)}  ${b}` : `${indent}${a.padEnd(w)}  ${b}`)).join('\n');
}

/** `tessera <command> --help` */
export function renderCommandHelp(c: CommandSpec): string {
  const out = [`tessera ${commandName(c)}: ${c.summary}`, '', `usage: ${usageLine(c)}`];
  for (const p of c.details ?? []) out.push('', wrap(p));
  if (c.args?.length) out.push('', 'arguments:', columns(c.args.map((a) => [a.name, a.help])));
  out.push('', 'options:', columns(optionsOf(c).map((o) => [optionSyntax(o), optionText(o)])));
  if (c.examples?.length) out.push('', 'examples:', ...c.examples.map((e) => `  ${e}`));
  out.push('', wrap(exitText(c)));
  return out.join('\n') + '\n';
}

/** `tessera <group> --help` (e.g. `tessera apikey --help`): its subcommands. */
export function renderGroupHelp(group: string, subcommands: readonly CommandSpec[]): string {
  return [
    `usage: tessera ${group} <${subcommands.map((c) => c.path[1]).join('|')}> [options]`,
    '',
    columns(subcommands.map((c) => [commandName(c), c.summary])),
    '',
    `tessera ${group} <subcommand> --help shows its options.`,
  ].join('\n') + '\n';
}

/** `tessera --help` */
export function renderTopHelp(): string {
  const out = [
    'tessera: threshold keys (FROST signing, threshold HPKE) on a cluster of nodes',
    '',
    'usage: tessera <command> [options]',
    "       tessera <command> --help     a command's options",
    '       tessera --version            the package version',
  ];
  const label = (c: CommandSpec) => [commandName(c), ...(c.args ?? []).map((a) => a.name)].join(' ');
  const width = Math.max(...SECTIONS.flatMap((s) => s.commands.map((c) => label(c).length)));
  for (const s of SECTIONS) out.push('', `${s.title}:`, columns(s.commands.map((c) => [label(c), c.summary]), '  ', width));
  out.push('', wrap(CLUSTER_FILE_NOTE), 'With --json a command prints exactly one JSON object on stdout.', '', 'exit status:', columns(EXIT_STATUSES.map(([code, what]) => [String(code), what])));
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// docs/cli.md

const anchor = (c: CommandSpec) => `tessera-${c.path.join('-')}`;
const cell = (s: string) => s.replace(/\|/g, '\\|');

function commandMarkdown(c: CommandSpec): string {
  const out = [`### \`tessera ${commandName(c)}\``, '', `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`, '', '```', usageLine(c), '```'];
  for (const p of c.details ?? []) out.push('', p);
  if (c.args?.length) {
    out.push('', '| argument | description |', '| --- | --- |', ...c.args.map((a) => `| \`${a.name}\` | ${cell(a.help)} |`));
  }
  out.push('', '| option | description |', '| --- | --- |', ...optionsOf(c).map((o) => `| \`${optionSyntax(o)}\` | ${cell(optionText(o))} |`));
  if (c.examples?.length) out.push('', '```sh', ...c.examples, '```');
  if (c.exitNote) out.push('', `Exit status: ${c.exitNote}.`);
  return out.join('\n');
}

/** The whole CLI reference (docs/cli.md). */
export function renderMarkdown(): string {
  const out = [
    '# `tessera` command reference',
    '',
    '<!-- Generated from the command table (sdk/cli/table.ts) by scripts/gen-cli-docs.ts; do not edit by hand. test/integration/cli-help.test.ts fails when this file differs from the table. -->',
    '',
    'Every command shows the same text with `tessera <command> --help`; `tessera --help` lists them all and `tessera --version` prints the package version.',
    '',
    CLUSTER_FILE_NOTE,
    'With `--json` a command prints exactly one JSON object on stdout. Errors are one line on stderr (`tessera: CODE: message`), never a stack trace. Progress lines for long commands (keygen, rotate, export, import) go to stderr, and only when it is a terminal.',
    '',
    '## Exit status',
    '',
    '| status | meaning |',
    '| --- | --- |',
    ...EXIT_STATUSES.map(([code, what]) => `| ${code} | ${cell(what)} |`),
    '',
    '## Commands',
  ];
  for (const s of SECTIONS) {
    out.push('', `**${s.title}**`, '', ...s.commands.map((c) => `- [\`tessera ${commandName(c)}\`](#${anchor(c)}): ${c.summary}`));
  }
  for (const s of SECTIONS) {
    out.push('', `## ${s.title}`);
    for (const c of s.commands) out.push('', commandMarkdown(c));
  }
  return out.join('\n') + '\n';
}
