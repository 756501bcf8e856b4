/**
 * Key formats for the SDK and the CLI (issue 11, item 3): a key's public key in the standard
 * encodings other tools read (SPKI DER, PEM, JWK), the standard private-key encodings of a combined
 * scalar where one exists, and hex input with an optional 0x.
 *
 * Nothing here is a primitive: a raw public key is validated by its suite (core/suites.ts), written as
 * a JWK (RFC 7517/7518 §6.2 for EC, RFC 8037 for OKP, RFC 8812 §3.1 for crv "secp256k1"), and node:crypto
 * (OpenSSL) turns that JWK into SPKI (RFC 5280 §4.1.2.7; RFC 5480 for EC, RFC 8410 for Ed25519/X25519)
 * and PEM (RFC 7468), checking the point once more on the way.
 *
 * Per suite (the raw encoding is the one KeyInfo.publicKey carries, see README.md):
 * - ed25519: raw = RFC 8032 §5.1.5 encoding (32 bytes) → SPKI id-Ed25519, JWK OKP "Ed25519".
 * - p256, hpke-p256: raw = SEC1 compressed (33) / uncompressed (65) → SPKI id-ecPublicKey + prime256v1
 *   with the uncompressed point (RFC 5480 §2.2: the form every implementation must accept), JWK EC "P-256".
 * - secp256k1: raw = SEC1 compressed (33) → SPKI id-ecPublicKey + secp256k1 (1.3.132.0.10), JWK EC "secp256k1".
 * - bip340: raw = BIP-340 x-only (32). Its SPKI/PEM/JWK are those of lift_x(x), the point with that x
 *   and even y: exactly the point BIP-340 verification uses for this key (BIP-340 "Public Key
 *   Generation"), so nothing is guessed. A tool that reads the SPKI sees an ordinary secp256k1 key; it
 *   cannot verify BIP-340 signatures with it unless it implements BIP-340.
 * - hpke-x25519: raw = RFC 7748 §5 u-coordinate (32) → SPKI id-X25519, JWK OKP "X25519".
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { numberToBytesLE } from '@noble/curves/utils.js';
import { isTesseraError } from '../core/errors.js';
import { getSuite, isSuiteId, type Suite, type SuiteId } from '../core/suites.js';
import { TesseraClientError } from './http.js';

export type PublicKeyFormat = 'raw' | 'spki' | 'pem' | 'jwk';
export const PUBLIC_KEY_FORMATS: readonly PublicKeyFormat[] = ['raw', 'spki', 'pem', 'jwk'];

/** Hex with an optional 0x/0X prefix → lowercase hex without it; bad hex throws TesseraClientError('BAD_INPUT') naming `what`. */
export function normalizeHex(value: string, what: string): string {
  if (typeof value !== 'string') throw new TesseraClientError('BAD_INPUT', `${what}: expected a hex string`);
  const hex = value.startsWith('0x') || value.startsWith('0X') ? value.slice(2) : value;
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TesseraClientError('BAD_INPUT', `${what}: expected hex (an even number of 0-9a-f digits, optional 0x)`);
  }
  return hex.toLowerCase();
}

/** Bytes as given, or hex (optional 0x) decoded. */
export function bytesOrHex(value: string | Uint8Array, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  return Uint8Array.from(Buffer.from(normalizeHex(value, what), 'hex'));
}

function suiteOf(suite: string): Suite {
  if (!isSuiteId(suite)) throw new TesseraClientError('BAD_INPUT', `unknown suite ${JSON.stringify(String(suite)).slice(0, 40)}`);
  return getSuite(suite);
}

/** A core error (bad point, bad scalar) as the SDK's error type, keeping its code; anything else unchanged. */
function asClientError(e: unknown): unknown {
  return isTesseraError(e) ? new TesseraClientError(e.code, e.message) : e;
}

const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/**
 * The public JWK of a raw public key (validated by its suite first: a point that does not decode, is
 * the identity or is off the curve is refused with BAD_POINT).
 */
function publicJwk(suite: Suite, raw: Uint8Array): JsonWebKey {
  try {
    suite.publicKeyFromBytes(raw);
  } catch (e) {
    throw asClientError(e);
  }
  const ec = (crv: string, uncompressed: Uint8Array): JsonWebKey => ({ kty: 'EC', crv, x: b64url(uncompressed.subarray(1, 33)), y: b64url(uncompressed.subarray(33, 65)) });
  switch (suite.id as SuiteId) {
    case 'ed25519':
      return { kty: 'OKP', crv: 'Ed25519', x: b64url(raw) };
    case 'hpke-x25519':
      return { kty: 'OKP', crv: 'X25519', x: b64url(raw) };
    case 'p256':
    case 'ecdsa-p256':
    case 'hpke-p256':
      return ec('P-256', p256.Point.fromBytes(raw).toBytes(false));
    case 'secp256k1':
    case 'ecdsa-secp256k1':
      return ec('secp256k1', secp256k1.Point.fromBytes(raw).toBytes(false));
    case 'bip340': {
      // BIP-340 lift_x: the point with x and even y (SEC1 prefix 0x02).
      const even = new Uint8Array(33);
      even[0] = 0x02;
      even.set(raw, 1);
      return ec('secp256k1', secp256k1.Point.fromBytes(even).toBytes(false));
    }
  }
}

function keyObject(jwk: JsonWebKey, suite: Suite): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    throw new TesseraClientError('UNSUPPORTED_FORMAT', `this Node.js/OpenSSL cannot read a ${suite.id} public key (${(e as Error).message})`);
  }
}

/**
 * A key's public key (the suite's raw encoding, hex (optional 0x) or bytes, as KeyInfo.publicKey) in another format:
 * raw → hex; spki → hex of the DER SubjectPublicKeyInfo; pem → PEM text; jwk → a JWK object.
 * Errors: BAD_INPUT (unknown suite or format, bad hex), BAD_POINT (not a valid public key of the suite),
 * UNSUPPORTED_FORMAT (the local OpenSSL lacks the curve).
 */
export function formatPublicKey(suite: string, publicKey: string | Uint8Array, format: PublicKeyFormat): string | Record<string, unknown> {
  const s = suiteOf(suite);
  if (!PUBLIC_KEY_FORMATS.includes(format)) throw new TesseraClientError('BAD_INPUT', `unknown public-key format ${JSON.stringify(String(format)).slice(0, 20)}; expected ${PUBLIC_KEY_FORMATS.join(', ')}`);
  const raw = bytesOrHex(publicKey, 'publicKey');
  const jwk = publicJwk(s, raw);
  switch (format) {
    case 'raw':
      return Buffer.from(raw).toString('hex');
    case 'jwk':
      return { ...jwk } as Record<string, unknown>;
    case 'spki':
      return (keyObject(jwk, s).export({ type: 'spki', format: 'der' }) as Buffer).toString('hex');
    case 'pem':
      return keyObject(jwk, s).export({ type: 'spki', format: 'pem' }) as string;
  }
}

/** What `combine` returns: the scalar always, plus the standard private-key encoding where one exists. */
export interface PrivateKeyEncodings {
  /** The secret scalar, hex, in the suite's scalar encoding (little-endian for ed25519/X25519). */
  scalar: string;
  /** PKCS#8 PEM, where a standard one exists for this suite and scalar. */
  pkcs8Pem?: string;
  /** hpke-x25519 only: the X25519 private key bytes, hex, when one exists for this scalar. */
  x25519PrivateKey?: string;
  /** Why an encoding is missing (one sentence), when one is. */
  note?: string;
}

const TWO_254 = 1n << 254n;
const TWO_251 = 1n << 251n;

/**
 * An X25519 private key k (RFC 7748 §5) whose X25519 public key equals that of the scalar s mod L, or
 * undefined when none exists. decodeScalar25519(k) is c = 2^254 + 8m with 0 <= m < 2^251, and for the
 * prime-order base point X25519(k, 9) = u(c·B) = u(s·B) iff c ≡ ±s (mod L) (u(P) = u(-P)). So
 * m ≡ (±s - 2^254)·8^-1 (mod L): the one candidate in [0, L) for each sign is a solution exactly
 * when it is below 2^251 (L > 2^251, so no other representative is). Derived, not searched. The two
 * candidates sum to -2^252 ≡ δ = L - 2^252 (about 2^124), so when one is too large the other almost
 * always fits: only scalars whose candidate lies in [2^251, 2^251 + 2δ] (about 2^-126 of them, e.g.
 * s = 2^255 mod L) have no X25519 private key.
 */
function x25519PrivateKeyFor(s: bigint): Uint8Array | undefined {
  const Fn = ed25519.Point.Fn;
  const inv8 = Fn.inv(8n);
  for (const target of [Fn.create(s), Fn.neg(Fn.create(s))]) {
    const m = Fn.mul(Fn.sub(target, Fn.create(TWO_254)), inv8);
    if (m < TWO_251) return numberToBytesLE(TWO_254 + 8n * m, 32); // already clamped: decode is the identity
  }
  return undefined;
}

/** PKCS#8 PEM of a Weierstrass scalar (RFC 5915 ECPrivateKey inside RFC 5208 PKCS#8), via node:crypto's JWK import. */
function ecPkcs8Pem(crv: 'P-256' | 'secp256k1', scalar: Uint8Array): string {
  const curve = crv === 'P-256' ? p256 : secp256k1;
  const pub = curve.getPublicKey(scalar, false);
  const d = b64url(scalar);
  const key = createPrivateKey({ key: { kty: 'EC', crv, d, x: b64url(pub.subarray(1, 33)), y: b64url(pub.subarray(33, 65)) }, format: 'jwk' });
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/**
 * The encodings of a combined scalar (what unwrapAndCombine returns, the suite's scalar encoding):
 * - p256, hpke-p256: PKCS#8 (the P-256 private key is the scalar; RFC 9180 §7.1.2 for hpke-p256);
 * - secp256k1, bip340: PKCS#8 over secp256k1 (for bip340 the key of the full point: BIP-340 signs with
 *   the negated scalar when that point has odd y, which a BIP-340 signer does by itself);
 * - hpke-x25519: the X25519 private key (and its PKCS#8) when the scalar has one (x25519PrivateKeyFor),
 *   otherwise a note;
 * - ed25519: a note: RFC 8032 private keys are 32-byte seeds hashed into the scalar, and no seed exists
 *   for a scalar made by DKG, so there is no standard encoding (PKCS#8 Ed25519 carries a seed).
 * Errors: BAD_INPUT (unknown suite), BAD_SCALAR (not a canonical non-zero scalar of the suite's group).
 */
export function privateKeyEncodings(suite: string, scalar: Uint8Array): PrivateKeyEncodings {
  const s = suiteOf(suite);
  if (!(scalar instanceof Uint8Array)) throw new TesseraClientError('BAD_INPUT', 'scalar: expected bytes');
  let value: bigint;
  try {
    value = s.group.scalarFromBytes(scalar, `${s.id} scalar`);
  } catch (e) {
    throw asClientError(e);
  }
  const out: PrivateKeyEncodings = { scalar: Buffer.from(scalar).toString('hex') };
  switch (s.id as SuiteId) {
    case 'p256':
    case 'hpke-p256':
      out.pkcs8Pem = ecPkcs8Pem('P-256', scalar);
      break;
    case 'secp256k1':
    case 'bip340':
      out.pkcs8Pem = ecPkcs8Pem('secp256k1', scalar);
      break;
    case 'hpke-x25519': {
      const k = x25519PrivateKeyFor(value);
      if (!k) {
        out.note =
          'this scalar has no X25519 private key: an X25519 key is clamped (RFC 7748 §5) to 2^254 + 8m with m < 2^251, and neither the scalar nor its negation is congruent to such a value mod the group order; use the scalar with an implementation that takes a raw scalar';
        break;
      }
      out.x25519PrivateKey = Buffer.from(k).toString('hex');
      const pub = s.publicKeyBytes(s.group.mulBase(value));
      out.pkcs8Pem = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(k), x: b64url(pub) }, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }) as string;
      k.fill(0);
      break;
    }
    case 'ed25519':
      out.note =
        'an Ed25519 private key (RFC 8032 §5.1.5, PKCS#8 per RFC 8410) is a 32-byte seed hashed into the scalar, and a key made by DKG has no seed, so there is no standard encoding; the scalar (little-endian) works only with signers that take an expanded key';
      break;
  }
  return out;
}
