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

async function waitReady(url: string, child: ChildProcess, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`a node process exited with status ${child.exitCode} (see the logs folder)`);
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

/** Run the cluster until SIGINT/SIGTERM. Resolves with the process exit code. */
export async function runDev(o: DevOptions): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const { cluster, coordinatorConfig, nodeConfigs } = await prepareDev(o);
  const data = resolve(o.dataDir);
  const children: ChildProcess[] = [];
  const launch = (name: string, script: string, config: string) => {
    const log = createWriteStream(join(data, 'logs', `${name}.log`), { flags: 'a', mode: 0o600 });
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, script), '--config', config], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env },
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    children.push(child);
    return child;
  };

  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((res) => {
            if (c.exitCode !== null || c.signalCode !== null) return res();
            const t = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => (clearTimeout(t), res()));
            c.kill('SIGTERM');
          }),
      ),
    );
  };

  return new Promise<number>((resolveExit) => {
    const finish = async (code: number) => {
      if (stopping) return;
      await stopAll();
      resolveExit(code);
    };
    process.once('SIGINT', () => void finish(0).then(() => out('tessera dev: stopped')));
    process.once('SIGTERM', () => void finish(0).then(() => out('tessera dev: stopped')));

    (async () => {
      const coordinator = launch('coordinator', 'coordinator/main.ts', coordinatorConfig);
      out(`coordinator  ${cluster.coordinator.replace('http', 'ws')}/nodes`);
      const nodes = nodeConfigs.map((cfg, i) => launch(`node-${i + 1}`, 'node/main.ts', cfg));
      for (const n of cluster.nodes) out(`node ${n.index}       ${n.url}`);
      out(`cluster file ${join(data, 'cluster.json')}`);
      for (const c of [coordinator, ...nodes]) {
        c.once('exit', (code, signal) => {
          if (!stopping) {
            out(`tessera dev: a child process exited unexpectedly (${signal ?? code}); stopping (see ${join(data, 'logs')})`);
            void finish(1);
          }
        });
      }
      const deadline = Date.now() + 90_000;
      await Promise.all(cluster.nodes.map((n, i) => waitReady(n.url, nodes[i]!, deadline)));
      out(`tessera dev: ready — ${o.nodes} nodes, threshold ${o.threshold}`);
    })().catch((e: Error) => {
      out(`tessera dev: ${e.message}`);
      void finish(1);
    });
  });
}
