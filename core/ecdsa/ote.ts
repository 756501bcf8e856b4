/**
 * OT extension for DKLs23: the actively secure extension of Keller, Orsini, Scholl (KOS15,
 * "Actively Secure OT Extension with Optimal Overhead", ePrint 2015/546), Figure 7 (the IKNP
 * extension plus the "check correlation" phase), which DKLs23 (ePrint 2023/765) allows as its
 * OT extension. As DKLs23 and DKLs19 do in their two-round instantiations, the coin tossing of the check is replaced by a random
 * oracle over the session id and the receiver's columns (Fiat–Shamir), so the receiver sends one
 * message and the sender answers nothing for the extension itself.
 *
 * Roles: the extension *receiver* (DKLs23's Bob) was the *sender* of the κ base OTs (core/ecdsa/ot.ts)
 * and holds both seeds k⁰_i, k¹_i; the extension *sender* (Alice) holds Δ ∈ {0,1}^κ (her base-OT
 * choices) and k^{Δ_i}_i. Per extension (one per multiplication, one `sid` each):
 *   receiver: t⁰_i = PRG(k⁰_i, sid), u_i = t⁰_i ⊕ PRG(k¹_i, sid) ⊕ x      (columns, m' bits)
 *   sender:   q_i = PRG(k^{Δ_i}_i, sid) ⊕ Δ_i·u_i = t⁰_i ⊕ Δ_i·x       ⇒ rows q_j = t_j ⊕ x_j·Δ
 *   check:    χ_j from H(sid, u); receiver sends x̃ = Σ x_j·χ_j, t̃ = Σ t_j·χ_j;
 *             sender accepts iff Σ q_j·χ_j = t̃ ⊕ x̃·Δ  (KOS15 Fig. 7 "Check correlation").
 * The last κ + s rows are random padding that hides x̃ (KOS15 Fig. 7: m' = m + κ + s); they are dropped.
 *
 * GF(2^128) arithmetic is POLYVAL's (RFC 8452 §3) from @noble/ciphers: dot(a, b) = a·b·x^-128 is
 * the multiplication of a field isomorphic to GF(2^128) (Montgomery form), with identity x^128 mod
 * the POLYVAL polynomial. χ_j are the powers of one random element (POLYVAL(H, rows) = Σ rows_j ⊙
 * H^(m'−j)), a polynomial universal hash in place of independent χ_j: by Schwartz–Zippel this costs
 * a factor m' in the soundness error (m'/2^128 < 2^-118).
 *
 * (@noble/ciphers/_polyval.js is a subpath the package lists in its "exports" map, and its own
 * documentation imports polyval from there; the package re-exports it nowhere else.)
 *
 * A failed check may leak a bit of Δ to a cheating receiver (KOS15's selective failure bound only
 * holds if the run aborts): after any failure the pairwise setup must be discarded and re-run.
 *
 * Hashing: the tweakable circular correlation-robust (TCCR) hash of Guo, Katz, Wang, Yu, "Efficient
 * and Secure Multiparty Computation from Fixed-Key Block Ciphers" (GKWY20, IEEE S&P 2020, ePrint
 * 2019/074, §7.4): H(x, i) = π(π(x) ⊕ i) ⊕ π(x) with π = AES-128 (node:crypto, OpenSSL) under a public
 * key, modelled as a random permutation. GKWY20 introduce TCCR for hashing OT-extension rows, which are
 * correlated through the secret Δ, with the OT index as the tweak (a malicious receiver chooses its rows,
 * and KOS15's selective failure lets it learn c bits of Δ with probability 2^-c), and prove this
 * construction TCCR in the random-permutation model. It is used:
 *   - for KOS15 Fig. 7's "Randomize and output" step, H(j, q_j) and H(j, q_j ⊕ Δ) (tccrHash, called
 *     by core/ecdsa/mul.ts with the row index j in every tweak), and
 *   - as the PRG that stretches a base-OT seed k_i into its column (tweaks (i, block)), a TCCR hash of a
 *     uniformly random secret input with distinct tweaks being pseudorandom.
 * The AES key is public and derived per extension from the session id and a purpose tag (domain
 * separation: one random permutation per sid and use); every tweak holds (index, block number), so no
 * (input, tweak) pair is hashed twice under one key. All blocks of one call go through two AES-ECB
 * passes: per-row hash calls cost ~3 µs each in Node, the two passes ~0.1 ms for a whole multiplication.
 * Random oracle elsewhere (the χ key): SHA-256 with domain tags.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { polyval } from '@noble/ciphers/_polyval.js';
import { equalBytes, framed, utf8ToBytes, zeroize } from '../bytes.js';
import { ErrorCode, TesseraError } from '../errors.js';
import { bitAt, PAD_LENGTH } from './ot.js';

/** κ: number of base OTs, width of an extension row, bits of Δ. */
export const OTE_KAPPA = 128;
/** Bytes in one row (κ bits). */
export const ROW_BYTES = OTE_KAPPA / 8;
/** s: statistical security parameter of KOS15's padding. */
export const OTE_STAT = 80;
/** Padding rows m' − m = κ + s (KOS15 Fig. 7). */
export const OTE_PAD_ROWS = OTE_KAPPA + OTE_STAT;

/** The multiplicative identity of POLYVAL's field: x^128 mod (x^128 + x^127 + x^126 + x^121 + 1). */
const ONE = (() => {
  const e = new Uint8Array(16);
  e[0] = 1;
  e[15] = 0xc2;
  return e;
})();

/** AES block size, and the size of a TCCR input, output and tweak. */
const BLOCK = 16;

/**
 * The public AES-128 key of one (purpose, sid): the first 16 bytes of SHA-256(tag, sid). One random
 * permutation per extension and use keeps the tweak space of every call private to that call.
 */
export function tccrKey(purpose: string, sid: Uint8Array): Uint8Array {
  const h = createHash('sha256').update(framed(utf8ToBytes(`tessera/ecdsa/tccr/${purpose}`), sid)).digest();
  return new Uint8Array(h.subarray(0, BLOCK));
}

/** A fresh Uint8Array (word-aligned) holding `b`; `b` is wiped. */
function alignedCopy(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b);
  b.fill(0);
  return out;
}

/**
 * GKWY20 §7.4's TCCR hash for many inputs at once: for every 16-byte input x_n (n < xs.length / 16) and
 * k < blocksPer, output block H(x_n, i) = π(π(x_n) ⊕ i) ⊕ π(x_n) with tweak i = (index(n) as u32 BE,
 * k as u8, 0…). Output: blocksPer blocks per input, in input order (caller owns and zeroizes).
 * The caller must not reuse (x, index(n), k) under one key for unrelated outputs.
 */
export function tccrHash(key: Uint8Array, xs: Uint8Array, blocksPer: number, index: (n: number) => number): Uint8Array {
  const count = xs.length / BLOCK;
  if (key.length !== BLOCK || !Number.isInteger(count) || !Number.isSafeInteger(blocksPer) || blocksPer < 1 || blocksPer > 255) {
    throw new TesseraError(ErrorCode.BadInput, 'tccr: bad key, input length or block count');
  }
  const aes = createCipheriv('aes-128-ecb', key, null);
  aes.setAutoPadding(false);
  // π(x_n): one pass over all inputs (copied into a fresh, word-aligned array; the Buffer is wiped).
  const px = alignedCopy(aes.update(xs));
  const px32 = new Uint32Array(px.buffer, px.byteOffset, px.length >>> 2);
  // π(x) ⊕ i, word by word. The tweak's non-zero bytes are the index (bytes 0–3, big-endian) and k
  // (byte 4); their words are read through a Uint32Array so the platform's byte order does not matter.
  const tweak = new Uint8Array(BLOCK);
  const tweak32 = new Uint32Array(tweak.buffer);
  const kWords: number[] = [];
  for (let k = 0; k < blocksPer; k++) {
    tweak[4] = k;
    kWords.push(tweak32[1]!);
  }
  tweak[4] = 0;
  const y = new Uint8Array(count * blocksPer * BLOCK);
  const y32 = new Uint32Array(y.buffer);
  for (let n = 0; n < count; n++) {
    const j = index(n);
    tweak[0] = j >>> 24;
    tweak[1] = (j >>> 16) & 0xff;
    tweak[2] = (j >>> 8) & 0xff;
    tweak[3] = j & 0xff;
    const a0 = px32[4 * n]!;
    const a1 = px32[4 * n + 1]!;
    const a2 = px32[4 * n + 2]!;
    const a3 = px32[4 * n + 3]!;
    const w0 = a0 ^ tweak32[0]!;
    for (let k = 0, w = n * blocksPer * 4; k < blocksPer; k++, w += 4) {
      y32[w] = w0;
      y32[w + 1] = a1 ^ kWords[k]!;
      y32[w + 2] = a2;
      y32[w + 3] = a3;
    }
  }
  // π(π(x) ⊕ i): the second pass; then ⊕ π(x).
  const out = alignedCopy(aes.update(y));
  zeroize(y);
  const out32 = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
  for (let n = 0; n < count; n++) {
    const a0 = px32[4 * n]!;
    const a1 = px32[4 * n + 1]!;
    const a2 = px32[4 * n + 2]!;
    const a3 = px32[4 * n + 3]!;
    for (let k = 0, w = n * blocksPer * 4; k < blocksPer; k++, w += 4) {
      out32[w]! ^= a0;
      out32[w + 1]! ^= a1;
      out32[w + 2]! ^= a2;
      out32[w + 3]! ^= a3;
    }
  }
  zeroize(px);
  return out;
}

/**
 * The column PRG of the extension: G(k_i, sid) for the κ seeds in `seeds` (κ × PAD_LENGTH bytes), each
 * stretched to `bytes` bytes; returns the κ columns one after another (κ × bytes; caller zeroizes).
 * G(k_i)_b = TCCR(k_i[0..16), (i, b)) under the key of (kos-prg, sid); the first 16 bytes of each base-OT
 * pad (a SHA-256 random-oracle output, core/ecdsa/ot.ts) are a uniform κ-bit seed.
 */
function prgColumns(seeds: Uint8Array, bytes: number, key: Uint8Array): Uint8Array {
  const xs = new Uint8Array(OTE_KAPPA * BLOCK);
  for (let i = 0; i < OTE_KAPPA; i++) xs.set(seeds.subarray(i * PAD_LENGTH, i * PAD_LENGTH + BLOCK), i * BLOCK);
  const blocks = Math.ceil(bytes / BLOCK);
  const stretched = tccrHash(key, xs, blocks, (n) => n);
  zeroize(xs);
  if (blocks * BLOCK === bytes) return stretched;
  const out = new Uint8Array(OTE_KAPPA * bytes);
  for (let i = 0; i < OTE_KAPPA; i++) out.set(stretched.subarray(i * blocks * BLOCK, i * blocks * BLOCK + bytes), i * bytes);
  zeroize(stretched);
  return out;
}

function checkKey(sid: Uint8Array, columns: Uint8Array): Uint8Array {
  const h = createHash('sha256').update(framed(utf8ToBytes('tessera/ecdsa/kos-chi'), sid, columns)).digest();
  return new Uint8Array(h.subarray(0, 16));
}

/**
 * Transpose κ columns of `rows` bits each (column-major, bit j of column i = bit j&7 of byte j>>3,
 * as bitAt reads it) into rows of κ bits (bit i of row j = bit i&7 of byte 16j + (i>>3)). Works on
 * 8×8 bit blocks: 8 columns' byte jb become byte i>>3 of rows 8jb..8jb+7 (the 8×8 transpose of
 * Hacker's Delight §7-3, on two 32-bit halves).
 */
function transpose(columns: Uint8Array, rows: number): Uint8Array {
  const colBytes = rows / 8;
  const out = new Uint8Array(rows * ROW_BYTES);
  for (let ib = 0; ib < ROW_BYTES; ib++) {
    // Columns 8ib+7 … 8ib (most significant byte first), so that rows come out in bit order.
    const c7 = (8 * ib + 7) * colBytes;
    for (let jb = 0; jb < colBytes; jb++) {
      let x = (columns[c7 + jb]! << 24) | (columns[c7 - colBytes + jb]! << 16) | (columns[c7 - 2 * colBytes + jb]! << 8) | columns[c7 - 3 * colBytes + jb]!;
      let y = (columns[c7 - 4 * colBytes + jb]! << 24) | (columns[c7 - 5 * colBytes + jb]! << 16) | (columns[c7 - 6 * colBytes + jb]! << 8) | columns[c7 - 7 * colBytes + jb]!;
      if ((x | y) === 0) continue;
      let t = (x ^ (x >>> 7)) & 0x00aa00aa;
      x = x ^ t ^ (t << 7);
      t = (y ^ (y >>> 7)) & 0x00aa00aa;
      y = y ^ t ^ (t << 7);
      t = (x ^ (x >>> 14)) & 0x0000cccc;
      x = x ^ t ^ (t << 14);
      t = (y ^ (y >>> 14)) & 0x0000cccc;
      y = y ^ t ^ (t << 14);
      t = (x & 0xf0f0f0f0) | ((y >>> 4) & 0x0f0f0f0f);
      y = ((x << 4) & 0xf0f0f0f0) | (y & 0x0f0f0f0f);
      x = t;
      // Row 8jb + r gets byte 7 − r of (x ‖ y).
      const o = 8 * jb * ROW_BYTES + ib;
      out[o + 7 * ROW_BYTES] = x >>> 24;
      out[o + 6 * ROW_BYTES] = (x >>> 16) & 0xff;
      out[o + 5 * ROW_BYTES] = (x >>> 8) & 0xff;
      out[o + 4 * ROW_BYTES] = x & 0xff;
      out[o + 3 * ROW_BYTES] = y >>> 24;
      out[o + 2 * ROW_BYTES] = (y >>> 16) & 0xff;
      out[o + ROW_BYTES] = (y >>> 8) & 0xff;
      out[o] = y & 0xff;
    }
  }
  return out;
}

function checkRows(m: number): void {
  if (!Number.isSafeInteger(m) || m < 8 || m % 8 !== 0 || m > 1 << 16) throw new TesseraError(ErrorCode.BadInput, 'kos: row count must be a multiple of 8');
}

/** Length of the receiver's message for m rows: κ columns of m' bits, then x̃ and t̃. */
export function kosMessageLength(m: number): number {
  return (OTE_KAPPA * (m + OTE_PAD_ROWS)) / 8 + 32;
}

/**
 * Malicious-party tests only: a receiver that deviates as an adversary would, changing its columns
 * u_i (e.g. using different choice bits in different columns) *before* it derives the check from
 * them, so the check values fit the message it sends. Honest callers never pass it.
 */
export interface KosReceiverCheat {
  corruptColumns?: (columns: Uint8Array) => void;
}

/**
 * Receiver (DKLs23's Bob): extend to m random-choice OTs. `seeds0`/`seeds1` are the base-OT pads
 * (κ × 32 bytes each). Returns the message, the choice bits x (m bits; caller owns and zeroizes) and
 * the rows t_j (m × 16 bytes; caller owns and zeroizes), with q_j = t_j ⊕ x_j·Δ on the sender's side.
 */
export function kosReceiverExtend(
  seeds0: Uint8Array,
  seeds1: Uint8Array,
  sid: Uint8Array,
  m: number,
  cheat?: KosReceiverCheat,
): { msg: Uint8Array; choices: Uint8Array; rows: Uint8Array } {
  checkRows(m);
  const mp = m + OTE_PAD_ROWS;
  const colBytes = mp / 8;
  const x = new Uint8Array(randomBytes(colBytes));
  const msg = new Uint8Array(kosMessageLength(m));
  const key = tccrKey('kos-prg', sid);
  const t0 = prgColumns(seeds0, colBytes, key);
  const t1 = prgColumns(seeds1, colBytes, key);
  for (let i = 0; i < OTE_KAPPA; i++) {
    const o = i * colBytes;
    for (let k = 0; k < colBytes; k++) msg[o + k] = t0[o + k]! ^ t1[o + k]! ^ x[k]!;
  }
  zeroize(t1);
  const columns = msg.subarray(0, OTE_KAPPA * colBytes);
  cheat?.corruptColumns?.(columns);
  const rows = transpose(t0, mp);
  zeroize(t0);
  // KOS15 Fig. 7 check: x̃ = Σ x_j·χ_j, t̃ = Σ t_j·χ_j with χ_j = powers of H = RO(sid, u).
  const H = checkKey(sid, columns);
  const xBlocks = new Uint8Array(mp * 16);
  for (let j = 0; j < mp; j++) if (bitAt(x, j)) xBlocks.set(ONE, j * 16);
  msg.set(polyval(xBlocks, H), OTE_KAPPA * colBytes);
  msg.set(polyval(rows, H), OTE_KAPPA * colBytes + 16);
  zeroize(xBlocks);
  const choices = x.slice(0, m / 8);
  zeroize(x);
  const out = rows.slice(0, m * ROW_BYTES);
  zeroize(rows);
  return { msg, choices, rows: out };
}

/**
 * Sender (DKLs23's Alice): check the receiver's message and return the rows q_j (m × 16 bytes;
 * caller owns and zeroizes), with q_j = t_j ⊕ x_j·Δ. Throws BadMessage for a wrong length, BadProof
 * when the KOS15 correlation check fails.
 */
export function kosSenderExtend(delta: Uint8Array, seeds: Uint8Array, sid: Uint8Array, m: number, msg: Uint8Array): Uint8Array {
  checkRows(m);
  const mp = m + OTE_PAD_ROWS;
  const colBytes = mp / 8;
  if (!(msg instanceof Uint8Array) || msg.length !== kosMessageLength(m)) {
    throw new TesseraError(ErrorCode.BadMessage, `kos: the extension message must be ${kosMessageLength(m)} bytes`);
  }
  const q = prgColumns(seeds, colBytes, tccrKey('kos-prg', sid));
  for (let i = 0; i < OTE_KAPPA; i++) {
    const mask = -bitAt(delta, i) & 0xff;
    for (let k = 0; k < colBytes; k++) q[i * colBytes + k]! ^= msg[i * colBytes + k]! & mask;
  }
  const rows = transpose(q, mp);
  zeroize(q);
  const columns = msg.subarray(0, OTE_KAPPA * colBytes);
  const xTilde = msg.subarray(OTE_KAPPA * colBytes, OTE_KAPPA * colBytes + 16);
  const tTilde = msg.subarray(OTE_KAPPA * colBytes + 16);
  const H = checkKey(sid, columns);
  const qTilde = polyval(rows, H);
  // t̃ ⊕ x̃·Δ, where · is POLYVAL's dot (the field multiplication in this representation).
  const expect = polyval(xTilde, delta);
  for (let k = 0; k < 16; k++) expect[k]! ^= tTilde[k]!;
  const ok = equalBytes(qTilde, expect);
  zeroize(qTilde, expect);
  if (!ok) {
    zeroize(rows);
    throw new TesseraError(ErrorCode.BadProof, 'kos: the OT-extension correlation check failed (KOS15 Fig. 7); discard this pairwise setup');
  }
  const out = rows.slice(0, m * ROW_BYTES);
  zeroize(rows);
  return out;
}
