/**
 * Key bundles (core/bundle.ts): splitAndWrap / unwrapAndCombine round trips for all six suites with
 * public keys checked against noble's own key derivation, the strict parser's rejections, the digest,
 * and unwrapBundleShare's typed errors for tampered, foreign and mixed shares.
 *
 * Version 2 (a bundle dealt for a destination of another size, issue 13): 2-of-3 -> 3-of-5 and
 * 3-of-5 -> 2-of-3 round trips (every destination share opens, combines and interpolates to the
 * source secret), the parser's checks in the exponent (a dealer that did not deal its own share, a
 * carried package that is not the dealt one, fewer dealers than the source threshold), and a tampered
 * or off-polynomial sub-share that names its dealer.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { equalBytes, toHex } from '../../core/bytes.js';
import {
  bundleDigest,
  bundleToJson,
  externalPrivateKeyToScalar,
  parseBundle,
  splitAndWrap,
  unwrapAndCombine,
  unwrapBundleShare,
  wrappingKeyFingerprint,
  wrappingKeysForParties,
  type KeyBundleJson,
} from '../../core/bundle.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { assembleResharedBundle, wrapSubShare, type ResharedBundleJson } from '../../core/bundle.js';
import { combine, split } from '../../core/shamir.js';
import type { PublicKeyPackage } from '../../core/types.js';
import { dealExportSubShares, openImportSubShares } from '../../node/sessions/failover.js';
import { getSuite, SUITE_IDS, type SuiteId } from '../../core/suites.js';
import { generateWrappingKeyPair, type WrappingKeyPair } from '../../core/wrap.js';

/** A valid external private key for each suite and the public key noble derives from it on its own. */
function externalKey(suite: SuiteId): { privateKey: Uint8Array; publicKey: Uint8Array } {
  switch (suite) {
    case 'ed25519': {
      const seed = randomBytes(32);
      return { privateKey: seed, publicKey: ed25519.getPublicKey(seed) };
    }
    case 'secp256k1':
    case 'ecdsa-secp256k1': {
      const sk = secp256k1.utils.randomSecretKey();
      return { privateKey: sk, publicKey: secp256k1.getPublicKey(sk, true) };
    }
    case 'bip340': {
      const sk = schnorr.utils.randomSecretKey();
      return { privateKey: sk, publicKey: schnorr.getPublicKey(sk) };
    }
    case 'p256':
    case 'ecdsa-p256': {
      const sk = p256.utils.randomSecretKey();
      return { privateKey: sk, publicKey: p256.getPublicKey(sk, true) };
    }
    case 'hpke-x25519': {
      const sk = x25519.utils.randomSecretKey();
      return { privateKey: sk, publicKey: x25519.getPublicKey(sk) };
    }
    case 'hpke-p256': {
      const sk = p256.utils.randomSecretKey();
      return { privateKey: sk, publicKey: p256.getPublicKey(sk, false) };
    }
  }
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'expected a TesseraError').toBeInstanceOf(TesseraError);
  expect((thrown as TesseraError).code).toBe(code);
  if (message) expect((thrown as TesseraError).message).toMatch(message);
}

async function expectRejects(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected a TesseraError').toBeInstanceOf(TesseraError);
  expect((e as TesseraError).code).toBe(code);
  if (message) expect((e as TesseraError).message).toMatch(message);
}

const clone = (b: KeyBundleJson): KeyBundleJson => JSON.parse(JSON.stringify(b)) as KeyBundleJson;

describe('splitAndWrap / unwrapAndCombine', () => {
  let keys: WrappingKeyPair[];
  let xwing: WrappingKeyPair;
  beforeAll(async () => {
    keys = await Promise.all([1, 2, 3].map(() => generateWrappingKeyPair('ml-kem-768')));
    xwing = await generateWrappingKeyPair('x-wing');
  });

  for (const suiteId of SUITE_IDS) {
    it(`${suiteId}: a 2-of-3 bundle gives back the scalar, under the public key noble derives`, async () => {
      const suite = getSuite(suiteId);
      const ext = externalKey(suiteId);
      const bundle = await splitAndWrap(ext.privateKey, suiteId, 2, 3, keys.map((k) => k.publicKey), { keyId: `ext-${suiteId}` });
      expect(bundle.publicKey).toBe(toHex(ext.publicKey));
      expect(bundle).toMatchObject({ format: 'tessera-key-bundle', version: 1, keyVersion: 1, suite: suiteId, threshold: 2, parties: 3, epoch: 0 });
      const expected = suite.group.scalarToBytes(externalPrivateKeyToScalar(suite, ext.privateKey));
      if (suiteId === 'ed25519') {
        expect(toHex(expected)).toBe(toHex(suite.group.scalarToBytes(ed25519.utils.getExtendedPublicKey(ext.privateKey).scalar)));
      } else if (suiteId !== 'hpke-x25519') {
        expect(toHex(expected)).toBe(toHex(ext.privateKey));
      }
      // All three keys, and any two of them.
      for (const subset of [keys, [keys[0]!, keys[2]!], [keys[1]!, keys[2]!]]) {
        const out = await unwrapAndCombine(bundle, subset);
        expect(toHex(out.scalar)).toBe(toHex(expected));
        expect(toHex(out.publicKey)).toBe(toHex(ext.publicKey));
      }
      // One key opens one share: below the threshold.
      await expectRejects(unwrapAndCombine(bundle, [keys[1]!]), ErrorCode.BadInput, /at least 2 shares/);
    });
  }

  it('one X-Wing key for every share of a 3-of-4 bundle', async () => {
    const ext = externalKey('secp256k1');
    const bundle = await splitAndWrap(ext.privateKey, 'secp256k1', 3, 4, [xwing.publicKey], { keyId: 'one-key', keyVersion: 7 });
    expect(bundle.wrappedShares.map((w) => w.kem)).toEqual(['x-wing', 'x-wing', 'x-wing', 'x-wing']);
    expect(new Set(bundle.wrappedShares.map((w) => w.wrappingKeyFingerprint))).toEqual(new Set([toHex(wrappingKeyFingerprint(xwing.publicKey))]));
    const out = await unwrapAndCombine(bundle, [xwing]);
    expect(toHex(out.scalar)).toBe(toHex(ext.privateKey));
  });

  it('refuses bad private keys and wrapping-key counts with typed errors', async () => {
    await expectRejects(splitAndWrap(new Uint8Array(31), 'ed25519', 2, 3, [keys[0]!.publicKey], { keyId: 'k' }), ErrorCode.BadScalar);
    await expectRejects(splitAndWrap(new Uint8Array(32), 'secp256k1', 2, 3, [keys[0]!.publicKey], { keyId: 'k' }), ErrorCode.BadScalar, /zero/);
    await expectRejects(splitAndWrap(new Uint8Array(32).fill(0xff), 'p256', 2, 3, [keys[0]!.publicKey], { keyId: 'k' }), ErrorCode.BadScalar, /canonical/);
    await expectRejects(splitAndWrap(randomBytes(32), 'ed25519', 4, 3, [keys[0]!.publicKey], { keyId: 'k' }), ErrorCode.BadParameters);
    await expectRejects(splitAndWrap(randomBytes(32), 'ed25519', 2, 3, keys.slice(0, 2).map((k) => k.publicKey), { keyId: 'k' }), ErrorCode.BadInput, /one key for all 3 shares or one per share/);
    await expectRejects(splitAndWrap(randomBytes(32), 'ed25519', 2, 3, [new Uint8Array(100)], { keyId: 'k' }), ErrorCode.BadInput, /neither/);
    await expectRejects(splitAndWrap(randomBytes(32), 'ed25519', 2, 3, [keys[0]!.publicKey], { keyId: 'bad/id' }), ErrorCode.BadInput, /keyId/);
    await expectRejects(splitAndWrap(randomBytes(32), 'rsa' as SuiteId, 2, 3, [keys[0]!.publicKey], { keyId: 'k' }), ErrorCode.UnknownSuite);
    expect(wrappingKeysForParties([keys[0]!.publicKey], 3)).toHaveLength(3);
  });
});

describe('parseBundle', () => {
  let keys: WrappingKeyPair[];
  let good: KeyBundleJson;
  let other: KeyBundleJson;
  beforeAll(async () => {
    keys = await Promise.all([1, 2, 3].map(() => generateWrappingKeyPair('ml-kem-768')));
    const seed = randomBytes(32);
    good = await splitAndWrap(seed, 'ed25519', 2, 3, keys.map((k) => k.publicKey), { keyId: 'parse-me' });
    other = await splitAndWrap(randomBytes(32), 'ed25519', 2, 3, keys.map((k) => k.publicKey), { keyId: 'parse-me' });
  });

  it('accepts a good bundle and round-trips it canonically', () => {
    const parsed = parseBundle(good);
    expect(bundleToJson(parsed)).toEqual(good);
    // Order of the wrapped shares does not matter; the canonical form is sorted.
    const shuffled = clone(good);
    shuffled.wrappedShares.reverse();
    expect(bundleToJson(parseBundle(shuffled))).toEqual(good);
    expect(toHex(bundleDigest(parseBundle(shuffled)))).toBe(toHex(bundleDigest(parsed)));
  });

  const cases: [string, (b: any) => unknown, string, RegExp?][] = [
    ['not an object', () => 'bundle', ErrorCode.BadInput, /must be an object/],
    ['an array', () => [], ErrorCode.BadInput, /must be an object/],
    ['an unknown field', (b) => ({ ...b, extra: 1 }), ErrorCode.BadInput, /unknown field "extra"/],
    ['a missing field', (b) => (delete b.commitments, b), ErrorCode.BadInput, /missing commitments/],
    ['another format', (b) => ({ ...b, format: 'pem' }), ErrorCode.BadInput, /format/],
    ['another version', (b) => ({ ...b, version: 3 }), ErrorCode.BadInput, /version 3 is not supported/],
    // Version 2 has other fields (source, dealers): a version 1 body relabelled is refused by name.
    ['version 2 with version 1 fields', (b) => ({ ...b, version: 2 }), ErrorCode.BadInput, /unknown field "wrappedShares"/],
    ['a bad key id', (b) => ({ ...b, keyId: '../etc' }), ErrorCode.BadInput, /keyId/],
    ['key version 0', (b) => ({ ...b, keyVersion: 0 }), ErrorCode.BadInput, /keyVersion/],
    ['a fractional epoch', (b) => ({ ...b, epoch: 1.5 }), ErrorCode.BadInput, /epoch/],
    ['an unknown suite', (b) => ({ ...b, suite: 'rsa' }), ErrorCode.UnknownSuite],
    ['threshold above parties', (b) => ({ ...b, threshold: 4 }), ErrorCode.BadParameters],
    ['threshold 1', (b) => ({ ...b, threshold: 1 }), ErrorCode.BadInput, /threshold/],
    ['too few commitments', (b) => ({ ...b, commitments: b.commitments.slice(1) }), ErrorCode.BadInput, /commitments must list exactly 2/],
    ['too many verifying shares', (b) => ({ ...b, verifyingShares: [...b.verifyingShares, b.verifyingShares[0]] }), ErrorCode.BadInput, /verifyingShares must list exactly 3/],
    ['a missing wrapped share', (b) => ({ ...b, wrappedShares: b.wrappedShares.slice(1) }), ErrorCode.BadInput, /wrappedShares must list exactly 3/],
    ['a duplicated index', (b) => ((b.wrappedShares[2].index = 1), b), ErrorCode.BadInput, /party 1 has two wrapped shares/],
    ['index 0', (b) => ((b.wrappedShares[0].index = 0), b), ErrorCode.BadInput, /index must be an integer 1..3/],
    ['index above n', (b) => ((b.wrappedShares[0].index = 4), b), ErrorCode.BadInput, /index/],
    ['an unknown KEM', (b) => ((b.wrappedShares[0].kem = 'rsa-oaep'), b), ErrorCode.BadInput, /kem must be one of/],
    ['an extra field in a wrapped share', (b) => ((b.wrappedShares[0].note = 'x'), b), ErrorCode.BadInput, /unknown field/],
    ['a short enc', (b) => ((b.wrappedShares[1].enc = b.wrappedShares[1].enc.slice(2)), b), ErrorCode.BadInput, /enc must be 1088 bytes/],
    ['a long ciphertext', (b) => ((b.wrappedShares[1].ciphertext += '00'), b), ErrorCode.BadInput, /ciphertext must be 48 bytes/],
    ['non-hex', (b) => ((b.wrappedShares[1].wrappingKeyFingerprint = 'zz'.repeat(32)), b), ErrorCode.BadInput, /hex/],
    ['a public key that is not a point', (b) => ({ ...b, publicKey: 'ff'.repeat(32) }), ErrorCode.BadPoint],
    ['a commitment that is not a point', (b) => ((b.commitments[1] = 'ff'.repeat(32)), b), ErrorCode.BadPoint],
    ['the identity as a verifying share', (b) => ((b.verifyingShares[1] = '01' + '00'.repeat(31)), b), ErrorCode.BadPoint],
  ];
  for (const [name, edit, code, message] of cases) {
    it(`rejects ${name}`, () => expectCode(() => parseBundle(edit(clone(good))), code, message));
  }

  it('rejects a wrong public key: another key, or commitments[0] of another key', () => {
    expectCode(() => parseBundle({ ...clone(good), publicKey: other.publicKey }), ErrorCode.BadInput, /publicKey is not the group key/);
    const b = clone(good);
    b.commitments[0] = other.commitments[0]!;
    expectCode(() => parseBundle(b), ErrorCode.BadInput, /publicKey is not the group key/);
    // Another key's whole public part with its own public key: commitments no longer match the verifying shares.
    expectCode(() => parseBundle({ ...clone(good), publicKey: other.publicKey, commitments: other.commitments }), ErrorCode.BadInput, /does not lie on the committed polynomial/);
  });

  it('rejects verifying shares that do not lie on the committed polynomial', () => {
    const b = clone(good);
    b.verifyingShares[2] = other.verifyingShares[2]!;
    expectCode(() => parseBundle(b), ErrorCode.BadInput, /verifying share of party 3/);
  });

  it('the digest covers every field', () => {
    const base = toHex(bundleDigest(parseBundle(good)));
    const variants: KeyBundleJson[] = [
      { ...clone(good), keyId: 'parse-me-2' },
      { ...clone(good), keyVersion: 2 },
      { ...clone(good), epoch: 1 },
      (() => {
        const b = clone(good);
        b.wrappedShares[0]!.ciphertext = other.wrappedShares[0]!.ciphertext;
        return b;
      })(),
      (() => {
        const b = clone(good);
        b.wrappedShares[2]!.enc = other.wrappedShares[2]!.enc;
        return b;
      })(),
    ];
    for (const v of variants) expect(toHex(bundleDigest(parseBundle(v)))).not.toBe(base);
  });
});

describe('unwrapBundleShare', () => {
  let keys: WrappingKeyPair[];
  beforeAll(async () => {
    keys = await Promise.all([1, 2, 3].map(() => generateWrappingKeyPair('ml-kem-768')));
  });

  it('opens each party share, which matches its verifying share', async () => {
    const b = parseBundle(await splitAndWrap(randomBytes(32), 'p256', 2, 3, keys.map((k) => k.publicKey), { keyId: 'k1' }));
    const { group } = getSuite('p256');
    for (const i of [1, 2, 3]) {
      const share = await unwrapBundleShare(b, keys[i - 1]!, i);
      expect(share).toMatchObject({ suite: 'p256', index: i, epoch: 0 });
      expect(equalBytes(group.pointToBytes(group.mulBase(group.scalarFromBytes(share.value, 's'))), b.package.verifyingShares[i - 1]!)).toBe(true);
    }
  });

  it('names a share wrapped to another key, a tampered share, and shares of two keys or two splits mixed', async () => {
    const seed = randomBytes(32);
    const pks = keys.map((k) => k.publicKey);
    const a = await splitAndWrap(seed, 'ed25519', 2, 3, pks, { keyId: 'mix' });
    const b = parseBundle(a);
    await expectRejects(unwrapBundleShare(b, keys[0]!, 2), ErrorCode.BadInput, /share of party 2 is wrapped to the key with fingerprint/);

    const tampered = clone(a);
    const ct = tampered.wrappedShares[1]!.ciphertext;
    tampered.wrappedShares[1]!.ciphertext = ct.slice(0, 10) + (ct[10] === '0' ? '1' : '0') + ct.slice(11);
    await expectRejects(unwrapBundleShare(parseBundle(tampered), keys[1]!, 2), ErrorCode.DecryptionFailed, /party 2 does not open/);
    await expectRejects(unwrapAndCombine(tampered, keys), ErrorCode.DecryptionFailed);

    // Party 2's share of another key: bound to that key's group public key, so it does not open.
    const otherKey = await splitAndWrap(randomBytes(32), 'ed25519', 2, 3, pks, { keyId: 'mix' });
    const mixedKeys = clone(a);
    mixedKeys.wrappedShares[1] = otherKey.wrappedShares[1]!;
    await expectRejects(unwrapBundleShare(parseBundle(mixedKeys), keys[1]!, 2), ErrorCode.DecryptionFailed);

    // Party 2's share of another split of the same key (same binding): opens, but is off the polynomial.
    const resplit = await splitAndWrap(seed, 'ed25519', 2, 3, pks, { keyId: 'mix' });
    const mixedSplits = clone(a);
    mixedSplits.wrappedShares[1] = resplit.wrappedShares[1]!;
    await expectRejects(unwrapBundleShare(parseBundle(mixedSplits), keys[1]!, 2), ErrorCode.BadShare, /does not match its verifying share/);
    await expectRejects(unwrapAndCombine(mixedSplits, keys), ErrorCode.BadShare);

    // The key id is bound: a bundle relabelled to another key id does not open.
    await expectRejects(unwrapBundleShare(parseBundle({ ...clone(a), keyId: 'other' }), keys[0]!, 1), ErrorCode.DecryptionFailed);
  });
});

/** A t-of-n sharing of a random secret at epoch 3: the package and each party's share bytes. */
function sourceSharing(suiteId: SuiteId, threshold: number, parties: number): { pkg: PublicKeyPackage; shares: Uint8Array[]; secret: bigint } {
  const { group } = getSuite(suiteId);
  const secret = group.randomScalar();
  const sharing = split(group, secret, threshold, parties);
  const pkg: PublicKeyPackage = {
    suite: suiteId,
    threshold,
    parties,
    epoch: 3,
    commitments: sharing.commitments.map((c) => group.pointToBytes(c)),
    verifyingShares: sharing.shares.map((v) => group.pointToBytes(group.mulBase(v))),
  };
  return { pkg, shares: sharing.shares.map((v) => group.scalarToBytes(v)), secret };
}

/** Every source party (or the first `dealers`) deals to the destination keys: a version 2 bundle. */
async function resharedBundle(
  src: { pkg: PublicKeyPackage; shares: Uint8Array[] },
  target: { threshold: number; parties: number },
  recipientKeys: readonly Uint8Array[],
  dealers = src.pkg.parties,
): Promise<ResharedBundleJson> {
  const out = [];
  for (let i = 1; i <= dealers; i++) {
    const key = { publicKey: src.pkg, secret: { suite: src.pkg.suite, index: i, epoch: src.pkg.epoch, value: src.shares[i - 1]! } };
    const dealt = await dealExportSubShares(key, { keyId: 'moved', keyVersion: 2 }, target, recipientKeys);
    out.push({ index: i, ...dealt });
  }
  return assembleResharedBundle({ keyId: 'moved', keyVersion: 2, source: src.pkg, threshold: target.threshold, dealers: out });
}

describe('version 2 bundles: a sharing dealt for a destination of another size', () => {
  let five: WrappingKeyPair[];
  beforeAll(async () => {
    five = await Promise.all([1, 2, 3, 4, 5].map(() => generateWrappingKeyPair('ml-kem-768')));
  });

  for (const [suiteId, from, to] of [
    ['ed25519', [2, 3], [3, 5]],
    ['secp256k1', [3, 5], [2, 3]],
    ['hpke-x25519', [2, 3], [3, 5]],
  ] as const) {
    it(`${suiteId}: ${from.join('-of-')} -> ${to.join('-of-')}: every destination share opens, and any ${to[0]} of them give the source secret`, async () => {
      const { group } = getSuite(suiteId);
      const src = sourceSharing(suiteId, from[0], from[1]);
      const keys = five.slice(0, to[1]);
      const json = await resharedBundle(src, { threshold: to[0], parties: to[1] }, keys.map((k) => k.publicKey));
      expect(json).toMatchObject({ format: 'tessera-key-bundle', version: 2, keyId: 'moved', keyVersion: 2, suite: suiteId, threshold: to[0], parties: to[1], epoch: 4 });
      expect(json.source).toMatchObject({ threshold: from[0], parties: from[1], epoch: 3 });
      expect(json.dealers.map((d) => d.index)).toEqual(Array.from({ length: from[1] }, (_, k) => k + 1));
      const b = parseBundle(json);
      expect(bundleToJson(b)).toEqual(json);
      expect(b.package.commitments[0]).toEqual(src.pkg.commitments[0]);
      expect(b.resharing?.dealt.size).toBe(from[1]);
      const opened = [];
      for (let j = 1; j <= to[1]; j++) {
        const share = await openImportSubShares(b, keys[j - 1]!, j);
        expect(share).toMatchObject({ suite: suiteId, index: j, epoch: 4 });
        expect(equalBytes(group.pointToBytes(group.mulBase(group.scalarFromBytes(share.value, 's'))), b.package.verifyingShares[j - 1]!)).toBe(true);
        opened.push({ index: j, value: group.scalarFromBytes(share.value, 's') });
      }
      expect(combine(group, opened.slice(0, to[0]))).toBe(src.secret);
      expect(combine(group, opened.slice(-to[0]))).toBe(src.secret);
      // Not a bundle for an external store.
      await expectRejects(unwrapAndCombine(json, keys), ErrorCode.BadInput, /version 2 bundle/);
    });
  }

  it('the source threshold of dealers suffices; fewer is refused', async () => {
    const src = sourceSharing('p256', 2, 3);
    const keys = five.slice(0, 4);
    const json = await resharedBundle(src, { threshold: 3, parties: 4 }, keys.map((k) => k.publicKey), 2);
    const b = parseBundle(json);
    const { group } = getSuite('p256');
    const opened = [];
    for (const j of [1, 3, 4]) opened.push({ index: j, value: group.scalarFromBytes((await openImportSubShares(b, keys[j - 1]!, j)).value, 's') });
    expect(combine(group, opened)).toBe(src.secret);
    const one: ResharedBundleJson = { ...(JSON.parse(JSON.stringify(json)) as ResharedBundleJson), dealers: json.dealers.slice(0, 1) };
    expectCode(() => parseBundle(one), ErrorCode.BadInput, /dealers must list 2..3 dealers/);
  });

  describe('checks', () => {
    let json: ResharedBundleJson;
    let other: ResharedBundleJson;
    beforeAll(async () => {
      const src = sourceSharing('ed25519', 2, 3);
      json = await resharedBundle(src, { threshold: 3, parties: 5 }, five.map((k) => k.publicKey));
      // A second dealing of the same source: same source package, other commitments and sub-shares.
      other = await resharedBundle(src, { threshold: 3, parties: 5 }, five.map((k) => k.publicKey));
    });
    const copy = (b: ResharedBundleJson): ResharedBundleJson => JSON.parse(JSON.stringify(b)) as ResharedBundleJson;

    const cases: [string, (b: ResharedBundleJson) => unknown, string, RegExp][] = [
      ['a missing source', (b) => ({ ...b, source: undefined }), ErrorCode.BadInput, /source must be an object/],
      ['an unknown field in the source', (b) => ({ ...b, source: { ...b.source, extra: 1 } }), ErrorCode.BadInput, /unknown field "extra"/],
      ['a dealer twice', (b) => ({ ...b, dealers: [b.dealers[0], b.dealers[0], b.dealers[1]] }), ErrorCode.BadInput, /dealer 1 is listed twice/],
      ['a dealer outside the source committee', (b) => ((b.dealers[2]!.index = 4), b), ErrorCode.BadInput, /dealer 4 holds no share/],
      ['a missing sub-share', (b) => ((b.dealers[1]!.wrappedShares = b.dealers[1]!.wrappedShares.slice(1)), b), ErrorCode.BadInput, /wrappedShares must list exactly 5/],
      ['an epoch that is not one above the source', (b) => ({ ...b, epoch: b.epoch + 1 }), ErrorCode.BadInput, /epoch must be one above/],
      ['a threshold other than the dealt one', (b) => ({ ...b, threshold: 2, commitments: b.commitments.slice(0, 2) }), ErrorCode.BadInput, /dealers\[0\]\.commitments must list exactly 2/],
      ['a sub-share for node 2 wrapped to two keys', (b) => ((b.dealers[1]!.wrappedShares[1]!.wrappingKeyFingerprint = b.dealers[1]!.wrappedShares[0]!.wrappingKeyFingerprint), b), ErrorCode.BadInput, /wrap node 2's sub-shares to different keys/],
      // Dealer 2's commitments from another dealing by dealer 3: C_0 is not dealer 2's verifying share.
      ['a dealer that did not deal its own share', (b) => ((b.dealers[1]!.commitments = other.dealers[2]!.commitments), b), ErrorCode.BadShare, /dealer 2 did not deal its own share/],
      // Dealer 2's commitments of the other dealing: C_0 is right, but the carried package is not theirs.
      ['a carried package that is not the dealt one', (b) => ((b.dealers[1]!.commitments = other.dealers[1]!.commitments), b), ErrorCode.BadInput, /destination package is not the one/],
      ['another dealing\'s verifying share', (b) => ((b.verifyingShares[4] = other.verifyingShares[4]!), b), ErrorCode.BadInput, /destination package is not the one/],
      ['a source verifying share off its polynomial', (b) => ((b.source.verifyingShares[0] = b.source.verifyingShares[1]!), b), ErrorCode.BadInput, /source verifying share of party 1/],
      ['another public key', (b) => ({ ...b, publicKey: b.verifyingShares[0] }), ErrorCode.BadInput, /publicKey is not the group key of the source/],
    ];
    for (const [name, edit, code, message] of cases) {
      it(`rejects ${name}`, () => expectCode(() => parseBundle(edit(copy(json))), code, message));
    }

    it('the digest covers the source, the dealers and the sub-shares', () => {
      const base = toHex(bundleDigest(parseBundle(json)));
      const swapped = copy(json);
      swapped.dealers[0]!.wrappedShares[3] = other.dealers[0]!.wrappedShares[3]!;
      const reordered = copy(json);
      reordered.dealers.reverse();
      expect(toHex(bundleDigest(parseBundle(swapped)))).not.toBe(base);
      expect(toHex(bundleDigest(parseBundle({ ...copy(json), keyVersion: 3 })))).not.toBe(base);
      // Order of the dealers does not matter; the canonical form is sorted.
      expect(toHex(bundleDigest(parseBundle(reordered)))).toBe(base);
    });

    it('a tampered sub-share, or one of another dealing, does not open and names its dealer', async () => {
      const tampered = copy(json);
      const ct = tampered.dealers[2]!.wrappedShares[3]!.ciphertext;
      tampered.dealers[2]!.wrappedShares[3]!.ciphertext = ct.slice(0, 10) + (ct[10] === '0' ? '1' : '0') + ct.slice(11);
      await expectRejects(openImportSubShares(parseBundle(tampered), five[3]!, 4), ErrorCode.DecryptionFailed, /sub-share of dealer 3 for node 4 does not open/);
      // Node 5's sub-share from dealer 1 moved to node 4's slot: bound to recipient 5, so it does not open for node 4.
      const moved = copy(json);
      moved.dealers[0]!.wrappedShares[3] = { ...moved.dealers[0]!.wrappedShares[4]!, index: 4, wrappingKeyFingerprint: moved.dealers[0]!.wrappedShares[3]!.wrappingKeyFingerprint };
      await expectRejects(openImportSubShares(parseBundle(moved), five[3]!, 4), ErrorCode.DecryptionFailed, /dealer 1 for node 4/);
      // Wrapped to another key than node 4's.
      await expectRejects(openImportSubShares(parseBundle(json), five[0]!, 4), ErrorCode.BadInput, /wrapped to the key with fingerprint/);
    });

    it('a sub-share sealed correctly but off the dealer\'s polynomial names the dealer (BAD_SHARE)', async () => {
      const b = parseBundle(json);
      const { group } = getSuite('ed25519');
      const bad = copy(json);
      // Anyone can seal to an import key: a malicious dealer 2 sends node 4 a random scalar.
      bad.dealers[1]!.wrappedShares[3] = await wrapSubShare(
        group.scalarToBytes(group.randomScalar()),
        { keyId: 'moved', keyVersion: 2, source: b.resharing!.source, dealer: 2, recipient: 4, target: { threshold: 3, parties: 5 }, commitments: b.resharing!.dealers[1]!.commitments },
        five[3]!.publicKey,
      );
      await expectRejects(openImportSubShares(parseBundle(bad), five[3]!, 4), ErrorCode.BadShare, /dealer 2 \(source cluster node\) dealt node 4 a bad sub-share/);
      // The other nodes' sub-shares are untouched.
      await expect(openImportSubShares(parseBundle(bad), five[2]!, 3)).resolves.toMatchObject({ index: 3 });
    });
  });
});
