/**
 * The audit log (node/governance/audit.ts) and its offline verifier (core/audit-verify.ts): chaining, serialized
 * and durable appends that fail closed, checkpoints every N entries and every T ms, field validation
 * that keeps key material out, and tamper detection after editing the LevelDB directly: by someone
 * holding the KEK (who can re-MAC records: the chain and signed checkpoints catch it) and by someone
 * without it (the record MACs and the sealed head record catch it).
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import {
  AUDIT_OPERATIONS,
  GENESIS_HASH,
  assertAuditLogComplete,
  auditEntryHash,
  checkpointMessage,
  validateAuditFields,
  verifyAuditLog,
  type AuditEntry,
  type AuditExport,
  type AuditFields,
} from '../../core/audit-verify.js';
import { toHex } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { generateIdentity, identitySign, identityVerify, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { AUDIT_HEAD_KEY, AUDIT_NAMESPACE, AuditLog, type AuditLogOptions } from '../../node/governance/audit.js';
import { openRecord, sealRecord } from '../../node/store/record-auth.js';
import { ShareStore, storageLocation, type RecordNamespace, readRecordMacKey } from '../../node/store/storage.js';
import { useTempStores } from '../helpers/temp-store.js';

const packr = new Packr({ useRecords: false });
let identity: IdentityKeyPair;
let otherIdentity: IdentityKeyPair;

beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
  otherIdentity = generateIdentity();
});

const { dir, kek, open: openStore, onCleanup } = useTempStores('tessera-audit-');

async function openLog(store: ShareStore, o: Partial<AuditLogOptions> = {}): Promise<AuditLog> {
  const log = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0, ...o });
  onCleanup(() => log.close());
  return log;
}

function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void; set: (t: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms), set: (v) => void (t = v) };
}

const sid = (n: number) => n.toString(16).padStart(32, '0');
function entryFields(i: number): AuditFields {
  return { tenant: 'acme', actor: 'ak_1', operation: 'sign', keyId: 'k1', version: 1, sessionId: sid(i), outcome: 'ok' };
}

/**
 * The real audit namespace with its batch writes counted (and, on request, the next one refused before
 * it reaches LevelDB, as a full or failing disk would): to see how many synced writes group commit makes.
 */
function countingRecords(inner: RecordNamespace): { records: RecordNamespace; counts: { batches: number; syncedBatches: number; failed: number }; failNextBatch: () => void } {
  const counts = { batches: 0, syncedBatches: 0, failed: 0 };
  let fail = false;
  const records: RecordNamespace = {
    prefix: inner.prefix,
    get: (k) => inner.get(k),
    put: (k, v, o) => inner.put(k, v, o),
    del: (k, o) => inner.del(k, o),
    iterate: (r) => inner.iterate(r),
    iterateMarked: (r) => inner.iterateMarked(r),
    batch: async (ops, o) => {
      if (fail) {
        fail = false;
        counts.failed += 1;
        throw new Error('injected write failure');
      }
      await inner.batch(ops, o);
      counts.batches += 1;
      if (o?.sync) counts.syncedBatches += 1;
    },
  };
  return { records, counts, failNextBatch: () => void (fail = true) };
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return (e as TesseraError).code;
  }
  throw new Error('expected a TesseraError');
}

/** What a tamperer gets: the closed store's LevelDB, reading payloads and writing them with valid record MACs when holding the KEK. */
interface RawRecords {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, payload: Uint8Array): Promise<void>;
  del(key: string): Promise<void>;
}

/** Raw access to the closed store's LevelDB, keys of the audit namespace; `withKek` false: writes carry no valid MAC. */
async function withRawAudit(fn: (db: RawRecords, key: (kind: 'e' | 'c', seq: number) => string) => Promise<void>, withKek = true): Promise<void> {
  const macKey = await readRecordMacKey(join(dir(), 'data'), kek(), 1);
  const db = new Level<string, Uint8Array>(storageLocation(join(dir(), 'data')), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  const raw: RawRecords = {
    get: async (key) => {
      const v = await db.get(key);
      return v === undefined ? undefined : openRecord(macKey, key, v);
    },
    put: (key, payload) => db.put(key, withKek ? sealRecord(macKey, key, payload) : payload),
    del: (key) => db.del(key),
  };
  try {
    await fn(raw, (kind, seq) => `x/${AUDIT_NAMESPACE}/${kind}/${String(seq).padStart(16, '0')}`);
  } finally {
    await db.close();
  }
}
const unpack = (raw: Uint8Array | undefined) => packr.unpack(raw!) as Record<string, unknown>;
const pack = (v: unknown) => Uint8Array.from(packr.pack(v));

/** A log of `n` entries with checkpoints every `every`, then everything closed. */
async function buildClosedLog(n: number, every: number): Promise<void> {
  const store = await ShareStore.open({ dataDir: join(dir(), 'data'), kek: kek(), nodeIndex: 1 });
  const log = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointEvery: every, checkpointIntervalMs: 0, now: clock().now });
  for (let i = 1; i <= n; i++) await log.append(entryFields(i));
  await log.close();
  await store.close();
}

async function reopenAndExport(): Promise<AuditExport> {
  const store = await openStore();
  const log = await openLog(store);
  return log.exportLog({ checkpoint: false });
}

describe('audit log: appending', () => {
  it('chains entries with SHA-256, assigns dense seqs and clock times, and verifies', async () => {
    const store = await openStore();
    const c = clock();
    const log = await openLog(store, { now: c.now, checkpointEvery: 1000 });
    expect(log.headSeq).toBe(0);
    expect(log.headHash).toBe(GENESIS_HASH);
    const e1 = await log.append({ operation: 'node.start', outcome: 'ok', actor: 'node' });
    c.advance(5);
    const e2 = await log.append(entryFields(2));
    expect(e1).toMatchObject({ seq: 1, time: c.now() - 5, prevHash: GENESIS_HASH, severity: 'info' });
    expect(e2).toMatchObject({ seq: 2, time: c.now(), prevHash: e1.hash });
    expect(e1.hash).toBe(auditEntryHash({ ...e1, hash: undefined } as never));
    expect(log.headHash).toBe(e2.hash);

    // Times are the clock's: when the clock steps back, so does the entry's time (the seq keeps the order).
    c.advance(-1000);
    const e3 = await log.append(entryFields(3));
    expect(e3.time).toBe(c.now());
    expect(e3.time).toBeLessThan(e2.time);

    const exported = await log.exportLog();
    expect(exported.entries).toEqual([e1, e2, e3]);
    expect(exported.checkpoints.map((cp) => cp.seq)).toEqual([3]); // exportLog signed the head
    const v = verifyAuditLog(exported, identity.publicKey);
    expect(v).toEqual({ ok: true, complete: true, problems: [], entries: 3, headSeq: 3, signedThrough: 3 });
    expect(assertAuditLogComplete(exported, identity.publicKey).complete).toBe(true);
    // The checkpoint is an ML-DSA-65 signature by the node identity over {seq, headHash, time}.
    const cp = exported.checkpoints[0]!;
    expect(cp.headHash).toBe(e3.hash);
    expect(identityVerify(identity.publicKey, checkpointMessage(cp), Uint8Array.from(Buffer.from(cp.signature, 'hex')))).toBe(true);
    // Against another node's key, every checkpoint fails.
    expect(verifyAuditLog(exported, otherIdentity.publicKey).problems.map((p) => p.kind)).toEqual(['bad-checkpoint-signature']);
  });

  it('follows the clock through steps forward and back: times are the clock\'s, checkpoints too, and the log still verifies', async () => {
    const store = await openStore();
    const c = clock();
    const log = await openLog(store, { now: c.now, checkpointEvery: 2 });
    const times: number[] = [];
    // forward a day, back two days, forward an hour: each entry (and each checkpoint) has the time of the clock then.
    for (const step of [0, 24 * 3600_000, -48 * 3600_000, 3600_000, -1]) {
      c.advance(step);
      times.push(c.now());
      expect((await log.append(entryFields(times.length))).time).toBe(c.now());
    }
    c.advance(-10_000);
    const exported = await log.exportLog(); // signs the head at the clock's (earlier) time
    expect(exported.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(exported.entries.map((e) => e.time)).toEqual(times);
    expect(exported.checkpoints.map((cp) => [cp.seq, cp.time])).toEqual([
      [2, times[1]],
      [4, times[3]],
      [5, c.now()],
    ]);
    expect(verifyAuditLog(exported, identity.publicKey)).toEqual({ ok: true, complete: true, problems: [], entries: 5, headSeq: 5, signedThrough: 5 });
    // Reopened after the clock went back, the log appends at the clock's time and still verifies.
    await log.close();
    const reopened = await openLog(store, { now: c.now, checkpointEvery: 2 });
    c.advance(-3600_000);
    expect(await reopened.append(entryFields(6))).toMatchObject({ seq: 6, time: c.now() });
    expect(verifyAuditLog(await reopened.exportLog(), identity.publicKey)).toMatchObject({ ok: true, complete: true, headSeq: 6 });
  });

  it('serializes concurrent appends: no seq given twice, the chain holds', async () => {
    const store = await openStore();
    const log = await openLog(store, { checkpointEvery: 7 });
    const entries = await Promise.all(Array.from({ length: 40 }, (_, i) => log.append(entryFields(i + 1))));
    expect(entries.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const exported = await log.exportLog({ checkpoint: false });
    expect(exported.checkpoints.map((c) => c.seq)).toEqual([7, 14, 21, 28, 35]);
    const v = verifyAuditLog(exported, identity.publicKey);
    expect(v).toMatchObject({ ok: true, complete: false, signedThrough: 35, unsigned: { fromSeq: 36, toSeq: 40 } });
  });

  it('group commit: concurrent appends go out together in few synced batches; seqs, chain and checkpoints as if one by one', async () => {
    const store = await openStore();
    const { records, counts } = countingRecords(store.namespace(AUDIT_NAMESPACE));
    const log = await openLog(store, { records, checkpointEvery: 50 });
    await log.append(entryFields(0)); // a write in flight below is this one's successor
    const n = 500;
    const first = Promise.all(Array.from({ length: n / 2 }, (_, i) => log.append(entryFields(i + 1))));
    await Promise.resolve();
    const second = Promise.all(Array.from({ length: n / 2 }, (_, i) => log.append(entryFields(n / 2 + i + 1)))); // arrive while the first group is being written
    const entries = [...(await first), ...(await second)];
    // Each caller got its own entry, in arrival order, with dense seqs.
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 2));
    expect(entries.map((e) => e.sessionId)).toEqual(Array.from({ length: n }, (_, i) => sid(i + 1)));
    expect(log.headSeq).toBe(n + 1);
    expect(log.headHash).toBe(entries[n - 1]!.hash);
    // Far fewer synced batches than entries (1 for the first append, then a handful of groups).
    expect(counts.batches).toBe(log.batchesWritten);
    expect(counts.batches).toBeLessThanOrEqual(5);
    expect(counts.syncedBatches).toBe(counts.batches);
    const exported = await log.exportLog({ checkpoint: false });
    expect(exported.entries).toHaveLength(n + 1);
    expect(exported.checkpoints.map((c) => c.seq)).toEqual(Array.from({ length: 10 }, (_, i) => (i + 1) * 50));
    expect(verifyAuditLog(exported, identity.publicKey)).toMatchObject({ ok: true, problems: [], entries: n + 1, headSeq: n + 1, signedThrough: 500 });
    // The sealed head record names the last entry: the log reopens intact and continues.
    await log.close();
    const log2 = await openLog(store, { checkpointEvery: 50 });
    expect(log2.broken).toBeUndefined();
    expect(log2.headSeq).toBe(n + 1);
    expect((await log2.append(entryFields(n + 1))).prevHash).toBe(entries[n - 1]!.hash);
  });

  it('group commit: a failing batch rejects every append in it with UNAVAILABLE; the head does not move and the log stays consistent', async () => {
    const store = await openStore();
    const { records, counts, failNextBatch } = countingRecords(store.namespace(AUDIT_NAMESPACE));
    const log = await openLog(store, { records, checkpointEvery: 4 });
    const before = await Promise.all([1, 2, 3].map((i) => log.append(entryFields(i))));
    const head = { seq: log.headSeq, hash: log.headHash, cp: log.lastCheckpointSeq };
    failNextBatch();
    const doomed = Array.from({ length: 20 }, (_, i) => log.append(entryFields(100 + i)));
    const codes = await Promise.all(doomed.map((p) => codeOf(p)));
    expect(codes).toEqual(Array(20).fill(ErrorCode.Unavailable));
    expect(counts.failed).toBe(1); // all twenty were in that one batch
    expect({ seq: log.headSeq, hash: log.headHash, cp: log.lastCheckpointSeq }).toEqual(head);
    // Nothing of the failed batch reached the disk, and the next appends chain onto the old head.
    const after = await Promise.all([4, 5].map((i) => log.append(entryFields(i))));
    expect(after.map((e) => e.seq)).toEqual([4, 5]);
    expect(after[0]!.prevHash).toBe(before[2]!.hash);
    const exported = await log.exportLog({ checkpoint: false });
    expect(exported.entries.map((e) => e.sessionId)).toEqual([1, 2, 3, 4, 5].map(sid));
    expect(exported.checkpoints.map((c) => c.seq)).toEqual([4]);
    expect(verifyAuditLog(exported, identity.publicKey)).toMatchObject({ ok: true, problems: [], headSeq: 5 });
    // And on the real store: concurrent appends against a closed store all fail, none consumes a seq.
    await log.close();
    const log2 = await openLog(store, { checkpointEvery: 4 });
    await store.close();
    expect(await Promise.all(Array.from({ length: 5 }, (_, i) => codeOf(log2.append(entryFields(200 + i)))))).toEqual(Array(5).fill(ErrorCode.Unavailable));
    expect(log2.headSeq).toBe(5);
    const store2 = await openStore();
    const log3 = await openLog(store2);
    expect(log3.broken).toBeUndefined();
    expect(log3.headSeq).toBe(5);
  });

  it('survives a restart: the chain continues from the stored head', async () => {
    await buildClosedLog(5, 3);
    const store = await openStore();
    const log = await openLog(store, { checkpointEvery: 3 });
    expect(log.headSeq).toBe(5);
    expect(log.lastCheckpointSeq).toBe(3);
    const e6 = await log.append(entryFields(6));
    expect(e6.seq).toBe(6);
    expect(log.lastCheckpointSeq).toBe(6); // 6 - 3 >= 3
    expect(verifyAuditLog(await log.exportLog(), identity.publicKey)).toMatchObject({ ok: true, complete: true, headSeq: 6 });
  });

  it('fails closed: a write that cannot happen rejects with UNAVAILABLE and consumes no seq', async () => {
    const store = await openStore();
    const log = await openLog(store);
    await log.append(entryFields(1));
    await store.close();
    expect(await codeOf(log.append(entryFields(2)))).toBe(ErrorCode.Unavailable);
    expect(await codeOf(log.checkpoint())).toBe(ErrorCode.Unavailable);
    expect(await codeOf(log.exportLog())).toBe(ErrorCode.Unavailable);
    expect(log.headSeq).toBe(1);
    // A closed log refuses too.
    const store2 = await openStore();
    const log2 = await openLog(store2);
    expect(log2.headSeq).toBe(1);
    await log2.close();
    expect(await codeOf(log2.append(entryFields(2)))).toBe(ErrorCode.Unavailable);
  });

  it('refuses anything that could carry key material or free-form data; a refused entry changes nothing', async () => {
    const store = await openStore();
    const log = await openLog(store);
    const share = toHex(randomBytes(32));
    const bad: unknown[] = [
      { ...entryFields(1), share }, // unknown field
      { ...entryFields(1), secret: randomBytes(32) },
      { ...entryFields(1), reason: `share=${share}` }, // a hex blob in the reason
      { ...entryFields(1), reason: Buffer.from(randomBytes(32)).toString('base64') },
      { ...entryFields(1), reason: 'line\nbreak' },
      { ...entryFields(1), reason: 'x'.repeat(201) },
      { ...entryFields(1), reason: '' },
      { ...entryFields(1), tenant: share + share + share }, // > 128 characters
      { ...entryFields(1), keyId: 'a/b' },
      { ...entryFields(1), actor: randomBytes(16) },
      { ...entryFields(1), operation: 'dump-keys' },
      { ...entryFields(1), outcome: 'maybe' },
      { ...entryFields(1), severity: 'loud' },
      { ...entryFields(1), version: 0 },
      { ...entryFields(1), version: 1.5 },
      { ...entryFields(1), sessionId: 'ABCDEF' },
      { ...entryFields(1), sessionId: sid(1).toUpperCase().replace(/0/g, 'A') },
      { operation: 'sign' }, // no outcome
      null,
      'sign',
    ];
    for (const fields of bad) expect(await codeOf(log.append(fields as AuditFields))).toBe(ErrorCode.BadInput);
    expect(log.headSeq).toBe(0);
    // Within the rules: ids, a session id, a short reason.
    const ok = await log.append({ ...entryFields(1), outcome: 'denied', severity: 'warning', reason: 'rule quota-signatures-per-hour: quota of 100 per 3600000 ms reached' });
    expect(ok.seq).toBe(1);
    expect(Object.keys(validateAuditFields({ operation: 'sign', outcome: 'ok' }))).toEqual(['operation', 'outcome', 'severity']);
    expect(AUDIT_OPERATIONS).toContain('policy.fail-open.enable');
  });
});

describe('audit log: checkpoints', () => {
  it('every N entries, in the same write as the entry that reaches N', async () => {
    const store = await openStore();
    const log = await openLog(store, { checkpointEvery: 4 });
    for (let i = 1; i <= 9; i++) await log.append(entryFields(i));
    expect(log.lastCheckpointSeq).toBe(8);
    const ex = await log.exportLog({ checkpoint: false });
    expect(ex.checkpoints.map((c) => c.seq)).toEqual([4, 8]);
    expect(ex.checkpoints[1]!.headHash).toBe(ex.entries[7]!.hash);
    expect(await log.checkpoint()).toMatchObject({ seq: 9 });
    expect(await log.checkpoint()).toBeUndefined(); // nothing new
  });

  it('every T ms by a timer owned by the log (unref), which close() stops', async () => {
    const store = await openStore();
    const log = await openLog(store, { checkpointEvery: 1000, checkpointIntervalMs: 30 });
    await log.append(entryFields(1));
    await log.append(entryFields(2));
    const deadline = Date.now() + 3000;
    while (log.lastCheckpointSeq < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(log.lastCheckpointSeq).toBe(2);
    await log.close();
    // Stopped: nothing further is signed (the log is closed, the timer cleared).
    const before = (await (await openLog(store)).exportLog({ checkpoint: false })).checkpoints.length;
    await new Promise((r) => setTimeout(r, 80));
    expect((await (await openLog(store)).exportLog({ checkpoint: false })).checkpoints.length).toBe(before);
  });

  it('a failing timer checkpoint is reported through onError, not thrown', async () => {
    const store = await openStore();
    const errors: string[] = [];
    const log = await openLog(store, { checkpointEvery: 1000, checkpointIntervalMs: 20, onError: (e) => errors.push(e.code) });
    await log.append(entryFields(1));
    await store.close();
    const deadline = Date.now() + 3000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(errors[0]).toBe(ErrorCode.Unavailable);
  });
});

describe('audit log: tamper detection on the LevelDB itself', () => {
  // 10 entries, checkpoints at 4 and 8; 9 and 10 trail unsigned.
  beforeEach(async () => {
    await buildClosedLog(10, 4);
  });

  it('untouched: ok, signed through 8, 9..10 reported as unsigned', async () => {
    const v = verifyAuditLog(await reopenAndExport(), identity.publicKey);
    expect(v).toEqual({ ok: true, complete: false, problems: [], entries: 10, headSeq: 10, signedThrough: 8, unsigned: { fromSeq: 9, toSeq: 10 } });
  });

  it("an entry's outcome edited", async () => {
    await withRawAudit(async (db, key) => {
      const m = unpack(await db.get(key('e', 3)));
      expect(m.outcome).toBe('ok');
      await db.put(key('e', 3), pack({ ...m, outcome: 'denied' }));
    });
    const v = verifyAuditLog(await reopenAndExport(), identity.publicKey);
    expect(v.ok).toBe(false);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([['edited', 3]]);
    expect(v.signedThrough).toBe(0);
  });

  it('an entry edited and re-hashed, with the rest of the chain re-hashed too: the signed checkpoints catch it', async () => {
    await withRawAudit(async (db, key) => {
      let prev = unpack(await db.get(key('e', 2))).hash as string;
      for (let s = 3; s <= 10; s++) {
        const m = unpack(await db.get(key('e', s)));
        const edited = { ...m, prevHash: prev, ...(s === 3 ? { tenant: 'someone-else' } : {}) } as AuditEntry;
        const hash = auditEntryHash(edited);
        await db.put(key('e', s), pack({ ...edited, hash }));
        prev = hash;
      }
    });
    const v = verifyAuditLog(await reopenAndExport(), identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['checkpoint-mismatch', 4],
      ['checkpoint-mismatch', 8],
    ]);
    expect(v.problems[0]!.message).toMatch(/entries 1\.\.4 were rewritten/);
    // Re-hashing only entry 3 leaves entry 4 pointing at the old one: a chain break at 4.
  });

  it('an entry edited and re-hashed alone: a chain break at the next entry', async () => {
    await withRawAudit(async (db, key) => {
      const m = unpack(await db.get(key('e', 6))) as unknown as AuditEntry;
      const edited = { ...m, actor: 'intruder' };
      await db.put(key('e', 6), pack({ ...edited, hash: auditEntryHash(edited) }));
    });
    const v = verifyAuditLog(await reopenAndExport(), identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([['chain-break', 7]]);
    expect(v.signedThrough).toBe(4);
  });

  it('an entry deleted', async () => {
    await withRawAudit(async (db, key) => db.del(key('e', 5)));
    const v = verifyAuditLog(await reopenAndExport(), identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([['dropped', 5]]);
    expect(v.problems[0]!.message).toBe('entry 5 is missing');
    expect(v.signedThrough).toBe(4);
  });

  it('two entries swapped', async () => {
    await withRawAudit(async (db, key) => {
      const a = await db.get(key('e', 6));
      const b = await db.get(key('e', 7));
      await db.put(key('e', 6), b!);
      await db.put(key('e', 7), a!);
    });
    const v = verifyAuditLog(await reopenAndExport(), identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([['reordered', 6]]);
    expect(v.problems[0]!.message).toBe('entry 6 appears after entry 7');
  });

  it('a checkpoint edited', async () => {
    await withRawAudit(async (db, key) => {
      const m = unpack(await db.get(key('c', 4)));
      await db.put(key('c', 4), pack({ ...m, time: (m.time as number) + 1 }));
    });
    const v = verifyAuditLog(await reopenAndExport(), identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([['bad-checkpoint-signature', 4]]);
  });

  it('the tail cut off (entries 7..10 deleted): the checkpoint at 8 names a missing entry, and the sealed head record makes the log open broken', async () => {
    await withRawAudit(async (db, key) => {
      for (let s = 7; s <= 10; s++) await db.del(key('e', s));
    });
    const log = await openLog(await openStore());
    const v = verifyAuditLog(await log.exportLog({ checkpoint: false }), identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([['checkpoint-beyond-log', 8]]);
    expect(log.broken).toBe('entries 7..10 were dropped from the end of the log (the sealed head record says seq 10, the log ends at seq 6)');
    expect(await codeOf(log.append(entryFields(11)))).toBe(ErrorCode.Unavailable);
  });

  it('a dropped tail that no checkpoint covers (entries 9..10 deleted) is caught by the sealed head record alone', async () => {
    await withRawAudit(async (db, key) => {
      for (let s = 9; s <= 10; s++) await db.del(key('e', s));
    });
    // The offline verifier cannot see it: what is left is a complete, signed log.
    const log = await openLog(await openStore());
    expect(verifyAuditLog(await log.exportLog({ checkpoint: false }), identity.publicKey)).toMatchObject({ ok: true, complete: true, headSeq: 8 });
    expect(log.broken).toMatch(/entries 9\.\.10 were dropped from the end of the log/);
  });

  it('without the KEK: the head record cannot be rewritten to hide a dropped tail, nor deleted', async () => {
    // The tail dropped and the head record rewritten to match it: without the KEK its MAC cannot be made.
    await withRawAudit(async (db, key) => {
      for (let s = 9; s <= 10; s++) await db.del(key('e', s));
      await db.put(`x/${AUDIT_NAMESPACE}/${AUDIT_HEAD_KEY}`, pack({ v: 1, seq: 8, hash: unpack(await db.get(key('e', 8))).hash }));
    }, false);
    const store = await openStore();
    const err = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0 }).then(
      () => undefined,
      (e: TesseraError) => e,
    );
    expect(err).toBeInstanceOf(TesseraError);
    expect(err!.code).toBe(ErrorCode.Unavailable);
    expect(err!.message).toMatch(/^storage: audit record head fails its integrity check/);
    await store.close();
    // Deleting the head record too: a non-empty log without one is broken.
    await withRawAudit(async (db) => db.del(`x/${AUDIT_NAMESPACE}/${AUDIT_HEAD_KEY}`));
    const log = await openLog(await openStore());
    expect(log.broken).toBe('the log holds entries up to seq 8 but has no sealed head record');
  });

  it('without the KEK: an edited entry fails its record MAC; the export carries only its seq (malformed), and the store names it', async () => {
    await withRawAudit(async (db, key) => {
      const m = unpack(await db.get(key('e', 3)));
      await db.put(key('e', 3), pack({ ...m, outcome: 'denied' }));
    }, false);
    const store = await openStore();
    const report = await store.checkIntegrity();
    expect(report.unauthentic).toEqual([{ record: `x/${AUDIT_NAMESPACE}/e/${String(3).padStart(16, '0')}`, name: `audit record e/${String(3).padStart(16, '0')}` }]);
    const log = await openLog(store);
    expect(log.broken).toBeUndefined(); // the head is intact
    const ex = await log.exportLog({ checkpoint: false });
    expect(ex.entries[2]).toEqual({ seq: 3 });
    const v = verifyAuditLog(ex, identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toContainEqual(['malformed-entry', 3]);
    expect(v.ok).toBe(false);
  });

  it('forged entries appended after the last checkpoint chain correctly but stay unsigned (not complete)', async () => {
    await withRawAudit(async (db, key) => {
      const last = unpack(await db.get(key('e', 10))) as unknown as AuditEntry;
      const forged = { ...entryFields(11), seq: 11, time: last.time, severity: 'info' as const, prevHash: last.hash };
      await db.put(key('e', 11), pack({ ...forged, hash: auditEntryHash(forged) }));
    });
    const exported = await reopenAndExport();
    const v = verifyAuditLog(exported, identity.publicKey);
    expect(v).toMatchObject({ ok: true, complete: false, unsigned: { fromSeq: 9, toSeq: 11 } });
    expect(() => assertAuditLogComplete(exported, identity.publicKey)).toThrow(/9\.\.11 are not covered/);
  });

  it('an undecodable entry (written with the KEK), and a head entry that does not check out: the log opens broken and refuses appends', async () => {
    await withRawAudit(async (db, key) => {
      await db.put(key('e', 10), Uint8Array.of(0xc1)); // not msgpack
    });
    const store = await openStore();
    const log = await openLog(store);
    expect(log.broken).toMatch(/seq 10/);
    expect(await codeOf(log.append(entryFields(11)))).toBe(ErrorCode.Unavailable);
    const v = verifyAuditLog(await log.exportLog(), identity.publicKey);
    expect(v.problems.map((p) => [p.kind, p.seq])).toEqual([['malformed-entry', 10]]);
    expect((await log.selfCheck()).ok).toBe(false);
  });
});

describe('verifyAuditLog on a manipulated export', () => {
  it('reports inserted (duplicate) entries, checkpoint order, malformed input; never throws on a bad log', async () => {
    const store = await openStore();
    const log = await openLog(store, { checkpointEvery: 3, now: clock().now });
    for (let i = 1; i <= 6; i++) await log.append(entryFields(i));
    const ex = await log.exportLog();
    expect(verifyAuditLog(ex, identity.publicKey).ok).toBe(true);

    const dup = { ...ex, entries: [...ex.entries.slice(0, 3), ex.entries[2]!, ...ex.entries.slice(3)] };
    expect(verifyAuditLog(dup, identity.publicKey).problems.map((p) => [p.kind, p.seq])).toEqual([['duplicate', 3]]);

    const swapped = { ...ex, checkpoints: [ex.checkpoints[1]!, ex.checkpoints[0]!] };
    expect(verifyAuditLog(swapped, identity.publicKey).problems.map((p) => [p.kind, p.seq])).toEqual([['checkpoint-order', 3]]);

    // A checkpoint re-signed by someone else's key.
    const cp = ex.checkpoints[0]!;
    const forged = { ...cp, signature: toHex(identitySign(otherIdentity.secretKey, checkpointMessage(cp))) };
    expect(verifyAuditLog({ ...ex, checkpoints: [forged] }, identity.publicKey).problems.map((p) => p.kind)).toEqual(['bad-checkpoint-signature']);

    const withExtra = { ...ex, entries: ex.entries.map((e, i) => (i === 1 ? { ...e, note: 'x' } : e)) };
    expect(verifyAuditLog(withExtra, identity.publicKey).problems.map((p) => [p.kind, p.seq])).toEqual([['malformed-entry', 2]]);
    expect(verifyAuditLog({ ...ex, checkpoints: [{ seq: 3 }] }, identity.publicKey).problems.map((p) => p.kind)).toEqual(['malformed-checkpoint']);
    expect(verifyAuditLog('nonsense' as never, identity.publicKey).ok).toBe(false);
    expect(verifyAuditLog({ entries: [], checkpoints: [] }, identity.publicKey)).toEqual({
      ok: true,
      complete: true,
      problems: [],
      entries: 0,
      headSeq: 0,
      signedThrough: 0,
    });
    expect(() => verifyAuditLog(ex, new Uint8Array(10))).toThrow(TesseraError);
    // Entry 1 must start from the genesis hash.
    const e1 = { ...ex.entries[0]!, prevHash: 'ab'.repeat(32) };
    const rehashed = { ...e1, hash: auditEntryHash(e1) };
    const kinds = verifyAuditLog({ ...ex, entries: [rehashed, ...ex.entries.slice(1)] }, identity.publicKey).problems.map((p) => [p.kind, p.seq]);
    expect(kinds).toEqual([
      ['chain-break', 1],
      ['chain-break', 2],
    ]);
  });
});
