import { describe, expect, it } from 'vitest';
import { x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { SUITE_IDS, getSuite, getKemSuite, HPKE_X25519, HPKE_P256 } from '../../core/suites.js';
import { combine, split, verifyingSharesMatchGroupKey } from '../../core/shamir.js';
import { TesseraError } from '../../core/errors.js';

describe('suite registry', () => {
  it('has the eight suites and rejects unknown ids with a typed error', () => {
    expect([...SUITE_IDS].sort()).toEqual(['bip340', 'ecdsa-p256', 'ecdsa-secp256k1', 'ed25519', 'hpke-p256', 'hpke-x25519', 'p256', 'secp256k1']);
    expect(() => getSuite('rsa')).toThrow(TesseraError);
    expect(() => getKemSuite('ed25519')).toThrow(/cannot decapsulate/);
  });

  for (const id of SUITE_IDS) {
    it(`${id}: group round-trips, rejects identity, non-canonical scalars and wrong lengths`, () => {
      const { group } = getSuite(id);
      const s = group.randomScalar();
      const P = group.mulBase(s);
      const enc = group.pointToBytes(P);
      expect(enc.length).toBe(group.pointLength);
      expect(group.eqPoints(group.pointFromBytes(enc, 'p'), P)).toBe(true);
      expect(() => group.pointFromBytes(enc.subarray(1), 'p')).toThrow(/expected/);
      expect(() => group.pointToBytes(group.identity)).toThrow(TesseraError);
      const over = group.scalarToBytes(0n).fill(0xff);
      expect(() => group.scalarFromBytes(over, 's')).toThrow(/not canonical/);
      expect(group.scalarFromBytes(group.scalarToBytes(s), 's')).toBe(s);
    });

    it(`${id}: split/combine and verifying-share check in the exponent`, () => {
      const { group } = getSuite(id);
      const secret = group.randomScalar();
      const { shares, commitments } = split(group, secret, 3, 5);
      expect(combine(group, [1, 3, 5].map((i) => ({ index: i, value: shares[i - 1]! })))).toBe(secret);
      const ys = shares.map((x) => group.mulBase(x));
      expect(verifyingSharesMatchGroupKey(group, commitments[0]!, ys, 3)).toBe(true);
      ys[4] = group.mulBase(group.randomScalar());
      expect(verifyingSharesMatchGroupKey(group, commitments[0]!, ys, 3)).toBe(false);
    });
  }
});

describe('KEM suites map enc to a group element with the same DH', () => {
  it('hpke-x25519 equals X25519(skR, enc)', () => {
    for (let k = 0; k < 5; k++) {
      const skR = x25519.utils.randomSecretKey();
      const skE = x25519.utils.randomSecretKey();
      const enc = x25519.getPublicKey(skE);
      const s = HPKE_X25519.privateKeyToScalar(skR);
      const dh = HPKE_X25519.dhBytes(HPKE_X25519.group.mulPoint(HPKE_X25519.encToPoint(enc), s));
      expect(Buffer.from(dh).toString('hex')).toBe(Buffer.from(x25519.getSharedSecret(skR, enc)).toString('hex'));
      expect(Buffer.from(HPKE_X25519.publicKeyBytes(HPKE_X25519.group.mulBase(s))).toString('hex')).toBe(
        Buffer.from(x25519.getPublicKey(skR)).toString('hex'),
      );
    }
  });
  it('hpke-p256 equals ECDH x-coordinate', () => {
    const skR = p256.utils.randomSecretKey();
    const skE = p256.utils.randomSecretKey();
    const enc = p256.getPublicKey(skE, false);
    const s = HPKE_P256.privateKeyToScalar(skR);
    const dh = HPKE_P256.dhBytes(HPKE_P256.group.mulPoint(HPKE_P256.encToPoint(enc), s));
    expect(Buffer.from(dh).toString('hex')).toBe(Buffer.from(p256.getSharedSecret(skR, enc).subarray(1)).toString('hex'));
  });
});
