/**
 * `tessera dev`: a local cluster on 127.0.0.1 — one coordinator and N node processes.
 *
 * On first start it makes, per node, a KEK file (mode 0600), the node's identity (inside the node's
 * encrypted LevelDB) and a development API key; it writes the membership, one config per process and
 * `<data>/cluster.json` (mode 0600) with the endpoints and API keys. Started again with the same data
 * dir, it reuses all of that, so every key survives a restart. SIGINT / SIGTERM stop every child.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toHex } from '../core/bytes.js';
import { apiKeyHash } from '../node/config.js';
import { loadOrCreateIdentity } from '../node/identity-store.js';
import { createKekFile, readKekFile } from '../node/kek.js';
import { ShareStore } from '../node/storage.js';
import type { ClusterFile } from './cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface DevOptions {
  nodes: number;
  threshold: number;
  dataDir: string;
  /** Coordinator port; nodes use the ports after it. 0 picks free ports. */
  port: number;
  logLevel?: string;
  /** Where progress lines go (default stdout). */
  out?: (line: string) => void;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

function writePrivate(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Prepare the data dir (idempotent) and return the cluster file contents. */
export async function prepareDev(o: DevOptions): Promise<{ cluster: ClusterFile; coordinatorConfig: string; nodeConfigs: string[] }> {
  const data = resolve(o.dataDir);
  mkdirSync(data, { recursive: true, mode: 0o700 });
  chmodSync(data, 0o700);
  mkdirSync(join(data, 'logs'), { recursive: true, mode: 0o700 });
  const clusterPath = join(data, 'cluster.json');
  const previous: ClusterFile | undefined = existsSync(clusterPath) ? JSON.parse(readFileSync(clusterPath, 'utf8')) : undefined;
  if (previous && previous.nodes.length !== o.nodes) {
    throw new Error(`${o.dataDir} holds a ${previous.nodes.length}-node cluster; use --nodes ${previous.nodes.length} or another --data`);
  }

  const coordinatorPort = o.port === 0 ? await freePort() : o.port;
  const nodePorts: number[] = [];
  for (let i = 1; i <= o.nodes; i++) nodePorts.push(o.port === 0 ? await freePort() : o.port + i);

  const members: { index: number; identityPublicKey: string }[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const kekPath = join(data, `node-${i}.kek`);
    if (!existsSync(kekPath)) await createKekFile(kekPath);
    const kek = await readKekFile(kekPath);
    const store = await ShareStore.open({ dataDir: join(data, `node-${i}`), kek, nodeIndex: i });
    kek.fill(0);
    try {
      const keys = await loadOrCreateIdentity(store);
      members.push({ index: i, identityPublicKey: toHex(keys.identity.publicKey) });
    } finally {
      await store.close();
    }
  }
  const membershipPath = join(data, 'membership.json');
  writeFileSync(membershipPath, JSON.stringify({ nodes: members }, null, 2));

  const logLevel = o.logLevel ?? 'info';
  const coordinatorConfig = join(data, 'coordinator.json');
  writeFileSync(
    coordinatorConfig,
    JSON.stringify({ port: coordinatorPort, host: '127.0.0.1', membershipFile: membershipPath, logLevel }, null, 2),
  );
  const coordinatorUrl = `ws://127.0.0.1:${coordinatorPort}/nodes`;

  const nodes: ClusterFile['nodes'] = [];
  const nodeConfigs: string[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const apiKey = previous?.nodes.find((n) => n.index === i)?.apiKey ?? `tsk_dev_${i}_${randomBytes(24).toString('hex')}`;
    const cfgPath = join(data, `node-${i}.json`);
    writePrivate(
      cfgPath,
      JSON.stringify(
        {
          index: i,
          dataDir: join(data, `node-${i}`),
          api: { host: '127.0.0.1', port: nodePorts[i - 1] },
          coordinatorUrl,
          membership: members,
          kekFile: join(data, `node-${i}.kek`),
          apiKeys: [{ id: `dev-${i}`, tenant: 'default', keyHash: toHex(apiKeyHash(apiKey)) }],
          thresholdDefaults: { threshold: o.threshold, parties: o.nodes },
          logLevel,
        },
        null,
        2,
      ),
    );
    nodeConfigs.push(cfgPath);
    nodes.push({ index: i, url: `http://127.0.0.1:${nodePorts[i - 1]}`, apiKey });
  }
  const cluster: ClusterFile = { coordinator: `http://127.0.0.1:${coordinatorPort}`, threshold: o.threshold, nodes };
  writePrivate(clusterPath, JSON.stringify(cluster, null, 2));
  return { cluster, coordinatorConfig, nodeConfigs };
}

async function waitReady(url: string, child: () => ChildProcess | undefined, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    if (!child()) throw new Error(`the node at ${url} is not running (see the logs folder)`);
    try {
      const r = await fetch(`${url}/ready`);
      if (r.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${url} did not become ready in time (see the logs folder)`);
}

export interface DevCluster {
  readonly cluster: ClusterFile;
  readonly dataDir: string;
  /** Resolves when every node answers /ready. */
  ready(timeoutMs?: number): Promise<void>;
  /** Stop one process (node index, or 0 for the coordinator) with a signal; resolves when it exited. */
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Start a stopped process again on the same ports and data, with extra environment if given. */
  start(index: number, env?: Record<string, string>): void;
  /** Stop everything (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Called when a child exits that nobody asked to stop. */
  onUnexpectedExit?: (index: number, code: number | null, signal: NodeJS.Signals | null) => void;
}

/** Start a coordinator and the node processes; the caller owns their lifetime. */
export async function startDevCluster(o: DevOptions): Promise<DevCluster> {
  const { cluster, coordinatorConfig, nodeConfigs } = await prepareDev(o);
  const data = resolve(o.dataDir);
  const children = new Map<number, ChildProcess>();
  const stopping = new Set<number>();
  const scripts = new Map<number, [string, string, string]>([
    [0, ['coordinator', 'coordinator/main.ts', coordinatorConfig]],
    ...nodeConfigs.map((cfg, i) => [i + 1, [`node-${i + 1}`, 'node/main.ts', cfg]] as [number, [string, string, string]]),
  ]);
  const dev: DevCluster = {
    cluster,
    dataDir: data,
    start(index, env = {}) {
      const [name, script, config] = scripts.get(index)!;
      const log = createWriteStream(join(data, 'logs', `${name}.log`), { flags: 'a', mode: 0o600 });
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, script), '--config', config], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
      });
      child.stdout!.pipe(log);
      child.stderr!.pipe(log);
      stopping.delete(index);
      children.set(index, child);
      child.once('exit', (code, signal) => {
        if (children.get(index) === child) children.delete(index);
        if (!stopping.has(index)) dev.onUnexpectedExit?.(index, code, signal);
      });
    },
    kill(index, signal = 'SIGTERM') {
      const c = children.get(index);
      stopping.add(index);
      if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
      return new Promise<void>((res) => {
        const t = setTimeout(() => c.kill('SIGKILL'), 5000);
        c.once('exit', () => (clearTimeout(t), res()));
        c.kill(signal);
      });
    },
    async ready(timeoutMs = 90_000) {
      const deadline = Date.now() + timeoutMs;
      await Promise.all(cluster.nodes.map((n) => waitReady(n.url, () => children.get(n.index), deadline)));
    },
    async stop() {
      await Promise.all([...scripts.keys()].map((i) => dev.kill(i)));
    },
  };
  for (const i of scripts.keys()) dev.start(i);
  return dev;
}

/** Run the cluster until SIGINT/SIGTERM. Resolves with the process exit code. */
export async function runDev(o: DevOptions): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const dev = await startDevCluster(o);
  const { cluster } = dev;
  out(`coordinator  ${cluster.coordinator.replace('http', 'ws')}/nodes`);
  for (const n of cluster.nodes) out(`node ${n.index}       ${n.url}`);
  out(`cluster file ${join(dev.dataDir, 'cluster.json')}`);
  return new Promise<number>((resolveExit) => {
    let done = false;
    const finish = async (code: number, line?: string) => {
      if (done) return;
      done = true;
      if (line) out(line);
      await dev.stop();
      resolveExit(code);
    };
    dev.onUnexpectedExit = (index, code, signal) =>
      void finish(1, `tessera dev: ${index === 0 ? 'the coordinator' : `node ${index}`} exited unexpectedly (${signal ?? code}); stopping (see ${join(dev.dataDir, 'logs')})`);
    process.once('SIGINT', () => void finish(0, 'tessera dev: stopping'));
    process.once('SIGTERM', () => void finish(0, 'tessera dev: stopping'));
    dev.ready().then(
      () => out(`tessera dev: ready — ${o.nodes} nodes, threshold ${o.threshold}`),
      (e: Error) => void finish(1, `tessera dev: ${e.message}`),
    );
  });
}
