/**
 * The rotation scheduler (node/governance/scheduler.ts) over real stores and audit logs, with injected clocks and
 * a stand-in for the rotate session (SessionRendezvous below: a session starts when every node joined
 * the same id, as the coordinator starts one; then each node stores the new version as a rotation
 * does). Shows: session ids keyed by the cluster scheduling secret; nodes whose clocks differ by 10
 * minutes meet under one id and rotate; a failed attempt shows as 'overdue' with its reason, and the
 * next attempt uses a new id at the next slot; an id is never joined twice, across a restart with the
 * clock stepped back; without a secret nothing rotates and the reason says so.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { toHex } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/governance/audit.js';
import { rotationStatus } from '../../core/lifecycle.js';
import {
  RotationAttempts,
  RotationScheduler,
  SCHEDULER_NAMESPACE,
  rotationAttempt,
  scheduledJoinTimeoutMs,
  scheduledRotationSessionId,
  type ScheduledRotationRef,
} from '../../node/governance/scheduler.js';
import { ShareStore } from '../../node/store/storage.js';
import { dealerKeys } from '../helpers/run-sign.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const SECRET = Uint8Array.from(randomBytes(32));

let identity: IdentityKeyPair;
beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
});

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function openNode(index: number): Promise<{ store: ShareStore; audit: AuditLog; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), `tessera-sched-${index}-`));
  const store = await ShareStore.open({ dataDir: join(dir, 'd'), kek: Uint8Array.from(randomBytes(32)), nodeIndex: index, minRotationPeriodMs: 1000 });
  const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0 });
  cleanup.push(async () => {
    await audit.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, audit, dir };
}

const silent = () => pino({ level: 'silent' });
const settle = () => new Promise((r) => setTimeout(r, 20));

/**
 * Stands in for the coordinator's session start: a session id starts once every one of `n` nodes has
 * joined it; expire() aborts the ones still waiting, naming the nodes that did not join (as EXPIRED does).
 */
class SessionRendezvous {
  private readonly waiting = new Map<string, { nodes: Set<number>; resolve: (() => void)[]; reject: ((e: Error) => void)[] }>();
  readonly joins: { node: number; session: string }[] = [];
  constructor(private readonly n: number) {}

  join(node: number, session: Uint8Array): Promise<void> {
    const key = toHex(session);
    this.joins.push({ node, session: key });
    const w = this.waiting.get(key) ?? { nodes: new Set<number>(), resolve: [], reject: [] };
    this.waiting.set(key, w);
    w.nodes.add(node);
    const started = new Promise<void>((resolve, reject) => {
      w.resolve.push(resolve);
      w.reject.push(reject);
    });
    if (w.nodes.size === this.n) {
      this.waiting.delete(key);
      for (const r of w.resolve) r();
    }
    return started;
  }

  expire(): void {
    for (const [key, w] of this.waiting) {
      const missing = Array.from({ length: this.n }, (_, i) => i + 1).filter((i) => !w.nodes.has(i));
      for (const r of w.reject) r(new TesseraError(ErrorCode.SessionAborted, `EXPIRED: node ${missing.join(', ')} did not join`));
      this.waiting.delete(key);
    }
  }
}

/** A node's rotateScheduled: join the rendezvous, then store the next version (createdAt = the node's clock) and retire the old one. */
function rotatingService(index: number, store: ShareStore, clock: () => number, rendezvous: SessionRendezvous) {
  return vi.fn(async (tenant: string, keyId: string, version: number, session: Uint8Array, _timeoutMs: number) => {
    await rendezvous.join(index, session);
    const next = await store.nextVersion(tenant, keyId);
    const old = (await store.get(tenant, keyId, version))!;
    const share = dealerKeys('ed25519', 2, 3)[index - 1];
    await store.put({ tenant, keyId, version: next, share: share!, exportable: false, createdAt: clock(), rotationPeriodMs: old.rotationPeriodMs! });
    await store.setState(tenant, keyId, version, 'retired', { rotatedAt: clock() });
    return { keyId, version: next, previousVersion: version, suite: 'ed25519', publicKey: '' };
  });
}

describe('scheduled rotation session ids', () => {
  const ref: ScheduledRotationRef = { tenant: 'acme', keyId: 'k', version: 1, nextVersion: 2, attempt: 0 };

  it('are 16 bytes of HMAC under the cluster secret: the same for the same inputs, different for any other field or secret', () => {
    const a = scheduledRotationSessionId(SECRET, ref);
    expect(a).toHaveLength(16);
    expect(toHex(scheduledRotationSessionId(Uint8Array.from(SECRET), { ...ref }))).toBe(toHex(a));
    const others = [
      scheduledRotationSessionId(Uint8Array.from(randomBytes(32)), ref),
      scheduledRotationSessionId(SECRET, { ...ref, attempt: 1 }),
      scheduledRotationSessionId(SECRET, { ...ref, version: 2 }),
      scheduledRotationSessionId(SECRET, { ...ref, nextVersion: 3 }),
      scheduledRotationSessionId(SECRET, { ...ref, keyId: 'k2' }),
      scheduledRotationSessionId(SECRET, { ...ref, tenant: 'acme2' }),
    ].map(toHex);
    expect(new Set([toHex(a), ...others]).size).toBe(others.length + 1);
    expect(() => scheduledRotationSessionId(new Uint8Array(31), ref)).toThrow(/32 bytes/);
  });

  it('attempts are counted from the due time in retry slots; a node waits until just before its slot ends', () => {
    expect(rotationAttempt(999, 1000, 300_000)).toBe(-1);
    expect(rotationAttempt(1000, 1000, 300_000)).toBe(0);
    expect(rotationAttempt(1000 + 300_000, 1000, 300_000)).toBe(1);
    expect(scheduledJoinTimeoutMs(1000, 1000, 300_000, 0)).toBe(300_000 - 1000);
    expect(scheduledJoinTimeoutMs(1000 + 5_000, 1000, 15_000, 0)).toBe(10_000 - 1000);
    expect(scheduledJoinTimeoutMs(1000, 1000, 5_000, 0)).toBe(5_000 - 500);
  });
});

describe('RotationScheduler', () => {
  it('nodes whose clocks differ by 10 minutes derive a common session id and rotate, twice in a row', async () => {
    const offsets = [0, 10 * MIN, -3 * MIN]; // node 2 is 10 minutes ahead of node 1, node 3 three behind
    const rendezvous = new SessionRendezvous(3);
    let real = 1_700_000_000_000;
    const nodes = await Promise.all(
      offsets.map(async (offset, i) => {
        const { store, audit } = await openNode(i + 1);
        const clock = () => real + offset;
        // The key was made by one session that ended at the same real instant on every node.
        const share = dealerKeys('ed25519', 2, 3)[i];
        await store.put({ tenant: 'acme', keyId: 'k', version: 1, share: share!, exportable: false, createdAt: clock(), rotationPeriodMs: HOUR });
        const rotateScheduled = rotatingService(i + 1, store, clock, rendezvous);
        const scheduler = new RotationScheduler({
          store,
          records: store.namespace(SCHEDULER_NAMESPACE),
          audit,
          logger: silent(),
          service: { rotateScheduled } as never,
          checkIntervalMs: 1_000_000,
          retryMs: 5 * MIN,
          warnBeforeMs: 15 * MIN,
          scheduleSecret: SECRET,
          now: clock,
        });
        cleanup.push(() => scheduler.stop());
        return { store, scheduler, rotateScheduled, clock };
      }),
    );
    // What broke before: windows of each node's wall clock (floor(now / retryMs)) are two apart.
    expect(Math.floor(nodes[1]!.clock() / (5 * MIN)) - Math.floor(nodes[0]!.clock() / (5 * MIN))).toBe(2);

    const created = real;
    const tickAll = async () => {
      for (const n of nodes) await n.scheduler.tick();
      await settle();
    };
    for (const round of [1, 2]) {
      // Up to a second before the due instant: nobody joins (node 2's clock is 10 minutes ahead, yet it waits).
      real = created + round * HOUR - 1000;
      await tickAll();
      expect(rendezvous.joins).toHaveLength((round - 1) * 3);
      // Due: every node joins the same id, the session starts, every node stores the new version.
      real = created + round * HOUR + 10;
      await tickAll();
      const joins = rendezvous.joins.slice((round - 1) * 3);
      expect(joins.map((j) => j.node).sort()).toEqual([1, 2, 3]);
      expect(new Set(joins.map((j) => j.session)).size).toBe(1);
      expect(joins[0]!.session).toBe(toHex(scheduledRotationSessionId(SECRET, { tenant: 'acme', keyId: 'k', version: round, nextVersion: round + 1, attempt: 0 })));
      for (const n of nodes) {
        expect(n.rotateScheduled).toHaveBeenCalledTimes(round);
        await n.rotateScheduled.mock.results[round - 1]!.value; // the session ran: the node stored the new version
        expect((await n.store.latestActive('acme', 'k'))!.version).toBe(round + 1);
        expect((await n.store.get('acme', 'k', round))!.state).toBe('retired');
      }
      // The new version is due an hour after that same instant, on every node's own clock.
    }
  });

  it('a failed attempt shows as overdue with its reason; the next slot uses a new id; an id is never joined twice, even after a restart with the clock stepped back', async () => {
    const { store, audit } = await openNode(1);
    const rendezvous = new SessionRendezvous(2); // node 2 never comes
    let now = 1_700_000_000_000;
    const [share] = dealerKeys('ed25519', 2, 3);
    await store.put({ tenant: 'acme', keyId: 'k', version: 1, share: share!, exportable: false, createdAt: now, rotationPeriodMs: HOUR });
    const dueAt = now + HOUR;
    const rotateScheduled = rotatingService(1, store, () => now, rendezvous);
    const attempts = new RotationAttempts();
    const make = () =>
      new RotationScheduler({
        store,
        records: store.namespace(SCHEDULER_NAMESPACE),
        audit,
        logger: silent(),
        service: { rotateScheduled } as never,
        checkIntervalMs: 1_000_000,
        retryMs: 5 * MIN,
        scheduleSecret: SECRET,
        attempts,
        now: () => now,
      });
    let scheduler = make();
    const idOf = (attempt: number) => toHex(scheduledRotationSessionId(SECRET, { tenant: 'acme', keyId: 'k', version: 1, nextVersion: 2, attempt }));
    const status = async () => rotationStatus((await store.get('acme', 'k', 1))!, now, undefined, attempts.get('acme', 'k', 1));

    now = dueAt + 30_000;
    await scheduler.tick();
    await settle();
    expect(rendezvous.joins).toEqual([{ node: 1, session: idOf(0) }]);
    expect(rotateScheduled.mock.calls[0]![4]).toBe(5 * MIN - 30_000 - 1000); // waits until just before the slot ends
    expect(await status()).toEqual({ status: 'due', dueAt }); // the first attempt is running: nothing failed yet
    rendezvous.expire();
    await settle();
    // Key info says why, in one line, naming the node that did not join.
    expect(await status()).toEqual({ status: 'overdue', dueAt, attempts: 1, lastAttemptAt: dueAt + 30_000, lastError: 'EXPIRED: node 2 did not join', nextAttemptAt: dueAt + 5 * MIN });

    now += MIN; // same slot: not again
    await scheduler.tick();
    expect(rendezvous.joins).toHaveLength(1);
    now = dueAt + 5 * MIN; // next slot: a new id
    await scheduler.tick();
    await settle();
    expect(rendezvous.joins.map((j) => j.session)).toEqual([idOf(0), idOf(1)]);
    expect(await status()).toMatchObject({ status: 'overdue', attempts: 2, lastAttemptAt: dueAt + 5 * MIN });
    rendezvous.expire();
    await settle();
    await scheduler.stop();

    // Restart with the clock stepped back into attempt 0, then 1: both ids were joined here, so nothing.
    scheduler = make();
    for (const t of [dueAt + 1000, dueAt + 5 * MIN + 1000]) {
      now = t;
      await scheduler.tick();
      await settle();
    }
    expect(rendezvous.joins).toHaveLength(2);
    now = dueAt + 10 * MIN;
    await scheduler.tick();
    await settle();
    expect(rendezvous.joins.map((j) => j.session)).toEqual([idOf(0), idOf(1), idOf(2)]);
    expect(new Set(rendezvous.joins.map((j) => j.session)).size).toBe(3);
    rendezvous.expire();
    await settle();
    await scheduler.stop();
  });

  it('warns once before the due time (log and audit); without a scheduling secret it rotates nothing and says why', async () => {
    const { store, audit } = await openNode(1);
    const [share] = dealerKeys('ed25519', 2, 3);
    await store.put({ tenant: 'acme', keyId: 'k', version: 1, share: share!, exportable: false, createdAt: 1_000_000, rotationPeriodMs: 10_000 });
    let now = 1_000_000 + 5_000;
    const warn = vi.fn();
    const error = vi.fn();
    const logger = silent();
    logger.warn = warn as never;
    logger.error = error as never;
    const rotateScheduled = vi.fn();
    const attempts = new RotationAttempts();
    const scheduler = new RotationScheduler({
      store,
      records: store.namespace(SCHEDULER_NAMESPACE),
      audit,
      logger,
      service: { rotateScheduled } as never,
      checkIntervalMs: 1_000_000,
      retryMs: 60_000,
      warnBeforeMs: 2_000,
      attempts,
      now: () => now,
    });
    cleanup.push(() => scheduler.stop());

    await scheduler.tick(); // ok: nothing
    expect(warn).not.toHaveBeenCalled();
    now = 1_000_000 + 8_500; // within 2 s of due
    await scheduler.tick();
    await scheduler.tick();
    expect(warn.mock.calls.filter((c) => c[1] === 'key rotation due soon')).toHaveLength(1);
    const logged = (await audit.exportLog({ checkpoint: false })).entries;
    expect(logged).toEqual([expect.objectContaining({ operation: 'rotation.warning', tenant: 'acme', keyId: 'k', version: 1, actor: 'system.scheduler', severity: 'warning' })]);

    now = 1_000_000 + 10_001; // due, but no secret
    await scheduler.tick();
    await scheduler.tick();
    expect(rotateScheduled).not.toHaveBeenCalled();
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0]![1])).toMatch(/TESSERA_SCHEDULE_SECRET/);
    const s = rotationStatus((await store.get('acme', 'k', 1))!, now, 2_000, attempts.get('acme', 'k', 1));
    expect(s).toMatchObject({ status: 'overdue', dueAt: 1_010_000, attempts: 0, lastError: expect.stringMatching(/scheduleSecret/) });
  });
});
