/**
 * `tessera dev` under failure and at start-up (issue 11, items 4 and 5), with the real `tessera dev`
 * process: its start-up steps, a node killed behind its back (reported; the other two keep signing;
 * `requestDevRestart` brings it back), a busy port refused up front with its number, and the errors of
 * a restart request that cannot be served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Cluster, NodeClient } from '../../sdk/client.js';
import { readClusterFile } from '../../sdk/cluster-file.js';
import { DEV_PROCESS_FILE, requestDevRestart } from '../../sdk/dev.js';
import { tessera } from '../helpers/cli.js';
import { hexToBytes, message32, rejectionOf, sleep, verifySignature, waitFor } from '../helpers/cluster.js';

const ROOT = resolve(import.meta.dirname, '../..');

function processesMentioning(text: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(text) && !l.includes('ps -eo'));
}

interface DevProcess {
  child: ChildProcess;
  /** stdout and stderr in the order they arrived. */
  output: () => string;
  stdout: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnDev(args: string[], env: Record<string, string> = {}): DevProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', 'dev', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let all = '';
  let out = '';
  child.stdout!.on('data', (c: Buffer) => ((all += c.toString()), (out += c.toString())));
  child.stderr!.on('data', (c: Buffer) => (all += c.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, output: () => all, stdout: () => out, exit };
}

/** Stop a dev process (SIGINT, then SIGKILL) and wait until nothing mentioning `dir` runs. */
async function stopDev(d: DevProcess | undefined, dir: string): Promise<void> {
  if (d && d.child.exitCode === null && d.child.signalCode === null) {
    d.child.kill('SIGINT');
    const r = await Promise.race([d.exit, sleep(20_000).then(() => undefined)]);
    if (!r) d.child.kill('SIGKILL');
  }
  // Children exit by themselves once their parent is gone (runtime/parent-watch.ts).
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && processesMentioning(dir).length > 0) await sleep(250);
}

function devProcessFile(dir: string): { pid: number; processes: { index: number; pid: number | null }[] } {
  return JSON.parse(readFileSync(join(dir, DEV_PROCESS_FILE), 'utf8'));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('tessera dev: a node that dies, and restart-node', () => {
  let dir: string;
  let dev: DevProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dev-resilience-'));
    dev = spawnDev(['--nodes', '3', '--threshold', '2', '--data', dir, '--port', '0']);
    await waitFor(
      'the ready line of tessera dev',
      () => {
        if (dev!.child.exitCode !== null) throw new Error(`tessera dev exited early:\n${dev!.output()}`);
        return /tessera dev: ready — 3 nodes, threshold 2/.test(dev!.stdout());
      },
      85_000,
      100,
    );
  }, 90_000);

  afterAll(async () => {
    await stopDev(dev, dir);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('prints its start-up steps as they happen, each before the ready line', () => {
    const out = dev!.output();
    const ready = out.indexOf('tessera dev: ready');
    const steps = [
      'tessera dev: making 3 node identities and key-encryption keys (first start of this data dir)',
      'tessera dev: started the coordinator and 3 nodes',
      'tessera dev: coordinator up',
      'tessera dev: node 1 up',
      'tessera dev: node 2 up',
      'tessera dev: node 3 up',
    ];
    for (const s of steps) {
      expect(out, s).toContain(s);
      expect(out.indexOf(s), `${s} comes before the ready line`).toBeLessThan(ready);
    }
    // The step lines are plain lines (stderr is not a terminal here: no transient progress line).
    expect(out).not.toContain('\r');
  });

  it('writes its control file with mode 0600 while it runs', () => {
    const file = join(dir, DEV_PROCESS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const info = devProcessFile(dir);
    expect(info.pid).toBe(dev!.child.pid);
    expect(info.processes.map((p) => p.index)).toEqual([0, 1, 2, 3]);
    for (const p of info.processes) expect(p.pid !== null && alive(p.pid)).toBe(true);
  });

  it('reports a killed node and keeps running; players 2,3 sign; requestDevRestart brings node 1 back and players 1,2 sign', async () => {
    const file = readClusterFile(join(dir, 'cluster.json'));
    const clusterOf = () =>
      new Cluster(
        file.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index })),
        { threshold: file.threshold, presign: { auto: false } },
      );
    const cluster = clusterOf();
    const key = await cluster.keygen({ suite: 'ed25519', keyId: 'resilience' });
    const publicKey = hexToBytes(key.publicKey);

    const node1 = devProcessFile(dir).processes.find((p) => p.index === 1)!.pid!;
    process.kill(node1, 'SIGKILL');
    const report = `tessera dev: node 1 exited (signal SIGKILL); the cluster keeps running with 2 nodes; restart it with: tessera dev restart-node 1 --data ${dir}`;
    await waitFor('the report of node 1 exiting', () => dev!.output().includes(report), 20_000, 50);
    expect(dev!.child.exitCode, 'tessera dev keeps running').toBeNull();
    expect(devProcessFile(dir).processes.find((p) => p.index === 1)!.pid).toBeNull();

    const m1 = message32('while node 1 is down');
    const s1 = await cluster.sign({ keyId: 'resilience', message: m1, players: [2, 3] });
    expect(verifySignature('ed25519', hexToBytes(s1.signature), m1, publicKey)).toBe(true);

    await requestDevRestart(dir, 1);
    expect(dev!.output()).toContain('tessera dev: node 1 is up again');
    const restarted = devProcessFile(dir).processes.find((p) => p.index === 1)!.pid!;
    expect(restarted).not.toBe(node1);
    expect(alive(restarted)).toBe(true);

    // A fresh SDK cluster, as an application started after the restart would make.
    const m2 = message32('node 1 is back');
    const s2 = await clusterOf().sign({ keyId: 'resilience', message: m2, players: [1, 2] });
    expect(verifySignature('ed25519', hexToBytes(s2.signature), m2, publicKey)).toBe(true);
  }, 120_000);

  it('restarts a node that still runs (stopped first), as `tessera dev restart-node I` does', async () => {
    const before = devProcessFile(dir).processes.find((p) => p.index === 3)!.pid!;
    const r = await tessera(['dev', 'restart-node', '3', '--data', dir], {}, 100_000);
    expect(r.code, r.stderr).toBe(0);
    expect(dev!.output()).toContain(`tessera dev: restarting node 3 (it was still running, pid ${before}): stopping it first`);
    const after = devProcessFile(dir).processes.find((p) => p.index === 3)!.pid!;
    expect(after).not.toBe(before);
    expect(alive(before)).toBe(false);
    expect(alive(after)).toBe(true);
  }, 120_000);

  it('refuses a restart of a node the cluster does not have, and a restart where no dev runs', async () => {
    const noSuchNode = await rejectionOf(requestDevRestart(dir, 4));
    expect(noSuchNode.message).toBe(`there is no node 4: the tessera dev of ${dir} runs nodes 1..3`);
    const empty = await mkdtemp(join(tmpdir(), 'tessera-dev-none-'));
    try {
      const none = await rejectionOf(requestDevRestart(empty, 1));
      expect(none.message).toMatch(/^no tessera dev is running with data dir .*; start one with: tessera dev --data /);
      const cli = await tessera(['dev', 'restart-node', '1', '--data', empty]);
      expect(cli.code).toBe(1);
      expect(cli.stderr.trim()).toBe(`tessera: ${none.message}`);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses a second tessera dev on the same data dir (exit 2, nothing started)', async () => {
    const running = processesMentioning(dir).length;
    const r = await tessera(['dev', '--data', dir, '--port', '0'], {}, 60_000);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`tessera: a tessera dev (pid ${dev!.child.pid}) is running with ${dir}; stop it first, or use another --data`);
    expect(r.stdout).not.toMatch(/\bready\b/);
    expect(processesMentioning(dir).length).toBe(running);
  }, 60_000);

  it('stops every child on SIGINT and removes its control file', async () => {
    const pids = devProcessFile(dir).processes.map((p) => p.pid!);
    dev!.child.kill('SIGINT');
    const { code, signal } = await Promise.race([dev!.exit, sleep(20_000).then(() => ({ code: -1, signal: null }))]);
    expect(signal).toBeNull();
    expect(code).toBe(0);
    for (const pid of pids) expect(alive(pid), `child ${pid} stopped`).toBe(false);
    expect(existsSync(join(dir, DEV_PROCESS_FILE))).toBe(false);
  }, 30_000);
});

describe('tessera dev: the coordinator exiting', () => {
  let dir: string;
  let dev: DevProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dev-coordinator-'));
    dev = spawnDev(['--nodes', '2', '--threshold', '2', '--data', dir, '--port', '0']);
    await waitFor(
      'the ready line of tessera dev',
      () => {
        if (dev!.child.exitCode !== null) throw new Error(`tessera dev exited early:\n${dev!.output()}`);
        return /tessera dev: ready/.test(dev!.stdout());
      },
      85_000,
      100,
    );
  }, 90_000);

  afterAll(async () => {
    await stopDev(dev, dir);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('stops every node and says why (exit 1), leaving no process and no control file', async () => {
    const info = devProcessFile(dir);
    const coordinator = info.processes.find((p) => p.index === 0)!.pid!;
    process.kill(coordinator, 'SIGKILL');
    const { code } = await Promise.race([dev!.exit, sleep(30_000).then(() => ({ code: -1 }))]);
    expect(code).toBe(1);
    expect(dev!.output()).toContain('tessera dev: the coordinator exited (signal SIGKILL)');
    expect(dev!.output()).toContain('stopping every node, since none can work without it');
    for (const p of info.processes) expect(alive(p.pid!), `process ${p.index} stopped`).toBe(false);
    expect(existsSync(join(dir, DEV_PROCESS_FILE))).toBe(false);
  }, 60_000);
});

describe('tessera dev: a node that cannot start', () => {
  let dir: string;
  let dev: DevProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dev-nostart-'));
  });

  afterAll(async () => {
    await stopDev(dev, dir);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('is named with the cause from its log (not only the log path), everything stops, exit 1, no ready line', async () => {
    // Every node refuses this test-only setting at start, with one line on stderr (node/main.ts).
    dev = spawnDev(['--nodes', '2', '--threshold', '2', '--data', dir, '--port', '0'], { TESSERA_FAULT_POINTS: 'no-such-point' });
    const { code } = await Promise.race([dev.exit, sleep(85_000).then(() => ({ code: -1 }))]);
    expect(code, dev.output()).toBe(1);
    expect(dev.output()).toMatch(/tessera dev: node [12] exited while starting: tessera-node: config: TESSERA_FAULT_POINTS unknown fault point no-such-point \(log: .*node-[12]\.log\); stopping/);
    expect(dev.output()).not.toMatch(/\bready\b/);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && processesMentioning(dir).length > 0) await sleep(250);
    expect(processesMentioning(dir)).toEqual([]);
    expect(existsSync(join(dir, DEV_PROCESS_FILE))).toBe(false);
  }, 90_000);
});

/** A port P with P..P+count-1 all free on 127.0.0.1 (a dev cluster with --port P uses P and the ports after it). */
async function freeRun(count: number): Promise<number> {
  const bindable = (port: number) =>
    new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => res(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let k = 0; k < count && ok; k++) ok = await bindable(base + k);
    if (ok) return base;
  }
  throw new Error('no run of free ports found');
}

function listening(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}

describe('tessera dev: a busy port', () => {
  let dir: string;
  let blocker: Server | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dev-busy-'));
  });

  afterAll(async () => {
    await new Promise<void>((r) => (blocker ? blocker.close(() => r()) : r()));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && processesMentioning(dir).length > 0) await sleep(250);
    await rm(dir, { recursive: true, force: true });
  });

  it('is refused up front with its number: exit 2, no ready line, nothing left running', async () => {
    const base = await freeRun(4);
    const busy = base + 2; // node 2's port
    blocker = createServer();
    await new Promise<void>((r) => blocker!.listen(busy, '127.0.0.1', () => r()));

    const r = await tessera(['dev', '--nodes', '3', '--threshold', '2', '--data', dir, '--port', String(base)], {}, 60_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`tessera: port ${busy} is in use (wanted for node 2; nothing was started)`);
    expect(r.stdout).not.toMatch(/\bready\b/);
    expect(processesMentioning(dir)).toEqual([]);
    for (const port of [base, base + 1, base + 3]) expect(await listening(port), `port ${port} is not listening`).toBe(false);
    expect(existsSync(join(dir, DEV_PROCESS_FILE))).toBe(false);
  }, 90_000);
});
