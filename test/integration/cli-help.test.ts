/**
 * The CLI's help, version, reference docs and exit statuses, without a cluster: `--help` for every
 * command of the command table shows all its options, docs/cli.md is exactly what the table renders,
 * `--version` prints package.json's version, usage errors exit 2 and name the flag (never a validator
 * path), operation failures exit 1. A few run as a user runs them (a child process); the per-command
 * help runs in-process through the same main() (one process per command would take minutes).
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeError, exitStatusOf, main } from '../../sdk/cli.js';
import { renderMarkdown } from '../../sdk/cli/help.js';
import { commandName, optionsOf } from '../../sdk/cli/spec.js';
import { COMMANDS } from '../../sdk/cli/table.js';
import { findPackageJson } from '../../runtime/package-info.js';
import { KEM_SUITES, SIGNING_SUITES } from '../../core/suites.js';
import { WRAP_KEMS } from '../../core/wrap.js';
import { PUBLIC_KEY_FORMATS } from '../../sdk/formats.js';
import { DEFAULT_CLUSTER_FILE as SDK_DEFAULT_CLUSTER_FILE } from '../../sdk/cluster-file.js';
import { DEFAULT_CLUSTER_FILE, KEM_SUITE_IDS, PUBLIC_KEY_FORMAT_IDS, SIGNING_SUITE_IDS, WRAP_KEM_IDS } from '../../sdk/cli/choices.js';
import { tessera, type CliResult } from '../helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

/** main(argv) in this process: its exit status (as run() would set it) and what it wrote to stdout. */
async function runInProcess(argv: string[]): Promise<{ code: number; stdout: string; error?: string }> {
  let stdout = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await main(argv), stdout };
  } catch (e) {
    return { code: exitStatusOf(e), stdout, error: describeError(e) };
  } finally {
    process.stdout.write = write;
  }
}

/** A usage error as promised: exit 2, nothing on stdout, one stderr line naming `flag`, no stack, no validator wording. */
function expectUsageError(r: CliResult, pattern: RegExp, what: string): void {
  expect(r.code, `${what}: exit status (stderr: ${r.stderr})`).toBe(2);
  expect(r.stdout, `${what}: stdout`).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, `${what}: one stderr line`).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(lines[0]).not.toMatch(/^\s*at\s|body\/|must NOT|instancePath/);
}

describe('tessera --help and docs/cli.md come from the one command table', () => {
  it('every command and subcommand: `tessera <command> --help` exits 0 and lists each of its options', async () => {
    expect(COMMANDS.length).toBeGreaterThan(30);
    for (const c of COMMANDS) {
      for (const flag of ['--help', '-h']) {
        const r = await runInProcess([...c.path, flag]);
        expect(r.code, `tessera ${commandName(c)} ${flag}: ${r.error}`).toBe(0);
        expect(r.stdout).toContain(`usage: tessera ${commandName(c)}`);
        expect(r.stdout).toContain(c.summary);
        for (const o of optionsOf(c)) expect(r.stdout, `tessera ${commandName(c)} --help shows --${o.name}`).toContain(`--${o.name}`);
        for (const o of optionsOf(c)) expect(o.help.length, `--${o.name} of ${commandName(c)} has help text`).toBeGreaterThan(3);
        expect(r.stdout).toMatch(/exit status: 0 success, 1 the operation failed, 2 usage error/);
      }
      // `tessera help <command>` says the same.
      expect((await runInProcess(['help', ...c.path])).stdout).toBe((await runInProcess([...c.path, '--help'])).stdout);
    }
  });

  it('a group word (`tessera apikey --help`) lists its subcommands; without one it is a usage error', async () => {
    const help = await runInProcess(['apikey', '--help']);
    expect(help.code).toBe(0);
    for (const sub of ['create', 'list', 'revoke']) expect(help.stdout).toContain(`apikey ${sub}`);
    const missing = await runInProcess(['audit']);
    expect(missing.code).toBe(2);
    expect(missing.error).toMatch(/audit needs a subcommand: verify, show/);
    const unknown = await runInProcess(['keys', 'shred']);
    expect(unknown.code).toBe(2);
    expect(unknown.error).toMatch(/unknown subcommand "shred" of tessera keys/);
  });

  it('the choices the table offers are the registries\' lists (written out so that help loads no crypto)', () => {
    expect([...SIGNING_SUITE_IDS].sort()).toEqual([...SIGNING_SUITES].sort());
    expect([...KEM_SUITE_IDS].sort()).toEqual([...KEM_SUITES].sort());
    expect([...WRAP_KEM_IDS].sort()).toEqual([...WRAP_KEMS].sort());
    expect([...PUBLIC_KEY_FORMAT_IDS]).toEqual([...PUBLIC_KEY_FORMATS]);
    expect(DEFAULT_CLUSTER_FILE).toBe(SDK_DEFAULT_CLUSTER_FILE);
  });

  it('docs/cli.md is exactly what the command table renders (regenerate: npx tsx scripts/gen-cli-docs.ts)', () => {
    const doc = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');
    expect(doc, 'docs/cli.md differs from the command table: run npx tsx scripts/gen-cli-docs.ts').toBe(renderMarkdown());
    // Every command has a section, and the exit statuses are documented.
    for (const c of COMMANDS) expect(doc).toContain(`### \`tessera ${commandName(c)}\``);
    expect(doc).toMatch(/\| 2 \| usage error/);
  });

  it('tessera --help (a child process) lists every command and the exit statuses, exit 0; no arguments: the same on stderr, exit 2', async () => {
    const [help, none] = await Promise.all([tessera(['--help']), tessera([])]);
    expect(help.code).toBe(0);
    for (const c of COMMANDS) expect(help.stdout).toContain(commandName(c));
    expect(help.stdout).toMatch(/^ {2}2 {2}usage error/m);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toBe(help.stdout);
  }, 60_000);

  it('tessera --version prints the version in package.json, exit 0', async () => {
    const r = await tessera(['--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${PACKAGE.version}\n`);
    expect(r.stderr).toBe('');
  }, 60_000);

  it('the version is found by walking up from the module: from sdk/ and from dist/sdk/, past a package.json without a name and version', () => {
    expect(findPackageJson(join(ROOT, 'sdk'))).toMatchObject({ path: join(ROOT, 'package.json'), version: PACKAGE.version });
    expect(findPackageJson(join(ROOT, 'dist', 'sdk', 'bin'))).toMatchObject({ path: join(ROOT, 'package.json'), version: PACKAGE.version });
    const dir = mkdtempSync(join(tmpdir(), 'tessera-version-'));
    try {
      mkdirSync(join(dir, 'pkg', 'dist', 'sdk'), { recursive: true });
      writeFileSync(join(dir, 'pkg', 'package.json'), JSON.stringify({ name: 'x', version: '9.8.7' }));
      writeFileSync(join(dir, 'pkg', 'dist', 'package.json'), JSON.stringify({ type: 'module' }));
      expect(findPackageJson(join(dir, 'pkg', 'dist', 'sdk'))).toEqual({ path: join(dir, 'pkg', 'package.json'), name: 'x', version: '9.8.7' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('exit statuses: 2 for usage errors (named by flag), 1 for operation failures', () => {
  it('usage errors exit 2 with one line naming the flag, before any cluster is read', async () => {
    // No cluster file at all: each of these must fail on the command line alone.
    const env = { TESSERA_CLUSTER: join(tmpdir(), 'tessera-no-such-dir', 'cluster.json') };
    const cases: [string, string[], RegExp][] = [
      ['one player', ['sign', '--key-id', 'k', '--message', '00', '--players', '1'], /^tessera: --players: give at least 2 nodes .*got 1 \(see tessera sign --help\)$/],
      ['a player twice', ['sign', '--key-id', 'k', '--message', '00', '--players', '2,2'], /--players: a node is listed twice/],
      ['unknown option', ['keygen', '--suite', 'ed25519', '--frobnicate'], /^tessera: unknown option --frobnicate \(see tessera keygen --help\)$/],
      ['unknown command', ['frobnicate'], /^tessera: unknown command "frobnicate" \(see tessera --help\)$/],
      ['missing required option', ['sign', '--message', '00'], /^tessera: --key-id is required/],
      ['option without its value', ['sign', '--key-id'], /--key-id needs a value/],
      ['bad hex', ['sign', '--key-id', 'k', '--message', '0xzz'], /--message: expected hex/],
      ['not a number', ['audit', 'show', '--since', 'ten'], /--since: expected a whole number, got "ten"/],
      ['unknown choice', ['public-key', '--key-id', 'k', '--format', 'der'], /--format: unknown format "der" \(expected one of: raw, spki, pem, jwk\)/],
      ['unknown state', ['keys', 'list', '--state', 'gone'], /--state: unknown state "gone"/],
      ['missing argument', ['dev', 'restart-node'], /missing argument I/],
      ['bad duration', ['keygen', '--suite', 'ed25519', '--rotation-period', '30 days'], /--rotation-period: expected a duration/],
    ];
    for (let k = 0; k < cases.length; k += 3) {
      const batch = cases.slice(k, k + 3);
      const results = await Promise.all(batch.map(([, args]) => tessera(args, env)));
      batch.forEach(([what, , pattern], j) => expectUsageError(results[j]!, pattern, what));
    }
  }, 120_000);

  it('an operation that fails exits 1 with one line (code and message): a missing cluster file', async () => {
    const r = await tessera(['keys', 'list', '--json'], { TESSERA_CLUSTER: join(tmpdir(), 'tessera-no-such-dir', 'cluster.json') });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^tessera: NOT_FOUND: cluster file .*not found/);
  }, 60_000);
});
