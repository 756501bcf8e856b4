/**
 * The `tessera` CLI as a user runs it: a child process (`node --import tsx sdk/main.ts ...`) against
 * a running cluster. --json output is exactly one JSON object with the documented fields; bad input
 * exits non-zero with one line on stderr and no stack trace. `tessera dev` starts a cluster, writes
 * cluster.json (0600), stops every child on SIGINT, and keeps its keys across restarts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterFile } from '../../sdk/cli.js';
import { bytesToHex, hexToBytes, hpkeOpenWithSecret, hpkeSeal, message32, sleep, startTestCluster, verifySignature, waitFor, type TestCluster } from '../helpers/cluster.js';

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

describe('client commands against a running cluster', () => {
  let tc: TestCluster;
  let env: Record<string, string>;
  let signingKey: Record<string, unknown>;
  let kemKey: Record<string, unknown>;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    env = { TESSERA_CLUSTER: tc.clusterFile };
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
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
      expect(Object.keys(k).sort()).toEqual(['keyId', 'publicKey', 'suite', 'version']);
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
    expect(Object.keys(decap)).toEqual(['sharedSecret']);
    expect(bytesToHex(hpkeOpenWithSecret('hpke-x25519', hexToBytes(decap.sharedSecret as string), sealed))).toBe(bytesToHex(plaintext));

    const refreshed = oneJsonObject(await tessera(['refresh', '--key-id', 'cli-ed', '--json'], env));
    expect(refreshed).toEqual({ keyId: 'cli-ed', epoch: 1 });
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
      ['missing cluster file', ['public-key', '--key-id', 'cli-ed', '--json'], /cluster file .*not found/, { TESSERA_CLUSTER: join(tc.dir, 'missing', 'cluster.json') }],
    ];
    // Two at a time: each is a fresh node process (tsx start-up dominates).
    const results: CliResult[] = [];
    for (let k = 0; k < cases.length; k += 2) {
      results.push(...(await Promise.all(cases.slice(k, k + 2).map(([, args, , extraEnv]) => tessera(args, { ...env, ...extraEnv })))));
    }
    cases.forEach(([what, , pattern], k) => expectCleanFailure(results[k]!, pattern, what));
    // An unknown command is the one error that adds the usage text after its one-line message.
    const unknown = await tessera(['frobnicate'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split('\n')[0]).toBe('tessera: unknown command "frobnicate"');
    expect(unknown.stderr).toMatch(/^usage:$/m);
    expect(unknown.stderr).not.toMatch(/^\s+at\s/m);
    // None of them created anything.
    await expect(tc.cluster.getKey('no-such-key')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// tessera dev

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

describe('tessera dev', () => {
  let dir: string | undefined;
  let devProcess: ChildProcess | undefined;

  afterEach(async () => {
    // Whatever happened, leave no process and no data behind.
    if (devProcess && devProcess.exitCode === null && devProcess.signalCode === null) {
      const exited = new Promise((r) => devProcess!.once('exit', r));
      devProcess.kill('SIGINT');
      await Promise.race([exited, sleep(10_000)]);
    }
    if (dir) {
      for (const pid of processesMentioning(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await rm(dir, { recursive: true, force: true });
    }
    devProcess = undefined;
    dir = undefined;
  });

  /** Start `tessera dev` and resolve once it printed its ready line. */
  async function startDev(data: string): Promise<{ child: ChildProcess; output: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', 'dev', '--nodes', '3', '--threshold', '2', '--data', data, '--port', '0'], {
      cwd: ROOT,
      env: { ...process.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    devProcess = child;
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    await waitFor(
      `a "ready" line from tessera dev`,
      () => {
        if (child.exitCode !== null) throw new Error(`tessera dev exited early:\n${out}`);
        return out.split('\n').some((l) => /\bready\b/.test(l));
      },
      90_000,
      100,
    );
    return { child, output: () => out, exit };
  }

  async function stopDev(dev: { child: ChildProcess; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }, nodeUrls: string[]): Promise<void> {
    dev.child.kill('SIGINT');
    const { code, signal } = await Promise.race([dev.exit, sleep(20_000).then(() => ({ code: -1, signal: null }))]);
    expect(signal, 'tessera dev exits by itself on SIGINT').toBeNull();
    expect(code, 'tessera dev exit code after SIGINT').toBe(0);
    // No child process remains: nothing runs with the data dir on its command line, and no node port answers.
    expect(processesMentioning(dir!)).toEqual([]);
    for (const url of nodeUrls) await expect(fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  }

  it('starts a cluster, writes cluster.json (0600), stops every child on SIGINT, and keeps its keys across a restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dev-cli-'));
    const first = await startDev(dir);

    const clusterFile = join(dir, 'cluster.json');
    expect(statSync(clusterFile).mode & 0o777).toBe(0o600);
    const cluster = JSON.parse(readFileSync(clusterFile, 'utf8')) as ClusterFile;
    expect(cluster.nodes.map((n) => n.index)).toEqual([1, 2, 3]);
    expect(cluster.threshold).toBe(2);
    for (const n of cluster.nodes) {
      expect(n.apiKey).toMatch(/^\S{16,}$/);
      expect(n.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${n.url}/health`)).status).toBe(200);
    }
    expect(new Set(cluster.nodes.map((n) => n.apiKey)).size).toBe(3);
    // The coordinator and three nodes run as children (their configs live in the data dir).
    expect(processesMentioning(dir, [first.child.pid!]).length).toBe(4);

    const env = { TESSERA_CLUSTER: clusterFile };
    const made = oneJsonObject(await tessera(['keygen', '--suite', 'secp256k1', '--key-id', 'survives', '--json'], env));
    await stopDev(first, cluster.nodes.map((n) => n.url));

    const second = await startDev(dir);
    const again = JSON.parse(readFileSync(clusterFile, 'utf8')) as ClusterFile;
    expect(again.nodes.map((n) => n.apiKey)).toEqual(cluster.nodes.map((n) => n.apiKey));
    const kept = oneJsonObject(await tessera(['public-key', '--key-id', 'survives', '--json'], env));
    expect(kept).toEqual(made);
    await stopDev(second, again.nodes.map((n) => n.url));
    expect(second.output()).toMatch(/stopping/);
  }, 180_000);
});
