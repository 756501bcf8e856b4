/**
 * The `tessera` CLI as a user runs it: a child process (`node --import tsx sdk/main.ts ...`) against
 * a running cluster. --json output is exactly one JSON object with the documented fields; bad input
 * exits non-zero with one line on stderr and no stack trace. `tessera dev` starts a cluster, writes
 * cluster.json (0600), stops every child on SIGINT, and keeps its keys across restarts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterFile } from '../../sdk/cli.js';
import { bytesToHex, hexToBytes, hpkeOpenWithSecret, hpkeSeal, message32, sleep, verifySignature, waitFor } from '../helpers/cluster.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `tessera ARGS` to completion (killed after timeoutMs). */
function tessera(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
  });
}

/** Exactly one line of stdout, which is a JSON object; returns it. */
function oneJsonObject(r: CliResult): Record<string, unknown> {
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(0);
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  expect(lines, `stdout: ${r.stdout}`).toHaveLength(1);
  const obj = JSON.parse(lines[0]!) as unknown;
  expect(obj !== null && typeof obj === 'object' && !Array.isArray(obj)).toBe(true);
  return obj as Record<string, unknown>;
}

/** A failure as the CLI promises it: non-zero exit, nothing on stdout, one stderr line without stack frames. */
function expectCleanFailure(r: CliResult, pattern: RegExp, what: string): void {
  expect(r.code, `${what}: exit code (stderr: ${r.stderr})`).not.toBe(0);
  expect(r.code, `${what}: exited by itself`).not.toBeNull();
  expect(r.stdout, `${what}: stdout`).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, `${what}: exactly one stderr line, got:\n${r.stderr}`).toHaveLength(1);
  expect(lines[0], `${what}: no stack trace`).not.toMatch(/^\s*at\s|\s{2,}at\s\S+\s\(/);
  expect(lines[0], `${what}: message`).toMatch(pattern);
}

// ---------------------------------------------------------------------------------------------

/** PIDs of processes whose command line mentions `needle` (Linux /proc), except `exclude`. */
function processesMentioning(needle: string, exclude: number[] = []): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid || exclude.includes(pid)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle)) out.push(pid);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * One `tessera dev` cluster for the whole file: the client commands run against it, then it is
 * stopped with SIGINT and started again on the same data dir.
 */
describe('tessera dev and the client commands', () => {
  let dir: string;
  let env: Record<string, string>;
  let dev: DevProcess | undefined;
  let cluster: ClusterFile;
  let signingKey: Record<string, unknown>;
  let kemKey: Record<string, unknown>;

  interface DevProcess {
    child: ChildProcess;
    output: () => string;
    exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  }

  /** Start `tessera dev` and resolve once it printed its ready line. */
  async function startDev(): Promise<DevProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', 'dev', '--nodes', '3', '--threshold', '2', '--data', dir, '--port', '0'], {
      cwd: ROOT,
      env: { ...process.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    dev = { child, output: () => out, exit };
    await waitFor(
      `a "ready" line from tessera dev`,
      () => {
        if (child.exitCode !== null) throw new Error(`tessera dev exited early:\n${out}`);
        return out.split('\n').some((l) => /\bready\b/.test(l));
      },
      80_000,
      100,
    );
    return dev;
  }

  /** SIGINT, then check it exited by itself and left no child process and no open node port. */
  async function stopDev(d: DevProcess, nodeUrls: string[]): Promise<void> {
    d.child.kill('SIGINT');
    const { code, signal } = await Promise.race([d.exit, sleep(20_000).then(() => ({ code: -1, signal: null }))]);
    expect(signal, 'tessera dev exits by itself on SIGINT').toBeNull();
    expect(code, 'tessera dev exit code after SIGINT').toBe(0);
    // No child process remains: nothing runs with the data dir on its command line, and no node port answers.
    expect(processesMentioning(dir)).toEqual([]);
    for (const url of nodeUrls) await expect(fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dev-cli-'));
    env = { TESSERA_CLUSTER: join(dir, 'cluster.json') };
    await startDev();
  }, 90_000);

  afterAll(async () => {
    // Whatever happened, leave no process and no data behind.
    if (dev && dev.child.exitCode === null && dev.child.signalCode === null) {
      dev.child.kill('SIGINT');
      await Promise.race([dev.exit, sleep(10_000)]);
    }
    for (const pid of processesMentioning(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('tessera dev writes cluster.json (0600) with 3 nodes and their API keys, and runs a coordinator and 3 nodes', async () => {
    const clusterFile = join(dir, 'cluster.json');
    expect(statSync(clusterFile).mode & 0o777).toBe(0o600);
    cluster = JSON.parse(readFileSync(clusterFile, 'utf8')) as ClusterFile;
    expect(cluster.nodes.map((n) => n.index)).toEqual([1, 2, 3]);
    expect(cluster.threshold).toBe(2);
    for (const n of cluster.nodes) {
      expect(n.apiKey).toMatch(/^\S{16,}$/);
      expect(n.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${n.url}/health`)).status).toBe(200);
    }
    expect(new Set(cluster.nodes.map((n) => n.apiKey)).size).toBe(3);
    // The coordinator and three nodes run as children (their configs live in the data dir).
    expect(processesMentioning(dir, [dev!.child.pid!]).length).toBe(4);
  });

  it('keygen / public-key / sign / decapsulate / refresh --json each print one JSON object with the documented fields', async () => {
    const [ed, kem] = await Promise.all([
      tessera(['keygen', '--suite', 'ed25519', '--key-id', 'cli-ed', '--json'], env),
      tessera(['keygen', '--suite', 'hpke-x25519', '--key-id', 'cli-kem', '--json'], env),
    ]);
    signingKey = oneJsonObject(ed);
    kemKey = oneJsonObject(kem);
    for (const [k, suite, id] of [
      [signingKey, 'ed25519', 'cli-ed'],
      [kemKey, 'hpke-x25519', 'cli-kem'],
    ] as const) {
      expect(Object.keys(k).sort()).toEqual(['keyId', 'publicKey', 'scheme', 'suite', 'version']);
      expect(k).toMatchObject({ keyId: id, version: 1, suite });
      expect(k.publicKey).toMatch(/^[0-9a-f]{64}$/);
    }

    const pub = oneJsonObject(await tessera(['public-key', '--key-id', 'cli-ed', '--json'], env));
    expect(pub).toEqual(signingKey);

    const message = message32('signed from the CLI');
    const signed = oneJsonObject(await tessera(['sign', '--key-id', 'cli-ed', '--message', bytesToHex(message), '--players', '1,3', '--json'], env));
    expect(signed.signature).toMatch(/^[0-9a-f]{128}$/);
    expect(Object.keys(signed)).toContain('signature');
    expect(verifySignature('ed25519', hexToBytes(signed.signature as string), message, hexToBytes(signingKey.publicKey as string))).toBe(true);

    const plaintext = new TextEncoder().encode('sealed for the CLI');
    const sealed = await hpkeSeal('hpke-x25519', hexToBytes(kemKey.publicKey as string), plaintext);
    const decap = oneJsonObject(await tessera(['decapsulate', '--key-id', 'cli-kem', '--enc', bytesToHex(sealed.enc), '--players', '2,3', '--json'], env));
    expect(Object.keys(decap)).toEqual(['sharedSecret', 'version']); // the version used (issue 6)
    expect(bytesToHex(hpkeOpenWithSecret('hpke-x25519', hexToBytes(decap.sharedSecret as string), sealed))).toBe(bytesToHex(plaintext));

    const refreshed = oneJsonObject(await tessera(['refresh', '--key-id', 'cli-ed', '--json'], env));
    expect(refreshed).toEqual({ keyId: 'cli-ed', version: 1, epoch: 1 });
    // Same public key after the refresh.
    expect(oneJsonObject(await tessera(['public-key', '--key-id', 'cli-ed', '--json'], env))).toEqual(signingKey);
  }, 120_000);

  it('bad input exits non-zero with exactly one stderr line and no stack trace', async () => {
    const enc = '11'.repeat(32);
    const cases: [string, string[], RegExp, Record<string, string>?][] = [
      ['unknown key', ['sign', '--key-id', 'no-such-key', '--message', '00', '--json'], /NOT_FOUND.*no-such-key/],
      ['bad hex', ['sign', '--key-id', 'cli-ed', '--message', 'zz12', '--json'], /--message|hex/i],
      ['sign with an hpke key', ['sign', '--key-id', 'cli-kem', '--message', '00', '--json'], /hpke-x25519 key and cannot sign/],
      ['decapsulate with a signing key', ['decapsulate', '--key-id', 'cli-ed', '--enc', enc, '--json'], /ed25519 key and cannot decapsulate/],
      ['threshold above the node count', ['keygen', '--suite', 'ed25519', '--threshold', '4', '--json'], /threshold 4 is above the node count 3/],
      ['unknown suite', ['keygen', '--suite', 'rsa-2048', '--json'], /unknown suite "rsa-2048"/],
      ['unknown flag', ['keygen', '--suite', 'ed25519', '--frobnicate', '--json'], /--frobnicate/],
      ['missing cluster file', ['public-key', '--key-id', 'cli-ed', '--json'], /cluster file .*not found/, { TESSERA_CLUSTER: join(dir, 'missing', 'cluster.json') }],
    ];
    // Two at a time: each is a fresh node process (module loading dominates). The last one is the
    // unknown command: a usage error, exit 2, pointing at --help (test/integration/cli-help.test.ts has the rest).
    const argsList = [...cases.map(([, args, , extraEnv]) => [args, extraEnv] as const), [['frobnicate'], undefined] as const];
    const results: CliResult[] = [];
    for (let k = 0; k < argsList.length; k += 2) {
      results.push(...(await Promise.all(argsList.slice(k, k + 2).map(([args, extraEnv]) => tessera([...args], { ...env, ...extraEnv })))));
    }
    cases.forEach(([what, , pattern], k) => expectCleanFailure(results[k]!, pattern, what));
    const unknown = results[cases.length]!;
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('tessera: unknown command "frobnicate" (see tessera --help)\n');
  }, 120_000);

  it('SIGINT stops every child; started again with the same data dir, tessera dev keeps its keys', async () => {
    const first = dev!;
    await stopDev(first, cluster.nodes.map((n) => n.url));
    expect(first.output()).toMatch(/stopping/);

    const second = await startDev();
    const again = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    expect(again.nodes.map((n) => n.apiKey)).toEqual(cluster.nodes.map((n) => n.apiKey));
    expect(oneJsonObject(await tessera(['public-key', '--key-id', 'cli-ed', '--json'], env))).toEqual(signingKey);
    expect(oneJsonObject(await tessera(['public-key', '--key-id', 'cli-kem', '--json'], env))).toEqual(kemKey);
    await stopDev(second, again.nodes.map((n) => n.url));
  }, 120_000);
});
