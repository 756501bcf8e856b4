/**
 * Key bundles (core/bundle.ts): splitAndWrap / unwrapAndCombine round trips for all six suites with
 * public keys checked against noble's own key derivation, the strict parser's rejections, the digest,
 * and unwrapBundleShare's typed errors for tampered, foreign and mixed shares.
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
    ['another version', (b) => ({ ...b, version: 2 }), ErrorCode.BadInput, /version 2 is not supported/],
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
