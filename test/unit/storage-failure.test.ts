/**
 * The failed-write latch (node/store/record-auth.ts, issue 9 item 7), on a real full file system: a ShareStore
 * in a 1 MiB tmpfs. The first LevelDB write refused with ENOSPC latches the store: that call and every
 * later one (reads, writes, namespaced records, the integrity check) throw UNAVAILABLE "node storage
 * failed: restart the node", listeners are told once, and the operation gate refuses every operation
 * (declining a session at once, auditing nothing). After a reopen with space, every acknowledged write
 * is there and every record's MAC holds. Needs root (mount); skipped, saying so, otherwise.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { split } from '../../core/shamir.js';
import { ED25519 } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/governance/audit.js';
import { OperationGate } from '../../node/governance/gate.js';
import { POLICY_NAMESPACE, PolicyEngine } from '../../node/governance/policy.js';
import { STORAGE_FAILED_MESSAGE } from '../../node/store/record-auth.js';
import { ShareStore } from '../../node/store/storage.js';
import { canMountTmpfs } from '../helpers/tmpfs.js';
import { sampleShare } from '../helpers/key-shares.js';

const mountable = canMountTmpfs();
if (!mountable) console.warn('storage-failure.test: mount -t tmpfs is not permitted here (needs root): the latch test is skipped');

const group = ED25519.group;

async function codeAndMessage(p: Promise<unknown> | (() => unknown)): Promise<{ code: string; message: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return { code: (e as TesseraError).code, message: (e as TesseraError).message };
  }
  throw new Error('expected a TesseraError');
}

describe.skipIf(!mountable)(`a store whose file system fills up${mountable ? '' : ' (skipped: mount -t tmpfs is not permitted here, needs root)'}`, () => {
  let dir: string;
  let identity: IdentityKeyPair;
  const kek = Uint8Array.from(randomBytes(32));
  beforeAll(async () => {
    await loadIdentityEngine();
    identity = generateIdentity();
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-latch-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', dir]);
  });
  afterEach(async () => {
    execFileSync('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
  });

  it('latches failed on the first refused write; every call refuses; nothing acknowledged is lost', async () => {
    const dataDir = join(dir, 'data');
    const store = await ShareStore.open({ dataDir, kek, nodeIndex: 1 });
    const causes: string[] = [];
    store.onFailure((cause) => causes.push(cause));
    const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0 });
    const policy = await PolicyEngine.open({ records: store.namespace(POLICY_NAMESPACE), audit });
    const declined: string[] = [];
    const gate = new OperationGate({
      audit,
      policy,
      decline: (_session, reason) => declined.push(reason),
      logger: pino({ level: 'silent' }),
      storageFailure: () => store.failure,
    });
    const principal = { tenant: 'acme', apiKeyId: 'ak_1', role: 'admin' as const };
    const notes = store.namespace('notes');

    // Acknowledged writes, then a full file system.
    const acked: string[] = [];
    for (let i = 0; i < 5; i++) {
      await store.put({ tenant: 'acme', keyId: `k${i}`, version: 1, share: sampleShare(), exportable: false });
      acked.push(`k${i}`);
    }
    await gate.run({ principal, operation: 'tenant.create', authorize: 'admin' }, async () => ({}), async () => notes.put('n/0', Uint8Array.of(1)));
    const filler = await open(join(dir, 'filler'), 'w');
    try {
      for (;;) await filler.write(Buffer.alloc(64 * 1024, 1));
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    await filler.close();
    let first: { code: string; message: string } | undefined;
    for (let i = 5; i < 5000 && !first; i++) {
      try {
        await store.put({ tenant: 'acme', keyId: `k${i}`, version: 1, share: sampleShare(), exportable: false });
        acked.push(`k${i}`);
      } catch (e) {
        first = { code: (e as TesseraError).code, message: (e as TesseraError).message };
      }
    }
    expect(first).toEqual({ code: ErrorCode.Unavailable, message: STORAGE_FAILED_MESSAGE });
    expect(store.failure?.message).toBe(STORAGE_FAILED_MESSAGE);
    expect(causes).toHaveLength(1);
    expect(store.failureCause).toBe(causes[0]);
    expect(causes[0]).toMatch(/space/i);

    // Free the space: still latched. Every call refuses, reads included.
    await rm(join(dir, 'filler'));
    const latched = { code: ErrorCode.Unavailable, message: STORAGE_FAILED_MESSAGE };
    expect(await codeAndMessage(store.get('acme', 'k0', 1))).toEqual(latched);
    expect(await codeAndMessage(store.getShare('acme', 'k0', 1))).toEqual(latched);
    expect(await codeAndMessage(store.put({ tenant: 'acme', keyId: 'late', version: 1, share: sampleShare(), exportable: false }))).toEqual(latched);
    expect(await codeAndMessage(store.setState('acme', 'k0', 1, 'retired'))).toEqual(latched);
    expect(await codeAndMessage(store.listAll())).toEqual(latched);
    expect(await codeAndMessage(store.getSecret('x'))).toEqual(latched);
    expect(await codeAndMessage(store.checkIntegrity())).toEqual(latched);
    expect(await codeAndMessage(notes.get('n/0'))).toEqual(latched);
    expect(await codeAndMessage(notes.put('n/1', Uint8Array.of(2)))).toEqual(latched);
    expect(await codeAndMessage(audit.append({ actor: 'system', operation: 'node.start', outcome: 'ok' }))).toMatchObject({ code: ErrorCode.Unavailable });
    // The gate refuses every operation with the storage failure and declines a session at once.
    const session = Uint8Array.from(randomBytes(16));
    let worked = false;
    const refused = await codeAndMessage(
      gate.run({ principal, operation: 'sign', authorize: 'policy', keyId: 'k0', session }, async () => ({ version: 1 }), async () => (worked = true)),
    );
    expect(refused).toEqual(latched);
    expect(worked).toBe(false);
    expect(declined).toEqual([STORAGE_FAILED_MESSAGE]);
    expect(await codeAndMessage(gate.run({ principal, operation: 'tenant.create', authorize: 'admin' }, async () => ({}), async () => 1))).toEqual(latched);
    expect(causes).toHaveLength(1); // told once
    await audit.close();
    await policy.close();
    await store.close();

    // Reopen with space: everything acknowledged is there, every record's MAC holds, the store works.
    const again = await ShareStore.open({ dataDir, kek, nodeIndex: 1 });
    try {
      expect(again.failure).toBeUndefined();
      expect(await again.checkIntegrity()).toMatchObject({ unauthentic: [] });
      for (const k of acked) expect((await again.get('acme', k, 1))?.state, `${k} was acknowledged`).toBe('active');
      expect(await again.namespace('notes').get('n/0')).toEqual(Uint8Array.of(1));
      const log = await AuditLog.open({ records: again.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0 });
      expect(log.broken).toBeUndefined();
      expect((await log.selfCheck()).ok).toBe(true);
      await log.close();
      await again.put({ tenant: 'acme', keyId: 'after', version: 1, share: sampleShare(), exportable: false });
    } finally {
      await again.close();
    }
  }, 60_000);
});
