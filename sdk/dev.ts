/**
 * `tessera dev`: a local cluster on 127.0.0.1 — one coordinator and N node processes.
 *
 * On first start it makes, per node, a KEK file (mode 0600), the node's identity (inside the node's
 * encrypted LevelDB) and a development API key, an admin key of tenant 'default' (so the CLI can also
 * create tenants, API keys and policy); it writes the membership, one config per process and
 * `<data>/cluster.json` (mode 0600) with the endpoints, API keys and each node's identity public key
 * (what `tessera audit verify` checks a node's audit checkpoints against). Started again with the same data
 * dir, it reuses all of that, so every key survives a restart. SIGINT / SIGTERM stop every child.
 *
 * With `tls: true` every listener uses TLS: a self-signed development CA and one certificate per process
 * for 127.0.0.1 / localhost are made in `<data>/tls/` (sdk/dev-certs.ts, needs the `openssl` command),
 * nodes serve https and reach the coordinator over wss:// trusting only that CA, and cluster.json gives
 * each node's `ca` so clients pin it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toHex } from '../core/bytes.js';
import { apiKeyHash } from '../node/config.js';
import { loadOrCreateIdentity } from '../node/store/identity-store.js';
import { createKekFile, readKekFile } from '../node/store/kek.js';
import { ShareStore } from '../node/store/storage.js';
import type { ClusterFile } from './cluster-file.js';
import { ensureCa, ensureServerCert } from './dev-certs.js';

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
  /** TLS on every listener (https API, wss coordinator) with a development CA in <data>/tls/. Default false. */
  tls?: boolean;
  /** Extra environment for every process (e.g. TESSERA_ROTATION_CHECK_MS in tests). */
  env?: Record<string, string>;
  /** Extra environment for one process (0 = coordinator, i = node i), over `env` (e.g. TESSERA_GROUP_BACKEND per node). */
  envFor?: (index: number) => Record<string, string> | undefined;
}

/** Every dev certificate names these; the dev cluster listens on 127.0.0.1 only. */
const DEV_TLS_HOSTS = ['127.0.0.1', 'localhost'];

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

/** The coordinator id an earlier start of this data dir chose, if any. */
function previousCoordinatorId(coordinatorConfig: string): string | undefined {
  if (!existsSync(coordinatorConfig)) return undefined;
  const id: unknown = (JSON.parse(readFileSync(coordinatorConfig, 'utf8')) as { coordinatorId?: unknown }).coordinatorId;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

/** The cluster scheduling secret an earlier start of this data dir wrote into node 1's config, if any. */
function previousScheduleSecret(nodeConfig: string): string | undefined {
  if (!existsSync(nodeConfig)) return undefined;
  const v: unknown = (JSON.parse(readFileSync(nodeConfig, 'utf8')) as { scheduleSecret?: unknown }).scheduleSecret;
  return typeof v === 'string' && /^[0-9a-f]{64}$/.test(v) ? v : undefined;
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

  // TLS material: one CA for the cluster, one certificate per process (kept across restarts).
  let tls: { ca: string; caFile: string; coordinator: { certFile: string; keyFile: string }; nodes: { certFile: string; keyFile: string }[] } | undefined;
  if (o.tls) {
    const tlsDir = join(data, 'tls');
    mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
    chmodSync(tlsDir, 0o700);
    const ca = ensureCa(tlsDir, { commonName: 'Tessera dev CA' });
    tls = {
      ca: readFileSync(ca.certFile, 'utf8'),
      caFile: ca.certFile,
      coordinator: ensureServerCert(ca, tlsDir, 'coordinator', DEV_TLS_HOSTS),
      nodes: Array.from({ length: o.nodes }, (_, k) => ensureServerCert(ca, tlsDir, `node-${k + 1}`, DEV_TLS_HOSTS)),
    };
  }

  const logLevel = o.logLevel ?? 'info';
  const coordinatorConfig = join(data, 'coordinator.json');
  // Each dev cluster's coordinator has its own id, pinned in every node's config: a node signs its
  // authentication only for that coordinator. Kept across restarts of the same data dir.
  const coordinatorId = previousCoordinatorId(coordinatorConfig) ?? `tessera-dev-${randomBytes(8).toString('hex')}`;
  writeFileSync(
    coordinatorConfig,
    JSON.stringify(
      { port: coordinatorPort, host: '127.0.0.1', coordinatorId, membershipFile: membershipPath, logLevel, ...(tls ? { tls: tls.coordinator } : {}) },
      null,
      2,
    ),
  );
  const coordinatorUrl = `${tls ? 'wss' : 'ws'}://127.0.0.1:${coordinatorPort}/nodes`;
  const scheme = tls ? 'https' : 'http';

  // The cluster scheduling secret (node/config.ts scheduleSecret): one per dev cluster, the same in every
  // node's config (mode 0600), kept across restarts of the same data dir.
  const scheduleSecret = previousScheduleSecret(join(data, 'node-1.json')) ?? randomBytes(32).toString('hex');
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
          api: { host: '127.0.0.1', port: nodePorts[i - 1], ...(tls ? { tls: tls.nodes[i - 1] } : {}) },
          coordinatorUrl,
          coordinatorId,
          ...(tls ? { coordinatorCaFile: tls.caFile } : {}),
          membership: members,
          kekFile: join(data, `node-${i}.kek`),
          apiKeys: [{ id: `dev-${i}`, tenant: 'default', keyHash: toHex(apiKeyHash(apiKey)), role: 'admin' }],
          thresholdDefaults: { threshold: o.threshold, parties: o.nodes },
          logLevel,
          scheduleSecret,
        },
        null,
        2,
      ),
    );
    nodeConfigs.push(cfgPath);
    nodes.push({
      index: i,
      url: `${scheme}://127.0.0.1:${nodePorts[i - 1]}`,
      apiKey,
      identityPublicKey: members[i - 1]!.identityPublicKey,
      ...(tls ? { ca: tls.ca } : {}),
    });
  }
  const cluster: ClusterFile = { coordinator: `${scheme}://127.0.0.1:${coordinatorPort}`, threshold: o.threshold, nodes };
  writePrivate(clusterPath, JSON.stringify(cluster, null, 2));
  return { cluster, coordinatorConfig, nodeConfigs };
}

/** GET <url>/ready; resolves with the status code, or 0 if nothing answered. `ca` pins https. */
export function probeReady(url: string, ca?: string | Buffer, timeoutMs = 2000): Promise<number> {
  const target = new URL('/ready', url);
  const lib = target.protocol === 'https:' ? https : http;
  return new Promise((res) => {
    const req = lib.get(target, { timeout: timeoutMs, ...(target.protocol === 'https:' && ca ? { ca } : {}) }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(0));
  });
}

async function waitReady(url: string, ca: string | undefined, child: () => ChildProcess | undefined, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    if (!child()) throw new Error(`the node at ${url} is not running (see the logs folder)`);
    if ((await probeReady(url, ca)) === 200) return;
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
  /** The OS process id of a running process (0 = coordinator, i = node i), e.g. to read its CPU time; undefined when stopped. */
  pid(index: number): number | undefined;
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
      // Compiled (dist/sdk/dev.js): plain node runs dist/<dir>/main.js. From source (tests, tsx): the .ts through tsx.
      const compiled = import.meta.url.endsWith('.js');
      const entry = compiled ? [join(ROOT, script.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', join(ROOT, script)];
      const child = spawn(process.execPath, [...entry, '--config', config], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TESSERA_PARENT_PID: String(process.pid), ...(o.env ?? {}), ...(o.envFor?.(index) ?? {}), ...env },
      });
      // Two sources into one file: neither may end it (stderr can still write after stdout closed).
      child.stdout!.pipe(log, { end: false });
      child.stderr!.pipe(log, { end: false });
      stopping.delete(index);
      children.set(index, child);
      child.once('close', () => log.end());
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
      await Promise.all(cluster.nodes.map((n) => waitReady(n.url, n.ca, () => children.get(n.index), deadline)));
    },
    async stop() {
      await Promise.all([...scripts.keys()].map((i) => dev.kill(i)));
    },
    pid(index) {
      return children.get(index)?.pid;
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
  out(`coordinator  ${cluster.coordinator.replace(/^http/, 'ws')}/nodes`);
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
