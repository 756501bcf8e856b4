/**
 * A membership change for many keys (issue 13 item 2, "the membership change for 100 keys, with
 * progress"), on a real local cluster (bench/cluster.ts startBenchCluster: sdk/dev.ts processes, fresh
 * temp data dir, free ports), driven through the SDK as `tessera cluster add-node` drives it:
 *
 *   N ed25519 keys are made on a 4-node 2-of-4 cluster (set-up, not timed); node 5 is prepared
 *   (sdk/dev.ts prepareDevNode: new data dir, identity, config with the next membership) and
 *   Cluster.addNode runs: the certified membership change of nodes 1..4, node 5 started and admitted
 *   by the coordinator, then reshareAll moves every key onto 1..5 (CONCURRENCY at a time), a progress
 *   line per key (every PROGRESS_EVERY-th one printed).
 *
 * Reported: the membership change's seconds (session + the new node connecting), the resharing's total
 * seconds and keys/s, and the per-key figures of the progress lines. Failures are never retried or
 * hidden: each failed key is counted and listed by run.ts. `npm run bench -- --only membership [--quick]`.
 */
import { performance } from 'node:perf_hooks';
import { toHex } from '../core/bytes.js';
import type { Cluster } from '../sdk/client.js';
import { prepareDevNode } from '../sdk/dev.js';
import { clusterFrom, describe, startBenchCluster, type BenchCluster, type Failure } from './cluster.js';
import type { Section } from './stats.js';

export interface MembershipBenchOptions {
  quick: boolean;
  emit: (s: Section) => void;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

const NODES = 4;
const THRESHOLD = 2;
const NEW_NODE = 5;
/** Keys made, and reshared, at once. */
const CONCURRENCY = 8;

export interface MembershipFigures {
  keys: number;
  concurrency: number;
  /** The certified change and the new node admitted (started after the commit, until it is connected). */
  changeSeconds: number;
  /** reshareAll: every key onto the new membership. */
  reshareSeconds: number;
  totalSeconds: number;
  keysPerSec: number;
  reshared: number;
  skipped: number;
  failed: number;
  setupSeconds: number;
}

export interface MembershipBenchResult {
  sections: Section[];
  failures: Failure[];
  figures?: MembershipFigures;
  error?: unknown;
  logTail: Record<string, string[]>;
}

/** Runs the change once; always stops every process and deletes the data dir. Never throws. */
export async function runMembership(o: MembershipBenchOptions): Promise<MembershipBenchResult> {
  const sections: Section[] = [];
  const failures: Failure[] = [];
  const keys = o.quick ? 10 : 100;
  const progressEvery = o.quick ? 2 : 10;
  let figures: MembershipFigures | undefined;
  let logTail: Record<string, string[]> = {};
  let error: unknown;
  let bc: BenchCluster | undefined;
  try {
    bc = await startBenchCluster(NODES, THRESHOLD, o.log);
    const cluster: Cluster = clusterFrom(bc.dev);

    // Set-up (not timed): N ed25519 keys on nodes 1..4.
    const setupT0 = performance.now();
    let next = 0;
    let made = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < keys) {
          const k = next++;
          try {
            await cluster.keygen({ suite: 'ed25519', keyId: `bench-membership-${k}`, threshold: THRESHOLD });
            made++;
          } catch (e) {
            failures.push(describe('membership set-up (keygen on 1..4)', e));
          }
        }
      }),
    );
    const setupSeconds = (performance.now() - setupT0) / 1000;
    o.log(`membership: ${made} of ${keys} ed25519 keys on 2-of-4 (1..4) in ${setupSeconds.toFixed(1)} s (set-up, not timed); adding node ${NEW_NODE}`);

    const report = await cluster.membership();
    const current = { epoch: report.epoch, members: report.membership!.members.map((m) => ({ index: m.index, identityPublicKey: toHex(m.identityPublicKey) })) };
    const node = await prepareDevNode(bc.dev, { index: NEW_NODE, current });

    const t0 = performance.now();
    let committedAt = t0;
    let reshareT0 = t0;
    const r = await cluster.addNode(node, {
      concurrency: CONCURRENCY,
      onCommitted: async () => {
        committedAt = performance.now();
        await node.start();
      },
      onProgress: (line) => {
        if (line.startsWith('resharing every key')) reshareT0 = performance.now();
        if (line.startsWith('[')) {
          const k = Number(/^\[(\d+)\//.exec(line)?.[1]);
          if (k % progressEvery === 0 || k === made || / failed: /.test(line)) o.log(`membership: ${line} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        } else o.log(`membership: ${line}`);
      },
    });
    const totalSeconds = (performance.now() - t0) / 1000;
    for (const f of r.reshare.failures) failures.push({ operation: `membership reshare ${f.tenant}/${f.keyId} v${f.version}`, code: 'RESHARE_FAILED', message: f.reason });
    // The change ends when the resharing begins (after the new node connected).
    const changeSeconds = (reshareT0 - t0) / 1000;
    const reshareSeconds = (performance.now() - reshareT0) / 1000;
    figures = {
      keys: r.reshare.total,
      concurrency: CONCURRENCY,
      changeSeconds,
      reshareSeconds,
      totalSeconds,
      keysPerSec: r.reshare.reshared / reshareSeconds,
      reshared: r.reshare.reshared,
      skipped: r.reshare.skipped,
      failed: r.reshare.failed,
      setupSeconds,
    };
    o.log(`membership: committed in ${((committedAt - t0) / 1000).toFixed(1)} s; node ${NEW_NODE} admitted; ${r.reshare.reshared} keys reshared in ${reshareSeconds.toFixed(1)} s`);
    const section: Section = {
      title: `Membership change: add node ${NEW_NODE} to a 2-of-4 cluster and reshare ${r.reshare.total} ed25519 keys onto 1..5 (SDK Cluster.addNode, as tessera cluster add-node), ${CONCURRENCY} keys at a time`,
      note:
        `change: the certified session of nodes 1..4, node ${NEW_NODE} started after the commit and admitted by the coordinator; reshare: every key\n` +
        `onto 1..5 (reshareAll, from its start to its last key; a line per key, one in ${progressEvery} printed). Keys made first (set-up, not timed: ${setupSeconds.toFixed(1)} s).`,
      rows: [],
      table: {
        header: ['keys', 'reshared', 'failed', 'change s', 'reshare s', 'total s', 'keys/s'],
        rows: [[String(figures.keys), String(figures.reshared), String(figures.failed), changeSeconds.toFixed(1), reshareSeconds.toFixed(1), totalSeconds.toFixed(1), figures.keysPerSec.toFixed(2)]],
      },
    };
    sections.push(section);
    o.emit(section);
  } catch (e) {
    error = e ?? new Error('unknown error');
    failures.push(describe('membership change', e));
  } finally {
    if (bc) {
      const c = bc;
      bc = undefined;
      for (const u of c.unexpected) failures.push({ operation: 'membership cluster', code: 'PROCESS_EXIT', message: u });
      logTail = await c.close(error !== undefined || failures.length > 0);
    }
  }
  return { sections, failures, ...(figures ? { figures } : {}), logTail, ...(error !== undefined ? { error } : {}) };
}
