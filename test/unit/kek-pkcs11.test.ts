/**
 * node/store/kek-pkcs11.ts, the pkcs11 KEK provider, against SoftHSM2 (a token directory of this file's own):
 * wrapping and unwrapping inside the token, the key object the token keeps (checked through a pkcs11js
 * instance of the test's own, not through the provider), the errors an operator meets (wrong PIN, no
 * token, no key, a key the token would let out), the rotation helpers, the module's reference count, and a
 * ShareStore sealed under a token KEK.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { split } from '../../core/shamir.js';
import { ED25519 } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import { ConfigError } from '../../node/config.js';
import { openNodeKeks } from '../../node/store/kek-provider.js';
import {
  createPkcs11Kek,
  destroyPkcs11Kek,
  openPkcs11Kek,
  openPkcs11Keks,
  pkcs11ModuleRefs,
  pkcs11RotationSteps,
  relabelPkcs11Kek,
} from '../../node/store/kek-pkcs11.js';
import { ShareStore } from '../../node/store/storage.js';
import { SOFTHSM_MODULE, closeAllSessions, createTestKey, initToken, keyObjectFacts, makeSoftHsmConf, pkcs11Source, requireSoftHsm } from '../helpers/softhsm.js';
import { sampleShare } from '../helpers/key-shares.js';

requireSoftHsm();

const PIN_A = 'pin-a-4821';
const PIN_B = 'pin-b-9375';
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let dir: string;
const savedConf = process.env.SOFTHSM2_CONF;
const srcA = pkcs11Source('tok-a', 'tessera-kek-node-1', PIN_A);
const srcB = pkcs11Source('tok-b', 'tessera-kek-node-2', PIN_B);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-kek-p11-'));
  const conf = await makeSoftHsmConf(dir);
  // SoftHSM reads SOFTHSM2_CONF when the library is initialised: set before any test opens the module.
  process.env.SOFTHSM2_CONF = conf;
  initToken(conf, 'tok-a', PIN_A);
  initToken(conf, 'tok-b', PIN_B);
  await createPkcs11Kek(srcA, 'tessera-kek-node-1');
  await createPkcs11Kek(srcB, 'tessera-kek-node-2');
});

afterAll(async () => {
  if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
  else process.env.SOFTHSM2_CONF = savedConf;
  await rm(dir, { recursive: true, force: true });
});

/** The error `f` throws (fails the test if it throws none). */
async function thrown(f: () => unknown): Promise<Error> {
  try {
    await f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}


describe('pkcs11 KEK: wrap and unwrap in the token', () => {
  it('round trip; fresh IV each time; a changed byte anywhere or another AAD fails; the id is p11-<CKA_ID>', async () => {
    const { current, others } = await openPkcs11Keks(srcA, 1);
    try {
      expect(others).toEqual([]);
      expect(current.provider).toBe('pkcs11');
      expect(current.id).toMatch(/^p11-[0-9a-f]{16}$/);
      const key = randomBytes(32);
      const aad = Buffer.from('tessera/storage/data-key/v1|1');
      const w1 = current.wrapKey(key, aad);
      const w2 = current.wrapKey(key, aad);
      expect(w1.length).toBe(60);
      expect(hex(w1.subarray(0, 12))).not.toBe(hex(w2.subarray(0, 12)));
      expect(hex(current.unwrapKey(w1, aad))).toBe(hex(key));
      expect(hex(current.unwrapKey(w2, aad))).toBe(hex(key));
      // The key itself appears nowhere in what is stored.
      expect(hex(w1)).not.toContain(hex(key));
      for (const i of [0, 11, 12, 43, 44, 59]) {
        const bad = Uint8Array.from(w1);
        bad[i]! ^= 1;
        expect((await thrown(() => current.unwrapKey(bad, aad))).message).toMatch(/does not authenticate/);
      }
      expect((await thrown(() => current.unwrapKey(w1, Buffer.from('tessera/storage/data-key/v1|2')))).message).toMatch(/does not authenticate/);
      expect((await thrown(() => current.unwrapKey(w1.subarray(0, 59), aad))).message).toMatch(/60 bytes/);
      expect((await thrown(() => current.wrapKey(randomBytes(16), aad))).message).toMatch(/32-byte keys only/);
      // A failed unwrap leaves the session usable.
      expect(hex(current.unwrapKey(w1, aad))).toBe(hex(key));
      // Another token's KEK does not open it.
      const b = await openPkcs11Keks(srcB, 2);
      try {
        expect(b.current.id).not.toBe(current.id);
        expect((await thrown(() => b.current.unwrapKey(w1, aad))).message).toMatch(/does not authenticate/);
      } finally {
        b.current.close();
      }
    } finally {
      current.close();
    }
  });

  it('the token keeps the key sensitive, never extractable, private, a token object: its value cannot be read or wrapped out', async () => {
    const { current } = await openPkcs11Keks(srcA, 1);
    try {
      const facts = keyObjectFacts('tok-a', 'tessera-kek-node-1', PIN_A);
      expect(facts).toMatchObject({ sensitive: true, extractable: false, alwaysSensitive: true, neverExtractable: true, token: true, private: true });
      expect(facts.valueRead).toBe('CKR_ATTRIBUTE_SENSITIVE');
      expect(facts.wrapRead).toBe('CKR_KEY_UNEXTRACTABLE');
      // The test's own session did not log the provider's session out.
      const aad = Buffer.from('x');
      const key = randomBytes(32);
      expect(hex(current.unwrapKey(current.wrapKey(key, aad), aad))).toBe(hex(key));
    } finally {
      current.close();
    }
  });

  it('close() is idempotent, later use throws, and the last close finalises the module', async () => {
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
    const a = await openPkcs11Keks(srcA, 1);
    const b = await openNodeKeks(srcB, 2); // through the provider switch the node uses
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(2);
    a.current.close();
    a.current.close();
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(1);
    expect((await thrown(() => a.current.wrapKey(randomBytes(32), Buffer.alloc(0)))).message).toMatch(/is closed/);
    // The other node's KEK in the same process still works.
    const key = randomBytes(32);
    expect(hex(b.current.unwrapKey(b.current.wrapKey(key, Buffer.alloc(1)), Buffer.alloc(1)))).toBe(hex(key));
    b.current.close();
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
    // Opening again after the finalisation initialises the library again.
    const again = await openPkcs11Keks(srcA, 1);
    expect(again.current.id).toBe(a.current.id);
    again.current.close();
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
  });
});

describe('pkcs11 KEK: a lost session', () => {
  it('after every session of the token was closed (a reset, a dropped HSM link), the Keks log in again and carry on', async () => {
    const { current } = await openPkcs11Keks(srcA, 1);
    const second = await openPkcs11Kek(srcA, 'tessera-kek-node-1'); // two sessions on one token
    try {
      const aad = Buffer.from('lost');
      const key = randomBytes(32);
      const wrapped = current.wrapKey(key, aad);
      closeAllSessions('tok-a', PIN_A);
      expect(hex(current.unwrapKey(wrapped, aad))).toBe(hex(key));
      expect(hex(second.unwrapKey(current.wrapKey(key, aad), aad))).toBe(hex(key));
      // A wrong tag after a reconnect is still a wrong tag, not a session problem.
      const bad = Uint8Array.from(wrapped);
      bad[59]! ^= 1;
      expect((await thrown(() => second.unwrapKey(bad, aad))).message).toMatch(/does not authenticate/);
      expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(2);
    } finally {
      current.close();
      second.close();
    }
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
  });
});

describe('pkcs11 KEK: what an operator gets wrong', () => {
  it('a wrong PIN, alone or while the token is logged in already, is refused without echoing it', async () => {
    const wrong = pkcs11Source('tok-a', 'tessera-kek-node-1', 'not-the-pin-7431');
    const e1 = await thrown(() => openPkcs11Keks(wrong, 1));
    expect(e1).toBeInstanceOf(ConfigError);
    expect(e1.message).toMatch(/token "tok-a" refused the PIN/);
    expect(e1.message).not.toContain('not-the-pin');
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
    const ok = await openPkcs11Keks(srcA, 1);
    try {
      const e2 = await thrown(() => openPkcs11Keks(wrong, 1));
      expect(e2.message).toMatch(/refused the PIN/);
      expect(e2.message).not.toContain('not-the-pin');
      expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(1);
    } finally {
      ok.current.close();
    }
  });

  it('a missing token, a missing key, a missing library are named', async () => {
    const noToken = await thrown(() => openPkcs11Keks(pkcs11Source('tok-zz', 'tessera-kek-node-1', PIN_A), 1));
    expect(noToken).toBeInstanceOf(ConfigError);
    expect(noToken.message).toMatch(/kekProvider\.tokenLabel no token labelled "tok-zz"/);
    const noKey = await thrown(() => openPkcs11Keks(pkcs11Source('tok-a', 'tessera-kek-node-9', PIN_A), 9));
    expect(noKey.message).toMatch(/kekProvider\.keyLabel token "tok-a" holds no AES key labelled "tessera-kek-node-9"; create it with tessera kek init-pkcs11/);
    expect(noKey.message).not.toContain(PIN_A);
    const noLib = await thrown(() => openPkcs11Keks({ ...pkcs11Source('tok-a', 'k', PIN_A), module: join(dir, 'missing.so'), pin: PIN_A } as never, 1));
    expect(noLib.message).toMatch(/kekProvider\.module cannot load the PKCS#11 library/);
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
  });

  it('a key the token would let out (extractable, or not sensitive) is refused', async () => {
    createTestKey('tok-b', PIN_B, 'weak-extractable', { sensitive: true, extractable: true });
    createTestKey('tok-b', PIN_B, 'weak-readable', { sensitive: false, extractable: false });
    const e1 = await thrown(() => openPkcs11Keks(pkcs11Source('tok-b', 'weak-extractable', PIN_B), 2));
    expect(e1.message).toMatch(/is extractable \(CKA_EXTRACTABLE true\)/);
    const e2 = await thrown(() => openPkcs11Keks(pkcs11Source('tok-b', 'weak-readable', PIN_B), 2));
    expect(e2.message).toMatch(/is not sensitive \(CKA_SENSITIVE false\)/);
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
  });
});

describe('pkcs11 KEK: rotation helpers', () => {
  it('create refuses a taken label; keyLabel.next is an unwrap-only other; relabel and destroy finish a rotation', async () => {
    const src = pkcs11Source('tok-b', 'rot', PIN_B);
    const oldId = await createPkcs11Kek(src, 'rot');
    expect((await thrown(() => createPkcs11Kek(src, 'rot'))).message).toMatch(/already holds a key labelled "rot"/);
    const nextId = await createPkcs11Kek(src, 'rot.next');
    expect(nextId).not.toBe(oldId);
    const both = await openPkcs11Keks(src, 2);
    expect(both.current.id).toBe(oldId);
    expect(both.others.map((k) => k.id)).toEqual([nextId]);
    const aad = Buffer.from('a');
    const key = randomBytes(32);
    const underOld = both.current.wrapKey(key, aad);
    const underNext = both.others[0]!.wrapKey(key, aad);
    for (const k of [both.current, ...both.others]) k.close();
    // The old key destroyed, the next not yet relabelled: the next is current.
    await destroyPkcs11Kek(src, 'rot');
    const onlyNext = await openPkcs11Keks(src, 2);
    expect(onlyNext.current.id).toBe(nextId);
    expect(onlyNext.others).toEqual([]);
    expect(hex(onlyNext.current.unwrapKey(underNext, aad))).toBe(hex(key));
    onlyNext.current.close();
    await relabelPkcs11Kek(src, 'rot.next', 'rot');
    const done = await openPkcs11Kek(src, 'rot');
    expect(done.id).toBe(nextId);
    expect(hex(done.unwrapKey(underNext, aad))).toBe(hex(key));
    expect((await thrown(() => done.unwrapKey(underOld, aad))).message).toMatch(/does not authenticate/);
    done.close();
    expect((await thrown(() => destroyPkcs11Kek(src, 'rot.next'))).message).toMatch(/holds no AES key labelled "rot.next"/);
    await createPkcs11Kek(src, 'other');
    expect((await thrown(() => relabelPkcs11Kek(src, 'rot', 'other'))).message).toMatch(/already holds a key labelled "other"/);
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
  });
});

describe('pkcs11 KEK: the rotation steps (node/store/kek-rotation.ts)', () => {
  it('prepareNext makes keyLabel.next once (a rerun reuses it); retire destroys the old key, relabels, and is idempotent', async () => {
    const src = pkcs11Source('tok-b', 'steps', PIN_B);
    const oldId = await createPkcs11Kek(src, 'steps');
    const steps = pkcs11RotationSteps(src);
    const next = await steps.prepareNext();
    const again = await steps.prepareNext(); // a crashed run made it already
    expect(again.id).toBe(next.id);
    again.close();
    expect(next.id).not.toBe(oldId);
    const aad = Buffer.from('d');
    const key = randomBytes(32);
    const wrapped = next.wrapKey(key, aad);
    await steps.retire(oldId);
    await steps.retire(oldId); // a crash after the retire repeats it
    // The open next Kek keeps working after the relabel; keyLabel now names it; the old key is gone.
    expect(hex(next.unwrapKey(wrapped, aad))).toBe(hex(key));
    next.close();
    const { current, others } = await openPkcs11Keks(src, 2);
    expect(current.id).toBe(next.id);
    expect(others).toEqual([]);
    current.close();
    // Without a next key, retire refuses to destroy the only KEK.
    const lone = pkcs11Source('tok-b', 'lone', PIN_B);
    const loneId = await createPkcs11Kek(lone, 'lone');
    expect((await thrown(() => pkcs11RotationSteps(lone).retire(loneId))).message).toMatch(/refusing to destroy the only KEK/);
    const still = await openPkcs11Keks(lone, 2);
    expect(still.current.id).toBe(loneId);
    still.current.close();
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
  });
});

describe('a ShareStore sealed under a token KEK', () => {
  it('stores and reads a share, reopens, and does not open under a file KEK', async () => {
    const dataDir = join(dir, 'store-1');
    const share = sampleShare();
    const keks = await openPkcs11Keks(srcA, 1);
    try {
      const store = await ShareStore.open({ dataDir, kek: keks.current, nodeIndex: 1 });
      try {
        await store.put({ tenant: 'acme', keyId: 'payments', version: 1, share, exportable: false });
        expect(hex((await store.getShare('acme', 'payments'))!.secret.value)).toBe(hex(share.secret.value));
      } finally {
        await store.close();
      }
      const reopened = await ShareStore.open({ dataDir, kek: keks.current, nodeIndex: 1 });
      try {
        expect(hex((await reopened.getShare('acme', 'payments'))!.secret.value)).toBe(hex(share.secret.value));
      } finally {
        await reopened.close();
      }
    } finally {
      keks.current.close();
    }
    // After the token KEK is closed: a file KEK (any 32 bytes) does not open the data dir.
    const e = await thrown(() => ShareStore.open({ dataDir, kek: Uint8Array.from(randomBytes(32)), nodeIndex: 1 }));
    expect((e as { code?: string }).code).toBe('DECRYPTION_FAILED');
    expect(e.message).toMatch(/wrapped under KEK p11-[0-9a-f]{16}/);
    // Nor does another token's KEK.
    const other = await openPkcs11Keks(srcB, 2);
    try {
      const e2 = await thrown(() => ShareStore.open({ dataDir, kek: other.current, nodeIndex: 1 }));
      expect((e2 as { code?: string }).code).toBe('DECRYPTION_FAILED');
    } finally {
      other.current.close();
    }
  });
});
