/**
 * Base oblivious transfer for DKLs23's pairwise setup: the Verified Simplest OT (VSOT) of
 * Doerner, Kondi, Lee, shelat, "Secure Two-party Threshold ECDSA from ECDSA Assumptions"
 * (DKLs18, ePrint 2018/499), Protocol 7, which DKLs19 (ePrint 2019/523) and DKLs23 (ePrint
 * 2023/765, where it discusses instantiating the OTs) cite as a base OT for OT extension. It is the Simplest OT of
 * Chou–Orlandi (ePrint 2015/267) made safe against a cheating party by
 *   - a Schnorr proof of knowledge of the sender's secret b (Protocol 7 step 1), and
 *   - the challenge / response / opening rounds (Protocol 7 steps 5–8), in which the receiver
 *     proves it got one of the two pads and the sender proves both pads are well formed.
 *
 * We run it as random OT (Protocol 7 without the final encryption, as DKLs18 notes suffices for OT
 * extension), batched: one sender key B and proof for all `count` OTs; every random-oracle call
 * carries the session id, the OT index and B.
 *
 * Five messages (sender S, receiver R):
 *   1. S → R  B ‖ R_pok ‖ z          (B = b·G, Schnorr proof R_pok = k·G, z = k + c·b)
 *   2. R → S  A_i = a_i·G + ω_i·B    (i < count; R's pad ρ^{ω_i}_i = H(sid, i, B, A_i, a_i·B))
 *   3. S → R  ξ_i = H(H(ρ⁰_i)) ⊕ H(H(ρ¹_i))   (ρ⁰_i = H(.., b·A_i), ρ¹_i = H(.., b·(A_i − B)))
 *   4. R → S  ρ'_i = H(H(ρ^{ω_i}_i)) ⊕ ω_i·ξ_i  (S checks ρ'_i = H(H(ρ⁰_i)))
 *   5. S → R  H(ρ⁰_i) ‖ H(ρ¹_i)     (R checks its own pad against the opening and ξ_i)
 * Every malformed message or failed check throws TesseraError; a party whose check failed must
 * discard the whole setup (a failed check may have leaked a bit, and the next try must start over).
 *
 * Secrets in Uint8Arrays are zeroized after use. The scalars b, a_i and k are bigints, which
 * JavaScript cannot wipe: they live until the garbage collector reclaims them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { equalBytes, framed, i2osp, utf8ToBytes, zeroize } from '../bytes.js';
import { ErrorCode, TesseraError } from '../errors.js';
import type { Group, Point } from '../group.js';
import { P256, SECP256K1 } from '../suites.js';

export type CurveName = 'secp256k1' | 'P-256';

/** Length of every hash output and of every OT pad (SHA-256). */
export const PAD_LENGTH = 32;

/**
 * The process-wide Group of the curve (core/suites.ts; for secp256k1 the backend runtime/group-backend.ts
 * installed, e.g. libsecp256k1, else noble), as core/ecdsa/dkls23.ts uses: the base OTs' scalar
 * multiplications dominate the pairwise setup. Encodings and hash-to-scalar are the same on every
 * backend (each backend's self-test checks them against noble).
 */
export function groupOf(curve: CurveName): Group {
  if (curve === 'secp256k1') return SECP256K1.group;
  if (curve === 'P-256') return P256.group;
  throw new TesseraError(ErrorCode.BadInput, `ecdsa: unknown curve ${String(curve)}`);
}

export function checkSid(sid: unknown, what: string): asserts sid is Uint8Array {
  if (!(sid instanceof Uint8Array) || sid.length === 0 || sid.length > 1024) {
    throw new TesseraError(ErrorCode.BadInput, `${what}: session id must be 1..1024 bytes`);
  }
}

/** SHA-256 of a domain tag and length-framed parts: the random oracle of this module. */
export function ro(tag: string, ...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(createHash('sha256').update(framed(utf8ToBytes(`tessera/ecdsa/${tag}`), ...parts)).digest());
}

export function bitAt(bits: Uint8Array, i: number): number {
  return (bits[i >> 3]! >> (i & 7)) & 1;
}

function xorInto(dst: Uint8Array, src: Uint8Array): void {
  for (let i = 0; i < dst.length; i++) dst[i]! ^= src[i]!;
}

function bad(what: string): never {
  throw new TesseraError(ErrorCode.BadMessage, `vsot: ${what}`);
}

function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > 4096 || count % 8 !== 0) {
    throw new TesseraError(ErrorCode.BadInput, 'vsot: OT count must be a multiple of 8 in 8..4096');
  }
}

function pokChallenge(curve: CurveName, sid: Uint8Array, B: Uint8Array, R: Uint8Array): bigint {
  const g = groupOf(curve);
  return g.hashToScalar(utf8ToBytes('tessera/ecdsa/vsot-pok'), framed(utf8ToBytes(curve), sid, B, R));
}

/** The pad of OT i: H(sid, i, B, A_i, shared point) (Protocol 7 step 3–4). */
function padOf(curve: CurveName, sid: Uint8Array, i: number, B: Uint8Array, A: Uint8Array, shared: Uint8Array): Uint8Array {
  return ro('vsot-pad', utf8ToBytes(curve), sid, i2osp(i, 4), B, A, shared);
}
const h1 = (x: Uint8Array) => ro('vsot-h', x);
const h2 = (x: Uint8Array) => ro('vsot-h', ro('vsot-h', x));

/**
 * The receiver multiplies the one point B by `count` secret scalars. The noble groups' points are
 * noble points, whose public precompute() caches a window table for the constant-time multiply;
 * that makes the `count` multiplications by B about as cheap as by the base point. Any other
 * backend's points lack it and are left alone (only speed differs).
 */
function precomputeWindows(p: Point): void {
  const np = p as unknown as { precompute?: (windowSize?: number, isLazy?: boolean) => unknown };
  if (typeof np.precompute === 'function') np.precompute(8, false);
}

// ---------------------------------------------------------------- sender (OT-extension receiver)

export interface VsotSenderState {
  step: 'sent-key' | 'sent-challenge' | 'done' | 'failed';
  readonly curve: CurveName;
  readonly sid: Uint8Array;
  readonly count: number;
  /** Secret b (bigint: cannot be wiped). Cleared to 0n when done. */
  b: bigint;
  readonly B: Uint8Array;
  /** count × 32 bytes each, after message 2. */
  pads0?: Uint8Array;
  pads1?: Uint8Array;
  /** H(H(ρ⁰_i)), the expected responses. */
  expected?: Uint8Array;
}

/** Message 1: B = b·G with a Schnorr proof of knowledge of b bound to sid (Protocol 7 step 1). */
export function vsotSenderStart(curve: CurveName, sid: Uint8Array, count: number): { state: VsotSenderState; msg: Uint8Array } {
  checkSid(sid, 'vsot');
  checkCount(count);
  const g = groupOf(curve);
  const b = g.randomScalar();
  const B = g.pointToBytes(g.mulBase(b));
  const k = g.randomScalar();
  const R = g.pointToBytes(g.mulBase(k));
  const c = pokChallenge(curve, sid, B, R);
  const z = g.add(k, g.mul(c, b));
  const msg = new Uint8Array(B.length + R.length + g.scalarLength);
  msg.set(B, 0);
  msg.set(R, B.length);
  msg.set(g.scalarToBytes(z), B.length + R.length);
  return { state: { step: 'sent-key', curve, sid: sid.slice(), count, b, B }, msg };
}

/** Message 3: the challenges ξ_i (Protocol 7 step 5). Validates every A_i before any secret use. */
export function vsotSenderChallenge(state: VsotSenderState, msg: Uint8Array): Uint8Array {
  if (state?.step !== 'sent-key') throw new TesseraError(ErrorCode.BadState, 'vsot: challenge out of order');
  // Any failure below ends the run: the state is one-shot, and a retry must start over.
  state.step = 'failed';
  try {
    return senderChallenge(state, msg);
  } catch (e) {
    state.b = 0n;
    throw e;
  }
}

function senderChallenge(state: VsotSenderState, msg: Uint8Array): Uint8Array {
  const g = groupOf(state.curve);
  const pl = g.pointLength;
  if (!(msg instanceof Uint8Array) || msg.length !== state.count * pl) bad(`message 2 must be ${state.count * pl} bytes`);
  const Bp = g.pointFromBytes(state.B, 'vsot B');
  const As: Point[] = [];
  for (let i = 0; i < state.count; i++) {
    const Ai = g.pointFromBytes(msg.subarray(i * pl, (i + 1) * pl), `vsot A[${i}]`);
    // A_i = B would make the second pad H(identity): an honest receiver hits it with negligible probability.
    if (g.eqPoints(Ai, Bp)) bad(`A[${i}] equals the sender key`);
    As.push(Ai);
  }
  // b·(A_i − B) = b·A_i − b·B: one variable-base multiplication per OT instead of two.
  const bB = g.mulPoint(Bp, state.b);
  const pads0 = new Uint8Array(state.count * PAD_LENGTH);
  const pads1 = new Uint8Array(state.count * PAD_LENGTH);
  const expected = new Uint8Array(state.count * PAD_LENGTH);
  const out = new Uint8Array(state.count * PAD_LENGTH);
  for (let i = 0; i < state.count; i++) {
    const Aenc = msg.subarray(i * pl, (i + 1) * pl);
    const bA = g.mulPoint(As[i]!, state.b);
    const s0 = g.pointToBytes(bA);
    const s1 = g.pointToBytes(g.subPoints(bA, bB));
    const p0 = padOf(state.curve, state.sid, i, state.B, Aenc, s0);
    const p1 = padOf(state.curve, state.sid, i, state.B, Aenc, s1);
    const e0 = h2(p0);
    const e1 = h2(p1);
    pads0.set(p0, i * PAD_LENGTH);
    pads1.set(p1, i * PAD_LENGTH);
    expected.set(e0, i * PAD_LENGTH);
    xorInto(e1, e0);
    out.set(e1, i * PAD_LENGTH);
    zeroize(p0, p1, s0, s1, e0);
  }
  state.pads0 = pads0;
  state.pads1 = pads1;
  state.expected = expected;
  state.b = 0n;
  state.step = 'sent-challenge';
  return out;
}

/**
 * Check the responses (Protocol 7 step 7) and open H(ρ⁰_i), H(ρ¹_i) (step 8, message 5). Returns the
 * sender's pads (count × 32 bytes each), which the caller owns and must zeroize.
 */
export function vsotSenderVerify(state: VsotSenderState, msg: Uint8Array): { pads0: Uint8Array; pads1: Uint8Array; msg: Uint8Array } {
  if (state?.step !== 'sent-challenge' || !state.pads0 || !state.pads1 || !state.expected) {
    throw new TesseraError(ErrorCode.BadState, 'vsot: verify out of order');
  }
  if (!(msg instanceof Uint8Array) || msg.length !== state.count * PAD_LENGTH) bad(`message 4 must be ${state.count * PAD_LENGTH} bytes`);
  const ok = equalBytes(msg, state.expected);
  zeroize(state.expected);
  state.step = 'done';
  if (!ok) {
    zeroize(state.pads0, state.pads1);
    throw new TesseraError(ErrorCode.BadProof, 'vsot: the receiver\'s responses do not verify (DKLs18 Protocol 7 step 7)');
  }
  const open = new Uint8Array(state.count * 2 * PAD_LENGTH);
  for (let i = 0; i < state.count; i++) {
    open.set(h1(state.pads0.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH)), 2 * i * PAD_LENGTH);
    open.set(h1(state.pads1.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH)), (2 * i + 1) * PAD_LENGTH);
  }
  const { pads0, pads1 } = state;
  state.pads0 = undefined;
  state.pads1 = undefined;
  return { pads0, pads1, msg: open };
}

// ---------------------------------------------------------------- receiver (OT-extension sender)

export interface VsotReceiverState {
  step: 'sent-points' | 'sent-response' | 'done' | 'failed';
  readonly curve: CurveName;
  readonly count: number;
  /** The choice bits ω (count bits), owned by the caller. */
  readonly choices: Uint8Array;
  /** ρ^{ω_i}_i, count × 32 bytes. */
  pads: Uint8Array;
  challenge?: Uint8Array;
}

/**
 * Message 2: verify the proof of knowledge, then A_i = a_i·G + ω_i·B (Protocol 7 steps 2–4).
 * `choices` holds `count` bits, bit i = (choices[i>>3] >> (i&7)) & 1.
 */
export function vsotReceiverRespond(
  curve: CurveName,
  sid: Uint8Array,
  count: number,
  choices: Uint8Array,
  msg: Uint8Array,
): { state: VsotReceiverState; msg: Uint8Array } {
  checkSid(sid, 'vsot');
  checkCount(count);
  if (!(choices instanceof Uint8Array) || choices.length !== count / 8) throw new TesseraError(ErrorCode.BadInput, 'vsot: choices must be count/8 bytes');
  const g = groupOf(curve);
  const pl = g.pointLength;
  if (!(msg instanceof Uint8Array) || msg.length !== 2 * pl + g.scalarLength) bad(`message 1 must be ${2 * pl + g.scalarLength} bytes`);
  const Benc = msg.slice(0, pl);
  const Renc = msg.slice(pl, 2 * pl);
  const B = g.pointFromBytes(Benc, 'vsot B');
  const R = g.pointFromBytes(Renc, 'vsot proof R');
  const z = g.scalarFromBytes(msg.subarray(2 * pl), 'vsot proof z', true);
  const c = pokChallenge(curve, sid, Benc, Renc);
  // Schnorr verification z·G = R + c·B (public values: variable-time msm is fine).
  if (!g.eqPoints(g.mulBase(z), g.addPoints(R, g.msm([B], [c])))) {
    throw new TesseraError(ErrorCode.BadProof, 'vsot: the sender\'s proof of knowledge does not verify (DKLs18 Protocol 7 step 1)');
  }
  precomputeWindows(B);
  const out = new Uint8Array(count * pl);
  const pads = new Uint8Array(count * PAD_LENGTH);
  for (let i = 0; i < count; i++) {
    const a = g.randomScalar();
    const aG = g.mulBase(a);
    // Both candidates are computed so the work does not depend on ω_i (JS gives no constant-time select).
    const cand = [aG, g.addPoints(aG, B)];
    const Aenc = g.pointToBytes(cand[bitAt(choices, i)]!);
    const shared = g.pointToBytes(g.mulPoint(B, a));
    const p = padOf(curve, sid, i, Benc, Aenc, shared);
    pads.set(p, i * PAD_LENGTH);
    out.set(Aenc, i * pl);
    zeroize(p, shared);
  }
  return { state: { step: 'sent-points', curve, count, choices, pads }, msg: out };
}

/** Message 4: ρ'_i = H(H(ρ^{ω_i}_i)) ⊕ ω_i·ξ_i (Protocol 7 step 6). */
export function vsotReceiverProve(state: VsotReceiverState, msg: Uint8Array): Uint8Array {
  if (state?.step !== 'sent-points') throw new TesseraError(ErrorCode.BadState, 'vsot: prove out of order');
  if (!(msg instanceof Uint8Array) || msg.length !== state.count * PAD_LENGTH) {
    state.step = 'failed';
    zeroize(state.pads);
    bad(`message 3 must be ${state.count * PAD_LENGTH} bytes`);
  }
  const out = new Uint8Array(state.count * PAD_LENGTH);
  for (let i = 0; i < state.count; i++) {
    const r = h2(state.pads.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH));
    const mask = -bitAt(state.choices, i) & 0xff;
    for (let k = 0; k < PAD_LENGTH; k++) r[k]! ^= msg[i * PAD_LENGTH + k]! & mask;
    out.set(r, i * PAD_LENGTH);
  }
  state.challenge = msg.slice();
  state.step = 'sent-response';
  return out;
}

/**
 * Check the opening (Protocol 7 step 8): H(ρ^{ω_i}_i) equals the opened value for ω_i, and the two
 * openings hash to the challenge ξ_i. Returns the receiver's pads (count × 32; caller zeroizes).
 */
export function vsotReceiverFinish(state: VsotReceiverState, msg: Uint8Array): Uint8Array {
  if (state?.step !== 'sent-response' || !state.challenge) throw new TesseraError(ErrorCode.BadState, 'vsot: finish out of order');
  if (!(msg instanceof Uint8Array) || msg.length !== state.count * 2 * PAD_LENGTH) bad(`message 5 must be ${state.count * 2 * PAD_LENGTH} bytes`);
  state.step = 'done';
  let diff = 0;
  for (let i = 0; i < state.count; i++) {
    const o0 = msg.subarray(2 * i * PAD_LENGTH, (2 * i + 1) * PAD_LENGTH);
    const o1 = msg.subarray((2 * i + 1) * PAD_LENGTH, (2 * i + 2) * PAD_LENGTH);
    const mine = h1(state.pads.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH));
    if (!equalBytes(mine, bitAt(state.choices, i) ? o1 : o0)) diff |= 1;
    const x = ro('vsot-h', o0);
    xorInto(x, ro('vsot-h', o1));
    if (!equalBytes(x, state.challenge.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH))) diff |= 1;
    zeroize(mine);
  }
  if (diff !== 0) {
    zeroize(state.pads);
    throw new TesseraError(ErrorCode.BadProof, 'vsot: the sender\'s opening does not verify (DKLs18 Protocol 7 step 8)');
  }
  const pads = state.pads;
  state.pads = new Uint8Array(0);
  return pads;
}

/** Fresh random choice bits for `count` OTs. */
export function randomChoices(count: number): Uint8Array {
  checkCount(count);
  return new Uint8Array(randomBytes(count / 8));
}
