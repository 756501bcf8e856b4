/**
 * DKG-made keys produce standard signatures that verifiers outside this project accept:
 * ed25519 with node:crypto (RFC 8032), bip340 with tiny-secp256k1 (BIP-340, libsecp256k1 compiled to
 * wasm), secp256k1 and p256 (RFC 9591 signatures, no external verifier) with the suite's verify.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import * as ecc from 'tiny-secp256k1';
import { groupPublicKey } from '../../core/sign.js';
import { getSigningSuite, type SigningSuiteId } from '../../core/suites.js';
import { runDkg } from '../helpers/run-dkg.js';
import { runSign } from '../helpers/run-sign.js';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function nodeEd25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  return nodeVerify(null, message, key, signature);
}

const CASES: [number, number, number[]][] = [
  [2, 3, [1, 3]],
  [3, 5, [2, 4, 5]],
];

describe('DKG keys sign; signatures verify outside our code', () => {
  for (const [t, n, signers] of CASES) {
    it(`ed25519 ${t}-of-${n}: node:crypto verifies (RFC 8032)`, () => {
      const keys = runDkg('ed25519', t, n);
      const pk = groupPublicKey(getSigningSuite('ed25519'), keys[0]!.publicKey);
      expect(pk.length).toBe(32);
      const message = randomBytes(57);
      const sig = runSign(signers.map((i) => keys[i - 1]!), message);
      expect(sig.length).toBe(64);
      expect(nodeEd25519Verify(pk, message, sig)).toBe(true);
      const other = Uint8Array.from(message);
      other[0]! ^= 1;
      expect(nodeEd25519Verify(pk, other, sig)).toBe(false);
    });

    it(`bip340 ${t}-of-${n}: tiny-secp256k1 verifySchnorr verifies (BIP-340)`, () => {
      // The DKG key is untweaked and keeps whatever y parity it has: run DKGs until both parities
      // (compressed prefix 02 and 03) have signed, so the even-y adjustment at signing is exercised.
      const byParity = new Map<number, ReturnType<typeof runDkg>>();
      for (let run = 0; run < 40 && byParity.size < 2; run++) {
        const keys = runDkg('bip340', t, n);
        byParity.set(keys[0]!.publicKey.commitments[0]![0]!, keys);
      }
      expect([...byParity.keys()].sort()).toEqual([2, 3]);
      for (const keys of byParity.values()) {
        const pk = groupPublicKey(getSigningSuite('bip340'), keys[0]!.publicKey);
        expect(pk.length).toBe(32);
        expect(Buffer.from(pk).toString('hex')).toBe(Buffer.from(keys[0]!.publicKey.commitments[0]!.subarray(1)).toString('hex'));
        const message = randomBytes(32);
        const sig = runSign(signers.map((i) => keys[i - 1]!), message);
        expect(sig.length).toBe(64);
        expect(ecc.verifySchnorr(message, pk, sig)).toBe(true);
        const other = Uint8Array.from(message);
        other[31]! ^= 1;
        expect(ecc.verifySchnorr(other, pk, sig)).toBe(false);
      }
    });

    for (const id of ['secp256k1', 'p256'] as SigningSuiteId[]) {
      it(`${id} ${t}-of-${n}: suite.verify (RFC 9591)`, () => {
        const suite = getSigningSuite(id);
        const keys = runDkg(id, t, n);
        const pk = groupPublicKey(suite, keys[0]!.publicKey);
        expect(pk.length).toBe(33);
        const message = randomBytes(40);
        const sig = runSign(signers.map((i) => keys[i - 1]!), message);
        expect(suite.verify(sig, message, pk)).toBe(true);
        expect(suite.verify(sig, message.subarray(1), pk)).toBe(false);
      });
    }
  }
});
