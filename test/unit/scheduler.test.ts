/**
 * The rotation scheduler (node/scheduler.ts) over a real store and audit log with a fake service and
 * clock: it warns once per version before the rotation is due (log + audit), rotates a due version
 * once per retry window under the session id every node derives, and stops retrying when rotated.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { toHex } from '../../core/bytes.js';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/audit.js';
import { RotationScheduler, scheduledJoinTimeoutMs, scheduledRotationSessionId } from '../../node/scheduler.js';
import { ShareStore } from '../../node/storage.js';
import { runDkg } from '../helpers/run-dkg.js';

let identity: IdentityKeyPair;
beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
});

let dir: string;
let store: ShareStore;
let audit: AuditLog;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-sched-'));
  store = await ShareStore.open({ dataDir: join(dir, 'd'), kek: Uint8Array.from(randomBytes(32)), nodeIndex: 1, minRotationPeriodMs: 1000 });
  audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0 });
});
afterEach(async () => {
  await audit.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('scheduled rotation session ids', () => {
  it('are 16 bytes, the same on every node for a key version and window, and different otherwise', () => {
    const a = scheduledRotationSessionId('acme', 'k', 1, 100);
    expect(a).toHaveLength(16);
    expect(toHex(scheduledRotationSessionId('acme', 'k', 1, 100))).toBe(toHex(a));
    for (const other of [
      scheduledRotationSessionId('acme', 'k', 1, 101),
      scheduledRotationSessionId('acme', 'k', 2, 100),
      scheduledRotationSessionId('acme', 'k2', 1, 100),
      scheduledRotationSessionId('acme2', 'k', 1, 100),
    ]) {
      expect(toHex(other)).not.toBe(toHex(a));
    }
  });

  it('a node waits to the end of its window plus a grace', () => {
    expect(scheduledJoinTimeoutMs(15_000, 15_000)).toBe(15_000 + 7_500);
    expect(scheduledJoinTimeoutMs(29_990, 15_000)).toBe(1000 + 7_500);
    expect(scheduledJoinTimeoutMs(0, 300_000)).toBe(300_000 + 10_000);
  });
});

describe('RotationScheduler', () => {
  it('warns once before the due time, then rotates once per retry window with the derived session id', async () => {
    const [share] = runDkg('ed25519', 2, 3);
    await store.put({ tenant: 'acme', keyId: 'k', version: 1, share: share!, exportable: false, createdAt: 1_000_000, rotationPeriodMs: 10_000 });
    let now = 1_000_000 + 5_000;
    const warn = vi.fn();
    const logger = pino({ level: 'silent' });
    logger.warn = warn as never;
    let finish!: (v: unknown) => void;
    const rotateScheduled = vi.fn((_tenant: string, _keyId: string, _version: number, _session: Uint8Array, _timeoutMs: number) => new Promise<never>((_, reject) => (finish = reject)));
    const scheduler = new RotationScheduler({ store, audit, logger, service: { rotateScheduled } as never, checkIntervalMs: 1_000_000, retryMs: 60_000, warnBeforeMs: 2_000, now: () => now });

    await scheduler.tick(); // ok: nothing
    expect(warn).not.toHaveBeenCalled();
    now = 1_000_000 + 8_500; // within 2 s of due
    await scheduler.tick();
    await scheduler.tick();
    expect(warn.mock.calls.filter((c) => c[1] === 'key rotation due soon')).toHaveLength(1);
    const logged = (await audit.exportLog({ checkpoint: false })).entries;
    expect(logged).toEqual([expect.objectContaining({ operation: 'rotation.warning', tenant: 'acme', keyId: 'k', version: 1, actor: 'system.scheduler', severity: 'warning' })]);
    expect(rotateScheduled).not.toHaveBeenCalled();

    now = 1_000_000 + 10_001; // due
    await scheduler.tick();
    await scheduler.tick(); // in flight: not again
    expect(rotateScheduled).toHaveBeenCalledTimes(1);
    const window = Math.floor(now / 60_000);
    expect(rotateScheduled).toHaveBeenCalledWith('acme', 'k', 1, scheduledRotationSessionId('acme', 'k', 1, window), scheduledJoinTimeoutMs(now, 60_000));
    finish(Object.assign(new Error('expired'), { code: 'SESSION_ABORTED' }));
    await new Promise((r) => setTimeout(r, 10));
    await scheduler.tick(); // same window: not again (its session id was used)
    expect(rotateScheduled).toHaveBeenCalledTimes(1);
    now += 60_000; // next window: again, under the next window's id
    await scheduler.tick();
    expect(rotateScheduled).toHaveBeenCalledTimes(2);
    expect(toHex(rotateScheduled.mock.calls[1]![3])).toBe(toHex(scheduledRotationSessionId('acme', 'k', 1, window + 1)));
    finish(new Error('expired'));

    // Once rotated (version 1 retired, version 2 active and not due), nothing more happens.
    const [share2] = runDkg('ed25519', 2, 3);
    await store.put({ tenant: 'acme', keyId: 'k', version: 2, share: share2!, exportable: false, createdAt: now, rotationPeriodMs: 10_000 });
    await store.setState('acme', 'k', 1, 'retired', { rotatedAt: now });
    now += 60_000 - 9_000; // v2 is 51 s old: due again, but not v1
    await new Promise((r) => setTimeout(r, 10));
    await scheduler.tick();
    expect(rotateScheduled).toHaveBeenCalledTimes(3);
    expect(rotateScheduled.mock.calls[2]!.slice(0, 3)).toEqual(['acme', 'k', 2]);
    finish(new Error('expired'));
    await scheduler.stop();
  });
});
