/**
 * Key lifecycle (core/lifecycle.ts) and the store's side of it (node/store/storage.ts): the state table,
 * transitions, versions, rotation periods, destruction that leaves no old ciphertext in any data file,
 * tenant isolation at the storage level, and the namespaced record API other components use.
 */
import { describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { split } from '../../core/shamir.js';
import { ED25519 } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import {
  KEY_OPERATIONS,
  KEY_STATES,
  STATE_ALLOWS,
  STATE_TRANSITIONS,
  assertStateAllows,
  assertTransition,
  canTransition,
  rotationPlan,
  rotationStatus,
  stateAllows,
} from '../../core/lifecycle.js';
import { shareRecordKey, stagedRecordKey, storageLocation, readRecordMacKey } from '../../node/store/storage.js';
import { commitEpoch, stageEpoch } from '../helpers/commit-store.js';
import { useTempStores } from '../helpers/temp-store.js';
import { openRecord, sealRecord } from '../../node/store/record-auth.js';
import { makeShares } from '../helpers/key-shares.js';
import { readEnvelope } from '../../node/store/envelope.js';

const group = ED25519.group;
const packr = new Packr({ useRecords: false });


async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<{ code: string; message: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return { code: (e as TesseraError).code, message: (e as TesseraError).message };
  }
  throw new Error('expected a TesseraError');
}

/**
 * LevelDB access as someone holding the KEK (every record is MACed: node/store/record-auth.ts): get returns
 * the verified payload, put stores a payload with a valid record MAC.
 */
async function withRawDb<T>(
  dataDir: string,
  fn: (db: { get(key: string): Promise<Uint8Array | undefined>; put(key: string, payload: Uint8Array): Promise<void>; keys(): AsyncIterable<string> }) => Promise<T>,
  kek: Uint8Array = t.kek(),
  nodeIndex = 1,
): Promise<T> {
  const macKey = await readRecordMacKey(dataDir, kek, nodeIndex);
  const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    return await fn({
      get: async (key) => {
        const v = await db.get(key);
        return v === undefined ? undefined : openRecord(macKey, key, v);
      },
      put: (key, payload) => db.put(key, sealRecord(macKey, key, payload)),
      keys: () => db.keys(),
    });
  } finally {
    await db.close();
  }
}

async function allFiles(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The files under `d` that contain `needle`. */
async function filesContaining(d: string, needle: Uint8Array): Promise<string[]> {
  const out: string[] = [];
  for (const f of await allFiles(d)) if ((await readFile(f)).includes(Buffer.from(needle))) out.push(f);
  return out;
}

const t = useTempStores('tessera-lifecycle-');
const { dir, open: openStore } = t;

describe('the state table', () => {
  it('is exactly the issue table', () => {
    expect(KEY_STATES).toEqual(['active', 'retired', 'archived', 'destroyed']);
    const table = Object.fromEntries(KEY_STATES.map((s) => [s, KEY_OPERATIONS.filter((op) => stateAllows(s, op))]));
    expect(table).toEqual({
      active: [...KEY_OPERATIONS],
      retired: ['decapsulate', 'verify', 'reshare'],
      archived: ['reshare'],
      destroyed: [],
    });
    for (const s of KEY_STATES) expect([...STATE_ALLOWS[s]].sort()).toEqual([...table[s]!].sort());
    // Retired keys refuse to sign; archived keys refuse everything but a reshare (which signs nothing,
    // it moves them); destroyed keys refuse everything.
    expect(stateAllows('retired', 'sign')).toBe(false);
    expect(stateAllows('retired', 'refresh')).toBe(false);
    for (const op of KEY_OPERATIONS) {
      expect(stateAllows('archived', op)).toBe(op === 'reshare');
      expect(stateAllows('destroyed', op)).toBe(false);
    }
    // Unknown states or operations allow nothing.
    expect(stateAllows('disabled' as never, 'sign')).toBe(false);
    expect(stateAllows('active', 'launch' as never)).toBe(false);
  });

  it('assertStateAllows throws BAD_STATE naming key, version, state and operation', async () => {
    expect(() => assertStateAllows('active', 'sign', { keyId: 'k', version: 1 })).not.toThrow();
    const e = await codeOf(() => assertStateAllows('retired', 'sign', { keyId: 'k', version: 3 }));
    expect(e.code).toBe(ErrorCode.BadState);
    expect(e.message).toBe('key k version 3 is retired: sign is not allowed');
  });

  it('transitions: destroyed is final, destroy needs retired or archived first', async () => {
    expect(STATE_TRANSITIONS).toEqual({
      active: ['retired', 'archived'],
      retired: ['active', 'archived', 'destroyed'],
      archived: ['active', 'retired', 'destroyed'],
      destroyed: [],
    });
    expect(canTransition('active', 'destroyed')).toBe(false);
    expect(canTransition('active', 'active')).toBe(false);
    expect(canTransition('archived', 'active')).toBe(true);
    const e = await codeOf(() => assertTransition('destroyed', 'active', { keyId: 'k', version: 1 }));
    expect(e).toEqual({ code: ErrorCode.BadState, message: 'key k version 1 cannot go from destroyed to active (it is final)' });
  });

  it('rotationStatus: none / ok / warning / due', () => {
    const hour = 3600_000;
    const rec = { state: 'active' as const, createdAt: 1_000_000, rotationPeriodMs: 10 * hour };
    expect(rotationStatus({ ...rec, rotationPeriodMs: undefined }, 0)).toEqual({ status: 'none' });
    expect(rotationStatus({ ...rec, state: 'retired' }, 1e12)).toEqual({ status: 'none' });
    const dueAt = 1_000_000 + 10 * hour;
    expect(rotationStatus(rec, dueAt - hour - 1)).toEqual({ status: 'ok', dueAt });
    expect(rotationStatus(rec, dueAt - hour)).toEqual({ status: 'warning', dueAt }); // default window: a tenth
    expect(rotationStatus(rec, dueAt - 1, 0)).toEqual({ status: 'ok', dueAt });
    expect(rotationStatus(rec, dueAt)).toEqual({ status: 'due', dueAt });
    expect(rotationStatus(rec, dueAt + 5 * hour)).toEqual({ status: 'due', dueAt });
  });
});

describe('ShareStore: states, versions, rotation period', () => {
  it('enforces transitions, refuses making destroyed records except through destroy()', async () => {
    const store = await openStore();
    const share = makeShares(0).shares[0]!;
    await store.put({ tenant: 't', keyId: 'k', version: 1, share, exportable: false });
    expect((await codeOf(store.put({ tenant: 't', keyId: 'k', version: 2, share, exportable: false, state: 'destroyed' }))).code).toBe(ErrorCode.BadInput);
    expect((await codeOf(store.put({ tenant: 't', keyId: 'k', version: 2, share, exportable: false, state: 'disabled' as never }))).code).toBe(ErrorCode.BadInput);
    expect((await codeOf(store.setState('t', 'k', 1, 'destroyed'))).code).toBe(ErrorCode.BadInput);
    expect((await codeOf(store.setState('t', 'k', 1, 'disabled' as never))).code).toBe(ErrorCode.BadInput);
    expect((await codeOf(store.setState('t', 'k', 1, 'active'))).code).toBe(ErrorCode.BadState); // active -> active
    expect((await codeOf(store.setState('t', 'k', 9, 'retired'))).code).toBe(ErrorCode.NotFound);
    expect((await codeOf(store.destroy('t', 'k', 1))).code).toBe(ErrorCode.BadState); // still active
    expect((await store.setState('t', 'k', 1, 'archived')).state).toBe('archived');
    expect((await store.setState('t', 'k', 1, 'retired')).state).toBe('retired');
    expect((await store.setState('t', 'k', 1, 'active')).state).toBe('active');
    // The share is untouched by state changes.
    expect((await store.getShare('t', 'k', 1))!.secret.value).toEqual(share.secret.value);
  });

  it('reads a record stored with the old state name "disabled" as archived', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: makeShares(0).shares[0]!, exportable: false });
    await store.close();
    await withRawDb(dataDir, async (db) => {
      const key = shareRecordKey('t', 'k', 1);
      const m = packr.unpack((await db.get(key))!) as Record<string, unknown>;
      m.state = 'disabled';
      await db.put(key, Uint8Array.from(packr.pack(m)));
    });
    const again = await openStore(dataDir);
    expect((await again.get('t', 'k', 1))!.state).toBe('archived');
  });

  it('nextVersion and latestActive; versions never reused, destroyed ones included', async () => {
    const store = await openStore();
    expect(await store.nextVersion('t', 'k')).toBe(1);
    expect(await store.latestActive('t', 'k')).toBeUndefined();
    for (let v = 1; v <= 3; v++) await store.put({ tenant: 't', keyId: 'k', version: v, share: makeShares(0).shares[0]!, exportable: false });
    expect(await store.nextVersion('t', 'k')).toBe(4);
    expect((await store.latestActive('t', 'k'))!.version).toBe(3);
    await store.setState('t', 'k', 3, 'retired', { rotatedAt: 5 });
    expect((await store.latestActive('t', 'k'))!.version).toBe(2);
    await store.setState('t', 'k', 2, 'archived');
    expect((await store.latestActive('t', 'k'))!.version).toBe(1);
    await store.destroy('t', 'k', 3);
    expect(await store.nextVersion('t', 'k')).toBe(4); // the destroyed v3 still holds its number
    expect((await store.versions('t', 'k')).map((r) => `${r.version}:${r.state}`)).toEqual(['1:active', '2:archived', '3:destroyed']);
    // Another key id with a common prefix does not interfere.
    await store.put({ tenant: 't', keyId: 'k.x', version: 7, share: makeShares(0).shares[0]!, exportable: false });
    expect(await store.nextVersion('t', 'k')).toBe(4);
    expect(await store.nextVersion('t', 'k.x')).toBe(8);
  });

  it('rotation period: set at creation, kept by refresh and reopen, rotatedAt recorded; bad periods refused', async () => {
    const dataDir = join(dir(), 'data');
    let store = await openStore(dataDir);
    const day = 24 * 3600_000;
    const e0 = makeShares(0);
    const rec = await store.put({ tenant: 't', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false, createdAt: 1000, rotationPeriodMs: 30 * day });
    expect(rec).toMatchObject({ createdAt: 1000, rotationPeriodMs: 30 * day });
    expect(rec.rotatedAt).toBeUndefined();
    expect(rotationStatus(rec, 1000 + 30 * day)).toEqual({ status: 'due', dueAt: 1000 + 30 * day });
    // Without a period, the field is absent.
    const plain = await store.put({ tenant: 't', keyId: 'plain', version: 1, share: e0.shares[0]!, exportable: false });
    expect('rotationPeriodMs' in plain).toBe(false);

    expect(await commitEpoch(store, 't', 'k', 1, makeShares(1, e0.secret).shares[0]!)).toMatchObject({ epoch: 1, rotationPeriodMs: 30 * day, createdAt: 1000 });
    await store.setState('t', 'k', 1, 'retired', { rotatedAt: 2000 });
    await store.close();
    store = await openStore(dataDir);
    expect(await store.get('t', 'k', 1)).toMatchObject({ state: 'retired', rotationPeriodMs: 30 * day, rotatedAt: 2000 });

    for (const bad of [0, 59_999, 1.5, -1, 11 * 366 * day, Number.NaN, '1000' as never]) {
      expect((await codeOf(store.put({ tenant: 't', keyId: 'bad', version: 1, share: e0.shares[0]!, exportable: false, rotationPeriodMs: bad }))).code).toBe(
        ErrorCode.BadInput,
      );
    }
    expect((await store.setRotationPeriod('t', 'k', 1, 60_000)).rotationPeriodMs).toBe(60_000);
    expect('rotationPeriodMs' in (await store.setRotationPeriod('t', 'k', 1, undefined))).toBe(false);
    expect((await codeOf(store.setRotationPeriod('t', 'k', 1, 5))).code).toBe(ErrorCode.BadInput);
  });
});

describe('rotation schedule over the whole store', () => {
  it('listAll + rotationPlan: only the newest active version of each key, due and warning apart, by due time', async () => {
    const store = await openStore();
    const day = 24 * 3600_000;
    const put = (tenant: string, keyId: string, version: number, createdAt: number, rotationPeriodMs?: number) =>
      store.put({ tenant, keyId, version, share: makeShares(0).shares[0]!, exportable: false, createdAt, ...(rotationPeriodMs ? { rotationPeriodMs } : {}) });
    await put('a', 'old', 1, 0, 10 * day); // superseded by version 2: not rotated again
    await put('a', 'old', 2, 20 * day, 10 * day); // due at day 30
    await put('a', 'soon', 1, 25 * day, 10 * day); // due at day 35: warning (window 1 day) at day 34.5
    await put('b', 'late', 1, 0, 5 * day); // due at day 5: overdue
    await put('b', 'none', 1, 0); // no period
    await put('b', 'retired', 1, 0, day);
    await store.setState('b', 'retired', 1, 'retired');
    const all = await store.listAll();
    expect(all.map((r) => `${r.tenant}/${r.keyId}@${r.version}`).sort()).toEqual(
      ['a/old@1', 'a/old@2', 'a/soon@1', 'b/late@1', 'b/none@1', 'b/retired@1'].sort(),
    );
    const plan = rotationPlan(all, 34.5 * day);
    expect(plan.due.map((r) => `${r.tenant}/${r.keyId}@${r.version}:${r.dueAt / day}`)).toEqual(['b/late@1:5', 'a/old@2:30']);
    expect(plan.warning.map((r) => `${r.tenant}/${r.keyId}@${r.version}`)).toEqual(['a/soon@1']);
    expect(rotationPlan(all, 0).due).toEqual([]);
  });
});

describe('ShareStore: destroy', () => {
  it('erases the share: no old ciphertext (any epoch, a dropped staged one too) in any file under the data dir; the public key stays readable', async () => {
    const dataDir = join(dir(), 'data');
    let store = await openStore(dataDir);
    const e0 = makeShares(0);
    await store.put({ tenant: 'acme', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false, rotationPeriodMs: 3600_000 });
    const keep = makeShares(0);
    await store.put({ tenant: 'acme', keyId: 'keep', version: 1, share: keep.shares[0]!, exportable: false });

    // The sealed values this node has ever held for acme/k v1, captured from the raw database:
    // epoch 0, epoch 1 (committed by a refresh) and epoch 2 (staged, never voted for, then dropped).
    const ciphertexts: Uint8Array[] = [];
    const rawCt = async (key: string): Promise<Uint8Array> => {
      await store.close();
      // The envelope's body (node/store/envelope.ts): the share's own ciphertext, random, so found verbatim
      // (the envelope's header, the same KEK id in every record, may be stored compressed).
      const ct = await withRawDb(dataDir, async (db) => readEnvelope(packr.unpack((await db.get(key))!) as { nonce: Uint8Array; ct: Uint8Array }).body);
      store = await openStore(dataDir); // reopening also moves the log into table files: both kinds get scanned
      return Uint8Array.from(ct);
    };
    ciphertexts.push(await rawCt(shareRecordKey('acme', 'k', 1)));
    // The epoch-0 ciphertext is already gone after the refresh commit (old shares really die):
    // it is checked again below, after the destroy.
    await commitEpoch(store, 'acme', 'k', 1, makeShares(1, e0.secret).shares[0]!);
    ciphertexts.push(await rawCt(shareRecordKey('acme', 'k', 1)));
    const dropped = await stageEpoch(store, 'acme', 'k', 1, makeShares(2, e0.secret).shares[0]!);
    await store.close();
    const stagedCt = await withRawDb(dataDir, async (db) => {
      const m = packr.unpack((await db.get(stagedRecordKey('acme', 'k')))!) as { effects: { record: { nonce: Uint8Array; ct: Uint8Array } }[] };
      return Uint8Array.from(readEnvelope(m.effects[0]!.record).body);
    });
    store = await openStore(dataDir);
    expect(await filesContaining(dataDir, stagedCt)).not.toEqual([]);
    expect(await store.dropStaged('acme', 'k', dropped)).toBe(true);
    ciphertexts.push(stagedCt);
    const keepCt = await rawCt(shareRecordKey('acme', 'keep', 1));
    for (const ct of ciphertexts) expect(ct.length).toBe(32 + 16); // the share and its GCM tag

    // The superseded epoch 0 and the dropped staged epoch 2 are already in no file; epoch 1 still is.
    expect(await filesContaining(dataDir, ciphertexts[0]!)).toEqual([]);
    expect(await filesContaining(dataDir, ciphertexts[2]!)).toEqual([]);
    expect(await filesContaining(dataDir, ciphertexts[1]!)).not.toEqual([]);

    const before = await store.get('acme', 'k', 1);
    await store.setState('acme', 'k', 1, 'retired');
    const tomb = await store.destroy('acme', 'k', 1, { destroyedAt: 4242 });
    expect(tomb).toMatchObject({ state: 'destroyed', destroyedAt: 4242, version: 1, epoch: 1, rotationPeriodMs: 3600_000 });
    expect(tomb.publicKey).toEqual(before!.publicKey);

    // Gone from every file, while the store is still open and after closing it.
    for (const ct of ciphertexts) expect(await filesContaining(dataDir, ct)).toEqual([]);
    await store.close();
    for (const ct of ciphertexts) expect(await filesContaining(dataDir, ct)).toEqual([]);
    // The other key's ciphertext was not touched (and the scan still sees data).
    expect(await filesContaining(dataDir, keepCt)).not.toEqual([]);
    // The raw record is a tombstone: no nonce, no ciphertext, the public package kept.
    await withRawDb(dataDir, async (db) => {
      const m = packr.unpack((await db.get(shareRecordKey('acme', 'k', 1)))!) as Record<string, unknown>;
      expect(m.state).toBe('destroyed');
      expect('ct' in m || 'nonce' in m).toBe(false);
      expect(m.commitments).toBeDefined();
      expect(await db.get(stagedRecordKey('acme', 'k'))).toBeUndefined();
    });

    store = await openStore(dataDir);
    // Public key readable for verification, in get, list and versions.
    expect(await store.get('acme', 'k', 1)).toEqual(tomb);
    expect((await store.list('acme')).find((r) => r.keyId === 'k')).toEqual(tomb);
    expect(await store.getStaged('acme', 'k')).toBeUndefined();
    // The share is gone, with a typed error; nothing can be staged or committed on it.
    const e = await codeOf(store.getShare('acme', 'k', 1));
    expect(e.code).toBe(ErrorCode.BadState);
    expect(e.message).toMatch(/destroyed/);
    expect((await codeOf(store.getShare('acme', 'k'))).code).toBe(ErrorCode.BadState);
    expect((await codeOf(stageEpoch(store, 'acme', 'k', 1, makeShares(2, e0.secret).shares[0]!))).code).toBe(ErrorCode.BadState);
    expect((await codeOf(store.setState('acme', 'k', 1, 'active'))).code).toBe(ErrorCode.BadState);
    expect((await codeOf(store.setRotationPeriod('acme', 'k', 1, 3600_000))).code).toBe(ErrorCode.BadState);
    // Idempotent.
    expect(await store.destroy('acme', 'k', 1)).toEqual(tomb);
    // The other key still opens.
    expect((await store.getShare('acme', 'keep', 1))!.secret.value).toEqual(keep.shares[0]!.secret.value);
  });

  it('a destroyed record missing its destroyedAt or carrying a ciphertext is reported corrupt', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: makeShares(0).shares[0]!, exportable: false, state: 'archived' });
    await store.destroy('t', 'k', 1);
    await store.close();
    await withRawDb(dataDir, async (db) => {
      const key = shareRecordKey('t', 'k', 1);
      const m = packr.unpack((await db.get(key))!) as Record<string, unknown>;
      await db.put(key, Uint8Array.from(packr.pack({ ...m, ct: new Uint8Array(48), nonce: new Uint8Array(12) })));
    });
    const again = await openStore(dataDir);
    expect((await codeOf(again.get('t', 'k', 1))).code).toBe(ErrorCode.BadMessage);
  });
});

describe('tenant isolation at the storage level', () => {
  it("tenant B sees tenant A's key exactly as a key that does not exist", async () => {
    const store = await openStore();
    await store.put({ tenant: 'A', keyId: 'k', version: 1, share: makeShares(0).shares[0]!, exportable: false });
    const asB = async (keyId: string) => ({
      get: await store.get('B', keyId),
      getV: await store.get('B', keyId, 1),
      share: await store.getShare('B', keyId, 1),
      latestActive: await store.latestActive('B', keyId),
      versions: await store.versions('B', keyId),
      nextVersion: await store.nextVersion('B', keyId),
      staged: await store.getStaged('B', keyId),
      setState: (await codeOf(store.setState('B', keyId, 1, 'retired'))).code,
      destroy: (await codeOf(store.destroy('B', keyId, 1))).code,
    });
    const existingElsewhere = await asB('k');
    const missing = await asB('never-made');
    expect(existingElsewhere).toEqual(missing);
    expect(existingElsewhere).toEqual({
      get: undefined,
      getV: undefined,
      share: undefined,
      latestActive: undefined,
      versions: [],
      nextVersion: 1,
      staged: undefined,
      setState: ErrorCode.NotFound,
      destroy: ErrorCode.NotFound,
    });
    expect(await store.list('B')).toEqual([]);
    // And A's key is untouched by B's attempts.
    expect((await store.get('A', 'k', 1))!.state).toBe('active');
  });
});

describe('ShareStore.namespace', () => {
  it('get/put/del/batch/iterate under x/<prefix>/, isolated from other namespaces and from key records', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: makeShares(0).shares[0]!, exportable: false });
    await store.putSecret('s1', Uint8Array.of(1));
    const a = store.namespace('audit');
    const a2 = store.namespace('audit2');
    expect(await a.get('e/1')).toBeUndefined();
    await a.put('e/1', Uint8Array.of(1));
    await a.batch([
      { type: 'put', key: 'e/2', value: Uint8Array.of(2) },
      { type: 'put', key: 'e/3', value: Uint8Array.of(3) },
      { type: 'put', key: 'c/1', value: Uint8Array.of(9) },
    ]);
    await a2.put('e/1', Uint8Array.of(100));
    expect(await a.get('e/2')).toEqual(Uint8Array.of(2));
    const all = async (ns: typeof a, range?: Parameters<typeof a.iterate>[0]) => {
      const out: string[] = [];
      for await (const [k, v] of ns.iterate(range)) out.push(`${k}=${[...v].join(',')}`);
      return out;
    };
    expect(await all(a)).toEqual(['c/1=9', 'e/1=1', 'e/2=2', 'e/3=3']);
    expect(await all(a2)).toEqual(['e/1=100']);
    expect(await all(a, { gte: 'e/', lt: 'e/~', reverse: true, limit: 2 })).toEqual(['e/3=3', 'e/2=2']);
    expect(await all(a, { gt: 'e/1', lte: 'e/3' })).toEqual(['e/2=2', 'e/3=3']);
    await a.del('e/2');
    expect(await a.get('e/2')).toBeUndefined();
    // Returned values are copies.
    const v = (await a.get('e/1'))!;
    v[0] = 77;
    expect(await a.get('e/1')).toEqual(Uint8Array.of(1));

    // No namespace reaches the key records, secrets or meta: names are ids, keys stay below x/<prefix>/.
    for (const bad of ['', '../k', 'a/b', 'x/audit', '.hidden', 'k'.repeat(129)]) {
      expect((await codeOf(() => store.namespace(bad))).code).toBe(ErrorCode.BadInput);
    }
    for (const bad of ['', 'with space', 'é', 'k'.repeat(513), 7 as never]) {
      expect((await codeOf(a.get(bad as string))).code).toBe(ErrorCode.BadInput);
      expect((await codeOf(a.put(bad as string, Uint8Array.of(1)))).code).toBe(ErrorCode.BadInput);
    }
    expect((await codeOf(a.put('ok', 'text' as never))).code).toBe(ErrorCode.BadInput);
    expect((await codeOf(a.batch([{ type: 'put', key: 'ok', value: Uint8Array.of(1) }, { type: 'del', key: '' }]))).code).toBe(ErrorCode.BadInput);
    expect(await a.get('ok')).toBeUndefined(); // the whole batch was refused
    await store.close();
    const raw = await withRawDb(dataDir, async (db) => {
      const keys: string[] = [];
      for await (const k of db.keys()) keys.push(k);
      return keys;
    });
    expect(raw.filter((k) => k.startsWith('x/'))).toEqual(['x/audit/c/1', 'x/audit/e/1', 'x/audit/e/3', 'x/audit2/e/1']);
    expect(raw).toContain(shareRecordKey('t', 'k', 1));

    // A closed store: BAD_STATE for every call.
    expect((await codeOf(a.get('e/1'))).code).toBe(ErrorCode.BadState);
    expect((await codeOf(a.put('e/9', Uint8Array.of(1)))).code).toBe(ErrorCode.BadState);
    expect((await codeOf(all(a))).code).toBe(ErrorCode.BadState);
  });
});
