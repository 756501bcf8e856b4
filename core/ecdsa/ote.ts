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
 * A failed check may leak a bit of Δ to a cheating receiver (KOS15's selective failure bound only
 * holds if the run aborts): after any failure the pairwise setup must be discarded and re-run.
 * PRG: SHAKE256(seed ‖ sid) from node:crypto. Random oracle: SHA-256 with domain tags.
 */
import { createHash, randomBytes } from 'node:crypto';
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

function prg(seed: Uint8Array, sid: Uint8Array, bytes: number): Uint8Array {
  return new Uint8Array(createHash('shake256', { outputLength: bytes }).update(framed(utf8ToBytes('tessera/ecdsa/kos-prg'), seed, sid)).digest());
}

function checkKey(sid: Uint8Array, columns: Uint8Array): Uint8Array {
  const h = createHash('sha256').update(framed(utf8ToBytes('tessera/ecdsa/kos-chi'), sid, columns)).digest();
  return new Uint8Array(h.subarray(0, 16));
}

/** Transpose κ columns of `rows` bits each (column-major, bit j of column i) into rows of κ bits. */
function transpose(columns: Uint8Array, rows: number): Uint8Array {
  const colBytes = rows / 8;
  const out = new Uint8Array(rows * ROW_BYTES);
  for (let i = 0; i < OTE_KAPPA; i++) {
    const rowByte = i >> 3;
    const rowBit = 1 << (i & 7);
    const base = i * colBytes;
    for (let jb = 0; jb < colBytes; jb++) {
      const v = columns[base + jb]!;
      if (v === 0) continue;
      for (let b = 0; b < 8; b++) if ((v >> b) & 1) out[(jb * 8 + b) * ROW_BYTES + rowByte]! |= rowBit;
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
  const t0 = new Uint8Array(OTE_KAPPA * colBytes);
  const msg = new Uint8Array(kosMessageLength(m));
  for (let i = 0; i < OTE_KAPPA; i++) {
    const a = prg(seeds0.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH), sid, colBytes);
    const b = prg(seeds1.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH), sid, colBytes);
    t0.set(a, i * colBytes);
    for (let k = 0; k < colBytes; k++) msg[i * colBytes + k] = a[k]! ^ b[k]! ^ x[k]!;
    zeroize(a, b);
  }
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
  const q = new Uint8Array(OTE_KAPPA * colBytes);
  for (let i = 0; i < OTE_KAPPA; i++) {
    const s = prg(seeds.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH), sid, colBytes);
    const mask = -bitAt(delta, i) & 0xff;
    for (let k = 0; k < colBytes; k++) q[i * colBytes + k] = s[k]! ^ (msg[i * colBytes + k]! & mask);
    zeroize(s);
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
