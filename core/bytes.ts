/** Byte helpers shared by all of core/. Thin wrappers over @noble/hashes utilities, with labelled errors. */
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { ErrorCode, TesseraError } from './errors.js';

export { concatBytes, utf8ToBytes };

export function toHex(b: Uint8Array): string {
  return bytesToHex(b);
}

/** Strict hex decoding: even length, [0-9a-f] only, optional exact length. Never throws a library error. */
export function fromHex(hex: unknown, what: string, expectedLength?: number): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TesseraError(ErrorCode.BadInput, `${what}: expected hex`);
  }
  const b = hexToBytes(hex.toLowerCase());
  if (expectedLength !== undefined && b.length !== expectedLength) {
    throw new TesseraError(ErrorCode.BadInput, `${what}: expected ${expectedLength} bytes, got ${b.length}`);
  }
  return b;
}

export function assertBytes(b: unknown, what: string, length?: number): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TesseraError(ErrorCode.BadInput, `${what}: expected bytes`);
  if (length !== undefined && b.length !== length) {
    throw new TesseraError(ErrorCode.BadInput, `${what}: expected ${length} bytes, got ${b.length}`);
  }
}

/** Constant-time comparison for equal-length arrays (length itself is not secret). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Overwrite byte arrays we own. JavaScript gives no guarantee that no copy survives elsewhere
 * (the GC may have moved the buffer, and bigints derived from these bytes cannot be wiped at all),
 * so this is best effort: it limits how long secrets sit in memory we control.
 */
export function zeroize(...arrays: (Uint8Array | undefined | null)[]): void {
  for (const a of arrays) a?.fill(0);
}

/** I2OSP(n, len) from RFC 8017 §4.1, used by RFC 9180 and RFC 9591 encodings. */
export function i2osp(n: number, len: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 256 ** len) {
    throw new TesseraError(ErrorCode.BadInput, `i2osp: ${n} does not fit in ${len} bytes`);
  }
  const out = new Uint8Array(len);
  for (let i = len - 1, v = n; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v % 256;
  return out;
}

/** Length-prefixed concatenation: unambiguous framing of variable-length fields for hashing. */
export function framed(...parts: Uint8Array[]): Uint8Array {
  const out: Uint8Array[] = [];
  for (const p of parts) out.push(i2osp(p.length, 4), p);
  return concatBytes(...out);
}
