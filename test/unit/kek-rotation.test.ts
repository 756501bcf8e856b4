/**
 * KEK rotation at the store level (node/store/kek-rotation.ts, ShareStore.beginKekRotation /
 * rewrapRecords / endKekRotation) with the file provider: what the process-level test
 * (test/integration/kek-rotation.test.ts) cannot set up cheaply: writes racing the rotation, a record
 * that fails its MAC, a lost next KEK, providers that cannot rotate, progress.
 */
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { split } from '../../core/shamir.js';
import { ED25519 } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import { RawKek, createKekFile, readKekFile } from '../../node/store/kek.js';
import { fileRotationSteps, kekRotationSteps, rotateKek } from '../../node/store/kek-rotation.js';
import { ShareStore, shareRecordKey, storageLocation } from '../../node/store/storage.js';
import { useTempStores } from '../helpers/temp-store.js';
import { sampleShare } from '../helpers/key-shares.js';

const group = ED25519.group;


async function codeOf(p: Promise<unknown>): Promise<TesseraError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return e as TesseraError;
  }
  throw new Error('expected a rejection');
}

const t = useTempStores('tessera-kek-rotation-');

/** A store in a temp data dir under a file KEK; returns it with the KEK file's path. */
async function fileStore(): Promise<{ store: ShareStore; kekFile: string; open: () => Promise<ShareStore> }> {
  const kekFile = join(t.dir(), 'node.kek');
  await createKekFile(kekFile);
  const open = async () => {
    const bytes = await readKekFile(kekFile);
    const others = existsSync(`${kekFile}.next`) ? [new RawKek(await readKekFile(`${kekFile}.next`), 'file')] : [];
    const kek = new RawKek(bytes, 'file');
    bytes.fill(0);
    const s = await ShareStore.open({ dataDir: join(t.dir(), 'data'), kek, otherKeks: others, nodeIndex: 1 });
    t.onCleanup(() => s.close());
    return s;
  };
  return { store: await open(), kekFile, open };
}

describe('KEK rotation (store level)', () => {
  it('moves every record while writes race it; progress reaches the total; the old KEK opens nothing after', async () => {
    const { store, kekFile } = await fileStore();
    const old = await readKekFile(kekFile);
    const values = new Map<string, Uint8Array>();
    for (let i = 0; i < 40; i++) {
      const s = sampleShare();
      values.set(`k${i}`, Uint8Array.from(s.secret.value));
      await store.put({ tenant: 't', keyId: `k${i}`, version: 1, share: s, exportable: false });
    }
    await store.putSecret('identity', new Uint8Array(32).fill(7));
    const progress: number[] = [];
    let total = 0;
    // Writes of new keys and lifecycle changes during the rotation: none may be lost or left under the old KEK.
    const racing = (async () => {
      for (let i = 40; i < 60; i++) {
        const s = sampleShare();
        values.set(`k${i}`, Uint8Array.from(s.secret.value));
        await store.put({ tenant: 't', keyId: `k${i}`, version: 1, share: s, exportable: false });
        await store.setState('t', `k${i - 40}`, 1, 'retired');
      }
    })();
    const report = await rotateKek(store, fileRotationSteps(kekFile), { onProgress: (d, n) => (progress.push(d), (total = n)) });
    await racing;
    expect(progress.at(-1)).toBe(total);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(report.resumed).toBe(false);
    expect(report.from).toBe(new RawKek(old, 'file').id);
    expect(existsSync(`${kekFile}.next`)).toBe(false);
    expect(await store.kekRotation()).toBeUndefined();
    expect(await store.countNotUnderCurrentKek()).toBe(0);
    for (const [keyId, value] of values) expect(Buffer.from((await store.getShare('t', keyId, 1))!.secret.value).equals(Buffer.from(value))).toBe(true);
    expect(await store.getSecret('identity')).toEqual(new Uint8Array(32).fill(7));
    await store.close();
    // The KEK file is the new KEK; the old one opens nothing.
    const e = await codeOf(ShareStore.open({ dataDir: join(t.dir(), 'data'), kek: old, nodeIndex: 1 }));
    expect(e.code).toBe(ErrorCode.DecryptionFailed);
    expect(e.message).toMatch(/wrapped under KEK k-[0-9a-f]{16}, and the configured KEK is k-[0-9a-f]{16}/);
    old.fill(0);
  });

  it('a record that fails its MAC blocks the end: the old KEK and the next file are kept, and a later run finishes after repair', async () => {
    const { store, kekFile, open } = await fileStore();
    for (const keyId of ['a', 'b']) await store.put({ tenant: 't', keyId, version: 1, share: sampleShare(), exportable: false });
    await store.close();
    // Someone without the KEK edits a's record: its MAC fails.
    const db = new Level<string, Uint8Array>(storageLocation(join(t.dir(), 'data')), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    const key = shareRecordKey('t', 'a', 1);
    const raw = (await db.get(key))!;
    raw[raw.length - 1] ^= 1;
    await db.put(key, raw);
    await db.close();
    const reopened = await open();
    const e = await codeOf(rotateKek(reopened, fileRotationSteps(kekFile)));
    expect(e.code).toBe(ErrorCode.BadState);
    expect(e.message).toMatch(/1 record\(s\) fail their integrity check \(key record of t\/a version 1\).*tessera repair.*The old KEK is kept/);
    expect(existsSync(`${kekFile}.next`)).toBe(true);
    expect(await reopened.kekRotation()).toBeDefined();
    // Repair in place here: the bad version is deleted (what `tessera repair` does before restoring it).
    await reopened.close();
    const db2 = new Level<string, Uint8Array>(storageLocation(join(t.dir(), 'data')), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db2.open();
    await db2.del(key);
    await db2.close();
    const again = await open();
    const r = await rotateKek(again, fileRotationSteps(kekFile));
    expect(r.resumed).toBe(true);
    expect(existsSync(`${kekFile}.next`)).toBe(false);
    expect((await again.getShare('t', 'b', 1))!.secret.index).toBe(1);
  });

  it('a recorded rotation whose next KEK was lost is refused, naming the KEK, and nothing is destroyed', async () => {
    const { store, kekFile, open } = await fileStore();
    await store.put({ tenant: 't', keyId: 'a', version: 1, share: sampleShare(), exportable: false });
    const steps = fileRotationSteps(kekFile);
    const next = await steps.prepareNext();
    const state = await store.beginKekRotation(next);
    await store.close();
    const { rm } = await import('node:fs/promises');
    await rm(`${kekFile}.next`);
    // Records written under `next` cannot open any more; the store opens (its MAC key is still under the old KEK).
    const reopened = await open();
    const e = await codeOf(rotateKek(reopened, steps));
    expect(e.code).toBe(ErrorCode.BadState);
    expect(e.message).toContain(`the rotation to KEK ${state.to} is unfinished but that KEK is missing`);
    expect(existsSync(kekFile)).toBe(true);
  });

  it('providers that cannot rotate say why; a shamir-unseal node rotates only after its prepare phase', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tessera-kek-steps-'));
    const currentKek = new RawKek(new Uint8Array(32).fill(7), 'shamir-unseal');
    try {
      const env = await codeOf(kekRotationSteps(Object.defineProperty({ kind: 'env' as const }, 'key', { value: new Uint8Array(32) }) as never, { dataDir, currentKek }));
      expect(env.code).toBe(ErrorCode.BadInput);
      expect(env.message).toMatch(/TESSERA_KEK, which it cannot change/);
      // No unseal-next.json (test/unit/kek-unseal.test.ts covers the prepared case): step 1 says what to run.
      const steps = await kekRotationSteps({ kind: 'shamir-unseal' }, { dataDir, currentKek });
      const shamir = await codeOf(steps.prepareNext());
      expect(shamir.code).toBe(ErrorCode.BadState);
      expect(shamir.message).toMatch(/run prepare first/);
    } finally {
      currentKek.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
