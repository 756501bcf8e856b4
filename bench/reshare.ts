/**
 * Resharing (issue 13) on one real local 5-node cluster (bench/cluster.ts startBenchCluster: sdk/dev.ts
 * processes, fresh temp data dir, free ports), driven through the SDK's Cluster.reshare over HTTP. Every
 * figure is the latency one Cluster.reshare call sees: reading the key from every node, the session of
 * dealers ∪ new committee (deal, echo, combine, confirm), the commit certificate, the SDK's checks of
 * every answer and certificate, the handoff to old holders outside the session, reading the new record.
 *
 *   1. One key, 2-of-3 on nodes 1,2,3 <-> 3-of-5 on nodes 1..5, back and forth, one call at a time, per
 *      suite: ed25519, and ecdsa-secp256k1 (whose reshare also runs the new committee's DKLs23 pairwise
 *      setup). Each key is made on all five nodes and first moved to 2-of-3 on 1,2,3 (not timed).
 *   2. Many keys onto a new committee: N ed25519 keys on 2-of-3 on 1,2,3 all reshared to 3-of-5 on
 *      1..5, CONCURRENCY at a time, with progress lines. This is only the resharing part of a membership
 *      change: adding or removing a node is measured by bench/membership.ts,
 *      so no figure is given for it.
 *
 * Failures are never retried or hidden: each failed call is counted in its row and listed by run.ts.
 * `npm run bench -- --only reshare [--quick]` runs only this part.
 */
import { performance } from 'node:perf_hooks';
import type { Cluster } from '../sdk/client.js';
import { clusterFrom, describe, startBenchCluster, type BenchCluster, type Failure } from './cluster.js';
import { fmtMs, percentile, summarize, type Section, type Stats } from './stats.js';

export interface ReshareOptions {
  quick: boolean;
  emit: (s: Section) => void;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

const NODES = 5;
const SMALL = { threshold: 2, nodes: [1, 2, 3] } as const;
const LARGE = { threshold: 3, nodes: [1, 2, 3, 4, 5] } as const;
const SUITES = ['ed25519', 'ecdsa-secp256k1'] as const;
type Committee = typeof SMALL | typeof LARGE;
/** Keys resharing at once in part 2. */
const CONCURRENCY = 8;

/** How much of each part runs: round trips per suite, and the key count of part 2. */
function budgets(quick: boolean) {
  return quick
    ? { roundTrips: { ed25519: 3, 'ecdsa-secp256k1': 2 } as Record<string, number>, warmRoundTrips: { ed25519: 0, 'ecdsa-secp256k1': 0 } as Record<string, number>, keys: 20, progressEvery: 5 }
    : // Full run, sized to stay near two minutes on a 2-core machine (measured with --quick under load:
      // ~1.2 s per ed25519 round trip, ~2.3 s per ecdsa-secp256k1 one, ~0.55 s of set-up and ~0.35 s of
      // batch per key): the untimed round trip before the ed25519 rows warms the reshare paths both suites share.
      { roundTrips: { ed25519: 10, 'ecdsa-secp256k1': 5 } as Record<string, number>, warmRoundTrips: { ed25519: 1, 'ecdsa-secp256k1': 0 } as Record<string, number>, keys: 100, progressEvery: 10 };
}

/** One row's samples, its failures, and its p50 / p90 (nearest rank: with n = 10, p90 is the 9th fastest). */
export interface ReshareRow {
  readonly name: string;
  readonly stats: Stats;
  readonly p90Ms: number;
  readonly failed: number;
}

export interface ReshareBatch {
  readonly keys: number;
  readonly concurrency: number;
  readonly ok: number;
  readonly failed: number;
  readonly seconds: number;
  readonly keysPerSec: number;
  /** Per key latency under the batch's concurrency. */
  readonly perKey: ReshareRow;
  /** The progress lines' figures: keys finished (ok or failed) and seconds since the batch began. */
  readonly progress: { done: number; seconds: number }[];
  /** Untimed set-up: making the keys and moving them to 2-of-3 on 1,2,3, in seconds. */
  readonly setupSeconds: number;
}

export interface ReshareFigures {
  roundTrips: ReshareRow[];
  batch?: ReshareBatch;
}

export interface ReshareResult {
  sections: Section[];
  failures: Failure[];
  figures: ReshareFigures;
  /** Set when the run stopped early; the sections measured so far are kept. */
  error?: unknown;
  /** On any failure: the last lines each process logged (warn level and above). */
  logTail: Record<string, string[]>;
}

function row(name: string, samples: readonly number[], failed: number, extra: { opsPerSec?: number; note?: string } = {}): ReshareRow {
  const note = [extra.note, failed ? `${failed}/${samples.length + failed} FAILED` : ''].filter(Boolean).join(', ');
  const stats = summarize(name, samples, { ...(extra.opsPerSec !== undefined ? { opsPerSec: extra.opsPerSec } : {}), note });
  return { name, stats, p90Ms: percentile([...samples].sort((a, b) => a - b), 0.9), failed };
}

/** The table of part 1 and of part 2's per-key latency: p50 and p90 as the issue asks, then the rest. */
function latencyTable(rows: readonly ReshareRow[]) {
  return {
    header: ['reshare', 'n', 'p50 ms', 'p90 ms', 'min ms', 'max ms', 'note'],
    rows: rows.map((r) => [r.name, String(r.stats.n), fmtMs(r.stats.medianMs), fmtMs(r.p90Ms), fmtMs(r.stats.minMs), fmtMs(r.stats.maxMs), r.stats.note ?? '']),
    leftColumns: [6],
  };
}

function reshareTo(cluster: Cluster, keyId: string, target: Committee) {
  return cluster.reshare(keyId, { threshold: target.threshold, nodes: [...target.nodes] });
}

/** Run `op` on 0..count-1, `concurrency` at a time; `done` hears of each finished call (ok or not). */
async function pool(count: number, concurrency: number, op: (k: number) => Promise<void>, done: () => void): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const k = next++;
      await op(k);
      done();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/**
 * Part 2: `b.keys` ed25519 keys made on 1..5 and moved to 2-of-3 on 1,2,3 (set-up, not timed), then all
 * reshared to 3-of-5 on 1..5, CONCURRENCY at a time, with a progress line every `b.progressEvery` keys.
 */
async function reshareBatch(
  cluster: Cluster,
  b: ReturnType<typeof budgets>,
  log: (line: string) => void,
  failures: Failure[],
): Promise<{ section: Section; figures?: ReshareBatch }> {
  const to = (keyId: string, target: Committee) => reshareTo(cluster, keyId, target);
  const total = b.keys;
  const setupT0 = performance.now();
  const ready: string[] = [];
  await pool(
    total,
    CONCURRENCY,
    async (k) => {
      try {
        const keyId = `bench-reshare-${Date.now()}-${k}`;
        await cluster.keygen({ suite: 'ed25519', keyId, threshold: SMALL.threshold });
        await to(keyId, SMALL);
        ready.push(keyId);
      } catch (e) {
        failures.push(describe('reshare batch set-up (keygen on 1..5, reshare to 2-of-3 on 1,2,3)', e));
      }
    },
    () => {},
  );
  const setupSeconds = (performance.now() - setupT0) / 1000;
  log(`reshare: ${ready.length} of ${total} ed25519 keys on 2-of-3 (1,2,3) in ${setupSeconds.toFixed(1)} s (set-up, not timed); resharing them to 3-of-5, ${CONCURRENCY} at a time`);
  if (ready.length === 0) {
    const section: Section = {
      title: `Reshare of ${total} keys onto a new committee: NOT MEASURED, no key could be set up (see FAILED CALLS)`,
      note: 'The resharing part of a membership change only; adding or removing a node is measured by bench/membership.ts.',
      rows: [],
    };
    return { section };
  }
  const latencies: number[] = [];
  const progress: { done: number; seconds: number }[] = [];
  let failed = 0;
  let done = 0;
  const t0 = performance.now();
  await pool(
    ready.length,
    CONCURRENCY,
    async (k) => {
      const s = performance.now();
      try {
        await to(ready[k]!, LARGE);
        latencies.push(performance.now() - s);
      } catch (e) {
        failed++;
        failures.push(describe('reshare batch 2-of-3 -> 3-of-5', e));
      }
    },
    () => {
      done++;
      if (done % b.progressEvery === 0 || done === ready.length) {
        const seconds = (performance.now() - t0) / 1000;
        progress.push({ done, seconds });
        log(`reshare: ${done}/${ready.length} keys reshared${failed ? ` (${failed} FAILED)` : ''}, ${seconds.toFixed(1)} s`);
      }
    },
  );
  const seconds = (performance.now() - t0) / 1000;
  const keysPerSec = latencies.length / seconds;
  const batch: ReshareBatch = {
    keys: ready.length,
    concurrency: CONCURRENCY,
    ok: latencies.length,
    failed,
    seconds,
    keysPerSec,
    perKey: row(`ed25519 2-of-3 -> 3-of-5, per key at c=${CONCURRENCY}`, latencies, failed, { opsPerSec: keysPerSec }),
    progress,
    setupSeconds,
  };
  const section: Section = {
    title: `Reshare of ${ready.length}${ready.length < total ? ` (of ${total}: the rest FAILED set-up)` : ''} keys onto a new committee, with progress: ed25519 2-of-3 on nodes 1,2,3 -> 3-of-5 on nodes 1..5, ${CONCURRENCY} at a time`,
    note:
      'The resharing part of a membership change only; the whole change (the certified membership session, then every key) is\n' +
      `bench/membership.ts. Keys made and moved to 2-of-3 first (set-up, not timed: ${setupSeconds.toFixed(1)} s).`,
    rows: [],
    table: {
      header: ['batch', 'keys', 'ok', 'failed', 'total s', 'keys/s', 'p50 ms per key', 'p90 ms per key'],
      rows: [[`ed25519 2-of-3 -> 3-of-5, c=${CONCURRENCY}`, String(batch.keys), String(batch.ok), String(batch.failed), seconds.toFixed(1), keysPerSec.toFixed(2), fmtMs(batch.perKey.stats.medianMs), fmtMs(batch.perKey.p90Ms)]],
    },
  };
  return { section, figures: batch };
}

/** Measure both parts; always stops every process and deletes the data dir. Never throws. */
export async function runReshare(o: ReshareOptions): Promise<ReshareResult> {
  const sections: Section[] = [];
  const failures: Failure[] = [];
  const figures: ReshareFigures = { roundTrips: [] };
  const add = (s: Section) => {
    sections.push(s);
    o.emit(s);
  };
  const b = budgets(o.quick);
  let logTail: Record<string, string[]> = {};
  let error: unknown;
  let bc: BenchCluster | undefined;
  try {
    bc = await startBenchCluster(NODES, SMALL.threshold, o.log);
    const cluster: Cluster = clusterFrom(bc.dev);
    const to = (keyId: string, target: Committee) => reshareTo(cluster, keyId, target);

    // ---- 1. one key back and forth, per suite ---------------------------------------------------
    for (const suite of SUITES) {
      const runs = b.roundTrips[suite]!;
      const up: number[] = [];
      const down: number[] = [];
      let upFailed = 0;
      let downFailed = 0;
      let keyId: string;
      try {
        keyId = (await cluster.keygen({ suite, threshold: SMALL.threshold })).keyId;
        await to(keyId, SMALL);
        for (let r = 0; r < b.warmRoundTrips[suite]!; r++) {
          await to(keyId, LARGE);
          await to(keyId, SMALL);
        }
      } catch (e) {
        failures.push(describe(`reshare ${suite} set-up (keygen on 1..5, reshare to 2-of-3 on 1,2,3)`, e));
        continue;
      }
      // A failed call may or may not have moved the key (it may have committed): the suite's runs stop
      // there, so no later call is timed under the wrong direction's label.
      let broken = false;
      for (let r = 0; r < runs && !broken; r++) {
        for (const [target, into, label] of [
          [LARGE, up, 'up'],
          [SMALL, down, 'down'],
        ] as const) {
          const t0 = performance.now();
          try {
            await to(keyId, target);
            into.push(performance.now() - t0);
          } catch (e) {
            if (label === 'up') upFailed++;
            else downFailed++;
            failures.push(describe(`reshare ${suite} ${label === 'up' ? '2-of-3 -> 3-of-5' : '3-of-5 -> 2-of-3'}`, e));
            broken = true;
            break;
          }
        }
      }
      const note = suite === 'ecdsa-secp256k1' ? "with the new committee's DKLs23 pairwise setup" : '';
      figures.roundTrips.push(row(`${suite} 2-of-3 (1,2,3) -> 3-of-5 (1..5)`, up, upFailed, { note }));
      figures.roundTrips.push(row(`${suite} 3-of-5 (1..5) -> 2-of-3 (1,2,3)`, down, downFailed, { note }));
      o.log(`reshare: ${suite} ${runs} round trips done`);
    }
    add({
      title: 'Reshare one key: 2-of-3 on nodes 1,2,3 <-> 3-of-5 on nodes 1..5 (5-node cluster, SDK Cluster.reshare over HTTP)',
      note:
        'One call at a time, the key reshared back and forth; each call: read the key from every node, the session of dealers + new committee,\n' +
        'the commit certificate checked by the SDK, the handoff to old holders outside the session. p50 / p90 nearest rank.',
      rows: [],
      table: latencyTable(figures.roundTrips),
    });

    // ---- 2. many keys onto a new committee ------------------------------------------------------
    const batch = await reshareBatch(cluster, b, o.log, failures);
    if (batch.figures) figures.batch = batch.figures;
    add(batch.section);
  } catch (e) {
    error = e ?? new Error('unknown error');
  } finally {
    if (bc) {
      const c = bc;
      bc = undefined;
      for (const u of c.unexpected) failures.push({ operation: 'reshare cluster', code: 'PROCESS_EXIT', message: u });
      logTail = await c.close(error !== undefined || failures.length > 0);
    }
  }
  return { sections, failures, figures, logTail, ...(error !== undefined ? { error } : {}) };
}
