/**
 * ECDSA signature values and their encodings, for the threshold ECDSA suites (secp256k1, P-256).
 *
 * - digest → scalar: SEC 1 v2 §4.1.3 step 5 / §4.1.4 step 3 (the leftmost bitlen(n) bits of the hash, as
 *   an integer; reduced mod n where used).
 * - low-s normalisation: BIP-62 / BIP-146 "LOW_S" (s ≤ n/2; s and n - s are both valid, only one is kept).
 * - DER: SEC 1 v2 §C.5 (ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }) in DER (X.690 §8.3, §10),
 *   decoded strictly: minimal lengths and integers, no negative values, no trailing bytes (BIP-66 rules).
 * - compact: r ‖ s, each as a 32-byte big-endian integer (IEEE P1363, the JOSE/WebCrypto form).
 * - recovery id: SEC 1 v2 §4.1.6 (bit 0 = parity of R's y, bit 1 = R's x was ≥ n so r = x - n).
 * - verification: SEC 1 v2 §4.1.4, by @noble/curves on the already hashed message (no prehash).
 *
 * Everything here is on public values; nothing is secret.
 */
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { concatBytes } from '../bytes.js';
import { ErrorCode, TesseraError, ensure } from '../errors.js';

export type EcdsaCurveName = 'secp256k1' | 'P-256';

/** Scalar / field byte length of both curves. */
const SCALAR_BYTES = 32;

/** The hash digest lengths accepted for signing (SHA-256 .. SHA-512; Keccak-256 is 32 bytes). */
const MIN_DIGEST_BYTES = 16;
const MAX_DIGEST_BYTES = 64;

const CURVES = {
  secp256k1: secp256k1,
  'P-256': p256,
} as const;

export function isEcdsaCurve(c: unknown): c is EcdsaCurveName {
  return c === 'secp256k1' || c === 'P-256';
}

export function checkEcdsaCurve(c: unknown): EcdsaCurveName {
  ensure(isEcdsaCurve(c), ErrorCode.UnknownSuite, `not an ECDSA curve: ${String(c)}`);
  return c;
}

/** The order n of the curve's prime-order group. */
export function curveOrder(curve: EcdsaCurveName): bigint {
  return CURVES[checkEcdsaCurve(curve)].Point.CURVE().n;
}

/** A plain ECDSA signature (r, s), both in [1, n - 1]. */
export interface EcdsaSignature {
  readonly curve: EcdsaCurveName;
  readonly r: bigint;
  readonly s: bigint;
}

/** A signature produced by the threshold protocol: low-s, with its encodings and (secp256k1) recovery id. */
export interface FinalEcdsaSignature extends EcdsaSignature {
  /** SEC 1 §4.1.6 recovery id (0..3): for secp256k1 only; P-256 carries it too, since the rule is the same. */
  readonly recovery: number;
  /** DER (SEC 1 §C.5). */
  readonly der: Uint8Array;
  /** r ‖ s, 64 bytes (IEEE P1363). */
  readonly compact: Uint8Array;
}

/** Check a digest's type and length (16..64 bytes: any hash of 128..512 bits). */
export function checkDigest(digest: unknown): Uint8Array {
  ensure(digest instanceof Uint8Array, ErrorCode.BadInput, 'message digest: expected bytes');
  ensure(
    digest.length >= MIN_DIGEST_BYTES && digest.length <= MAX_DIGEST_BYTES,
    ErrorCode.BadInput,
    `message digest: expected ${MIN_DIGEST_BYTES}..${MAX_DIGEST_BYTES} bytes, got ${digest.length}`,
  );
  return digest;
}

/**
 * SEC 1 v2 §4.1.3 step 5: e = the integer of the leftmost ⌈log2 n⌉ = 256 bits of the digest, then
 * reduced mod n (the signing equation works mod n; verifiers reduce the same way).
 */
export function digestToScalar(curve: EcdsaCurveName, digest: Uint8Array): bigint {
  const n = curveOrder(curve);
  checkDigest(digest);
  let e = bytesToNumberBE(digest);
  if (digest.length > SCALAR_BYTES) e >>= BigInt(8 * (digest.length - SCALAR_BYTES));
  return e % n;
}

function checkRange(curve: EcdsaCurveName, v: unknown, what: string): bigint {
  const n = curveOrder(curve);
  ensure(typeof v === 'bigint' && v >= 1n && v < n, ErrorCode.BadScalar, `${what}: expected an integer in [1, n-1]`);
  return v;
}

/** Check that (r, s) are both in [1, n - 1] (SEC 1 §4.1.4 step 1). */
export function checkSignature(sig: EcdsaSignature): EcdsaSignature {
  ensure(typeof sig === 'object' && sig !== null, ErrorCode.BadInput, 'signature: expected an object');
  const curve = checkEcdsaCurve(sig.curve);
  return { curve, r: checkRange(curve, sig.r, 'signature r'), s: checkRange(curve, sig.s, 'signature s') };
}

export function isLowS(curve: EcdsaCurveName, s: bigint): boolean {
  return s <= curveOrder(curve) >> 1n;
}

/**
 * Low-s normalisation (BIP-62 LOW_S): (r, s) and (r, n - s) both verify; keep the one with s ≤ n/2.
 * `flipped` says whether s was negated, which negates the nonce point R and so flips the recovery id's
 * y-parity bit (SEC 1 §4.1.6).
 */
export function normalizeLowS(sig: EcdsaSignature): { sig: EcdsaSignature; flipped: boolean } {
  const { curve, r, s } = checkSignature(sig);
  if (isLowS(curve, s)) return { sig: { curve, r, s }, flipped: false };
  return { sig: { curve, r, s: curveOrder(curve) - s }, flipped: true };
}

// ---------------------------------------------------------------------------------------------
// Compact r ‖ s (IEEE P1363)

export function encodeCompact(sig: EcdsaSignature): Uint8Array {
  const { r, s } = checkSignature(sig);
  return concatBytes(numberToBytesBE(r, SCALAR_BYTES), numberToBytesBE(s, SCALAR_BYTES));
}

/** Strict: exactly 64 bytes, r and s each in [1, n - 1]. High s is accepted here (normalise separately). */
export function decodeCompact(curve: EcdsaCurveName, bytes: Uint8Array): EcdsaSignature {
  checkEcdsaCurve(curve);
  ensure(bytes instanceof Uint8Array, ErrorCode.BadInput, 'compact signature: expected bytes');
  ensure(bytes.length === 2 * SCALAR_BYTES, ErrorCode.BadInput, `compact signature: expected 64 bytes, got ${bytes.length}`);
  const r = bytesToNumberBE(bytes.subarray(0, SCALAR_BYTES));
  const s = bytesToNumberBE(bytes.subarray(SCALAR_BYTES));
  return { curve, r: checkRange(curve, r, 'signature r'), s: checkRange(curve, s, 'signature s') };
}

// ---------------------------------------------------------------------------------------------
// DER (SEC 1 §C.5, X.690 DER)

const DER_SEQUENCE = 0x30;
const DER_INTEGER = 0x02;

/** X.690 §8.3: minimal two's-complement big-endian encoding of a positive integer. */
function derInteger(v: bigint): Uint8Array {
  const full = numberToBytesBE(v, SCALAR_BYTES);
  let k = 0;
  while (k < full.length - 1 && full[k] === 0) k++;
  let body: Uint8Array = full.subarray(k);
  // A set top bit would read as negative: prefix one zero byte (X.690 §8.3.3).
  if ((body[0]! & 0x80) !== 0) body = concatBytes(Uint8Array.of(0), body);
  return concatBytes(Uint8Array.of(DER_INTEGER, body.length), body);
}

export function encodeDer(sig: EcdsaSignature): Uint8Array {
  const { r, s } = checkSignature(sig);
  const content = concatBytes(derInteger(r), derInteger(s));
  // At most 2·(2 + 33) = 70 content bytes: always the short length form (X.690 §8.1.3.4).
  return concatBytes(Uint8Array.of(DER_SEQUENCE, content.length), content);
}

function derError(why: string): TesseraError {
  return new TesseraError(ErrorCode.BadInput, `DER signature: ${why}`);
}

/** Read one INTEGER at `at`; returns the value and the offset after it. Strict DER (X.690 §8.3.2, §10.1). */
function readDerInteger(bytes: Uint8Array, at: number, what: string): { value: bigint; next: number } {
  if (at + 2 > bytes.length) throw derError(`${what} is truncated`);
  if (bytes[at] !== DER_INTEGER) throw derError(`${what} is not an INTEGER`);
  const len = bytes[at + 1]!;
  // Short length form only: a long form for a length < 128 is not minimal (X.690 §10.1).
  if (len === 0 || len > SCALAR_BYTES + 1) throw derError(`${what} has a bad length`);
  const start = at + 2;
  if (start + len > bytes.length) throw derError(`${what} is truncated`);
  const body = bytes.subarray(start, start + len);
  if ((body[0]! & 0x80) !== 0) throw derError(`${what} is negative`);
  // X.690 §8.3.2: the first nine bits must not be all zero (no redundant leading zero byte).
  if (body[0] === 0 && (len === 1 || (body[1]! & 0x80) === 0)) throw derError(`${what} is not minimally encoded`);
  return { value: bytesToNumberBE(body), next: start + len };
}

/** Strict DER decoding: SEQUENCE of two minimal positive INTEGERs in [1, n - 1], nothing after it. */
export function decodeDer(curve: EcdsaCurveName, bytes: Uint8Array): EcdsaSignature {
  checkEcdsaCurve(curve);
  ensure(bytes instanceof Uint8Array, ErrorCode.BadInput, 'DER signature: expected bytes');
  if (bytes.length < 8) throw derError('too short');
  if (bytes[0] !== DER_SEQUENCE) throw derError('not a SEQUENCE');
  const len = bytes[1]!;
  if (len >= 0x80) throw derError('length is not in the short form'); // content ≤ 70 bytes: short form is the DER form
  if (2 + len !== bytes.length) throw derError(2 + len < bytes.length ? 'trailing bytes' : 'truncated');
  const r = readDerInteger(bytes, 2, 'r');
  const s = readDerInteger(bytes, r.next, 's');
  if (s.next !== bytes.length) throw derError('trailing bytes inside the SEQUENCE');
  return { curve, r: checkRange(curve, r.value, 'signature r'), s: checkRange(curve, s.value, 'signature s') };
}

// ---------------------------------------------------------------------------------------------
// Recovery id and verification

/**
 * SEC 1 v2 §4.1.6 recovery id from the nonce point R (SEC 1 compressed encoding, 33 bytes) of a
 * signature whose s is as given *before* low-s normalisation: bit 0 = y(R) odd, bit 1 = x(R) ≥ n.
 * When normalisation negated s, the signature's effective nonce point is -R, so bit 0 flips.
 */
export function recoveryIdFromR(curve: EcdsaCurveName, compressedR: Uint8Array, flipped: boolean): number {
  const n = curveOrder(curve);
  ensure(compressedR instanceof Uint8Array && compressedR.length === SCALAR_BYTES + 1, ErrorCode.BadInput, 'R: expected 33 bytes');
  ensure(compressedR[0] === 0x02 || compressedR[0] === 0x03, ErrorCode.BadPoint, 'R: expected a compressed point');
  const yOdd = compressedR[0] === 0x03 ? 1 : 0;
  const xOverflow = bytesToNumberBE(compressedR.subarray(1)) >= n ? 2 : 0;
  return (yOdd ^ (flipped ? 1 : 0)) | xOverflow;
}

/** r = x(R) mod n (SEC 1 §4.1.3 step 3), from R's compressed encoding. */
export function rFromCompressedPoint(curve: EcdsaCurveName, compressedR: Uint8Array): bigint {
  ensure(compressedR instanceof Uint8Array && compressedR.length === SCALAR_BYTES + 1, ErrorCode.BadInput, 'R: expected 33 bytes');
  return bytesToNumberBE(compressedR.subarray(1)) % curveOrder(curve);
}

/**
 * SEC 1 v2 §4.1.4 verification of (r, s) on a message digest under a SEC 1 public key (compressed or
 * uncompressed). `lowS: true` additionally refuses s > n/2. Never throws on a bad signature or key:
 * it returns false.
 */
export function verifyEcdsa(sig: EcdsaSignature, digest: Uint8Array, publicKey: Uint8Array, opts: { lowS?: boolean } = {}): boolean {
  let checked: EcdsaSignature;
  try {
    checked = checkSignature(sig);
    checkDigest(digest);
    ensure(publicKey instanceof Uint8Array, ErrorCode.BadInput, 'public key: expected bytes');
  } catch {
    return false;
  }
  if (opts.lowS === true && !isLowS(checked.curve, checked.s)) return false;
  try {
    return CURVES[checked.curve].verify(encodeCompact(checked), digest, publicKey, { prehash: false, lowS: false, format: 'compact' });
  } catch {
    return false;
  }
}

/**
 * Build the final form of a signature the protocol computed: low-s normalised, its recovery id
 * (SEC 1 §4.1.6) and both encodings. The caller verifies it (the protocol does, before returning it).
 */
export function finalizeSignature(curve: EcdsaCurveName, compressedR: Uint8Array, s: bigint): FinalEcdsaSignature {
  const r = rFromCompressedPoint(curve, compressedR);
  const { sig, flipped } = normalizeLowS({ curve, r, s });
  return {
    curve,
    r: sig.r,
    s: sig.s,
    recovery: recoveryIdFromR(curve, compressedR, flipped),
    der: encodeDer(sig),
    compact: encodeCompact(sig),
  };
}
