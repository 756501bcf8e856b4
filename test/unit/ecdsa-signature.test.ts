/**
 * core/ecdsa/signature.ts: low-s normalisation, strict DER, compact r ‖ s, the SEC 1 §4.1.6 recovery id
 * and plain verification, for secp256k1 and P-256. Signatures are made here by the textbook ECDSA
 * equation (SEC 1 §4.1.3) from a known nonce, so the nonce point R is known and both y parities (and so
 * both low-s flips) occur; each one is then checked by independent verifiers: node:crypto (OpenSSL, DER
 * and IEEE P1363 encodings) and, for secp256k1, libsecp256k1 via tiny-secp256k1 (verify, and recover
 * returning the public key).
 */
import { createHash, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { recover as tinyRecover, verify as tinyVerify } from 'tiny-secp256k1';
import { describe, expect, it } from 'vitest';
import {
  curveOrder,
  decodeCompact,
  decodeDer,
  digestToScalar,
  encodeCompact,
  encodeDer,
  finalizeSignature,
  isLowS,
  normalizeLowS,
  recoveryIdFromR,
  verifyEcdsa,
  type EcdsaCurveName,
  type FinalEcdsaSignature,
} from '../../core/ecdsa/signature.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';

const CURVES: readonly EcdsaCurveName[] = ['secp256k1', 'P-256'];
const NOBLE = { secp256k1, 'P-256': p256 } as const;

const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/** node:crypto public key from the SEC 1 encoding, via JWK and back through SPKI (both import paths). */
function nodePublicKey(curve: EcdsaCurveName, publicKey: Uint8Array): KeyObject {
  const raw = NOBLE[curve].Point.fromBytes(publicKey).toBytes(false);
  const jwk = createPublicKey({ key: { kty: 'EC', crv: curve, x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33)) }, format: 'jwk' });
  return createPublicKey({ key: jwk.export({ type: 'spki', format: 'der' }), format: 'der', type: 'spki' });
}

/** A textbook ECDSA signature (SEC 1 §4.1.3) with a known nonce k: returns R's encoding and the raw s. */
function textbookSign(curve: EcdsaCurveName, x: bigint, digest: Uint8Array): { R: Uint8Array; s: bigint } {
  const n = curveOrder(curve);
  const Point = NOBLE[curve].Point;
  for (;;) {
    const k = bytesToNumberBE(randomBytes(48)) % n;
    if (k === 0n) continue;
    const R = Point.BASE.multiply(k).toBytes(true);
    const r = bytesToNumberBE(R.subarray(1)) % n;
    const e = digestToScalar(curve, digest);
    const kInv = Point.Fn.inv(k);
    const s = (kInv * ((e + r * x) % n)) % n;
    if (r !== 0n && s !== 0n) return { R, s };
  }
}

function keyPair(curve: EcdsaCurveName): { x: bigint; publicKey: Uint8Array } {
  const n = curveOrder(curve);
  const x = (bytesToNumberBE(randomBytes(48)) % (n - 1n)) + 1n;
  return { x, publicKey: NOBLE[curve].Point.BASE.multiply(x).toBytes(true) };
}

function checkEverywhere(sig: FinalEcdsaSignature, message: Uint8Array, publicKey: Uint8Array): void {
  const digest = createHash('sha256').update(message).digest();
  const key = nodePublicKey(sig.curve, publicKey);
  expect(nodeVerify('sha256', message, { key, dsaEncoding: 'der' }, sig.der)).toBe(true);
  expect(nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, sig.compact)).toBe(true);
  expect(verifyEcdsa(sig, digest, publicKey, { lowS: true })).toBe(true);
  if (sig.curve === 'secp256k1') {
    // strict = true: libsecp256k1 refuses high s.
    expect(tinyVerify(digest, publicKey, sig.compact, true)).toBe(true);
    const recovered = tinyRecover(digest, sig.compact, sig.recovery as 0 | 1 | 2 | 3, true);
    expect(recovered && Buffer.from(recovered).equals(Buffer.from(publicKey))).toBe(true);
  }
}

describe.each(CURVES)('ECDSA signatures on %s', (curve) => {
  it('finalizeSignature gives a low-s signature that node:crypto, noble and (secp256k1) libsecp256k1 verify and recover, for both low-s flips', () => {
    const { x, publicKey } = keyPair(curve);
    const seenFlip = new Set<boolean>();
    for (let k = 0; k < 24 || seenFlip.size < 2; k++) {
      const message = randomBytes(40);
      const digest = createHash('sha256').update(message).digest();
      const { R, s } = textbookSign(curve, x, digest);
      seenFlip.add(!isLowS(curve, s));
      const sig = finalizeSignature(curve, R, s);
      expect(isLowS(curve, sig.s)).toBe(true);
      expect(sig.s === s || sig.s === curveOrder(curve) - s).toBe(true);
      checkEverywhere(sig, message, publicKey);
      // Round trips.
      expect(decodeDer(curve, sig.der)).toEqual({ curve, r: sig.r, s: sig.s });
      expect(decodeCompact(curve, sig.compact)).toEqual({ curve, r: sig.r, s: sig.s });
      // noble's own DER encoder agrees with ours.
      const nobleSig = new NOBLE[curve].Signature(sig.r, sig.s);
      expect(Buffer.from(nobleSig.toBytes('der')).equals(Buffer.from(sig.der))).toBe(true);
    }
  });

  it('verifyEcdsa refuses a wrong message, a wrong key, and (with lowS) the high-s twin; it never throws', () => {
    const { x, publicKey } = keyPair(curve);
    const digest = randomBytes(32);
    const { R, s } = textbookSign(curve, x, digest);
    const sig = finalizeSignature(curve, R, s);
    expect(verifyEcdsa(sig, digest, publicKey)).toBe(true);
    const other = randomBytes(32);
    expect(verifyEcdsa(sig, other, publicKey)).toBe(false);
    expect(verifyEcdsa(sig, digest, keyPair(curve).publicKey)).toBe(false);
    const high = { curve, r: sig.r, s: curveOrder(curve) - sig.s };
    expect(verifyEcdsa(high, digest, publicKey)).toBe(true);
    expect(verifyEcdsa(high, digest, publicKey, { lowS: true })).toBe(false);
    expect(normalizeLowS(high)).toEqual({ sig: { curve, r: sig.r, s: sig.s }, flipped: true });
    expect(verifyEcdsa({ curve, r: 0n, s: sig.s }, digest, publicKey)).toBe(false);
    expect(verifyEcdsa(sig, digest, new Uint8Array(33))).toBe(false);
    expect(verifyEcdsa(sig, new Uint8Array(3), publicKey)).toBe(false);
  });

  it('digestToScalar takes the leftmost 256 bits of a longer digest (SEC 1 §4.1.3 step 5), as OpenSSL does', () => {
    const { x, publicKey } = keyPair(curve);
    const message = randomBytes(20);
    const digest = createHash('sha512').update(message).digest();
    expect(digestToScalar(curve, digest)).toBe(bytesToNumberBE(digest.subarray(0, 32)) % curveOrder(curve));
    const { R, s } = textbookSign(curve, x, digest);
    const sig = finalizeSignature(curve, R, s);
    expect(nodeVerify('sha512', message, { key: nodePublicKey(curve, publicKey), dsaEncoding: 'der' }, sig.der)).toBe(true);
  });

  it('strict DER decoding rejects non-minimal, negative, wrong-tag, out-of-range, truncated and trailing encodings', () => {
    const n = curveOrder(curve);
    const enc = (r: Uint8Array, s: Uint8Array): Uint8Array =>
      Uint8Array.from([0x30, r.length + s.length + 4, 0x02, r.length, ...r, 0x02, s.length, ...s]);
    const good = enc(Uint8Array.of(0x01), Uint8Array.of(0x7f));
    expect(decodeDer(curve, good)).toEqual({ curve, r: 1n, s: 0x7fn });
    const bad: [string, Uint8Array][] = [
      ['leading zero', enc(Uint8Array.of(0x00, 0x01), Uint8Array.of(0x01))],
      ['negative r', enc(Uint8Array.of(0x81), Uint8Array.of(0x01))],
      ['negative s', enc(Uint8Array.of(0x01), Uint8Array.of(0xff))],
      ['zero r', enc(Uint8Array.of(0x00), Uint8Array.of(0x01))],
      ['r = n', enc(Uint8Array.of(0x00, ...numberToBytesBE(n, 32)), Uint8Array.of(0x01))],
      ['s = n', enc(Uint8Array.of(0x01), Uint8Array.of(0x00, ...numberToBytesBE(n, 32)))],
      ['trailing byte', Uint8Array.of(...good, 0x00)],
      ['trailing inside', Uint8Array.from([0x30, good[1]! + 1, ...good.subarray(2), 0x00])],
      ['truncated', good.subarray(0, good.length - 1)],
      ['wrong sequence tag', Uint8Array.from([0x31, ...good.subarray(1)])],
      ['wrong integer tag', Uint8Array.from([0x30, good[1]!, 0x03, ...good.subarray(3)])],
      ['long length form', Uint8Array.from([0x30, 0x81, good[1]!, ...good.subarray(2)])],
      ['empty integer', Uint8Array.from([0x30, 0x06, 0x02, 0x00, 0x02, 0x01, 0x01, 0x00])],
      ['empty', new Uint8Array(0)],
    ];
    for (const [why, bytes] of bad) {
      expect(() => decodeDer(curve, bytes), why).toThrow(TesseraError);
    }
  });

  it('compact decoding rejects wrong lengths, zero and out-of-range values', () => {
    const n = curveOrder(curve);
    const one = numberToBytesBE(1n, 32);
    expect(decodeCompact(curve, Uint8Array.of(...one, ...one))).toEqual({ curve, r: 1n, s: 1n });
    for (const bytes of [
      new Uint8Array(63),
      new Uint8Array(65),
      new Uint8Array(64),
      Uint8Array.of(...numberToBytesBE(n, 32), ...one),
      Uint8Array.of(...one, ...numberToBytesBE(n, 32)),
    ]) {
      try {
        decodeCompact(curve, bytes);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(TesseraError);
        expect([ErrorCode.BadInput, ErrorCode.BadScalar]).toContain((e as TesseraError).code);
      }
    }
    expect(() => encodeCompact({ curve, r: n, s: 1n })).toThrow(TesseraError);
    expect(() => encodeDer({ curve, r: 1n, s: 0n })).toThrow(TesseraError);
  });
});

describe('SEC 1 §4.1.6 recovery id', () => {
  it('bit 1 is set when x(R) ≥ n (r overflow) and bit 0 follows y(R), flipped by low-s normalisation', () => {
    const n = curveOrder('secp256k1');
    // A curve point whose x is in [n, p): exists for secp256k1 since p > n.
    let R: Uint8Array | undefined;
    for (let x = n; R === undefined; x++) {
      try {
        R = secp256k1.Point.fromBytes(Uint8Array.of(0x02, ...numberToBytesBE(x, 32))).toBytes(true);
      } catch {
        /* not on the curve: try the next x */
      }
    }
    expect(recoveryIdFromR('secp256k1', R, false)).toBe(2);
    expect(recoveryIdFromR('secp256k1', R, true)).toBe(3);
    const odd = Uint8Array.of(0x03, ...R.subarray(1));
    expect(recoveryIdFromR('secp256k1', odd, false)).toBe(3);
    const small = secp256k1.Point.BASE.toBytes(true);
    expect(recoveryIdFromR('secp256k1', small, false)).toBe(small[0]! & 1);
    expect(recoveryIdFromR('secp256k1', small, true)).toBe((small[0]! & 1) ^ 1);
  });
});
