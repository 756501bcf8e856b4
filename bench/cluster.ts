/**
 * End-to-end costs on real local clusters: a coordinator and n node processes (sdk/dev.ts
 * startDevCluster, fresh temp data dir, free ports, plain HTTP on 127.0.0.1), driven through the SDK
 * Cluster (sdk/client.ts) over HTTP. Every figure is the latency one SDK call sees, including the SDK's
 * own work (policy hooks, signature verification, partial unwrapping and combining).
 *
 * The run (issue 10, "Done when"):
 *   1. 2-of-3 with the nodes' default group backend: keygen, refresh, rotate, export/import; signing
 *      ed25519 / secp256k1 / bip340 at c=1 and c=16 for every signing path; decapsulation; the CPU each
 *      process spends per signature; the single-key signer (bench/single-key-server.ts) for the ratio.
 *   2. The same 2-of-3 cluster restarted with TESSERA_GROUP_BACKEND=noble: the same signing rows.
 *   3. 3-of-5 and 4-of-7 clusters: ed25519 signing at c=1 and c=16.
 * Rows are time-capped (at most N calls or S seconds, at least a minimum count), so slow paths cost
 * seconds, not minutes; n is in every table.
 *
 * Failures are never retried or hidden: each failed call is counted in its row and its error
 * (code, node, culprits, message) is listed under the tables.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { x25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { Cluster, NodeClient, TesseraClientError, type SignResult } from '../sdk/client.js';
import { startDevCluster, type DevCluster } from '../sdk/dev.js';
import { benchProcess, cpuProbe, settle, type CpuShare, type Watched } from './cpu.js';
import { startSingleKeySigner, type SingleKeySigner } from './single-key.js';
import { fmtMs, fmtOps, summarize, type Section, type Stats } from './stats.js';

export interface ClusterOptions {
  quick: boolean;
  emit: (s: Section) => void;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

/** One failed call, as the SDK reported it. */
export interface Failure {
  readonly operation: string;
  readonly code: string;
  readonly message: string;
  readonly node?: number;
  readonly culprits?: readonly number[];
}

export function describe(operation: string, e: unknown): Failure {
  if (e instanceof TesseraClientError) {
    return { operation, code: e.code, message: e.message, ...(e.node !== undefined ? { node: e.node } : {}), ...(e.culprits.length ? { culprits: e.culprits } : {}) };
  }
  const err = e as { code?: unknown; message?: unknown; culprits?: unknown };
  return { operation, code: typeof err?.code === 'string' ? err.code : 'EXCEPTION', message: String(err?.message ?? e) };
}

function failureLine(f: Failure): string {
  return `${f.operation}: ${f.code}${f.node !== undefined ? ` (node ${f.node})` : ''}${f.culprits?.length ? ` culprits ${f.culprits.join(',')}` : ''}: ${f.message}`;
}

// ---------------------------------------------------------------------------------------------
// Load runs

/**
 * How long a load row runs: at most `max` calls or `seconds` of wall clock, but at least `min` calls.
 * `warm`: presignatures fetched into the SDK's cache before a presigned row (about what the row uses,
 * at most WARM_PRESIGNATURES; the SDK refills in the background as it goes).
 */
interface Cap {
  max: number;
  seconds: number;
  min: number;
  warm?: number;
  /** Untimed calls before the row (default: the budget's `warm`). */
  warmSigns?: number;
  /** Then this many untimed calls 16 at a time (the c=16 code paths: batched audit writes, queues). */
  warmConcurrent?: number;
}

/**
 * Untimed calls: `sequential` one at a time, then `concurrent` 16 at a time. Measured before this
 * existed: the first suite timed on a fresh cluster was 1.5x slower at c=1 and 20% slower at c=16 than
 * the same suite timed again after the others (V8 and the nodes still warming), so every timed path,
 * the single-key signer's included, gets the same warm-up first.
 */
async function warmUp(op: () => Promise<unknown>, sequential: number, concurrent: number, onError: (e: unknown) => void): Promise<void> {
  for (let i = 0; i < sequential; i++) await op().catch(onError);
  let left = concurrent;
  await Promise.all(
    Array.from({ length: Math.min(16, concurrent) }, async () => {
      while (left-- > 0) await op().catch(onError);
    }),
  );
}

/** One load row: latency stats, throughput, failures and the CPU each watched process spent per successful call. */
export interface LoadResult {
  readonly stats: Stats;
  readonly concurrency: number;
  readonly ok: number;
  readonly failed: number;
  /** Calls per request (signMany): `ok` counts requests, `perCall` items each. */
  readonly perCall: number;
  readonly cpu: CpuShare[];
}

/**
 * Run `op` with `concurrency` workers pulling from one queue until the cap. Latency per call;
 * throughput = successful calls x perCall / wall-clock seconds of the batch. CPU per successful item.
 */
async function load(
  name: string,
  cap: Cap,
  concurrency: number,
  op: (k: number) => Promise<unknown>,
  failures: Failure[],
  watched: readonly Watched[],
  perCall = 1,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const probe = cpuProbe(watched);
  const t0 = performance.now();
  const deadline = t0 + cap.seconds * 1000;
  const more = () => next < cap.max && (next < cap.min || performance.now() < deadline);
  const worker = async () => {
    while (more()) {
      const k = next++;
      const s = performance.now();
      try {
        await op(k);
        latencies.push(performance.now() - s);
      } catch (e) {
        failed++;
        failures.push(describe(name, e));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallS = (performance.now() - t0) / 1000;
  const items = latencies.length * perCall;
  const cpu = probe(items);
  const note = [`c=${concurrency}`, ...(perCall > 1 ? [`${perCall}/request`] : []), `wall ${wallS.toFixed(1)} s`, ...(failed ? [`${failed}/${next} FAILED`] : [])].join(', ');
  return { stats: summarize(name, latencies, { opsPerSec: items / wallS, note }), concurrency, ok: latencies.length, failed, perCall, cpu };
}

/** The last lines of every process log (the dev cluster runs at level warn, so these are warnings and errors). */
async function readLogTails(dir: string, lines = 20): Promise<Record<string, string[]>> {
  const tails: Record<string, string[]> = {};
  try {
    for (const f of (await readdir(dir)).sort()) {
      const text = await readFile(join(dir, f), 'utf8');
      const all = text.split('\n').filter((l) => l.trim() !== '');
      if (all.length) tails[f] = all.slice(-lines);
    }
  } catch {
    /* no logs */
  }
  return tails;
}

export function clusterFrom(dev: DevCluster): Cluster {
  // As sdk/cli.ts loadCluster does with the cluster file.
  const nodes = [...dev.cluster.nodes]
    .sort((a, b) => a.index - b.index)
    .map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, ...(n.ca ? { ca: n.ca } : {}) }));
  return new Cluster(nodes, { threshold: dev.cluster.threshold });
}

/** Every process of a dev cluster, then the bench process (the SDK). */
function watchedOf(dev: DevCluster): Watched[] {
  return [
    { name: 'coordinator', pid: () => dev.pid(0) },
    ...dev.cluster.nodes.map((n) => ({ name: `node ${n.index}`, pid: () => dev.pid(n.index) })),
    benchProcess,
  ];
}

/** What the nodes report as their group backends (GET /v1/node `groupBackends`, issue 10), as one line. */
async function backendsOf(cluster: Cluster): Promise<string> {
  const infos = await Promise.all(cluster.nodes.map((n) => n.info().catch(() => undefined)));
  const seen = new Set<string>();
  for (const info of infos) {
    const b = (info as { groupBackends?: unknown } | undefined)?.groupBackends;
    seen.add(b === undefined ? 'not reported' : typeof b === 'string' ? b : JSON.stringify(b));
  }
  return [...seen].join(' | ');
}

// ---------------------------------------------------------------------------------------------
// Signing paths

/** A way to sign with the SDK. */
interface SignPath {
  readonly id: 'presigned' | 'two-round';
  /** Sign one message; resolves with the path the SDK actually took. */
  sign(cluster: Cluster, keyId: string, message: Uint8Array): Promise<SignResult>;
  /** Before timing: fill the SDK's presignature cache for `count` signatures. */
  warm?(cluster: Cluster, keyId: string, count: number): Promise<number>;
}

/**
 * One round from presignatures: Cluster.sign as an application calls it, with the SDK's cache warmed
 * first (Cluster.warmPresignatures) and its default background refill. A call that falls back to two
 * rounds (cache empty, a node refused its commitment) is counted in the row's note.
 */
const PRESIGNED: SignPath = {
  id: 'presigned',
  sign: (cluster, keyId, message) => cluster.sign({ keyId, message }),
  warm: (cluster, keyId, count) => cluster.warmPresignatures(keyId, count),
};

/** The two-round session path, forced (Cluster.sign with presigned: false): a node session per signature. */
const TWO_ROUND: SignPath = {
  id: 'two-round',
  sign: (cluster, keyId, message) => cluster.sign({ keyId, message, presigned: false }),
};

const SIGN_PATHS: readonly SignPath[] = [PRESIGNED, TWO_ROUND];
/** Threshold ECDSA keys: DKLs23 presignatures (one round online) and the three-round session. */
const ECDSA_SIGN_PATHS: readonly SignPath[] = [PRESIGNED, TWO_ROUND];
export const ECDSA_BENCH_SUITES = ['ecdsa-secp256k1', 'ecdsa-p256'] as const;

/** At most this many presignatures are fetched before a presigned row (the SDK refills in the background). */
const WARM_PRESIGNATURES = 1024;
/** Longest wait for the processes to go idle before a timed row (a node refilling its pool after a warm-up). */
const SETTLE_MS = 4000;

/** The figures of one signing configuration (a suite, t-of-n, a path, a backend) at c=1 and c=16. */
export interface SignFigures {
  readonly suite: string;
  readonly tn: string;
  readonly path: string;
  readonly backend: string;
  readonly c1?: LoadResult;
  readonly c16?: LoadResult;
}

export interface ClusterFigures {
  readonly signing: SignFigures[];
  readonly singleKey?: SignFigures;
  readonly signMany: { suite: string; result: LoadResult }[];
  readonly keygen: { suite: string; stats: Stats; failed: number }[];
  readonly decapsulate?: { stats: Stats; failed: number; result?: LoadResult };
}

function budgets(quick: boolean) {
  return quick
    ? {
        c1: { max: 8, seconds: 1, min: 3, warm: 128 },
        c16: { max: 48, seconds: 1.5, min: 16, warm: 128 },
        slowC1: { max: 4, seconds: 1, min: 2, warm: 128 },
        slowC16: { max: 32, seconds: 1, min: 16, warm: 128 },
        settleMs: 1000,
        manyC1: { max: 2, seconds: 1, min: 1 },
        manyC4: { max: 8, seconds: 1, min: 4 },
        warm: 1,
        keygenRuns: 1,
        keygenWarm: 1,
        lifecycleRuns: 1,
      }
    : {
        // Presigned calls take a few ms: untimed, 200 one at a time and 800 sixteen at a time (warmUp).
        c1: { max: 1000, seconds: 2, min: 10, warm: 1024, warmSigns: 200, warmConcurrent: 800 },
        c16: { max: 10000, seconds: 4, min: 32, warm: 1024 },
        slowC1: { max: 300, seconds: 1.5, min: 5, warm: 128 },
        slowC16: { max: 3000, seconds: 2.5, min: 16, warm: 256 },
        settleMs: SETTLE_MS,
        manyC1: { max: 40, seconds: 2, min: 3 },
        manyC4: { max: 160, seconds: 3, min: 8 },
        warm: 3,
        keygenRuns: 15,
        keygenWarm: 6,
        lifecycleRuns: 2,
      };
}

/** c=1 then c=16 for one suite and path; untimed warm-up first. */
async function signRows(
  o: { cluster: Cluster; keyId: string; suite: string; tn: string; path: SignPath; backend: string; c1: Cap; c16: Cap; warm: number; settleMs: number },
  failures: Failure[],
  watched: readonly Watched[],
  log: (l: string) => void,
): Promise<SignFigures> {
  const name = `sign ${o.suite} ${o.tn} ${o.path.id}${o.backend === 'default' ? '' : ` (${o.backend})`}`;
  // How many calls took the other path than the row's (a presigned call that fell back to two rounds).
  let other = 0;
  const sign = async () => {
    const r = await o.path.sign(o.cluster, o.keyId, randomBytes(32));
    if (r.path !== o.path.id) other++;
  };
  const row = async (cap: Cap, concurrency: number, warmSigns: number, concurrentWarmSigns = 0): Promise<LoadResult> => {
    if (o.path.warm) {
      // More than the row uses where the SDK's refill threshold (64) would otherwise start a refill mid-row.
      const want = Math.min(WARM_PRESIGNATURES, cap.warm ?? cap.max);
      const ready = await o.path.warm(o.cluster, o.keyId, want).catch((e) => (failures.push(describe(`${name} warm presignatures`, e)), 0));
      if (ready < want) log(`cluster: ${name}: only ${ready} of ${want} presignatures cached before timing`);
    }
    // Untimed signatures on this path (JIT, connections), then let background work (pool refills) finish.
    await warmUp(sign, warmSigns, concurrentWarmSigns, (e) => failures.push(describe(`${name} warm-up`, e)));
    // The warm-up used the presignatures fetched above: fetch again, so the row does not wait for a refill.
    if (o.path.warm && concurrentWarmSigns > 0) {
      await o.path.warm(o.cluster, o.keyId, Math.min(WARM_PRESIGNATURES, cap.warm ?? cap.max)).catch((e) => failures.push(describe(`${name} warm presignatures`, e)));
    }
    await settle(watched, o.settleMs);
    other = 0;
    const r = await load(name, cap, concurrency, sign, failures, watched);
    return other ? { ...r, stats: { ...r.stats, note: `${r.stats.note}, ${other}/${r.ok} by ${o.path.id === 'presigned' ? 'two-round fallback' : 'another path'}` } } : r;
  };
  const c1 = await row(o.c1, 1, o.c1.warmSigns ?? o.warm, o.c1.warmConcurrent ?? 0);
  const c16 = await row(o.c16, 16, 0);
  log(`cluster: ${name}: c=1 p50 ${fmtMs(c1.stats.medianMs)} ms, c=16 ${fmtOps(c16.stats.opsPerSec)}/s`);
  return { suite: o.suite, tn: o.tn, path: o.path.id, backend: o.backend, c1, c16 };
}

// ---------------------------------------------------------------------------------------------
// Summary tables

const cell = (x: number | undefined, f: (v: number) => string) => (x === undefined || !Number.isFinite(x) ? '-' : f(x));
const cpuTotal = (r: LoadResult | undefined) =>
  r && r.cpu.length && r.cpu.every((c) => c.msPerOp !== undefined) ? r.cpu.reduce((s, c) => s + c.msPerOp!, 0) : undefined;
const failedCell = (f: SignFigures) => {
  const n = (f.c1?.failed ?? 0) + (f.c16?.failed ?? 0);
  return n ? `${n} FAILED` : '';
};

/** Signing side by side: one row per configuration, with the single-key ratios. */
function signingSummary(rows: readonly SignFigures[], single: SignFigures | undefined): Section {
  const base = single;
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(1)}x` : '-');
  const all = [...rows, ...(single ? [single] : [])];
  return {
    title: 'Signing end to end, side by side (random 32-byte messages; CPU = all processes, ms per signature at c=16)',
    note:
      'c=1: one call at a time (p50/p99 latency); c=16: 16 calls in flight (signatures/s, p50/p99 latency).\n' +
      'x single-key (ed25519 rows): c=1 p50 / single-key c=1 p50; single-key sig/s / c=16 sig/s; CPU / single-key CPU.',
    rows: [],
    table: {
      header: ['configuration', 'c=1 p50 ms', 'c=1 p99 ms', 'c=16 sig/s', 'c=16 p50 ms', 'c=16 p99 ms', 'CPU ms/sig', 'x single-key (p50 / sig/s / CPU)', 'n (c=1, c=16)', ''],
      rows: all.map((f) => [
        f === single ? 'single-key Ed25519 (node:crypto, same HTTP stack)' : `${f.suite} ${f.tn} ${f.path} [${f.backend}]`,
        cell(f.c1?.stats.medianMs, fmtMs),
        cell(f.c1?.stats.p99Ms, fmtMs),
        cell(f.c16?.stats.opsPerSec, fmtOps),
        cell(f.c16?.stats.medianMs, fmtMs),
        cell(f.c16?.stats.p99Ms, fmtMs),
        cell(cpuTotal(f.c16), fmtMs),
        f === single || !base || f.suite !== 'ed25519'
          ? ''
          : `${ratio(f.c1?.stats.medianMs, base.c1?.stats.medianMs)} / ${ratio(base.c16?.stats.opsPerSec, f.c16?.stats.opsPerSec)} / ${ratio(cpuTotal(f.c16), cpuTotal(base.c16))}`,
        `${f.c1?.stats.n ?? 0}, ${f.c16?.stats.n ?? 0}`,
        failedCell(f),
      ]),
      leftColumns: [9],
    },
  };
}

/** CPU per operation of each process: the c=16 signing runs, the single-key signer, signMany and decapsulation. */
function cpuSummary(f: ClusterFigures): Section {
  const names = ['coordinator', 'node 1', 'node 2', 'node 3', benchProcess.name];
  const pick = (r: LoadResult, name: string) => r.cpu.find((c) => c.name === name)?.msPerOp;
  const rows: [string, LoadResult | undefined][] = [
    ...f.signing.filter((x) => x.tn === '2-of-3').map((x): [string, LoadResult | undefined] => [`sign ${x.suite} ${x.path} [${x.backend}], c=16`, x.c16]),
    ...(f.singleKey ? [[`single-key Ed25519 (node:crypto), c=16`, f.singleKey.c16] as [string, LoadResult | undefined]] : []),
    ...f.signMany.map((m): [string, LoadResult] => [`signMany ${m.suite} 64/request, c=${m.result.concurrency}`, m.result]),
    ...(f.decapsulate?.result ? [[`decapsulate hpke-x25519, c=1 (per decapsulation)`, f.decapsulate.result] as [string, LoadResult]] : []),
  ];
  return {
    title: 'CPU per operation of each process, 2-of-3 (ms per signature or decapsulation; /proc/<pid>/stat utime+stime, process.cpuUsage for the bench)',
    note: 'The bench process is the SDK plus the load driver. For the single-key signer, "node 1" is its server process.\nIncludes background work during the run (pool refills), so it is the cost per operation in steady state.',
    rows: [],
    table: {
      header: ['run', ...names, 'all'],
      rows: rows.map(([label, r]) => [
        label,
        ...names.map((n) => (r ? cell(pick(r, label.startsWith('single-key') && n === 'node 1' ? 'single-key server' : n), fmtMs) : '-')),
        cell(cpuTotal(r), fmtMs),
      ]),
    },
  };
}

/** How p50 and throughput change with t-of-n (ed25519). */
function scalingSummary(rows: readonly SignFigures[]): Section {
  return {
    title: 'Signing ed25519 by t-of-n (c=1 p50 latency, c=16 throughput)',
    note: 'CPU = all processes (coordinator, every node, the bench/SDK), ms per signature at c=16.',
    rows: [],
    table: {
      header: ['t-of-n', 'path', 'c=1 p50 ms', 'c=1 p99 ms', 'c=16 sig/s', 'c=16 p50 ms', 'c=16 p99 ms', 'CPU ms/sig', 'n (c=1, c=16)', ''],
      rows: rows.map((f) => [
        f.tn,
        `${f.path} [${f.backend}]`,
        cell(f.c1?.stats.medianMs, fmtMs),
        cell(f.c1?.stats.p99Ms, fmtMs),
        cell(f.c16?.stats.opsPerSec, fmtOps),
        cell(f.c16?.stats.medianMs, fmtMs),
        cell(f.c16?.stats.p99Ms, fmtMs),
        cell(cpuTotal(f.c16), fmtMs),
        `${f.c1?.stats.n ?? 0}, ${f.c16?.stats.n ?? 0}`,
        failedCell(f),
      ]),
      leftColumns: [1, 9],
    },
  };
}

// ---------------------------------------------------------------------------------------------

export interface ClusterResult {
  sections: Section[];
  failures: Failure[];
  figures: ClusterFigures;
  /** Set when the run stopped early (e.g. a process did not start); the sections measured so far are kept. */
  error?: unknown;
  /** On any failure: the last lines each process logged (warn level and above). */
  logTail: Record<string, string[]>;
}

/** A dev cluster for the bench, always stopped and deleted by `close`. */
export interface BenchCluster {
  dev: DevCluster;
  dataDir: string;
  unexpected: string[];
  close(keepLogs: boolean): Promise<Record<string, string[]>>;
}

export async function startBenchCluster(nodes: number, threshold: number, log: (l: string) => void): Promise<BenchCluster> {
  const dataDir = await mkdtemp(join(tmpdir(), `tessera-bench-${threshold}of${nodes}-`));
  const unexpected: string[] = [];
  let dev: DevCluster | undefined;
  const close = async (keepLogs: boolean) => {
    if (dev) await dev.stop().catch((e) => log(`cluster: stop failed: ${String(e)}`));
    const tails = keepLogs ? await readLogTails(join(dataDir, 'logs')) : {};
    await rm(dataDir, { recursive: true, force: true });
    return Object.fromEntries(Object.entries(tails).map(([k, v]) => [`${threshold}-of-${nodes}/${k}`, v]));
  };
  try {
    const t0 = performance.now();
    dev = await startDevCluster({ nodes, threshold, dataDir, port: 0, logLevel: 'warn', out: () => {} });
    dev.onUnexpectedExit = (index, code, signal) => {
      const line = `${threshold}-of-${nodes}: ${index === 0 ? 'coordinator' : `node ${index}`} exited unexpectedly (${signal ?? code})`;
      unexpected.push(line);
      log(`cluster: ${line}`);
    };
    // A loaded machine starts 7 tsx processes slowly: allow more than the default 90 s.
    await dev.ready(180_000);
    log(`cluster: ${threshold}-of-${nodes}: ${nodes} nodes ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } catch (e) {
    await close(false);
    throw e;
  }
  return { dev, dataDir, unexpected, close };
}

/** Restart every node with `env` (same data, same ports); resolves when all answer /ready again. */
async function restartNodes(dev: DevCluster, env: Record<string, string>): Promise<void> {
  for (const n of dev.cluster.nodes) {
    await dev.kill(n.index);
    dev.start(n.index, env);
  }
  await dev.ready(180_000);
}

/** Measure everything; always stops every process and deletes every data dir. Never throws. */
export async function runCluster(o: ClusterOptions): Promise<ClusterResult> {
  const sections: Section[] = [];
  const failures: Failure[] = [];
  const figures: { signing: SignFigures[]; singleKey?: SignFigures; signMany: { suite: string; result: LoadResult }[]; keygen: { suite: string; stats: Stats; failed: number }[]; decapsulate?: { stats: Stats; failed: number; result?: LoadResult } } = {
    signing: [],
    signMany: [],
    keygen: [],
  };
  const add = (s: Section) => {
    sections.push(s);
    o.emit(s);
  };
  const b = budgets(o.quick);
  let logTail: Record<string, string[]> = {};
  let error: unknown;
  const unexpected: string[] = [];
  let bc: BenchCluster | undefined;
  let single: SingleKeySigner | undefined;
  let singleDir: string | undefined;
  const closeCluster = async () => {
    if (!bc) return;
    const c = bc;
    bc = undefined;
    unexpected.push(...c.unexpected);
    const tails = await c.close(error !== undefined || failures.length > 0 || c.unexpected.length > 0);
    logTail = { ...logTail, ...tails };
  };
  try {
    // ---- 1. 2-of-3, the nodes' default backends ----------------------------------------------
    bc = await startBenchCluster(3, 2, o.log);
    let dev = bc.dev;
    let cluster = clusterFrom(dev);
    let watched = watchedOf(dev);
    const backend = await backendsOf(cluster);

    const keygenRows: Stats[] = [];
    const keys = new Map<string, string>();
    // Untimed warm-up keygens (coordinator links, JIT of the DKG and commit paths on both curves,
    // LevelDB open paths), then the timed ones interleaved, one per suite per round, so no suite is
    // timed on colder code than another (timed one suite after the other with one warm-up, the first
    // suite measured 136 ms against 110 to 120 ms for the later ones).
    // ecdsa-*: the DKG followed by DKLs23's pairwise OT setup (issue 12, "DKG with OT setup").
    const keygenSuites = ['ed25519', 'secp256k1', 'bip340', 'hpke-x25519', 'ecdsa-secp256k1', 'ecdsa-p256'];
    for (let r = 0; r < b.keygenWarm; r++) await cluster.keygen({ suite: keygenSuites[r % 2]!, threshold: 2 });
    const keygenSamples = new Map(keygenSuites.map((suite) => [suite, { samples: [] as number[], failed: 0 }]));
    for (let r = 0; r < b.keygenRuns; r++) {
      for (const suite of keygenSuites) {
        if (r >= (suite === 'ed25519' || suite === 'secp256k1' ? b.keygenRuns : Math.min(b.keygenRuns, suite.startsWith('ecdsa-') ? 5 : 2))) continue;
        const into = keygenSamples.get(suite)!;
        const t0 = performance.now();
        try {
          const k = await cluster.keygen({ suite, threshold: 2 });
          into.samples.push(performance.now() - t0);
          keys.set(suite, k.keyId);
        } catch (e) {
          into.failed++;
          failures.push(describe(`keygen ${suite}`, e));
        }
      }
    }
    for (const [suite, { samples, failed }] of keygenSamples) {
      const stats = summarize(`keygen ${suite} 2-of-3`, samples, { note: failed ? `${failed}/${samples.length + failed} FAILED` : '' });
      keygenRows.push(stats);
      figures.keygen.push({ suite, stats, failed });
    }
    o.log('cluster: keygen done');

    const lifecycle = async (label: string, runs: number, fn: () => Promise<unknown>) => {
      const samples: number[] = [];
      let failed = 0;
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now();
        try {
          await fn();
          samples.push(performance.now() - t0);
        } catch (e) {
          failed++;
          failures.push(describe(label, e));
        }
      }
      keygenRows.push(summarize(label, samples, { note: failed ? `${failed}/${runs} FAILED` : '' }));
    };
    const edKey = keys.get('ed25519');
    if (edKey) await lifecycle('refresh ed25519 2-of-3', b.lifecycleRuns, () => cluster.refresh({ keyId: edKey }));
    // Rotate: a DKG for the next version plus retiring the old one, committed with one certificate.
    const rotKey = `bench-rotate-${Date.now()}`;
    await cluster.keygen({ suite: 'ed25519', keyId: rotKey, threshold: 2 });
    await lifecycle('rotate ed25519 2-of-3', b.lifecycleRuns, () => cluster.rotate({ keyId: rotKey }));
    // Wrapped export and import of one key (issue 5): exported to this cluster's own import keys and imported back.
    try {
      const movable = await cluster.keygen({ suite: 'ed25519', threshold: 2, exportable: true });
      const importKeys = (await cluster.importKeys()).map((k) => k.publicKey);
      let bundle: unknown;
      await lifecycle('export ed25519 2-of-3', b.lifecycleRuns, async () => (bundle = await cluster.exportKey({ keyId: movable.keyId, wrappingKeys: importKeys })));
      let r = 0;
      if (bundle) await lifecycle('import ed25519 2-of-3', b.lifecycleRuns, () => cluster.importKey({ bundle, keyId: `${movable.keyId}-imported-${r++}` }));
    } catch (e) {
      failures.push(describe('export/import setup', e));
    }
    o.log('cluster: refresh, rotate, export, import done');
    add({
      title: 'Cluster 2-of-3: key generation, refresh, rotate, export, import (SDK over HTTP; each ends with the commit-certificate round)',
      note: `One SDK call each, sequential; ops/s = 1000 / mean. Group backends: ${backend}.\nexport/import: wrapped to ML-KEM-768, this cluster's own import keys.`,
      rows: keygenRows,
    });

    // Signing: every suite, every path.
    const signRowsOf = async (suites: readonly string[], backendLabel: string, slow: boolean): Promise<SignFigures[]> => {
      const out: SignFigures[] = [];
      for (const suite of suites) {
        const keyId = keys.get(suite);
        if (!keyId) continue;
        // bip340 shares secp256k1's group: its two-round row adds little, so only the presigned one runs.
        for (const path of suite === 'bip340' ? [PRESIGNED] : suite.startsWith('ecdsa-') ? ECDSA_SIGN_PATHS : SIGN_PATHS) {
          const slowRow = slow || path === TWO_ROUND;
          out.push(
            await signRows(
              { cluster, keyId, suite, tn: '2-of-3', path, backend: backendLabel, c1: slowRow ? b.slowC1 : b.c1, c16: slowRow ? b.slowC16 : b.c16, warm: b.warm, settleMs: b.settleMs },
              failures,
              watched,
              o.log,
            ),
          );
        }
      }
      return out;
    };
    const main = await signRowsOf(['ed25519', 'secp256k1', 'bip340'], 'default', false);
    figures.signing.push(...main);
    add({
      title: `Cluster 2-of-3: signing (players 1,2), group backends: ${backend}`,
      note: "Latency per SDK call; ops/s = successful signatures / wall-clock seconds of the batch.",
      rows: main.flatMap((f) => [f.c1!.stats, f.c16!.stats]),
    });

    // Threshold ECDSA (issue 12): DKLs23's three-round session per signature.
    const ecdsa = await signRowsOf(ECDSA_BENCH_SUITES, 'default', true);
    figures.signing.push(...ecdsa);
    add({
      title: `Cluster 2-of-3: threshold ECDSA (DKLs23) signing (players 1,2), group backends: ${backend}`,
      note: 'Latency per SDK call (three rounds through the coordinator, every player combines and verifies; the SDK verifies).',
      rows: ecdsa.flatMap((f) => [f.c1!.stats, f.c16!.stats]),
    });
    o.log('cluster: ecdsa signing done');

    // Decapsulation.
    const kemKey = keys.get('hpke-x25519');
    if (kemKey) {
      const decap = () => cluster.decapsulate({ keyId: kemKey, enc: x25519.getPublicKey(x25519.utils.randomSecretKey()) });
      for (let i = 0; i < b.warm; i++) await decap().catch((e) => failures.push(describe('decapsulate warm-up', e)));
      await settle(watched, b.settleMs);
      const r = await load('decapsulate hpke-x25519 2-of-3', b.slowC1, 1, decap, failures, watched);
      figures.decapsulate = { stats: r.stats, failed: r.failed, result: r };
      add({
        title: 'Cluster 2-of-3: threshold decapsulation (players 1,2)',
        note: "Includes the SDK's fresh ML-KEM-768 receiver key, unwrapping both partials and decapCombine.",
        rows: [r.stats],
      });
      o.log('cluster: decapsulate done');
    }

    // signMany: 64 messages per request (POST /v1/sign-batch, one request per player), presignatures warmed first.
    {
      const manyRows: Stats[] = [];
      for (const suite of ['ed25519', 'secp256k1']) {
        const keyId = keys.get(suite);
        if (!keyId) continue;
        const name = `signMany ${suite} 2-of-3, 64 messages`;
        let other = 0;
        const many = async () => {
          const messages = Array.from({ length: 64 }, () => randomBytes(32));
          const r = await cluster.signMany({ keyId, messages });
          other += r.filter((x) => x.path !== 'presigned').length;
        };
        await many().catch((e) => failures.push(describe(`${name} warm-up`, e)));
        for (const c of [1, 4]) {
          const cap = c === 1 ? b.manyC1 : b.manyC4;
          await cluster.warmPresignatures(keyId, Math.min(cap.max * 64, WARM_PRESIGNATURES)).catch((e) => failures.push(describe(`${name} warm presignatures`, e)));
          await settle(watched, b.settleMs);
          other = 0;
          const r = await load(name, cap, c, many, failures, watched, 64);
          const withNote = other ? { ...r, stats: { ...r.stats, note: `${r.stats.note}, ${other}/${r.ok * 64} by two-round fallback` } } : r;
          manyRows.push(withNote.stats);
          figures.signMany.push({ suite, result: withNote });
        }
        o.log(`cluster: ${name} done`);
      }
      add({
        title: 'Cluster 2-of-3: signMany, 64 messages per request (players 1,2; sign-batch, presignatures warmed)',
        note: 'Latency per signMany call; ops/s = signatures / wall-clock seconds (c = signMany calls in flight).',
        rows: manyRows,
      });
    }

    // The single-key signer, same machine, same client code.
    singleDir = await mkdtemp(join(tmpdir(), 'tessera-bench-single-'));
    single = await startSingleKeySigner(singleDir);
    {
      const s = single;
      const sw: Watched[] = [{ name: 'single-key server', pid: () => s.pid }, benchProcess];
      const sign = () => s.sign(randomBytes(32));
      await warmUp(sign, b.c1.warmSigns ?? b.warm * 10, b.c1.warmConcurrent ?? 0, (e) => failures.push(describe('single-key warm-up', e)));
      const c1 = await load('sign single-key Ed25519 (node:crypto)', b.c1, 1, sign, failures, sw);
      const c16 = await load('sign single-key Ed25519 (node:crypto)', b.c16, 16, sign, failures, sw);
      figures.singleKey = { suite: 'ed25519', tn: '1-of-1', path: 'single-key', backend: 'node:crypto', c1, c16 };
      add({
        title: 'Single-key signer: node:crypto Ed25519 behind the node HTTP stack (bench/single-key-server.ts)',
        note: 'Same fastify app (node/http/api.ts), API-key check, policy, synced audit started/ok, plain HTTP like the dev nodes;\nthe same SDK request code (NodeClient.join) and signature check.',
        rows: [c1.stats, c16.stats],
      });
      await s.stop();
      single = undefined;
      await rm(singleDir, { recursive: true, force: true });
      singleDir = undefined;
    }

    // ---- 2. the same cluster on noble ------------------------------------------------------
    o.log('cluster: restarting the nodes with TESSERA_GROUP_BACKEND=noble');
    await restartNodes(dev, { TESSERA_GROUP_BACKEND: 'noble' });
    cluster = clusterFrom(dev);
    watched = watchedOf(dev);
    const nobleBackend = await backendsOf(cluster);
    const noble = await signRowsOf(['ed25519', 'secp256k1'], 'noble', true);
    figures.signing.push(...noble);
    add({
      title: `Cluster 2-of-3: signing with TESSERA_GROUP_BACKEND=noble (same keys, nodes restarted), group backends: ${nobleBackend}`,
      rows: noble.flatMap((f) => [f.c1!.stats, f.c16!.stats]),
    });
    add(signingSummary(figures.signing, figures.singleKey));
    add(cpuSummary(figures));
    await closeCluster();

    // ---- 3. t-of-n ------------------------------------------------------------------------
    const scaling: SignFigures[] = main.filter((f) => f.suite === 'ed25519');
    for (const [t, n] of [
      [3, 5],
      [4, 7],
    ] as const) {
      bc = await startBenchCluster(n, t, o.log);
      dev = bc.dev;
      cluster = clusterFrom(dev);
      watched = watchedOf(dev);
      const k = await cluster.keygen({ suite: 'ed25519', threshold: t });
      for (const path of SIGN_PATHS) {
        const slowRow = path === TWO_ROUND;
        const f = await signRows(
          { cluster, keyId: k.keyId, suite: 'ed25519', tn: `${t}-of-${n}`, path, backend: 'default', c1: slowRow ? b.slowC1 : b.c1, c16: slowRow ? b.slowC16 : b.c16, warm: b.warm, settleMs: b.settleMs },
          failures,
          watched,
          o.log,
        );
        scaling.push(f);
        figures.signing.push(f);
      }
      await closeCluster();
    }
    add(scalingSummary(scaling));
  } catch (e) {
    error = e ?? new Error('unknown error');
  } finally {
    if (single) await single.stop().catch(() => undefined);
    if (singleDir) await rm(singleDir, { recursive: true, force: true });
    await closeCluster();
    for (const u of unexpected) failures.push({ operation: 'cluster', code: 'PROCESS_EXIT', message: u });
  }
  return { sections, failures, figures, logTail, ...(error !== undefined ? { error } : {}) };
}

export { failureLine };
