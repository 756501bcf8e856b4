/**
 * edwards25519 on libsodium (sodium-native): the `Group` of the ed25519 and hpke-x25519 suites with
 * libsodium's point arithmetic, behaving exactly as the noble group does (core/group.ts nobleGroup:
 * same results, same encodings, same errors). A pure adapter: the caller (runtime/group-backend.ts)
 * loads the binding and passes it in; nothing here loads or reads anything.
 *
 * Points are their canonical 32-byte encodings (RFC 8032 §5.1.2), which is what libsodium's
 * ed25519 core API takes and returns; the identity is the encoding of (0, 1), which libsodium's
 * add/sub accept but its scalar multiplication and validation refuse, so those cases are handled
 * here before calling it.
 *
 * - pointFromBytes: crypto_core_ed25519_is_valid_point (canonical y < p, on the curve, not of small
 *   order, in the prime-order subgroup) = RFC 9591 §3.1 / §6.1 DeserializeElement.
 * - mulBase / mulPoint (the scalar may be secret): crypto_scalarmult_ed25519_base_noclamp /
 *   crypto_scalarmult_ed25519_noclamp, libsodium's constant-time ladders on the unclamped scalar.
 *   Both refuse a zero scalar and an identity result: scalars are reduced mod L first, and a zero
 *   scalar or the identity point gives the identity without calling libsodium.
 * - add / sub / neg: crypto_core_ed25519_add / _sub.
 * - msm (public inputs only): a sum of scalar multiplications.
 * - ed25519Verify (public inputs only): crypto_sign_verify_detached, libsodium's variable-time
 *   RFC 8032 §5.1.7 check (one double-scalar multiplication instead of two constant-time ones, each
 *   of which re-validates its point); see the method for why it accepts exactly what the generic check does.
 * - hashToScalar: RFC 9591 §6.1 H1 / H3 (SHA-512(contextString || tag || m) little-endian mod L) with
 *   libsodium's crypto_hash_sha512 instead of noble's (byte-identical, about 3x faster on short inputs).
 * - randomBytes (nonce randomness, RFC 9591 §4.1): libsodium's CSPRNG, randombytes_buf.
 * - Scalars (bigints mod L) and randomScalar are the reference (noble) group's.
 */
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { equalBytes } from '../bytes.js';
import { ErrorCode, TesseraError } from '../errors.js';
import { referenceScalars, wideHashToScalar, type Group, type Point } from '../group.js';

/** The slice of sodium-native (libsodium) this adapter uses. Each function throws on a libsodium error. */
export interface SodiumEd25519Binding {
  crypto_core_ed25519_is_valid_point(p: Uint8Array): boolean;
  crypto_core_ed25519_add(r: Uint8Array, p: Uint8Array, q: Uint8Array): void;
  crypto_core_ed25519_sub(r: Uint8Array, p: Uint8Array, q: Uint8Array): void;
  crypto_scalarmult_ed25519_base_noclamp(q: Uint8Array, n: Uint8Array): void;
  crypto_scalarmult_ed25519_noclamp(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  crypto_hash_sha512(out: Uint8Array, message: Uint8Array): void;
  randombytes_buf(out: Uint8Array): void;
}

export const SODIUM_ED25519_FUNCTIONS = [
  'crypto_core_ed25519_is_valid_point',
  'crypto_core_ed25519_add',
  'crypto_core_ed25519_sub',
  'crypto_scalarmult_ed25519_base_noclamp',
  'crypto_scalarmult_ed25519_noclamp',
  'crypto_sign_verify_detached',
  'crypto_hash_sha512',
  'randombytes_buf',
] as const;

/** edwards25519 field prime 2^255 - 19 (RFC 8032 §5.1). */
const P = 2n ** 255n - 19n;

/**
 * Whether the first 32 bytes (an RFC 8032 §5.1.2 encoding) hold y < p: y, little-endian without the
 * sign bit, is >= p = 2^255 - 19 only when bytes 1..30 are 0xff, byte 31 is 0x7f (sign bit masked)
 * and byte 0 is >= 0xed.
 */
function canonicalY(b: Uint8Array): boolean {
  if ((b[31]! & 0x7f) !== 0x7f || b[0]! < 0xed) return true;
  for (let i = 1; i < 31; i++) if (b[i] !== 0xff) return true;
  return false;
}

class EdPoint {
  constructor(readonly enc: Uint8Array) {}
}

/**
 * Build the group. `reference` is the noble edwards25519 group (core/suites.ts NOBLE_GROUPS): its
 * scalar arithmetic, randomScalar and hashToScalar are used as they are.
 */
export function sodiumEd25519Group(sodium: SodiumEd25519Binding, reference: Group): Group {
  if (reference.name !== 'edwards25519') throw new TesseraError(ErrorCode.BadInput, 'sodium-native backs edwards25519 only');
  for (const f of SODIUM_ED25519_FUNCTIONS) {
    if (typeof (sodium as unknown as Record<string, unknown>)[f] !== 'function') {
      throw new TesseraError(ErrorCode.BadInput, `sodium-native binding lacks ${f}`);
    }
  }
  const identityEnc = new Uint8Array(32);
  identityEnc[0] = 1;
  const IDENTITY = new EdPoint(identityEnc);
  const BASE = new EdPoint(reference.pointToBytes(reference.base));
  const bad = (what: string, why: string) => new TesseraError(ErrorCode.BadPoint, `${what}: ${why}`);
  const INV8 = reference.inv(8n);
  const toP = (p: Point): EdPoint => {
    if (!(p instanceof EdPoint)) throw new TesseraError(ErrorCode.BadPoint, 'not a point of the sodium-native edwards25519 backend');
    return p;
  };
  const fromP = (p: EdPoint): Point => p as unknown as Point;
  const isId = (p: EdPoint) => equalBytes(p.enc, identityEnc);
  const scalarBytes = (n: bigint) => numberToBytesLE(n, 32);
  const sha512 = (m: Uint8Array): Uint8Array => {
    const h = new Uint8Array(64);
    sodium.crypto_hash_sha512(h, m);
    return h;
  };
  const hashToScalar = wideHashToScalar(sha512, reference.order, true);

  const add = (a: EdPoint, b: EdPoint): EdPoint => {
    const r = new Uint8Array(32);
    sodium.crypto_core_ed25519_add(r, a.enc, b.enc);
    return new EdPoint(r);
  };
  const sub = (a: EdPoint, b: EdPoint): EdPoint => {
    const r = new Uint8Array(32);
    sodium.crypto_core_ed25519_sub(r, a.enc, b.enc);
    return new EdPoint(r);
  };
  /** n·P for n in [1, L) and P a non-identity point of the prime-order subgroup (never fails then). */
  const mul = (P: EdPoint, n: bigint): EdPoint => {
    const k = scalarBytes(n);
    const r = new Uint8Array(32);
    try {
      if (P === BASE || equalBytes(P.enc, BASE.enc)) sodium.crypto_scalarmult_ed25519_base_noclamp(r, k);
      else sodium.crypto_scalarmult_ed25519_noclamp(r, k, P.enc);
    } finally {
      k.fill(0);
    }
    return new EdPoint(r);
  };

  /**
   * Why an encoding that libsodium refused is invalid, in the reference group's words: an encoding
   * that is not canonical (y >= p, or x = 0 with the sign bit set), not on the curve, or the identity
   * is 'not a valid curve point'; any other curve point outside the prime-order subgroup is 'not in the
   * prime-order subgroup'. (Only the message depends on this; the code is BadPoint either way.)
   */
  const rejection = (b: Uint8Array): string => {
    const invalid = 'not a valid curve point';
    const yBytes = Uint8Array.from(b);
    yBytes[31]! &= 0x7f;
    const y = bytesToNumberLE(yBytes);
    const sign = (b[31]! & 0x80) !== 0;
    if (y >= P) return invalid;
    if (sign && (y === 1n || y === P - 1n)) return invalid; // x = 0: only +0 is canonical
    if (y === 1n) return invalid; // the identity
    try {
      // add() decodes its inputs (on the curve) without the subgroup checks.
      sodium.crypto_core_ed25519_add(new Uint8Array(32), b, identityEnc);
    } catch {
      return invalid;
    }
    return 'not in the prime-order subgroup';
  };

  const group: Group = {
    name: reference.name,
    backend: 'sodium-native',
    order: reference.order,
    scalarLength: reference.scalarLength,
    pointLength: 32,
    base: fromP(BASE),
    identity: fromP(IDENTITY),

    ...referenceScalars(reference),

    pointFromBytes(b, what) {
      if (!(b instanceof Uint8Array) || b.length !== 32) throw bad(what, 'expected a 32-byte element');
      if (!sodium.crypto_core_ed25519_is_valid_point(b)) throw bad(what, rejection(b));
      return fromP(new EdPoint(Uint8Array.from(b)));
    },
    pointToBytes(p) {
      const q = toP(p);
      if (isId(q)) throw new TesseraError(ErrorCode.BadPoint, 'cannot serialize the identity element');
      return Uint8Array.from(q.enc);
    },
    mulBase(s) {
      const n = reference.reduce(s);
      return fromP(n === 0n ? IDENTITY : mul(BASE, n));
    },
    mulPoint(p, s) {
      const q = toP(p);
      const n = reference.reduce(s);
      return fromP(n === 0n || isId(q) ? IDENTITY : mul(q, n));
    },
    msm(points, scalars) {
      if (points.length !== scalars.length) throw new TesseraError(ErrorCode.BadInput, 'msm: length mismatch');
      let acc = IDENTITY;
      for (let i = 0; i < points.length; i++) {
        const q = toP(points[i]!);
        const n = reference.reduce(scalars[i]!);
        if (n === 0n || isId(q)) continue;
        const term = n === 1n ? q : mul(q, n);
        // The first term is the sum so far (no addition of the identity: each add decodes both points).
        acc = acc === IDENTITY ? term : add(acc, term);
      }
      return fromP(acc);
    },
    addPoints: (a, b) => fromP(add(toP(a), toP(b))),
    subPoints: (a, b) => fromP(sub(toP(a), toP(b))),
    negPoint: (a) => fromP(sub(IDENTITY, toP(a))),
    eqPoints: (a, b) => equalBytes(toP(a).enc, toP(b).enc),
    isIdentity: (a) => isId(toP(a)),
    hashToScalar,
    randomBytes(n) {
      const out = new Uint8Array(n);
      sodium.randombytes_buf(out);
      return out;
    },
    /**
     * crypto_sign_verify_detached (libsodium >= 1.0.16, not ED25519_COMPAT) refuses S >= L, a small-
     * order R (the identity among them, whatever the sign bit), a non-canonical or small-order A; it
     * computes h = SHA-512(R || A || M) mod L (RFC 8032 §5.1.7 step 2, RFC 9591 §6.1 H2) and R' =
     * S·B - h·A, and accepts iff R' is the element R encodes. The caller validated A as
     * DeserializeElement does (Group.ed25519Verify), so R' is in the prime-order subgroup; with R
     * checked canonical here (y < p), R is then the canonical encoding of a non-identity element of
     * the subgroup: exactly the generic check (core/frost.ts checkAggregate / verifySignature).
     */
    /**
     * [8^-1 mod L]·([8]·P): three doublings with crypto_core_ed25519_add (it decodes its inputs on the
     * curve, without the subgroup check, so a point with a small-order component is accepted and
     * anything off the curve is refused), then crypto_scalarmult_ed25519_noclamp by 8^-1 mod L, as
     * [8]·P is in the prime-order subgroup. Public inputs only (an HPKE sender's enc).
     */
    primeOrderComponent(encoded) {
      if (!(encoded instanceof Uint8Array) || encoded.length !== 32 || !canonicalY(encoded)) throw bad('enc', 'not a valid curve point');
      const p2 = new Uint8Array(32);
      const p4 = new Uint8Array(32);
      const p8 = new Uint8Array(32);
      try {
        sodium.crypto_core_ed25519_add(p2, encoded, encoded);
        sodium.crypto_core_ed25519_add(p4, p2, p2);
        sodium.crypto_core_ed25519_add(p8, p4, p4);
      } catch {
        throw bad('enc', 'not a valid curve point');
      }
      if (equalBytes(p8, identityEnc)) throw new TesseraError(ErrorCode.BadPoint, 'enc: small-order point (all-zero DH)');
      return fromP(mul(new EdPoint(p8), INV8));
    },
    ed25519Verify(signature, message, publicKey) {
      try {
        if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
        if (!(message instanceof Uint8Array) || !(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
        if (!canonicalY(signature)) return false;
        return sodium.crypto_sign_verify_detached(signature, message, publicKey) === true;
      } catch {
        return false;
      }
    },
  };
  return Object.freeze(group);
}
