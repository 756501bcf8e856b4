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
 *
 * Failure (issue 11, item 5):
 * - Every port the cluster will use is bound once on 127.0.0.1 before anything is spawned; a busy one
 *   is refused with its number (DevPortInUseError; `tessera dev` exits 2 and starts nothing).
 * - A node counts as up only when its /ready answers 200 and its /v1/node, asked with the API key this
 *   dev wrote, names the identity key this dev made for it: a port answered by another process (another
 *   cluster, a stale node) is never taken for ours.
 * - After start-up, a node that exits is reported and the others keep running; `tessera dev
 *   restart-node I` (requestDevRestart) asks the running dev, through a control endpoint on 127.0.0.1
 *   whose port and random token are in `<data>/dev-process.json` (mode 0600, removed at exit), to start
 *   it again with the same config and data. A node that is still running is restarted anyway (stopped,
 *   then started): a hung node is exactly what one wants to restart. The coordinator exiting stops
 *   everything: no node can work without it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, chmodSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeInfo } from '../contract/http.js';
import { toHex } from '../core/bytes.js';
import { DEFAULT_DEV_DATA_DIR } from './cli/choices.js';
import { UsageError } from './cli/spec.js';
import type { ClusterFile } from './cluster-file.js';
import { ensureCa, ensureServerCert } from './dev-certs.js';
import { requestJson } from './http.js';
import { startProgress, type Progress } from './progress.js';

/** The --data flag that names `dataDir` in a suggested command (none for the default dir). */
const dataFlagOf = (dataDir: string): string => (dataDir === DEFAULT_DEV_DATA_DIR ? '' : ` --data ${dataDir}`);

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface DevOptions {
  nodes: number;
  threshold: number;
  dataDir: string;
  /** Coordinator port; nodes use the ports after it. 0 picks free ports. */
  port: number;
  logLevel?: string;
  /** Where the endpoints and the `ready` line go (default stdout). */
  out?: (line: string) => void;
  /** Where start-up steps and reports of exited nodes go, one plain line each (runDev; default stderr). */
  err?: (line: string) => void;
  /** Called with each start-up step as it happens (prepareDev, startDevCluster; runDev prints them). */
  onStep?: (step: string) => void;
  /** TLS on every listener (https API, wss coordinator) with a development CA in <data>/tls/. Default false. */
  tls?: boolean;
  /** Extra environment for every process (e.g. TESSERA_ROTATION_CHECK_MS in tests). */
  env?: Record<string, string>;
  /** Extra environment for one process (0 = coordinator, i = node i), over `env` (e.g. TESSERA_GROUP_BACKEND per node). */
  envFor?: (index: number) => Record<string, string> | undefined;
}

/** Every dev certificate names these; the dev cluster listens on 127.0.0.1 only. */
const DEV_TLS_HOSTS = ['127.0.0.1', 'localhost'];

/** The running dev's control endpoint, token and process ids (mode 0600, removed at exit). */
export const DEV_PROCESS_FILE = 'dev-process.json';

/** A port the cluster needs is taken (by another program, or a cluster still running). Nothing was started. */
export class DevPortInUseError extends Error {
  constructor(
    readonly port: number,
    /** What the port was for: "the coordinator" or "node I". */
    readonly wantedFor: string,
    reason: 'in use' | 'not allowed' = 'in use',
  ) {
    super(
      reason === 'in use'
        ? `port ${port} is in use (wanted for ${wantedFor}; nothing was started): stop what listens there, or pick another --port (--port 0 picks free ports)`
        : `port ${port} cannot be used (wanted for ${wantedFor}; permission denied; nothing was started): pick a port from 1024, or --port 0 for free ports`,
    );
    this.name = 'DevPortInUseError';
  }
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

/** Bind `port` on 127.0.0.1 and let it go: resolves when that works, else with the bind error's code. */
function tryBind(port: number): Promise<string | undefined> {
  return new Promise((res) => {
    const s = createServer();
    s.unref();
    s.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'EADDRINUSE'));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => res(undefined)));
  });
}

/** Refuse up front, with its number, a port that is taken (before any process is spawned). */
export async function assertPortsFree(wanted: readonly { port: number; wantedFor: string }[]): Promise<void> {
  for (const w of wanted) {
    const code = await tryBind(w.port);
    if (code === 'EACCES') throw new DevPortInUseError(w.port, w.wantedFor, 'not allowed');
    if (code !== undefined) throw new DevPortInUseError(w.port, w.wantedFor);
  }
}

/** The ports of a cluster file, with what each is for. */
function clusterPorts(cluster: ClusterFile): { port: number; wantedFor: string }[] {
  return [
    { port: Number(new URL(cluster.coordinator).port), wantedFor: 'the coordinator' },
    ...cluster.nodes.map((n) => ({ port: Number(new URL(n.url).port), wantedFor: `node ${n.index}` })),
  ];
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

/** The hash an earlier start wrote for the dev API key `id` into a node's config (the key itself is unchanged). */
function previousKeyHash(nodeConfig: string, id: string): string | undefined {
  if (!existsSync(nodeConfig)) return undefined;
  try {
    const keys: unknown = (JSON.parse(readFileSync(nodeConfig, 'utf8')) as { apiKeys?: unknown }).apiKeys;
    const entry = Array.isArray(keys) ? (keys as { id?: unknown; keyHash?: unknown }[]).find((k) => k.id === id) : undefined;
    return typeof entry?.keyHash === 'string' && /^[0-9a-f]{64}$/.test(entry.keyHash) ? entry.keyHash : undefined;
  } catch {
    return undefined;
  }
}

type Member = { index: number; identityPublicKey: string };

/**
 * The identities an earlier start wrote into membership.json, when it lists exactly nodes 1..n and
 * each node's KEK file and store are still there. Reading them from there saves opening every node's
 * encrypted store in this process at each start (the heavy modules and n LevelDB opens were most of the
 * seconds before the first process was spawned). A node checks at start that membership lists its own
 * identity, so a store replaced behind our back still stops with a clear error in its log.
 */
function previousMembers(data: string, n: number): Member[] | undefined {
  const path = join(data, 'membership.json');
  if (!existsSync(path)) return undefined;
  try {
    const nodes: unknown = (JSON.parse(readFileSync(path, 'utf8')) as { nodes?: unknown }).nodes;
    if (!Array.isArray(nodes) || nodes.length !== n) return undefined;
    const members = nodes.map((m: { index?: unknown; identityPublicKey?: unknown }, k) =>
      m.index === k + 1 && typeof m.identityPublicKey === 'string' && /^[0-9a-f]+$/.test(m.identityPublicKey) ? { index: k + 1, identityPublicKey: m.identityPublicKey } : undefined,
    );
    if (members.some((m) => m === undefined)) return undefined;
    if (members.some((m) => !existsSync(join(data, `node-${m!.index}.kek`)) || !existsSync(join(data, `node-${m!.index}`)))) return undefined;
    return members as Member[];
  } catch {
    return undefined;
  }
}

/** Open (or create) every node's store and read its identity public key; the nodes in parallel. */
async function loadIdentities(data: string, n: number): Promise<Member[]> {
  return Promise.all(Array.from({ length: n }, (_, k) => loadIdentity(data, k + 1)));
}

/** Open (or create) node i's KEK file and store, and read (or make) its identity public key. */
async function loadIdentity(data: string, i: number): Promise<Member> {
  // Loaded only here: the store and identity modules are the parent's heaviest imports.
  const [{ loadOrCreateIdentity }, { createKekFile, readKekFile }, { ShareStore }] = await Promise.all([
    import('../node/store/identity-store.js'),
    import('../node/store/kek.js'),
    import('../node/store/storage.js'),
  ]);
  const kekPath = join(data, `node-${i}.kek`);
  if (!existsSync(kekPath)) await createKekFile(kekPath);
  const kek = await readKekFile(kekPath);
  const store = await ShareStore.open({ dataDir: join(data, `node-${i}`), kek, nodeIndex: i });
  kek.fill(0);
  try {
    const keys = await loadOrCreateIdentity(store);
    const identityPublicKey = toHex(keys.identity.publicKey);
    // Only the public key is needed here: the secret parts we were handed are wiped.
    keys.identity.secretKey.fill(0);
    keys.kem.privateKey.fill(0);
    return { index: i, identityPublicKey };
  } finally {
    await store.close();
  }
}

/** Prepare the data dir (idempotent) and return the cluster file contents. */
export async function prepareDev(o: DevOptions): Promise<{ cluster: ClusterFile; coordinatorConfig: string; nodeConfigs: string[] }> {
  if (!Number.isSafeInteger(o.port) || o.port < 0 || (o.port !== 0 && o.port + o.nodes > 65535)) {
    throw new UsageError(`--port ${o.port}: the coordinator and ${o.nodes} nodes need ports ${o.port}..${o.port + o.nodes}, which must lie within 1..65535 (or --port 0 for free ports)`, 'dev');
  }
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
  for (let i = 1; i <= o.nodes; i++) {
    let port = o.port === 0 ? await freePort() : o.port + i;
    while (o.port === 0 && (port === coordinatorPort || nodePorts.includes(port))) port = await freePort();
    nodePorts.push(port);
  }
  // Before anything is written or started: a busy port is refused with its number.
  await assertPortsFree([
    { port: coordinatorPort, wantedFor: 'the coordinator' },
    ...nodePorts.map((port, k) => ({ port, wantedFor: `node ${k + 1}` })),
  ]);

  let members = previousMembers(data, o.nodes);
  if (!members) {
    o.onStep?.(`making ${o.nodes} node identities and key-encryption keys (first start of this data dir)`);
    members = await loadIdentities(data, o.nodes);
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
    o.onStep?.(`TLS certificates in ${tlsDir} (development CA ${ca.certFile})`);
  }

  // node/config.ts (and what it imports) costs a second or more to load: only a new API key needs it.
  let apiKeyHash: ((apiKey: string) => Uint8Array) | undefined;
  const hashOf = async (apiKey: string) => toHex((apiKeyHash ??= (await import('../node/config.js')).apiKeyHash)(apiKey));
  const logLevel = o.logLevel ?? 'info';
  const coordinatorConfig = join(data, 'coordinator.json');
  // Each dev cluster's coordinator has its own id, pinned in every node's config: a node signs its
  // authentication only for that coordinator. Kept across restarts of the same data dir.
  const coordinatorId = previousCoordinatorId(coordinatorConfig) ?? `tessera-dev-${randomBytes(8).toString('hex')}`;
  writeFileSync(
    coordinatorConfig,
    JSON.stringify(
      {
        port: coordinatorPort,
        host: '127.0.0.1',
        coordinatorId,
        membershipFile: membershipPath,
        // The certified membership changes it adopted (issue 13), kept across its restarts.
        membershipStateFile: join(data, 'coordinator-membership-state.json'),
        logLevel,
        ...(tls ? { tls: tls.coordinator } : {}),
      },
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
    const previousKey = previous?.nodes.find((n) => n.index === i)?.apiKey;
    const apiKey = previousKey ?? `tsk_dev_${i}_${randomBytes(24).toString('hex')}`;
    const cfgPath = join(data, `node-${i}.json`);
    const keyHash = (previousKey !== undefined ? previousKeyHash(cfgPath, `dev-${i}`) : undefined) ?? (await hashOf(apiKey));
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
          apiKeys: [{ id: `dev-${i}`, tenant: 'default', keyHash, role: 'admin' }],
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

/** How often a starting process is probed. */
const PROBE_INTERVAL_MS = 100;

/**
 * The last error a process wrote to its log after byte `from` (pino level >= 50, or a plain line such as
 * a main's one-line refusal), to say why it exited instead of only pointing at the file.
 */
export function lastLogError(logFile: string, from = 0): string | undefined {
  let text: string;
  try {
    const size = statSync(logFile).size;
    // Only what this run of the process wrote (the file is appended to across restarts).
    const length = Math.min(Math.max(size - from, 0), 64 * 1024);
    const buf = Buffer.alloc(length);
    const fd = openSync(logFile, 'r');
    try {
      readSync(fd, buf, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    text = buf.toString('utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  for (let k = lines.length - 1; k >= 0; k--) {
    const line = lines[k]!;
    if (!line.startsWith('{')) {
      // A plain line is the process's own stderr (its log lines are JSON): a main's one-line refusal or
      // an uncaught error. Skip stack frames and Node's warnings.
      if (/^at |^\(node:\d+\)|^\(Use `node --trace/.test(line)) continue;
      return line.slice(0, 300);
    }
    try {
      const e = JSON.parse(line) as { level?: unknown; msg?: unknown; err?: { message?: unknown; code?: unknown } };
      if (typeof e.level === 'number' && e.level >= 50) {
        const detail = typeof e.err?.message === 'string' ? e.err.message : '';
        const msg = typeof e.msg === 'string' ? e.msg : '';
        return [msg, detail].filter((s) => s !== '' && s !== undefined).join(': ').slice(0, 300) || undefined;
      }
    } catch {
      /* a partly written line */
    }
  }
  return undefined;
}

/** A process of the cluster exited while we waited for it to come up. */
export class DevProcessExitedError extends Error {
  constructor(
    readonly index: number,
    readonly logFile: string,
    logFrom = 0,
  ) {
    const cause = lastLogError(logFile, logFrom);
    super(`${index === 0 ? 'the coordinator' : `node ${index}`} exited while starting${cause ? `: ${cause}` : ''} (log: ${logFile})`);
    this.name = 'DevProcessExitedError';
  }
}

export interface DevCluster {
  readonly cluster: ClusterFile;
  readonly dataDir: string;
  /**
   * Resolves when every node (or only the processes in `o.only`; 0 = the coordinator) answers /ready and
   * names the identity this dev made for it; `o.onUp` hears of each process as it comes up.
   */
  ready(timeoutMs?: number, o?: { only?: readonly number[]; onUp?: (index: number) => void }): Promise<void>;
  /** Stop one process (node index, or 0 for the coordinator) with a signal; resolves when it exited. */
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Start a stopped process again on the same ports and data, with extra environment if given. */
  start(index: number, env?: Record<string, string>): void;
  /** Stop everything (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** The OS process id of a running process (0 = coordinator, i = node i), e.g. to read its CPU time; undefined when stopped. */
  pid(index: number): number | undefined;
  /** The log file of a process (0 = coordinator, i = node i). */
  logFile(index: number): string;
  /** The last error in the log of a process's latest run, if it wrote one (see lastLogError). */
  lastError(index: number): string | undefined;
  /** Called when a child exits that nobody asked to stop. */
  onUnexpectedExit?: (index: number, code: number | null, signal: NodeJS.Signals | null) => void;
  /**
   * Make node `node.index` one of this dev's processes (a node a membership change adds, or one re-created
   * with a fresh data directory: prepareDevNode), run with `config`; start() starts it, stop() stops it too.
   */
  register(node: ClusterFile['nodes'][number], config: string): void;
}

/** Start a coordinator and the node processes; the caller owns their lifetime. */
export async function startDevCluster(o: DevOptions): Promise<DevCluster> {
  const { cluster, coordinatorConfig, nodeConfigs } = await prepareDev(o);
  const data = resolve(o.dataDir);
  // Again right before spawning: preparing a first start takes seconds, in which a port can be taken.
  await assertPortsFree(clusterPorts(cluster));
  const children = new Map<number, ChildProcess>();
  const stopping = new Set<number>();
  const scripts = new Map<number, [string, string, string]>([
    [0, ['coordinator', 'coordinator/main.ts', coordinatorConfig]],
    ...nodeConfigs.map((cfg, i) => [i + 1, [`node-${i + 1}`, 'node/main.ts', cfg]] as [number, [string, string, string]]),
  ]);
  const logFile = (index: number) => join(data, 'logs', `${scripts.get(index)![0]}.log`);
  /** Where each process's latest run began writing its log. */
  const logFrom = new Map<number, number>();

  /** Poll one process until it is up: the coordinator's /ready, or a node's /ready and then its identity. */
  const waitUp = async (index: number, deadline: number): Promise<void> => {
    const node = index === 0 ? undefined : cluster.nodes.find((n) => n.index === index)!;
    const url = node ? node.url : cluster.coordinator;
    const ca = node ? node.ca : cluster.nodes[0]?.ca;
    for (;;) {
      if (!children.has(index)) throw new DevProcessExitedError(index, logFile(index), logFrom.get(index));
      if ((await probeReady(url, ca)) === 200) {
        if (!node) return;
        await checkIdentity(node, index, children.get(index));
        return;
      }
      if (Date.now() > deadline) throw new Error(`${index === 0 ? 'the coordinator' : `node ${index}`} at ${url} did not come up in time (log: ${logFile(index)})`);
      await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
    }
  };

  /** The process answering a node's port must be the node this dev made: its identity, through our API key. */
  const checkIdentity = async (node: ClusterFile['nodes'][number], index: number, child: ChildProcess | undefined): Promise<void> => {
    const port = new URL(node.url).port;
    let info: NodeInfo;
    try {
      info = await requestJson<NodeInfo>({ url: node.url, apiKey: node.apiKey, node: index, timeoutMs: 5000, ...(node.ca ? { ca: node.ca } : {}) }, 'GET', '/v1/node');
    } catch (e) {
      if (children.get(index) !== child || !children.has(index)) throw new DevProcessExitedError(index, logFile(index), logFrom.get(index));
      throw new Error(`port ${port} answers, but not as node ${index} of this cluster (${(e as Error).message}); another process may hold it (log: ${logFile(index)})`);
    }
    if (info.index !== index || info.identityPublicKey !== node.identityPublicKey) {
      throw new Error(`port ${port} answers as another node (index ${info.index}, another identity key), not node ${index} of this cluster (log: ${logFile(index)})`);
    }
  };

  const dev: DevCluster = {
    cluster,
    dataDir: data,
    start(index, env = {}) {
      const [name, script, config] = scripts.get(index)!;
      logFrom.set(index, existsSync(logFile(index)) ? statSync(logFile(index)).size : 0);
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
    async ready(timeoutMs = 90_000, r = {}) {
      const deadline = Date.now() + timeoutMs;
      const indices = r.only ?? cluster.nodes.map((n) => n.index);
      // All at once: each process comes up on its own, and is reported as it does.
      await Promise.all(indices.map((i) => waitUp(i, deadline).then(() => r.onUp?.(i))));
    },
    async stop() {
      await Promise.all([...scripts.keys()].map((i) => dev.kill(i)));
    },
    pid(index) {
      return children.get(index)?.pid;
    },
    logFile,
    lastError: (index) => lastLogError(logFile(index), logFrom.get(index)),
    register(node, config) {
      scripts.set(node.index, [`node-${node.index}`, 'node/main.ts', config]);
      const k = cluster.nodes.findIndex((n) => n.index === node.index);
      if (k >= 0) cluster.nodes[k] = node;
      else cluster.nodes.push(node);
      cluster.nodes.sort((a, b) => a.index - b.index);
    },
  };
  for (const i of scripts.keys()) dev.start(i);
  return dev;
}

/** What `<data>/dev-process.json` holds while a `tessera dev` runs with that data dir. */
interface DevProcessFile {
  /** The `tessera dev` process. */
  pid: number;
  /** Its control endpoint (http://127.0.0.1:PORT) and the token it requires. */
  control: string;
  token: string;
  nodes: number;
  /** Every child: index 0 is the coordinator; pid null while it is not running. */
  processes: { index: number; name: string; pid: number | null }[];
}

function readDevProcessFile(data: string): DevProcessFile | undefined {
  try {
    const v = JSON.parse(readFileSync(join(data, DEV_PROCESS_FILE), 'utf8')) as Partial<DevProcessFile>;
    if (!Number.isSafeInteger(v.pid) || typeof v.control !== 'string' || typeof v.token !== 'string' || !Number.isSafeInteger(v.nodes)) return undefined;
    return v as DevProcessFile;
  } catch {
    return undefined;
  }
}

/**
 * The dev running with `data`: its file names a live process whose control endpoint answers, with the
 * file's token, as that process (a stale file whose pid the system gave to another program is not one).
 * 'silent': the process lives but its endpoint did not answer.
 */
async function runningDev(data: string): Promise<DevProcessFile | 'silent' | undefined> {
  const file = readDevProcessFile(data);
  if (!file || file.pid === process.pid || !processAlive(file.pid)) return undefined;
  try {
    const res = await fetch(`${file.control}/v1/status`, { headers: { authorization: `Bearer ${file.token}` }, signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { pid?: unknown };
    return res.ok && body.pid === file.pid ? file : undefined;
  } catch (e) {
    return (e as Error).name === 'TimeoutError' ? 'silent' : undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: only checks that the process exists
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** How long a restart request waits for the node to come up again. */
const RESTART_TIMEOUT_MS = 90_000;

/** Run the cluster until SIGINT/SIGTERM. Resolves with the process exit code. */
export async function runDev(o: DevOptions): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const err = o.err ?? ((l: string) => process.stderr.write(l + '\n'));
  const data = resolve(o.dataDir);
  const dataFlag = dataFlagOf(o.dataDir);

  const other = await runningDev(data);
  if (other) {
    const pid = other === 'silent' ? readDevProcessFile(data)?.pid : other.pid;
    err(`tessera: a tessera dev (pid ${pid}) is running with ${o.dataDir}; stop it first, or use another --data`);
    return 2;
  }

  // Step lines are plain lines (a log shows them); on a terminal a transient line between them shows the wait.
  // Its label says what it waits for, so its seconds count from the last step.
  let progress: Progress = startProgress(`tessera dev: preparing ${o.dataDir}`);
  const step = (line: string, next: string) => {
    progress.done();
    err(`tessera dev: ${line}`);
    progress = startProgress(`tessera dev: ${next}`);
  };
  const waitingFor = new Set([0, ...Array.from({ length: o.nodes }, (_, k) => k + 1)]);
  const waitingLabel = () => {
    const nodes = [...waitingFor].filter((i) => i !== 0);
    const names = [...(waitingFor.has(0) ? ['the coordinator'] : []), ...(nodes.length ? [`node${nodes.length > 1 ? 's' : ''} ${nodes.join(', ')}`] : [])];
    return `waiting for ${names.join(' and ')}`;
  };

  let dev: DevCluster;
  try {
    dev = await startDevCluster({ ...o, onStep: (line) => step(line, `preparing ${o.dataDir}`) });
  } catch (e) {
    progress.done();
    if (e instanceof DevPortInUseError) {
      err(`tessera: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const { cluster } = dev;
  step(`started the coordinator and ${o.nodes} nodes (logs in ${join(dev.dataDir, 'logs')})`, waitingLabel());
  out(`coordinator  ${cluster.coordinator.replace(/^http/, 'ws')}/nodes`);
  for (const n of cluster.nodes) out(`node ${n.index}       ${n.url}`);
  out(`cluster file ${join(dev.dataDir, 'cluster.json')}`);

  let isReady = false;
  let done = false;
  const restarting = new Set<number>();
  const token = randomBytes(32).toString('hex');
  const tokenHash = sha256(`Bearer ${token}`);
  const processFile = join(data, DEV_PROCESS_FILE);
  let controlUrl = '';

  const writeProcessFile = () => {
    if (done || controlUrl === '') return;
    const content: DevProcessFile = {
      pid: process.pid,
      control: controlUrl,
      token,
      nodes: o.nodes,
      processes: [0, ...cluster.nodes.map((n) => n.index)].map((i) => ({ index: i, name: i === 0 ? 'coordinator' : `node-${i}`, pid: dev.pid(i) ?? null })),
    };
    // Written whole, then renamed: a reader never sees half a file.
    const tmp = `${processFile}.${process.pid}.tmp`;
    writePrivate(tmp, JSON.stringify(content, null, 2));
    renameSync(tmp, processFile);
  };
  const removeProcessFile = () => {
    // Only our own file: a dev started later with this data dir may have replaced it.
    if (readDevProcessFile(data)?.pid === process.pid) {
      try {
        unlinkSync(processFile);
      } catch {
        /* already gone */
      }
    }
  };
  process.once('exit', removeProcessFile);

  const runningNodes = () => cluster.nodes.filter((n) => dev.pid(n.index) !== undefined).length;

  /** Restart node `index` with the same config and data (stopping it first if it still runs). */
  const restartNode = async (index: number): Promise<{ status: number; body: Record<string, unknown> }> => {
    if (!Number.isSafeInteger(index) || index < 1 || index > o.nodes) {
      return { status: 400, body: { error: `there is no node ${index}: this cluster has nodes 1..${o.nodes}` } };
    }
    if (!isReady) return { status: 409, body: { error: 'tessera dev is still starting; try again once it printed its ready line' } };
    if (restarting.has(index)) return { status: 409, body: { error: `a restart of node ${index} is already under way` } };
    restarting.add(index);
    try {
      const wasRunning = dev.pid(index) !== undefined;
      if (wasRunning) {
        err(`tessera dev: restarting node ${index} (it was still running, pid ${dev.pid(index)}): stopping it first`);
        await dev.kill(index);
      }
      const node = cluster.nodes[index - 1]!;
      await assertPortsFree([{ port: Number(new URL(node.url).port), wantedFor: `node ${index}` }]);
      // Stopping meanwhile (Ctrl-C during the restart): start nothing that the stop would miss.
      if (done) return { status: 409, body: { error: 'tessera dev is stopping' } };
      dev.start(index);
      writeProcessFile();
      await dev.ready(RESTART_TIMEOUT_MS, { only: [index] });
      err(`tessera dev: node ${index} is up again (${node.url}); ${runningNodes()} of ${o.nodes} nodes running`);
      writeProcessFile();
      return { status: 200, body: { index, pid: dev.pid(index), wasRunning } };
    } catch (e) {
      const message = (e as Error).message;
      err(`tessera dev: node ${index} did not come back: ${message}`);
      writeProcessFile();
      return { status: e instanceof DevPortInUseError ? 409 : 500, body: { error: `node ${index} did not come back: ${message}` } };
    } finally {
      restarting.delete(index);
    }
  };

  // The control endpoint: 127.0.0.1 only, a random port, and a random token kept in a 0600 file.
  const control = http.createServer((req, res) => {
    const reply = (status: number, body: Record<string, unknown>) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !timingSafeEqual(sha256(auth), tokenHash)) return reply(401, { error: 'bad or missing control token' });
    if (req.method === 'GET' && req.url === '/v1/status') return reply(200, { pid: process.pid, ready: isReady, running: runningNodes(), nodes: o.nodes });
    const m = req.method === 'POST' ? /^\/v1\/nodes\/(\d{1,3})\/restart$/.exec(req.url ?? '') : null;
    if (!m) return reply(404, { error: 'unknown control request' });
    req.resume();
    restartNode(Number(m[1])).then(
      (r) => reply(r.status, r.body),
      (e: Error) => reply(500, { error: e.message }),
    );
  });
  await new Promise<void>((res, rej) => {
    control.once('error', rej);
    control.listen(0, '127.0.0.1', () => res());
  });
  control.unref();
  controlUrl = `http://127.0.0.1:${(control.address() as { port: number }).port}`;
  writeProcessFile();

  return new Promise<number>((resolveExit) => {
    const finish = async (code: number, line?: string) => {
      if (done) return;
      progress.done();
      if (line) err(line);
      removeProcessFile();
      done = true;
      control.close();
      await dev.stop();
      process.removeListener('exit', removeProcessFile);
      resolveExit(code);
    };
    dev.onUnexpectedExit = (index, code, signal) => {
      const how = signal ? `signal ${signal}` : `code ${code}`;
      const log = dev.logFile(index);
      if (index === 0) {
        const cause = dev.lastError(0);
        void finish(1, `tessera dev: the coordinator exited (${how})${cause ? `: ${cause}` : ''}; stopping every node, since none can work without it (log: ${log})`);
        return;
      }
      writeProcessFile();
      // Before ready, the wait below reports it (with its cause) and stops; during a restart, the restart does.
      if (!isReady || restarting.has(index)) return;
      const left = runningNodes();
      const below = left < o.threshold ? `; with fewer than ${o.threshold} nodes no key operation can run until it is back` : '';
      const cause = dev.lastError(index);
      err(`tessera dev: node ${index} exited (${how}); the cluster keeps running with ${left} nodes${below}; restart it with: tessera dev restart-node ${index}${dataFlag} (${cause ? `last error: ${cause}; ` : ''}log: ${log})`);
    };
    process.once('SIGINT', () => void finish(0, 'tessera dev: stopping'));
    process.once('SIGTERM', () => void finish(0, 'tessera dev: stopping'));
    dev
      .ready(90_000, {
        only: [...waitingFor],
        onUp: (i) => {
          waitingFor.delete(i);
          step(i === 0 ? `coordinator up (${cluster.coordinator.replace(/^http/, 'ws')}/nodes)` : `node ${i} up (${cluster.nodes[i - 1]!.url})`, waitingLabel());
        },
      })
      .then(
        () => {
          if (done) return;
          progress.done();
          isReady = true;
          out(`tessera dev: ready — ${o.nodes} nodes, threshold ${o.threshold}`);
        },
        (e: Error) => void finish(1, `tessera dev: ${e.message}; stopping`),
      );
  });
}

/**
 * Ask the `tessera dev` running with `dataDir` to restart node `index` with the same config and data;
 * resolves once the node is up again. A node that still runs is restarted anyway (stopped first).
 * Clear errors: no dev running there, an index outside the cluster, a node that does not come back.
 */
export async function requestDevRestart(dataDir: string, index: number): Promise<void> {
  if (!Number.isSafeInteger(index) || index < 1) throw new UsageError(`node index: expected a whole number from 1, got ${String(index)}`, 'dev restart-node');
  const data = resolve(dataDir);
  const notRunning = `no tessera dev is running with data dir ${dataDir}`;
  if (!existsSync(data)) throw new Error(`${notRunning} (there is no such directory)`);
  const found = await runningDev(data);
  if (found === 'silent') throw new Error(`the tessera dev of ${dataDir} (pid ${readDevProcessFile(data)?.pid}) does not answer on its control endpoint`);
  if (!found) throw new Error(`${notRunning}; start one with: tessera dev${dataFlagOf(dataDir)}`);
  const running = found;
  if (index > running.nodes) throw new UsageError(`there is no node ${index}: the tessera dev of ${dataDir} runs nodes 1..${running.nodes}`, 'dev restart-node');
  let res: Response;
  try {
    res = await fetch(`${running.control}/v1/nodes/${index}/restart`, {
      method: 'POST',
      headers: { authorization: `Bearer ${running.token}` },
      signal: AbortSignal.timeout(RESTART_TIMEOUT_MS + 15_000),
    });
  } catch (e) {
    throw new Error(`the tessera dev of ${dataDir} (pid ${running.pid}) did not answer at ${running.control}: ${(e as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: unknown };
  if (!res.ok) throw new Error(typeof body.error === 'string' ? body.error : `the tessera dev of ${dataDir} answered HTTP ${res.status}`);
}

/** A node prepared for a running dev cluster by prepareDevNode: a membership change adds it, or it replaces a node that lost its data. */
export interface DevNode {
  readonly index: number;
  readonly url: string;
  readonly apiKey: string;
  /** Its ML-DSA-65 identity public key (hex), made in its new data directory. */
  readonly identityPublicKey: string;
  readonly ca?: string;
  /** Start its process; resolves once its API answers as this node (it joins the coordinator once the change is committed: `ready`). */
  start(): Promise<void>;
  /** Resolves when it answers /ready: connected to the coordinator, which admits it once the membership change is committed. */
  ready(timeoutMs?: number): Promise<void>;
  /** Stop its process. */
  stop(): Promise<void>;
}

/**
 * Prepare ONE node for a running dev cluster (issue 13): index `index` with a new data directory, KEK
 * file, store and identity (as prepareDev makes them), a config with the same coordinator and the NEW
 * membership — `current` (the cluster's committed membership) with this node in it, at epoch
 * current.epoch + 1 — and registered with `dev` (so dev.stop() stops it). `fresh`: the index is a node
 * that lost its data directory (repair): it is stopped, its data directory and KEK file are deleted, and
 * it comes back with a new identity on the same port and API key. The process is started only by
 * `start()`, before the change or after it (e.g. in Cluster.addNode's `onCommitted`): the coordinator
 * admits the new identity once the nodes announce the committed change, and the node's link keeps
 * retrying until then; `ready()` resolves once it is admitted.
 */
export async function prepareDevNode(
  dev: DevCluster,
  o: { index: number; current: { epoch: number; members: readonly { index: number; identityPublicKey: string }[] }; fresh?: boolean },
): Promise<DevNode> {
  const { index } = o;
  if (!Number.isSafeInteger(index) || index < 1 || index > 255) throw new UsageError(`node index: expected 1..255, got ${String(index)}`, 'dev');
  const data = dev.dataDir;
  const cluster = dev.cluster;
  const existing = cluster.nodes.find((n) => n.index === index);
  if (existing && !o.fresh) throw new Error(`node ${index} is already a node of this dev cluster; re-create it with fresh: true`);
  if (!existing && o.fresh) throw new Error(`there is no node ${index} in this dev cluster to re-create`);
  const model = cluster.nodes.find((n) => n.index !== index);
  if (!model) throw new Error('the dev cluster has no other node to copy the configuration from');
  const base = JSON.parse(readFileSync(join(data, `node-${model.index}.json`), 'utf8')) as Record<string, unknown> & {
    api: { tls?: unknown };
    thresholdDefaults: { threshold: number };
  };

  if (o.fresh) {
    // A lost data directory: the process goes, then its store and KEK (a new identity is made below).
    await dev.kill(index);
    rmSync(join(data, `node-${index}`), { recursive: true, force: true });
    rmSync(join(data, `node-${index}.kek`), { force: true });
  }
  const port = existing ? Number(new URL(existing.url).port) : await freePort();
  await assertPortsFree([{ port, wantedFor: `node ${index}` }]);
  const { identityPublicKey } = await loadIdentity(data, index);

  const tls = base.api.tls !== undefined;
  let nodeTls: { certFile: string; keyFile: string } | undefined;
  if (tls) {
    const tlsDir = join(data, 'tls');
    nodeTls = ensureServerCert(ensureCa(tlsDir, { commonName: 'Tessera dev CA' }), tlsDir, `node-${index}`, DEV_TLS_HOSTS);
  }
  const apiKey = existing?.apiKey ?? `tsk_dev_${index}_${randomBytes(24).toString('hex')}`;
  const { apiKeyHash } = await import('../node/config.js');
  const members = [...o.current.members.filter((m) => m.index !== index), { index, identityPublicKey }].sort((a, b) => a.index - b.index);
  const cfgPath = join(data, `node-${index}.json`);
  writePrivate(
    cfgPath,
    JSON.stringify(
      {
        ...base,
        index,
        dataDir: join(data, `node-${index}`),
        api: { host: '127.0.0.1', port, ...(nodeTls ? { tls: nodeTls } : {}) },
        membership: members,
        // The change that admits it commits this epoch (node/config.ts membershipEpoch).
        membershipEpoch: o.current.epoch + 1,
        kekFile: join(data, `node-${index}.kek`),
        apiKeys: [{ id: `dev-${index}`, tenant: 'default', keyHash: toHex(apiKeyHash(apiKey)), role: 'admin' }],
        thresholdDefaults: { threshold: Math.min(base.thresholdDefaults.threshold, members.length), parties: members.length },
      },
      null,
      2,
    ),
  );
  const scheme = tls ? 'https' : 'http';
  const ca = existing?.ca ?? model.ca;
  const node: ClusterFile['nodes'][number] = { index, url: `${scheme}://127.0.0.1:${port}`, apiKey, identityPublicKey, ...(ca !== undefined ? { ca } : {}) };
  dev.register(node, cfgPath);
  return {
    index,
    url: node.url,
    apiKey,
    identityPublicKey,
    ...(ca !== undefined ? { ca } : {}),
    async start() {
      dev.start(index);
      // Up when its API answers as this node (its /ready waits for the coordinator to admit it).
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (dev.pid(index) === undefined) throw new DevProcessExitedError(index, dev.logFile(index));
        try {
          const info = await requestJson<NodeInfo>({ url: node.url, apiKey, node: index, timeoutMs: 2000, ...(ca ? { ca } : {}) }, 'GET', '/v1/node');
          if (info.index === index && info.identityPublicKey === identityPublicKey) return;
          throw new Error(`port ${port} answers as another node (index ${info.index}), not node ${index}`);
        } catch (e) {
          if (e instanceof Error && /answers as another node/.test(e.message)) throw e;
        }
        if (Date.now() > deadline) throw new Error(`node ${index} at ${node.url} did not come up in time (log: ${dev.logFile(index)})`);
        await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
      }
    },
    ready: (timeoutMs = 60_000) => dev.ready(timeoutMs, { only: [index] }),
    stop: () => dev.kill(index),
  };
}
