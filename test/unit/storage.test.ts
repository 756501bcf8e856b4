import { describe, expect, it } from 'vitest';
import { appendFile, chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { generateIdentity, identitySign, identityVerify, loadIdentityEngine } from '../../core/identity.js';
import { split } from '../../core/shamir.js';
import { ED25519 } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import { ConfigError } from '../../node/config.js';
import { IDENTITY_SECRET_NAME, loadOrCreateIdentity } from '../../node/store/identity-store.js';
import { createKekFile, loadKek, readKekFile } from '../../node/store/kek.js';
import { RECORD_TAG_LENGTH, STORAGE_FAILED_MESSAGE, openRecord, sealRecord } from '../../node/store/record-auth.js';
import { ShareStore, secretRecordKey, shareRecordKey, storageLocation, type RecordNamespace, readRecordMacKey } from '../../node/store/storage.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/governance/audit.js';
import { POLICY_NAMESPACE, PolicyEngine } from '../../node/governance/policy.js';
import { useTempStores } from '../helpers/temp-store.js';
import { resultDigest } from '../../core/commit.js';
import { PLACEHOLDER_CERTIFICATE, stageEpoch } from '../helpers/commit-store.js';
import { canMountTmpfs } from '../helpers/tmpfs.js';
import { makeShares } from '../helpers/key-shares.js';
import { readEnvelope } from '../../node/store/envelope.js';

/** Whether this machine lets the test mount a tmpfs (root only); probed once. */
const tmpfsMountable = canMountTmpfs();

const group = ED25519.group;
const packr = new Packr({ useRecords: false });


async function expectCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TesseraError);
  expect((err as TesseraError).code).toBe(code);
  if (message) expect((err as TesseraError).message).toMatch(message);
}

/** Edit raw LevelDB entries of a closed store. */
async function withRawDb(dataDir: string, fn: (db: Level<string, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

/** LevelDB access as someone holding the KEK: get returns verified payloads, put stores with a valid record MAC. */
interface KeyedDb {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, payload: Uint8Array): Promise<void>;
}
async function withKeyedDb(dataDir: string, kek: Uint8Array, nodeIndex: number, fn: (db: KeyedDb) => Promise<void>): Promise<void> {
  const macKey = await readRecordMacKey(dataDir, kek, nodeIndex);
  await withRawDb(dataDir, (db) =>
    fn({
      get: async (key) => {
        const v = await db.get(key);
        return v === undefined ? undefined : openRecord(macKey, key, v);
      },
      put: (key, payload) => db.put(key, sealRecord(macKey, key, payload)),
    }),
  );
}

/** A record's plain payload as stored (the MAC trails it). */
const payloadOf = (stored: Uint8Array): Uint8Array => stored.subarray(0, stored.length - RECORD_TAG_LENGTH);

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const { dir, kek, open: openStore } = useTempStores('tessera-storage-');

describe('ShareStore: records', () => {
  it('round-trips a key share; get/list/latest; refuses overwrite, bad ids and foreign shares', async () => {
    const store = await openStore();
    const { shares } = makeShares(0);
    const mine = shares[0]!;
    const rec = await store.put({ tenant: 'acme', keyId: 'payments.k1', version: 1, share: mine, exportable: false, createdAt: 1234 });
    expect(rec).toMatchObject({ tenant: 'acme', keyId: 'payments.k1', version: 1, suite: 'ed25519', threshold: 2, parties: 3, epoch: 0 });
    expect(rec).toMatchObject({ state: 'active', createdAt: 1234, exportable: false });

    const got = await store.getShare('acme', 'payments.k1', 1);
    expect(got).toEqual(mine);
    expect(await store.get('acme', 'payments.k1', 1)).toEqual(rec);
    expect(await store.get('acme', 'payments.k1', 2)).toBeUndefined();
    expect(await store.getShare('acme', 'other', 1)).toBeUndefined();

    // Latest version: zero-padded keys sort numerically (10 after 2).
    await store.put({ tenant: 'acme', keyId: 'payments.k1', version: 10, share: makeShares(0).shares[0]!, exportable: true });
    await store.put({ tenant: 'acme', keyId: 'payments.k1', version: 2, share: makeShares(0).shares[0]!, exportable: true });
    await store.put({ tenant: 'acme', keyId: 'payments', version: 7, share: makeShares(0).shares[0]!, exportable: true });
    await store.put({ tenant: 'acme2', keyId: 'payments.k1', version: 99, share: makeShares(0).shares[0]!, exportable: true });
    expect((await store.get('acme', 'payments.k1'))!.version).toBe(10);
    expect((await store.getShare('acme', 'payments.k1'))!.secret.epoch).toBe(0);
    expect((await store.get('acme', 'payments'))!.version).toBe(7);
    expect((await store.list('acme')).map((r) => `${r.keyId}@${r.version}`)).toEqual([
      'payments@7',
      'payments.k1@1',
      'payments.k1@2',
      'payments.k1@10',
    ]);
    expect(await store.list('nobody')).toEqual([]);

    await expectCode(store.put({ tenant: 'acme', keyId: 'payments.k1', version: 1, share: mine, exportable: false }), ErrorCode.BadState, /already exists/);
    // Two racing creations of one version: exactly one wins.
    const race = await Promise.allSettled([
      store.put({ tenant: 'acme', keyId: 'race', version: 1, share: mine, exportable: false }),
      store.put({ tenant: 'acme', keyId: 'race', version: 1, share: mine, exportable: false }),
    ]);
    expect(race.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);

    for (const [tenant, keyId, version] of [
      ['a/b', 'k', 1],
      ['acme', '', 1],
      ['acme', '.hidden', 1],
      ['acme', 'k'.repeat(129), 1],
      ['acme', 'k', 0],
      ['acme', 'k', 1.5],
      ['acme', 'k', 2 ** 32],
    ] as const) {
      await expectCode(store.put({ tenant, keyId, version, share: mine, exportable: false }), ErrorCode.BadInput);
    }
    await expectCode(store.put({ tenant: 'acme', keyId: 'x', version: 1, share: shares[1]!, exportable: false }), ErrorCode.BadInput, /not this node/);
    const shortValue = { ...mine, secret: { ...mine.secret, value: mine.secret.value.subarray(1) } };
    await expectCode(store.put({ tenant: 'acme', keyId: 'x', version: 1, share: shortValue, exportable: false }), ErrorCode.BadInput, /length/);
    const wrongEpoch = { ...mine, secret: { ...mine.secret, epoch: 1 } };
    await expectCode(store.put({ tenant: 'acme', keyId: 'x', version: 1, share: wrongEpoch, exportable: false }), ErrorCode.EpochMismatch);

    const retired = await store.setState('acme', 'payments.k1', 1, 'retired');
    expect(retired.state).toBe('retired');
    expect((await store.getShare('acme', 'payments.k1', 1))!.secret.value).toEqual(mine.secret.value);
    expect(await store.delete('acme', 'payments.k1', 2)).toBe(true);
    expect(await store.get('acme', 'payments.k1', 2)).toBeUndefined();
  });

  it('persists across reopening, refuses another node index and a wrong KEK with typed errors', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir, 2);
    const { shares } = makeShares(0);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: shares[1]!, exportable: false });
    await store.close();
    await expectCode(ShareStore.open({ dataDir, kek: kek(), nodeIndex: 3 }), ErrorCode.BadState, /belongs to node 2/);
    await expectCode(ShareStore.open({ dataDir, kek: Uint8Array.from(randomBytes(32)), nodeIndex: 2 }), ErrorCode.DecryptionFailed, /KEK/);
    const again = await openStore(dataDir, 2);
    expect(await again.getShare('t', 'k', 1)).toEqual(shares[1]);
    await again.close();
    await expectCode(again.getShare('t', 'k', 1), ErrorCode.BadState, /closed/);
  });

  it('creates the data dir with mode 0700 and forces an existing one to 0700', async () => {
    const fresh = join(dir(), 'a', 'b', 'data');
    await openStore(fresh);
    expect((await stat(fresh)).mode & 0o777).toBe(0o700);
    expect((await stat(storageLocation(fresh))).mode & 0o777).toBe(0o700);

    const wide = join(dir(), 'wide');
    await mkdir(wide, { mode: 0o755 });
    await chmod(wide, 0o755);
    await openStore(wide);
    expect((await stat(wide)).mode & 0o777).toBe(0o700);
  });
});

describe('ShareStore: AAD binds each sealed share to its place (behind the record MACs: records re-MACed with the KEK)', () => {
  it('a record copied to another tenant, key id or version, or with an edited public part, does not decrypt', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir);
    const { shares } = makeShares(5);
    await store.put({ tenant: 'acme', keyId: 'k1', version: 1, share: shares[0]!, exportable: false });
    await store.close();

    const edit = (raw: Uint8Array, change: (m: Record<string, unknown>) => void): Uint8Array => {
      const m = packr.unpack(raw) as Record<string, unknown>;
      change(m);
      return Uint8Array.from(packr.pack(m));
    };
    await withKeyedDb(dataDir, kek(), 1, async (db) => {
      const raw = (await db.get(shareRecordKey('acme', 'k1', 1)))!;
      expect(raw).toBeDefined();
      await db.put(shareRecordKey('evil', 'k1', 1), raw);
      await db.put(shareRecordKey('acme', 'k2', 1), raw);
      await db.put(shareRecordKey('acme', 'k1', 2), raw);
      await db.put(shareRecordKey('acme', 'epoch', 1), edit(raw, (m) => (m.epoch = 6)));
      await db.put(shareRecordKey('acme', 'epoch0', 1), edit(raw, (m) => (m.epoch = 4)));
      await db.put(shareRecordKey('acme', 'export', 1), edit(raw, (m) => (m.exportable = true)));
      const vs = shares[1]!.publicKey.verifyingShares;
      await db.put(shareRecordKey('acme', 'vshare', 1), edit(raw, (m) => (m.verifyingShares = [vs[1], vs[0], vs[2]])));
      // Same place, but the ciphertext is flipped.
      await db.put(
        shareRecordKey('acme', 'flip', 1),
        edit(raw, (m) => {
          const ct = Uint8Array.from(m.ct as Uint8Array);
          ct[0]! ^= 1;
          m.ct = ct;
        }),
      );
    });

    const reopened = await openStore(dataDir);
    expect((await reopened.getShare('acme', 'k1', 1))!.secret.value).toEqual(shares[0]!.secret.value);
    for (const [tenant, keyId, version] of [
      ['evil', 'k1', 1],
      ['acme', 'k2', 1],
      ['acme', 'k1', 2],
      ['acme', 'epoch', 1],
      ['acme', 'epoch0', 1],
      ['acme', 'export', 1],
      ['acme', 'vshare', 1],
      ['acme', 'flip', 1],
    ] as const) {
      // The public part still reads (it is public), but the share does not open.
      expect(await reopened.get(tenant, keyId, version)).toBeDefined();
      await expectCode(reopened.getShare(tenant, keyId, version), ErrorCode.DecryptionFailed, /does not decrypt/);
    }
    // Latest of k1 is now the copied version 2, which does not open either.
    await expectCode(reopened.getShare('acme', 'k1'), ErrorCode.DecryptionFailed);
  });

  it("another node's record (same KEK) and a record under a different KEK do not decrypt", async () => {
    const { shares } = makeShares(0);
    const d1 = join(dir(), 'n1');
    const d2 = join(dir(), 'n2');
    const d3 = join(dir(), 'n3');
    const s1 = await openStore(d1, 1);
    await s1.put({ tenant: 't', keyId: 'k', version: 1, share: shares[0]!, exportable: false });
    await s1.putSecret('sec', Uint8Array.of(1, 2, 3));
    await s1.close();
    const s2 = await openStore(d2, 2); // same KEK, node 2
    await s2.close();
    const otherKek = Uint8Array.from(randomBytes(32));
    const s3 = await openStore(d3, 1, otherKek); // node 1, other KEK
    await s3.close();

    let raw!: Uint8Array;
    let rawSecret!: Uint8Array;
    await withKeyedDb(d1, kek(), 1, async (db) => {
      raw = (await db.get(shareRecordKey('t', 'k', 1)))!;
      rawSecret = (await db.get(secretRecordKey('sec')))!;
      await db.put(secretRecordKey('renamed'), rawSecret);
    });
    for (const [d, key, index] of [
      [d2, kek(), 2],
      [d3, otherKek, 1],
    ] as const) {
      await withKeyedDb(d, key, index, async (db) => {
        await db.put(shareRecordKey('t', 'k', 1), raw);
        await db.put(secretRecordKey('sec'), rawSecret);
      });
    }
    const r2 = await openStore(d2, 2);
    await expectCode(r2.getShare('t', 'k', 1), ErrorCode.DecryptionFailed);
    await expectCode(r2.getSecret('sec'), ErrorCode.DecryptionFailed);
    const r3 = await openStore(d3, 1, otherKek);
    await expectCode(r3.getShare('t', 'k', 1), ErrorCode.DecryptionFailed);
  });
});

describe('ShareStore: staged changes and commit certificates', () => {
  const session = () => Uint8Array.from(randomBytes(16));
  const epochDigest = (s: KeyShare) => resultDigest({ kind: 'epoch', package: s.publicKey });
  const stage = (store: ShareStore, version: number, share: KeyShare, id = session()) =>
    store.stageChange('t', 'k', { session: id, operation: 'refresh', version, resultDigest: epochDigest(share), vote: Uint8Array.of(1) }, [{ kind: 'new-epoch', version, share }]).then(() => id);
  const fileHits = async (dataDir: string, needle: Uint8Array) => {
    const hits: string[] = [];
    for (const f of await allFiles(dataDir)) if (Buffer.from(await readFile(f)).includes(Buffer.from(needle))) hits.push(f);
    return hits;
  };

  it('stages the next epoch beside the committed one (checked), survives a reopen, commits atomically with its certificate', async () => {
    const dataDir = join(dir(), 'data');
    let store = await openStore(dataDir, 3);
    const e0 = makeShares(0);
    await store.put({ tenant: 't', keyId: 'k', version: 4, share: e0.shares[2]!, exportable: true, createdAt: 99 });
    const e1 = makeShares(1, e0.secret); // a refresh: same secret, new polynomial

    // Refused before anything is written: wrong epochs, another group key, a missing version.
    await expectCode(stage(store, 4, makeShares(2, e0.secret).shares[2]!), ErrorCode.EpochMismatch);
    await expectCode(stage(store, 4, makeShares(0, e0.secret).shares[2]!), ErrorCode.EpochMismatch);
    await expectCode(stage(store, 4, makeShares(1).shares[2]!), ErrorCode.BadParameters, /group key/);
    await expectCode(stage(store, 5, e1.shares[2]!), ErrorCode.NotFound);
    expect(await store.getStaged('t', 'k')).toBeUndefined();

    const id = await stage(store, 4, e1.shares[2]!);
    // One staged change per key: a second is refused, naming the repair command.
    await expectCode(stage(store, 4, e1.shares[2]!), ErrorCode.BadState, /tessera repair --key-id k/);
    expect((await store.getShare('t', 'k', 4))!.secret).toEqual(e0.shares[2]!.secret); // untouched until commit

    // Crash between stage and commit: the staged change is still there, the committed epoch usable.
    await store.close();
    store = await openStore(dataDir, 3);
    expect(await store.getStaged('t', 'k')).toMatchObject({ operation: 'refresh', version: 4, effects: [{ kind: 'new-epoch', version: 4, epoch: 1 }] });
    expect((await store.listStaged()).map((s) => s.keyId)).toEqual(['k']);
    expect((await store.getShare('t', 'k', 4))!).toEqual(e0.shares[2]);

    await expectCode(store.commitStaged('t', 'k', session(), Uint8Array.of(1)), ErrorCode.BadState);
    const [committed] = await store.commitStaged('t', 'k', id, Uint8Array.of(0xce, 0x57));
    expect(committed).toMatchObject({ epoch: 1, state: 'active', createdAt: 99, exportable: true, certSession: id });
    expect(committed!.publicKey).toEqual(e1.shares[2]!.publicKey);
    expect(await store.getStaged('t', 'k')).toBeUndefined();
    expect(await store.getCertificate('t', 'k', id)).toEqual(Uint8Array.of(0xce, 0x57));
    // Idempotent: committing the same session again changes nothing.
    expect(await store.commitStaged('t', 'k', id, Uint8Array.of(0xce, 0x57))).toEqual([]);
    await store.close();
    store = await openStore(dataDir, 3);
    expect((await store.getShare('t', 'k', 4))!).toEqual(e1.shares[2]);
  });

  it('old shares really die: after a refresh commit no data file holds the previous epoch ciphertext (issue 9 item 4)', async () => {
    const dataDir = join(dir(), 'data');
    let store = await openStore(dataDir, 1);
    const e0 = makeShares(0);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false });
    await store.close();
    // The sealed epoch-0 share (ciphertext and nonce) as stored, read with the KEK's record MAC.
    let sealed!: { ct: Uint8Array; nonce: Uint8Array };
    await withKeyedDb(dataDir, kek(), 1, async (db) => {
      const m = new Packr({ useRecords: false }).unpack((await db.get(shareRecordKey('t', 'k', 1)))!) as { ct: Uint8Array; nonce: Uint8Array };
      // The envelope's body (node/store/envelope.ts): the share's own ciphertext, random, so found verbatim.
      sealed = { ct: Uint8Array.from(readEnvelope(m).body), nonce: Uint8Array.from(m.nonce) };
    });
    store = await openStore(dataDir, 1);
    expect(await fileHits(dataDir, sealed.ct)).not.toEqual([]); // the scan does find it before
    for (let epoch = 1; epoch <= 3; epoch++) {
      const id = await stage(store, 1, makeShares(epoch, e0.secret).shares[0]!);
      await store.markReleased('t', 'k', id);
      await expectCode(store.dropStaged('t', 'k', id), ErrorCode.BadState, /released/); // only a certificate resolves a released vote
      await store.commitStaged('t', 'k', id, Uint8Array.of(epoch));
    }
    // Gone from every file (log and tables), open and after closing; the current epoch still opens.
    expect(await fileHits(dataDir, sealed.ct)).toEqual([]);
    expect(await fileHits(dataDir, sealed.nonce)).toEqual([]);
    expect((await store.getShare('t', 'k', 1))!.secret.epoch).toBe(3);
    await store.close();
    expect(await fileHits(dataDir, sealed.ct)).toEqual([]);
  });

  it('a change this node never voted for can be dropped, and its staged ciphertext is erased', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir, 1);
    const e0 = makeShares(7);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false });
    const id = await stage(store, 1, makeShares(8, e0.secret).shares[0]!);
    expect(await store.dropStaged('t', 'k', session())).toBe(false); // another session: nothing
    expect(await store.dropStaged('t', 'k', id)).toBe(true);
    expect(await store.dropStaged('t', 'k', id)).toBe(false);
    expect(await store.getStaged('t', 'k')).toBeUndefined();
    expect((await store.getShare('t', 'k', 1))!).toEqual(e0.shares[0]);
    // A new change can be staged now.
    await stage(store, 1, makeShares(8, e0.secret).shares[0]!);
  });

  it('a session id is accepted once, across a reopen', async () => {
    const dataDir = join(dir(), 'data');
    let store = await openStore(dataDir, 1);
    const id = session();
    await store.claimSession(id);
    await expectCode(store.claimSession(id), ErrorCode.BadState, /never accepted twice/);
    await store.close();
    store = await openStore(dataDir, 1);
    await expectCode(store.claimSession(id), ErrorCode.BadState, /never accepted twice/);
    await store.claimSession(session());
  });
});

describe('named secrets and the node identity', () => {
  it('putSecret/getSecret round-trip, refuse silent overwrite', async () => {
    const store = await openStore();
    expect(await store.getSecret('x')).toBeUndefined();
    await store.putSecret('x', Uint8Array.of(9, 8, 7));
    expect(await store.getSecret('x')).toEqual(Uint8Array.of(9, 8, 7));
    await expectCode(store.putSecret('x', Uint8Array.of(1)), ErrorCode.BadState);
    await store.putSecret('x', Uint8Array.of(1), { overwrite: true });
    expect(await store.getSecret('x')).toEqual(Uint8Array.of(1));
    await expectCode(store.putSecret('bad/name', Uint8Array.of(1)), ErrorCode.BadInput);
  });

  it('makes the identity and KEM keys once and loads the same ones after a restart', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir, 2);
    const first = await loadOrCreateIdentity(store);
    expect(first.identity.publicKey.length).toBe(1952);
    expect(first.kem.kem).toBe('ml-kem-768');
    expect(first.kem.publicKey.length).toBe(1184);
    await store.close();
    const again = await openStore(dataDir, 2);
    const second = await loadOrCreateIdentity(again);
    expect(second).toEqual(first);
    const msg = Uint8Array.of(1, 2, 3);
    expect(identityVerify(first.identity.publicKey, msg, identitySign(second.identity.secretKey, msg))).toBe(true);
    expect(await again.getSecret(IDENTITY_SECRET_NAME)).toBeDefined();
  });
});

describe('nothing secret on disk in the clear', () => {
  it('no file under the data dir holds a share (either byte order), the identity secret key, the KEM key or the KEK', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir, 1);
    const secrets: Uint8Array[] = [kek()];
    const publicParts: Uint8Array[] = [];
    for (let v = 1; v <= 3; v++) {
      const e = makeShares(0);
      await store.put({ tenant: 't', keyId: `k${v}`, version: v, share: e.shares[0]!, exportable: false });
      const next = makeShares(1, e.secret);
      // A staged next epoch (v1, v3) and a committed one (v2): sealed in either case.
      const id = await stageEpoch(store, 't', `k${v}`, v, next.shares[0]!);
      if (v === 2) await store.commitStaged('t', `k${v}`, id, PLACEHOLDER_CERTIFICATE);
      secrets.push(e.shares[0]!.secret.value, next.shares[0]!.secret.value);
      // (v2's epoch-0 record was compacted away when epoch 1 committed: its public part is epoch 1's.)
      publicParts.push((v === 2 ? next : e).shares[0]!.publicKey.verifyingShares[0]!);
    }
    const keys = await loadOrCreateIdentity(store);
    secrets.push(keys.identity.secretKey, keys.identity.secretKey.subarray(0, 32), keys.identity.secretKey.subarray(-32), keys.kem.privateKey);
    await store.close();

    const files = await allFiles(dataDir);
    expect(files.length).toBeGreaterThan(0);
    const contents = await Promise.all(files.map((f) => readFile(f)));
    // Sanity: the public parts are there, so the scan does look at the data.
    // (At least one: a compaction moves records into snappy-compressed table blocks, where a back-reference
    // can split a 32-byte value, so not every value is always found verbatim.)
    expect(publicParts.some((p) => contents.some((c) => c.includes(Buffer.from(p))))).toBe(true);
    expect(contents.some((c) => c.includes(Buffer.from('k/t/k')))).toBe(true);
    for (const s of secrets) {
      const forward = Buffer.from(s);
      const reversed = Buffer.from(s).reverse();
      for (const c of contents) {
        expect(c.includes(forward)).toBe(false);
        expect(c.includes(reversed)).toBe(false);
      }
    }
  });
});

describe('KEK loading', () => {
  it('createKekFile makes a 0600 file that loads; refuses to overwrite it', async () => {
    const path = join(dir(), 'kek');
    await createKekFile(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const k = await loadKek({ kind: 'file', path });
    expect(k.length).toBe(32);
    expect(await readKekFile(path)).toEqual(k);
    await expect(createKekFile(path)).rejects.toThrow(/already exists/);
  });

  it('refuses a key file that group or others can access, with a clear one-line error', async () => {
    const path = join(dir(), 'kek');
    await createKekFile(path);
    for (const mode of [0o640, 0o604, 0o660, 0o644, 0o602]) {
      await chmod(path, mode);
      let err: unknown;
      try {
        await loadKek({ kind: 'file', path });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(new RegExp(`^config: kekFile .* has mode 0${mode.toString(8)}: .*chmod 600`));
    }
    await chmod(path, 0o400);
    expect((await loadKek({ kind: 'file', path })).length).toBe(32);
  });

  it('accepts hex or 32 raw bytes; refuses other contents, missing files and symlinks', async () => {
    const key = Uint8Array.from(randomBytes(32));
    const hexFile = join(dir(), 'hex');
    await writeFile(hexFile, Buffer.from(key).toString('hex').toUpperCase() + '\n', { mode: 0o600 });
    expect(await readKekFile(hexFile)).toEqual(key);
    const rawFile = join(dir(), 'raw');
    await writeFile(rawFile, key, { mode: 0o600 });
    expect(await readKekFile(rawFile)).toEqual(key);
    const bad = join(dir(), 'bad');
    await writeFile(bad, 'not a key', { mode: 0o600 });
    await expect(readKekFile(bad)).rejects.toThrow(/must hold 64 hex/);
    await expect(readKekFile(join(dir(), 'missing'))).rejects.toThrow(/ENOENT/);
    const { symlink } = await import('node:fs/promises');
    await symlink(hexFile, join(dir(), 'link'));
    await expect(readKekFile(join(dir(), 'link'))).rejects.toThrow(/symbolic link/);
    const env = Object.defineProperty({ kind: 'env' as const }, 'key', { value: key, enumerable: false }) as { kind: 'env'; key: Uint8Array };
    expect(await loadKek(env)).toEqual(key);
  });
});

describe('records authenticated at rest (node/store/record-auth.ts): edits and moves without the KEK', () => {
  /** Re-encode a stored record's payload with a change, keeping its old MAC (all someone without the KEK can do). */
  const editKeepingTag = (stored: Uint8Array, change: (m: Record<string, unknown>) => void): Uint8Array => {
    const m = packr.unpack(payloadOf(stored)) as Record<string, unknown>;
    change(m);
    return Uint8Array.from([...packr.pack(m), ...stored.subarray(stored.length - RECORD_TAG_LENGTH)]);
  };

  it('an edited state, rotation period or createdAt byte is detected and refused, naming the key and the repair command', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir);
    const { shares } = makeShares(0);
    await store.put({ tenant: 'acme', keyId: 'k-state', version: 1, share: shares[0]!, exportable: false, state: 'archived' });
    await store.put({ tenant: 'acme', keyId: 'k-state', version: 2, share: shares[0]!, exportable: false });
    await store.put({ tenant: 'acme', keyId: 'k-rot', version: 1, share: shares[0]!, exportable: false, rotationPeriodMs: 30 * 86_400_000 });
    await store.put({ tenant: 'acme', keyId: 'k-time', version: 1, share: shares[0]!, exportable: false, createdAt: 1_700_000_000_000 });
    await store.put({ tenant: 'acme', keyId: 'k-fine', version: 1, share: shares[0]!, exportable: false });
    await store.close();

    await withRawDb(dataDir, async (db) => {
      const k = shareRecordKey('acme', 'k-state', 1);
      await db.put(k, editKeepingTag((await db.get(k))!, (m) => (m.state = 'active'))); // re-activate an archived version
      const r = shareRecordKey('acme', 'k-rot', 1);
      await db.put(r, editKeepingTag((await db.get(r))!, (m) => (m.rotationPeriodMs = 10 * 365 * 86_400_000)));
      // One byte of createdAt (a msgpack uint64 / float64: its last byte is the lowest one).
      const t = shareRecordKey('acme', 'k-time', 1);
      const stored = Uint8Array.from((await db.get(t))!);
      const m = packr.unpack(payloadOf(stored)) as Record<string, unknown>;
      expect(m.createdAt).toBe(1_700_000_000_000);
      const enc = Uint8Array.from(packr.pack(1_700_000_000_000));
      const at = Buffer.from(stored).indexOf(Buffer.from(enc));
      expect(at).toBeGreaterThan(0);
      stored[at + enc.length - 1]! ^= 0x01;
      expect((packr.unpack(payloadOf(stored)) as Record<string, unknown>).createdAt).not.toBe(1_700_000_000_000);
      await db.put(t, stored);
    });

    const again = await openStore(dataDir);
    const report = await again.checkIntegrity();
    expect(report.unauthentic.map((r) => r.record).sort()).toEqual(
      [shareRecordKey('acme', 'k-rot', 1), shareRecordKey('acme', 'k-state', 1), shareRecordKey('acme', 'k-time', 1)].sort(),
    );
    expect(report.unauthentic.find((r) => r.record === shareRecordKey('acme', 'k-state', 1))).toEqual({
      record: shareRecordKey('acme', 'k-state', 1),
      name: 'key record of acme/k-state version 1',
      key: { tenant: 'acme', keyId: 'k-state', version: 1 },
    });
    expect(again.quarantinedKeys().map((q) => q.keyId).sort()).toEqual(['k-rot', 'k-state', 'k-time']);

    const refusal = /fails its integrity check .*refuses key k-state until it is repaired: run `tessera repair --key-id k-state`/;
    await expectCode(again.get('acme', 'k-state', 1), ErrorCode.Unavailable, refusal);
    await expectCode(again.getShare('acme', 'k-state', 1), ErrorCode.Unavailable, refusal);
    await expectCode(again.latestActive('acme', 'k-state'), ErrorCode.Unavailable, refusal);
    await expectCode(again.versions('acme', 'k-state'), ErrorCode.Unavailable, refusal);
    // The whole key is refused, its intact version 2 included: its state cannot be proven.
    await expectCode(again.getShare('acme', 'k-state', 2), ErrorCode.Unavailable, /key record of acme\/k-state version 2: key record of acme\/k-state version 1 fails its integrity check/);
    await expectCode(again.setState('acme', 'k-state', 1, 'retired'), ErrorCode.Unavailable, refusal);
    await expectCode(again.get('acme', 'k-rot', 1), ErrorCode.Unavailable, /key record of acme\/k-rot version 1 fails its integrity check/);
    await expectCode(again.getShare('acme', 'k-time', 1), ErrorCode.Unavailable, /key record of acme\/k-time version 1 fails/);
    // Listing one key fails closed; the scheduler's listing of all keys leaves refused keys out entirely.
    await expectCode(again.list('acme'), ErrorCode.Unavailable);
    expect((await again.listAll()).map((r) => `${r.keyId}/${r.version}`)).toEqual(['k-fine/1']);
    // Other keys are served.
    expect((await again.getShare('acme', 'k-fine', 1))!.secret.value).toEqual(shares[0]!.secret.value);
  });

  it('a record copied to another key, tenant or version is refused, and so is a record with its MAC stripped', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore(dataDir);
    const { shares } = makeShares(0);
    await store.put({ tenant: 'acme', keyId: 'k1', version: 1, share: shares[0]!, exportable: false });
    await store.putSecret('sec', Uint8Array.of(9, 9, 9));
    await store.close();
    await withRawDb(dataDir, async (db) => {
      const raw = (await db.get(shareRecordKey('acme', 'k1', 1)))!;
      await db.put(shareRecordKey('acme', 'k9', 1), raw);
      await db.put(shareRecordKey('evil', 'k1', 1), raw);
      await db.put(shareRecordKey('acme', 'k1', 2), raw);
      await db.put(shareRecordKey('acme', 'bare', 1), payloadOf(raw));
      await db.put(secretRecordKey('moved'), (await db.get(secretRecordKey('sec')))!);
    });
    const again = await openStore(dataDir);
    expect((await again.checkIntegrity()).unauthentic.map((r) => r.name).sort()).toEqual([
      'key record of acme/bare version 1',
      'key record of acme/k1 version 2',
      'key record of acme/k9 version 1',
      'key record of evil/k1 version 1',
      'secret moved',
    ]);
    await expectCode(again.getShare('acme', 'k9', 1), ErrorCode.Unavailable, /key record of acme\/k9 version 1 fails its integrity check/);
    await expectCode(again.getShare('evil', 'k1', 1), ErrorCode.Unavailable);
    await expectCode(again.getShare('acme', 'bare', 1), ErrorCode.Unavailable);
    await expectCode(again.getSecret('moved'), ErrorCode.Unavailable, /^storage: secret moved fails its integrity check .*this node will not use it$/);
    expect(await again.getSecret('sec')).toEqual(Uint8Array.of(9, 9, 9));
    // acme/k1 is refused as a whole: the copy under version 2 is one of its records.
    await expectCode(again.getShare('acme', 'k1', 1), ErrorCode.Unavailable, /tessera repair --key-id k1/);
  });

  it("a record copied from another node's data dir under the same KEK is refused (the MAC key is per node)", async () => {
    const { shares } = makeShares(0);
    const d1 = join(dir(), 'n1');
    const d2 = join(dir(), 'n2');
    const s1 = await openStore(d1, 1);
    await s1.put({ tenant: 't', keyId: 'k', version: 1, share: shares[0]!, exportable: false });
    await s1.close();
    await (await openStore(d2, 2)).close();
    let raw!: Uint8Array;
    await withRawDb(d1, async (db) => void (raw = (await db.get(shareRecordKey('t', 'k', 1)))!));
    await withRawDb(d2, (db) => db.put(shareRecordKey('t', 'k', 1), raw));
    await expectCode((await openStore(d2, 2)).get('t', 'k', 1), ErrorCode.Unavailable, /integrity check/);
  });

  it('the meta record edited without the KEK, or a data dir written before records were MACed, does not open', async () => {
    const dataDir = join(dir(), 'data');
    await (await openStore(dataDir)).close();
    let meta!: Uint8Array;
    await withRawDb(dataDir, async (db) => {
      meta = Uint8Array.from((await db.get('m/node'))!);
      await db.put('m/node', editKeepingTag(meta, (m) => (m.extra = 1)));
    });
    await expectCode(openStore(dataDir), ErrorCode.Unavailable, /^storage: the data dir's meta record fails its integrity check/);
    await withRawDb(dataDir, (db) => db.put('m/node', payloadOf(meta))); // the format before record MACs
    await expectCode(openStore(dataDir), ErrorCode.BadState, /predates authenticated records/);
    await withRawDb(dataDir, (db) => db.put('m/node', meta));
    await (await openStore(dataDir)).close();
  });
});

describe('the read cache of key records (issue 10 item 5): every write drops it, so no read is ever stale', () => {
  const session = () => Uint8Array.from(randomBytes(16));
  const digest = Uint8Array.from(randomBytes(32));
  /** Stage one change of t/k and commit it with a placeholder certificate (as test/helpers/commit-store.ts). */
  const stageAndCommit = async (store: ShareStore, operation: string, version: number, effect: Parameters<ShareStore['stageChange']>[3][number]) => {
    const id = session();
    await store.stageChange('t', 'k', { session: id, operation, version, resultDigest: digest, vote: Uint8Array.of(1) }, [effect]);
    return { id, changed: await store.commitStaged('t', 'k', id, PLACEHOLDER_CERTIFICATE) };
  };

  it('repeated reads are one cached, frozen record object; getShare shares its package; a caller cannot poison it', async () => {
    const store = await openStore();
    const e0 = makeShares(0);
    expect(await store.get('t', 'k')).toBeUndefined(); // "no such key" is cached too ...
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false });
    const rec = (await store.get('t', 'k', 1))!; // ... and dropped by the put
    expect(rec).toMatchObject({ version: 1, epoch: 0, state: 'active' });
    const before = store.keyCacheStats;
    expect(await store.get('t', 'k', 1)).toBe(rec);
    expect(await store.get('t', 'k')).toBe(rec);
    expect(await store.latestActive('t', 'k')).toBe(rec);
    expect((await store.versions('t', 'k'))[0]).toBe(rec);
    const share = (await store.getShare('t', 'k', 1))!;
    expect(share.publicKey).toBe(rec.publicKey);
    expect(share.secret.value).toEqual(e0.shares[0]!.secret.value);
    expect(store.keyCacheStats.hits - before.hits).toBe(5);
    expect(store.keyCacheStats.misses).toBe(before.misses);

    for (const o of [rec, rec.publicKey, rec.publicKey.commitments, rec.publicKey.verifyingShares]) expect(Object.isFrozen(o)).toBe(true);
    expect(() => ((rec as { state: string }).state = 'destroyed')).toThrow(TypeError);
    expect(() => ((rec.publicKey as { epoch: number }).epoch = 9)).toThrow(TypeError);
    expect(() => (rec.publicKey.commitments as Uint8Array[]).push(new Uint8Array(32))).toThrow(TypeError);
    // Bytes cannot be frozen: a caller that writes into them gets them back as stored, in a new record.
    rec.publicKey.verifyingShares[0]![0]! ^= 0xff;
    rec.publicKey.commitments[0]!.fill(0);
    const again = (await store.get('t', 'k', 1))!;
    expect(again).not.toBe(rec);
    expect(again.publicKey).toEqual(e0.shares[0]!.publicKey);
    expect((await store.getShare('t', 'k', 1))!.secret.value).toEqual(e0.shares[0]!.secret.value); // the AAD digest still matches
    expect(await store.get('t', 'k', 1)).toBe(again);
  });

  it('direct writes drop it: a new version, a state change, a rotation period, destroy, delete', async () => {
    const store = await openStore();
    const e0 = makeShares(0);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false });
    expect((await store.get('t', 'k'))!.version).toBe(1);
    expect(await store.nextVersion('t', 'k')).toBe(2);

    await store.put({ tenant: 't', keyId: 'k', version: 2, share: makeShares(0).shares[0]!, exportable: false });
    expect((await store.get('t', 'k'))!.version).toBe(2);
    expect((await store.latestActive('t', 'k'))!.version).toBe(2);
    expect(await store.nextVersion('t', 'k')).toBe(3);

    expect((await store.get('t', 'k', 2))!.state).toBe('active');
    await store.setState('t', 'k', 2, 'retired', { rotatedAt: 5 });
    expect(await store.get('t', 'k', 2)).toMatchObject({ state: 'retired', rotatedAt: 5 });
    expect((await store.latestActive('t', 'k'))!.version).toBe(1);
    expect((await store.versions('t', 'k')).map((r) => r.state)).toEqual(['active', 'retired']);

    await store.setRotationPeriod('t', 'k', 1, 30 * 86_400_000);
    expect((await store.get('t', 'k', 1))!.rotationPeriodMs).toBe(30 * 86_400_000);
    await store.setRotationPeriod('t', 'k', 1, undefined);
    expect((await store.get('t', 'k', 1))!.rotationPeriodMs).toBeUndefined();

    expect((await store.getShare('t', 'k', 2))!.secret.epoch).toBe(0);
    await store.destroy('t', 'k', 2, { destroyedAt: 7 });
    expect(await store.get('t', 'k', 2)).toMatchObject({ state: 'destroyed', destroyedAt: 7 });
    await expectCode(store.getShare('t', 'k', 2), ErrorCode.BadState, /destroyed/);

    expect(await store.get('t', 'k', 1)).toBeDefined();
    expect(await store.delete('t', 'k', 1)).toBe(true);
    expect(await store.get('t', 'k', 1)).toBeUndefined();
    expect(await store.getShare('t', 'k', 1)).toBeUndefined();
    expect(await store.latestActive('t', 'k')).toBeUndefined();
    expect((await store.versions('t', 'k')).map((r) => r.version)).toEqual([2]);
  });

  it('commits drop it: a new epoch (refresh), a state change, a new version (rotate), a destroy, and a repair applying a certified transition', async () => {
    const store = await openStore();
    const e0 = makeShares(0);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false });
    const cached = (await store.get('t', 'k', 1))!;

    // A staged change alone changes nothing committed; dropping it neither.
    const e1 = makeShares(1, e0.secret);
    const dropped = await stageEpoch(store, 't', 'k', 1, e1.shares[0]!);
    expect(await store.get('t', 'k', 1)).toEqual(cached);
    expect((await store.getShare('t', 'k', 1))!.secret).toEqual(e0.shares[0]!.secret);
    expect(await store.dropStaged('t', 'k', dropped)).toBe(true);
    expect(await store.get('t', 'k', 1)).toEqual(cached);

    // Refresh: the new epoch, its package and its share, at once.
    const { id: refreshId } = await stageAndCommit(store, 'refresh', 1, { kind: 'new-epoch', version: 1, share: e1.shares[0]! });
    const refreshed = (await store.get('t', 'k', 1))!;
    expect(refreshed).toMatchObject({ epoch: 1, certSession: refreshId });
    expect(refreshed.publicKey).toEqual(e1.shares[0]!.publicKey);
    expect((await store.getShare('t', 'k'))!).toEqual(e1.shares[0]);
    expect((await store.getShare('t', 'k', 1))!.publicKey).toBe(refreshed.publicKey);

    // Rotate: a new version, and the old one retired, in one commit.
    const v2 = makeShares(0);
    const id = session();
    await store.stageChange('t', 'k', { session: id, operation: 'rotate', version: 2, resultDigest: digest, vote: Uint8Array.of(1) }, [
      { kind: 'new-version', record: { tenant: 't', keyId: 'k', version: 2, share: v2.shares[0]!, exportable: false } },
      { kind: 'state', version: 1, state: 'retired', rotatedAt: 11 },
    ]);
    expect((await store.latestActive('t', 'k'))!.version).toBe(1);
    await store.commitStaged('t', 'k', id, PLACEHOLDER_CERTIFICATE);
    expect((await store.latestActive('t', 'k'))!.version).toBe(2);
    expect((await store.get('t', 'k'))!.version).toBe(2);
    expect(await store.get('t', 'k', 1)).toMatchObject({ state: 'retired', rotatedAt: 11 });
    expect((await store.getShare('t', 'k'))!.secret.value).toEqual(v2.shares[0]!.secret.value);

    // A lifecycle transition by session, then a destroy.
    await stageAndCommit(store, 'archive', 1, { kind: 'state', version: 1, state: 'archived' });
    expect((await store.get('t', 'k', 1))!.state).toBe('archived');
    await stageAndCommit(store, 'destroy', 1, { kind: 'destroy', version: 1 });
    expect((await store.get('t', 'k', 1))!.state).toBe('destroyed');
    await expectCode(store.getShare('t', 'k', 1), ErrorCode.BadState, /destroyed/);

    // Repair: a certified transition this node has no staged record for.
    expect((await store.get('t', 'k', 2))!.state).toBe('active');
    await store.applyCertifiedTransition('t', 'k', 2, 'retired', session(), PLACEHOLDER_CERTIFICATE);
    expect((await store.get('t', 'k', 2))!.state).toBe('retired');
    expect(await store.latestActive('t', 'k')).toBeUndefined();
    await store.applyCertifiedTransition('t', 'k', 2, 'destroyed', session(), PLACEHOLDER_CERTIFICATE);
    expect((await store.versions('t', 'k')).map((r) => r.state)).toEqual(['destroyed', 'destroyed']);
    await expectCode(store.getShare('t', 'k', 2), ErrorCode.BadState, /destroyed/);
  });

  it('a read in flight while the key is written never leaves the old record in the cache', async () => {
    const store = await openStore();
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: makeShares(0).shares[0]!, exportable: false });
    let state: 'active' | 'retired' = 'active';
    for (let i = 0; i < 30; i++) {
      const reads = [store.get('t', 'k', 1), store.latestActive('t', 'k'), store.versions('t', 'k')]; // loads start before the write ...
      state = state === 'active' ? 'retired' : 'active';
      const write = store.setState('t', 'k', 1, state);
      const during = store.get('t', 'k', 1); // ... and while it runs
      await Promise.all([...reads, write, during]);
      // Once the write is done, every read sees it.
      expect((await store.get('t', 'k', 1))!.state).toBe(state);
      expect((await store.latestActive('t', 'k'))?.version).toBe(state === 'active' ? 1 : undefined);
      expect((await store.versions('t', 'k'))[0]!.state).toBe(state);
    }
    // A load that reads many records (its LevelDB snapshot taken before the write) racing a write of a new
    // version: whichever finishes first, the load's old view must not outlive the write in the cache.
    const many = makeShares(0).shares[0]!;
    for (let v = 2; v <= 120; v++) await store.put({ tenant: 't', keyId: 'k', version: v, share: many, exportable: false });
    for (let i = 0; i < 5; i++) {
      const load = store.versions('t', 'k'); // nothing cached: the last put dropped it
      const write = store.put({ tenant: 't', keyId: 'k', version: 1000 + i, share: many, exportable: false });
      const [seen] = await Promise.all([load, write]);
      expect(seen.at(-1)!.version).toBe(i === 0 ? 120 : 999 + i); // the snapshot predates the write
      expect((await store.get('t', 'k'))!.version).toBe(1000 + i);
      expect((await store.versions('t', 'k')).at(-1)!.version).toBe(1000 + i);
    }
  });

  it('a key refused for a record that fails its MAC is not served from the cache any more; a closed store serves nothing', async () => {
    const dataDir = join(dir(), 'data');
    let store = await openStore(dataDir);
    const e0 = makeShares(0);
    await store.put({ tenant: 't', keyId: 'k', version: 1, share: e0.shares[0]!, exportable: false });
    await stageEpoch(store, 't', 'k', 1, makeShares(1, e0.secret).shares[0]!);
    await store.close();
    // The staged record edited without the KEK (its old MAC kept).
    await withRawDb(dataDir, async (db) => {
      const g = 'g/t/k';
      const raw = Uint8Array.from((await db.get(g))!);
      raw[5]! ^= 0x01;
      await db.put(g, raw);
    });
    store = await openStore(dataDir);
    const rec = (await store.get('t', 'k', 1))!; // cached: the key record itself is intact
    expect(await store.get('t', 'k', 1)).toBe(rec);
    await expectCode(store.getStaged('t', 'k'), ErrorCode.Unavailable, /staged change of t\/k fails its integrity check/);
    // Now the key is refused as a whole: the cached record is not handed out.
    const refusal = /key record of t\/k version 1: staged change of t\/k fails its integrity check.*tessera repair --key-id k/;
    await expectCode(store.get('t', 'k', 1), ErrorCode.Unavailable, refusal);
    await expectCode(store.getShare('t', 'k', 1), ErrorCode.Unavailable, refusal);
    await expectCode(store.get('t', 'k'), ErrorCode.Unavailable, /integrity check/);
    await expectCode(store.latestActive('t', 'k'), ErrorCode.Unavailable, /integrity check/);
    await expectCode(store.versions('t', 'k'), ErrorCode.Unavailable, /integrity check/);

    await store.put({ tenant: 't', keyId: 'other', version: 1, share: e0.shares[0]!, exportable: false });
    expect(await store.get('t', 'other', 1)).toBeDefined();
    await store.close();
    await expectCode(store.get('t', 'other', 1), ErrorCode.BadState, /closed/);
    await expectCode(store.getShare('t', 'other', 1), ErrorCode.BadState, /closed/);
  });

  it.skipIf(!tmpfsMountable)(`a store latched failed by a refused write serves no cached record (a real full tmpfs${tmpfsMountable ? '' : '; skipped: mount -t tmpfs is not permitted here, needs root'})`, async () => {
    const mnt = join(dir(), 'mnt');
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mnt]);
    try {
      const store = await ShareStore.open({ dataDir: join(mnt, 'data'), kek: kek(), nodeIndex: 1 });
      try {
        await store.put({ tenant: 't', keyId: 'k', version: 1, share: makeShares(0).shares[0]!, exportable: false });
        const rec = (await store.get('t', 'k', 1))!;
        expect(await store.get('t', 'k', 1)).toBe(rec); // cached
        const filler = join(mnt, 'filler');
        try {
          for (;;) await appendFile(filler, Buffer.alloc(64 * 1024, 1));
        } catch (e) {
          expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
        }
        let failed = false;
        for (let v = 2; v < 5000 && !failed; v++) {
          try {
            await store.put({ tenant: 't', keyId: `other${v}`, version: 1, share: makeShares(0).shares[0]!, exportable: false });
          } catch {
            failed = true;
          }
        }
        expect(store.failure?.message).toBe(STORAGE_FAILED_MESSAGE);
        for (const read of [store.get('t', 'k', 1), store.get('t', 'k'), store.getShare('t', 'k', 1), store.latestActive('t', 'k'), store.versions('t', 'k')]) {
          await expectCode(read, ErrorCode.Unavailable, new RegExp(STORAGE_FAILED_MESSAGE));
        }
      } finally {
        await store.close();
      }
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  });

  it('holds at most keyCacheSize keys (least recently used out first); 0 turns it off and reads stay right', async () => {
    const dataDir = join(dir(), 'data');
    for (const size of [2, 0]) {
      const store = await ShareStore.open({ dataDir, kek: kek(), nodeIndex: 1, keyCacheSize: size });
      try {
        for (const id of ['a', 'b', 'c']) {
          if (!(await store.get('t', id))) await store.put({ tenant: 't', keyId: id, version: 1, share: makeShares(0).shares[0]!, exportable: false });
        }
        for (const id of ['a', 'b', 'c', 'a']) expect((await store.get('t', id, 1))!.keyId).toBe(id);
        expect(store.keyCacheStats.size).toBe(Math.min(size, 3));
        await store.setState('t', 'a', 1, size === 2 ? 'retired' : 'active');
        expect((await store.get('t', 'a', 1))!.state).toBe(size === 2 ? 'retired' : 'active');
      } finally {
        await store.close();
      }
    }
    await expectCode(ShareStore.open({ dataDir, kek: kek(), nodeIndex: 1, keyCacheSize: -1 }), ErrorCode.BadInput);
  });
});

describe('namespace write counts, and the policy engine keeping its rule document on them (issue 10 item 5)', () => {
  it('generation() counts completed writes of a namespace through any view, per namespace; throws on a closed store', async () => {
    const store = await openStore();
    const a = store.namespace('alpha');
    const a2 = store.namespace('alpha');
    const b = store.namespace('beta');
    expect(a.generation!()).toBe(0);
    await a.put('x', Uint8Array.of(1));
    await a2.batch([{ type: 'put', key: 'y', value: Uint8Array.of(2) }, { type: 'del', key: 'x' }]);
    await a2.del('y');
    expect(a.generation!()).toBe(3);
    expect(a2.generation!()).toBe(3);
    expect(b.generation!()).toBe(0);
    await a.get('x');
    expect(a.generation!()).toBe(3); // reads do not count
    await store.close();
    expect(() => a.generation!()).toThrow(/closed/);
  });

  it('the policy engine evaluates from its cached rule document until the policy namespace is written (setRules or anything else)', async () => {
    await loadIdentityEngine();
    const store = await openStore();
    const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity: generateIdentity(), checkpointIntervalMs: 0 });
    const inner = store.namespace(POLICY_NAMESPACE);
    let ruleReads = 0;
    const records: RecordNamespace = { ...inner, get: (k) => ((ruleReads += k === 'rules' ? 1 : 0), inner.get(k)), generation: () => inner.generation!() };
    const policy = await PolicyEngine.open({ records, audit });
    try {
      const req = { tenant: 'acme', apiKeyId: 'ak_1', operation: 'sign' as const, keyId: 'k1' };
      const destroy = { ...req, operation: 'destroy' as const };
      ruleReads = 0;
      for (let i = 0; i < 20; i++) expect((await policy.evaluate(req)).allow).toBe(true);
      expect(ruleReads).toBe(1);
      // setRules: the next evaluation reads the new document, once.
      await policy.setRules([{ id: 'no-destroy', type: 'deny', operations: ['destroy'] }], 'admin');
      expect(await policy.evaluate(destroy)).toMatchObject({ allow: false, rule: 'no-destroy' });
      for (let i = 0; i < 5; i++) expect((await policy.evaluate(destroy)).allow).toBe(false);
      expect(ruleReads).toBe(2);
      // A write through another view of the namespace is seen too: here an invalid document, so evaluation fails closed.
      await store.namespace(POLICY_NAMESPACE).put('rules', Uint8Array.of(0xc1));
      await expectCode(policy.evaluate(req), ErrorCode.Unavailable);
      await expectCode(policy.evaluate(req), ErrorCode.Unavailable); // nothing cached from a failed read
      expect(ruleReads).toBe(4);
      await policy.setRules([], 'admin');
      expect((await policy.evaluate(destroy)).allow).toBe(true);
      // A closed store: UNAVAILABLE, not the cached document.
      await policy.close();
      await audit.close();
      const again = await PolicyEngine.open({ records, audit });
      expect((await again.evaluate(destroy)).allow).toBe(true);
      await store.close();
      await expectCode(again.evaluate(destroy), ErrorCode.Unavailable);
    } finally {
      await policy.close();
      await audit.close();
    }
  });
});
