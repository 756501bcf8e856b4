/**
 * DKLs23's two-party multiplication: the random vector OLE F_RVOLE (Doerner, Kondi, Lee, shelat,
 * "Threshold ECDSA in Three Rounds", ePrint 2023/765, Functionality 3.5) with ℓ = 2, realised as
 * DKLs23 Protocol 5.2 (π_RVOLE, ePrint version) builds from DKLs19's OT-based multiplication (ePrint 2019/523, Protocol 1) in its
 * "forced reuse" form: Bob's single input b is random and chosen inside the protocol, so the
 * multiplication takes two messages (Bob → Alice, Alice → Bob).
 *
 * Pairwise setup (once per key per ordered pair; five messages, see core/ecdsa/ot.ts):
 *   1 Bob → Alice   setupBobStart        VSOT key and proof of knowledge
 *   2 Alice → Bob   setupAliceRespond    VSOT points (Alice's choices are her KOS Δ)
 *   3 Bob → Alice   setupBobChallenge    VSOT challenges
 *   4 Alice → Bob   setupAliceProve      VSOT responses
 *   5 Bob → Alice   setupBobFinish       VSOT openings; Bob's MulBobSetup is ready
 *                   setupAliceFinish     checks the openings; Alice's MulAliceSetup is ready
 * Bob (the OT-extension receiver) keeps both base-OT pads; Alice keeps Δ and one pad of each.
 *
 * Multiplication (per signature and ordered pair, unique sid each), with ξ = |q| + 2s = 416 OTs:
 *   Bob:   random β ∈ {0,1}^ξ, b = ⟨g, β⟩ (g: powers of two, then 2s public random gadget elements,
 *          DKLs19 Protocol 1's encoding: the leftover-hash-lemma encoding makes b uniform); KOS15
 *          extension with choices β (core/ecdsa/ote.ts). Message 1 = the extension message.
 *   Alice: checks the extension; random-OT pads v⁰_j, v¹_j ∈ Z_q^4 = RO(sid, j, q_j), RO(sid, j, q_j ⊕ Δ);
 *          random pad ã ∈ Z_q^2 and check values â ∈ Z_q^2; correlation τ_j = v¹_j − v⁰_j + (ã₀, â₀, ã₁, â₁);
 *          her shares z_A,j = v⁰_j; χ̃, χ̂ = RO(sid, transcript);
 *          u_i = χ̃_i·ã_i + χ̂_i·â_i; r_{i,j} = χ̃_i·z̃_A,i,j + χ̂_i·ẑ_A,i,j, sent as r̃ = RO(sid, r);
 *          γ_i = a_i − ã_i; output c_A,i = Σ_j g_j·z̃_A,i,j. Message 2 = τ ‖ u ‖ γ ‖ r̃.
 *   Bob:   z_B,j = β_j·τ_j − v^{β_j}_j, so z_A,j + z_B,j = β_j·(ã, â);
 *          check (DKLs19 Protocol 1, DKLs23 Protocol 5.2): RO(sid, β_j·u_i − χ̃_i·z̃_B,i,j − χ̂_i·ẑ_B,i,j) = r̃;
 *          output c_B,i = b·γ_i + Σ_j g_j·z̃_B,i,j. Then c_A,i + c_B,i = a_i·b.
 *
 * What the check guarantees (DKLs19 Protocol 1 and its proof; DKLs23 Protocol 5.2): an Alice who uses inconsistent correlations is
 * caught unless every inconsistency sits at a j with β_j = 0; the abort leaks those few bits of β,
 * which the random gadget part of the encoding hides (the selective-failure bound of the paper). γ
 * is Alice's free choice of input and is not checked here: DKLs23's signing protocol checks the
 * inputs (Protocol 3.6's consistency checks, core/ecdsa/dkls23.ts).
 *
 * The row hash RO(sid, j, ·) above (KOS15 Fig. 7's output hashing) is GKWY20's TCCR hash from fixed-key
 * AES (core/ecdsa/ote.ts tccrHash: public key H(tag, sid'), tweak (j, block)), each row giving 4 × 48
 * bytes reduced mod q; the other random-oracle calls (χ, r̃, the message digest) are SHA-256 / SHAKE256.
 *
 * Every random-oracle call carries sid' = H(setup id, sid); `sid` MUST be unique per multiplication
 * with the same setup (a repeated sid repeats the extension pads). After any failed check the
 * pairwise setup must be discarded and re-run (a failed KOS check may leak a bit of Δ).
 *
 * Secrets in Uint8Arrays are zeroized after use. Scalars (b, ã, â, pads as bigints) and the hex
 * strings used to convert them cannot be wiped in JavaScript (both are immutable): they live until
 * the garbage collector reclaims them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { equalBytes, framed, i2osp, utf8ToBytes, zeroize } from '../bytes.js';
import { ErrorCode, TesseraError } from '../errors.js';
import {
  bitAt,
  checkSid,
  groupOf,
  PAD_LENGTH,
  ro,
  vsotReceiverFinish,
  vsotReceiverProve,
  vsotReceiverRespond,
  vsotSenderChallenge,
  vsotSenderStart,
  vsotSenderVerify,
  type CurveName,
  type VsotReceiverState,
  type VsotSenderState,
} from './ot.js';
import { kosReceiverExtend, kosSenderExtend, OTE_KAPPA, ROW_BYTES, tccrHash, tccrKey, type KosReceiverCheat } from './ote.js';

export type { CurveName } from './ot.js';

/** |q| in bits for both curves. */
const Q_BITS = 256;
/** Statistical security parameter s of the encoding (DKLs19 Protocol 1: ξ = κ + 2s). */
const STAT = 80;
/** ξ = |q| + 2s: number of OTs, Bob's choice bits, per multiplication. */
export const MUL_XI = Q_BITS + 2 * STAT;
/** Scalars per OT: ℓ = 2 inputs plus ℓ = 2 check values. */
const WIDTH = 4;
/** Bytes of random-oracle output per scalar: 16 extra bytes keep the mod-q bias below 2^-128. */
const WIDE = 48;
const SCALAR = 32;
const SETUP_VERSION = 1;
const CURVE_BYTE: Record<CurveName, number> = { secp256k1: 1, 'P-256': 2 };
const SETUP_ID = 32;
const SEEDS = OTE_KAPPA * PAD_LENGTH;

export interface MulAliceSetup {
  readonly kind: 'mul-alice-setup';
  readonly curve: CurveName;
  /** Public: H(curve, setup sid), hashed into every multiplication's random oracle. */
  readonly setupId: Uint8Array;
  /** Secret: KOS Δ, κ bits (Alice's base-OT choices). */
  readonly delta: Uint8Array;
  /** Secret: the κ base-OT pads Alice received, κ × 32 bytes. */
  readonly seeds: Uint8Array;
}
export interface MulBobSetup {
  readonly kind: 'mul-bob-setup';
  readonly curve: CurveName;
  readonly setupId: Uint8Array;
  /** Secret: both base-OT pads, κ × 32 bytes each. */
  readonly seeds0: Uint8Array;
  readonly seeds1: Uint8Array;
}
export interface SetupBobState {
  readonly kind: 'setup-bob-state';
  readonly setupId: Uint8Array;
  readonly vsot: VsotSenderState;
}
export interface SetupAliceState {
  readonly kind: 'setup-alice-state';
  readonly setupId: Uint8Array;
  readonly vsot: VsotReceiverState;
  readonly delta: Uint8Array;
}
export interface MulBobState {
  readonly kind: 'mul-bob-state';
  used: boolean;
  readonly curve: CurveName;
  readonly sidp: Uint8Array;
  /** Secret: β (ξ bits) and the extension rows t_j (ξ × 16 bytes). */
  readonly beta: Uint8Array;
  readonly rows: Uint8Array;
  readonly msgDigest: Uint8Array;
  /** Secret; a bigint cannot be wiped. */
  readonly b: bigint;
}

// ------------------------------------------------------------------------------------------ helpers

function badMsg(what: string): never {
  throw new TesseraError(ErrorCode.BadMessage, `mul: ${what}`);
}

function setupIdOf(curve: CurveName, sid: Uint8Array): Uint8Array {
  return ro('mul-setup', utf8ToBytes(curve), sid);
}

function instanceSid(setupId: Uint8Array, sid: Uint8Array): Uint8Array {
  checkSid(sid, 'mul');
  return ro('mul-instance', setupId, sid);
}

/** The gadget vector g (DKLs19 Protocol 1): 2^j for j < |q|, then 2s public random elements, per curve. */
const GADGETS = new Map<CurveName, readonly bigint[]>();
function gadget(curve: CurveName): readonly bigint[] {
  let g = GADGETS.get(curve);
  if (!g) {
    const group = groupOf(curve);
    const out: bigint[] = [];
    for (let j = 0; j < Q_BITS; j++) out.push(group.reduce(1n << BigInt(j)));
    for (let j = Q_BITS; j < MUL_XI; j++) {
      out.push(group.hashToScalar(utf8ToBytes('tessera/ecdsa/mul-gadget'), framed(utf8ToBytes(curve), i2osp(j, 4))));
    }
    g = Object.freeze(out);
    GADGETS.set(curve, g);
  }
  return g;
}

/** Bytes of random-OT output per row: WIDTH scalars of WIDE bytes, in whole AES blocks. */
const ROW_OUT = WIDTH * WIDE;
const ROW_OUT_BLOCKS = ROW_OUT / 16;

/**
 * Random OT outputs (KOS15 Fig. 7 "Randomize and output", DKLs19 Protocol 1's RO(sid, j, row)): for
 * every 16-byte row x_n of `xs`, ROW_OUT bytes H(x_n, (j, k)) for k < ROW_OUT_BLOCKS, with
 * j = rowIndex(n) the OT index: GKWY20's TCCR hash (core/ecdsa/ote.ts tccrHash, whose header says why
 * it may stand in for KOS15's random oracle) under the public key of (mul-rot, sid'), so every output
 * is bound to the setup and the multiplication (sid' = H(setup id, sid)), the row index j and the part k.
 */
function rotOutputs(sidp: Uint8Array, xs: Uint8Array, rowIndex: (n: number) => number): Uint8Array {
  return tccrHash(tccrKey('mul-rot', sidp), xs, ROW_OUT_BLOCKS, rowIndex);
}

/** 384-bit mask for splitting a row's output into its WIDTH wide scalars. */
const WIDE_MASK = (1n << BigInt(8 * WIDE)) - 1n;
const WIDE_SHIFTS = Array.from({ length: WIDTH }, (_, k) => BigInt(8 * WIDE * (WIDTH - 1 - k)));
/** Rows per hex chunk: Buffer's hex codec is ~1 ns a byte on a few KB, ~10x that on one huge string. */
const HEX_CHUNK_ROWS = 16;

/**
 * The WIDTH scalars of every row of `out` (rows × ROW_OUT bytes, big-endian WIDE-byte parts), as
 * integers below 2^(8·WIDE), NOT reduced: every use reduces mod q later (16 extra bytes keep the
 * mod-q bias below 2^-128). One hex string and one BigInt per row, then shifts: the cheapest
 * bytes → bigint path in JavaScript (one conversion per scalar costs about twice as much).
 */
function wideScalars(out: Uint8Array, rows: number): bigint[] {
  const xs: bigint[] = new Array(rows * WIDTH);
  const rowHex = 2 * ROW_OUT;
  for (let s = 0; s < rows; s += HEX_CHUNK_ROWS) {
    const e = Math.min(rows, s + HEX_CHUNK_ROWS);
    const hex = Buffer.from(out.buffer, out.byteOffset + s * ROW_OUT, (e - s) * ROW_OUT).toString('hex');
    for (let r = s; r < e; r++) {
      const x = BigInt('0x' + hex.slice((r - s) * rowHex, (r - s + 1) * rowHex));
      for (let k = 0; k < WIDTH; k++) xs[r * WIDTH + k] = k === 0 ? x >> WIDE_SHIFTS[0]! : (x >> WIDE_SHIFTS[k]!) & WIDE_MASK;
    }
  }
  return xs;
}

const M64 = (1n << 64n) - 1n;
/** Big-endian 32-byte encodings of scalars in [0, q), written into `out` at `offset` (four 64-bit words each). */
function writeScalars(out: Uint8Array, offset: number, xs: readonly bigint[]): void {
  const view = new DataView(out.buffer, out.byteOffset + offset, xs.length * SCALAR);
  for (let n = 0, o = 0; n < xs.length; n++, o += SCALAR) {
    const x = xs[n]!;
    view.setBigUint64(o, x >> 192n);
    view.setBigUint64(o + 8, (x >> 128n) & M64);
    view.setBigUint64(o + 16, (x >> 64n) & M64);
    view.setBigUint64(o + 24, x & M64);
  }
}
/** Decode `count` big-endian 32-byte scalars (four 64-bit words each); each must be canonical (< q). */
function readScalars(q: bigint, b: Uint8Array, offset: number, count: number, what: string): bigint[] {
  const view = new DataView(b.buffer, b.byteOffset + offset, count * SCALAR);
  const out: bigint[] = new Array(count);
  for (let n = 0, o = 0; n < count; n++, o += SCALAR) {
    const v = (((view.getBigUint64(o) << 64n) | view.getBigUint64(o + 8)) << 128n) | (view.getBigUint64(o + 16) << 64n) | view.getBigUint64(o + 24);
    if (v >= q) badMsg(`${what}[${n}] is not a canonical scalar`);
    out[n] = v;
  }
  return out;
}

/** χ̃₀, χ̂₀, χ̃₁, χ̂₁ = RO(sid', Bob's message, τ) (Fiat–Shamir, DKLs23 Protocol 5.2). */
function checkCoefficients(q: bigint, sidp: Uint8Array, msgDigest: Uint8Array, tau: Uint8Array): bigint[] {
  const h = createHash('shake256', { outputLength: WIDTH * WIDE })
    .update(framed(utf8ToBytes('tessera/ecdsa/mul-chi'), sidp, msgDigest, tau))
    .digest();
  const out: bigint[] = [];
  for (let k = 0; k < WIDTH; k++) out.push(bytesToNumberBE(h.subarray(k * WIDE, (k + 1) * WIDE)) % q);
  return out;
}

function digestOf(msg: Uint8Array): Uint8Array {
  return ro('mul-msg1', msg);
}

function randomScalarIn(curve: CurveName): bigint {
  return groupOf(curve).randomScalar();
}

/** RO over the 2ξ check values r_{i,j}, in the order i-major. */
function hashChecks(sidp: Uint8Array, r: Uint8Array): Uint8Array {
  return ro('mul-check', sidp, r);
}

function checkCurve(curve: unknown): asserts curve is CurveName {
  if (curve !== 'secp256k1' && curve !== 'P-256') throw new TesseraError(ErrorCode.BadInput, `mul: unknown curve ${String(curve)}`);
}

function checkAliceSetup(s: MulAliceSetup): void {
  if (s?.kind !== 'mul-alice-setup' || s.delta?.length !== OTE_KAPPA / 8 || s.seeds?.length !== SEEDS || s.setupId?.length !== SETUP_ID) {
    throw new TesseraError(ErrorCode.BadInput, 'mul: not an Alice setup (or it was wiped)');
  }
  checkCurve(s.curve);
}
function checkBobSetup(s: MulBobSetup): void {
  if (s?.kind !== 'mul-bob-setup' || s.seeds0?.length !== SEEDS || s.seeds1?.length !== SEEDS || s.setupId?.length !== SETUP_ID) {
    throw new TesseraError(ErrorCode.BadInput, 'mul: not a Bob setup (or it was wiped)');
  }
  checkCurve(s.curve);
}

// --------------------------------------------------------------------------------- setup encoding

const ALICE_LEN = 3 + SETUP_ID + OTE_KAPPA / 8 + SEEDS;
const BOB_LEN = 3 + SETUP_ID + 2 * SEEDS;

function curveFromByte(b: number): CurveName {
  if (b === 1) return 'secp256k1';
  if (b === 2) return 'P-256';
  return badMsg('setup: unknown curve');
}

/** version ‖ role 'A' ‖ curve ‖ setupId ‖ Δ ‖ seeds. Secret: store sealed. */
export function encodeMulAliceSetup(s: MulAliceSetup): Uint8Array {
  checkAliceSetup(s);
  const out = new Uint8Array(ALICE_LEN);
  out.set([SETUP_VERSION, 0x41, CURVE_BYTE[s.curve]], 0);
  out.set(s.setupId, 3);
  out.set(s.delta, 3 + SETUP_ID);
  out.set(s.seeds, 3 + SETUP_ID + OTE_KAPPA / 8);
  return out;
}
export function decodeMulAliceSetup(b: Uint8Array): MulAliceSetup {
  if (!(b instanceof Uint8Array) || b.length !== ALICE_LEN) badMsg(`Alice setup must be ${ALICE_LEN} bytes`);
  if (b[0] !== SETUP_VERSION || b[1] !== 0x41) badMsg('not an Alice setup of version 1');
  const curve = curveFromByte(b[2]!);
  let o = 3;
  const setupId = b.slice(o, (o += SETUP_ID));
  const delta = b.slice(o, (o += OTE_KAPPA / 8));
  const seeds = b.slice(o, (o += SEEDS));
  return { kind: 'mul-alice-setup', curve, setupId, delta, seeds };
}
/** version ‖ role 'B' ‖ curve ‖ setupId ‖ seeds⁰ ‖ seeds¹. Secret: store sealed. */
export function encodeMulBobSetup(s: MulBobSetup): Uint8Array {
  checkBobSetup(s);
  const out = new Uint8Array(BOB_LEN);
  out.set([SETUP_VERSION, 0x42, CURVE_BYTE[s.curve]], 0);
  out.set(s.setupId, 3);
  out.set(s.seeds0, 3 + SETUP_ID);
  out.set(s.seeds1, 3 + SETUP_ID + SEEDS);
  return out;
}
export function decodeMulBobSetup(b: Uint8Array): MulBobSetup {
  if (!(b instanceof Uint8Array) || b.length !== BOB_LEN) badMsg(`Bob setup must be ${BOB_LEN} bytes`);
  if (b[0] !== SETUP_VERSION || b[1] !== 0x42) badMsg('not a Bob setup of version 1');
  const curve = curveFromByte(b[2]!);
  let o = 3;
  const setupId = b.slice(o, (o += SETUP_ID));
  const seeds0 = b.slice(o, (o += SEEDS));
  const seeds1 = b.slice(o, (o += SEEDS));
  return { kind: 'mul-bob-setup', curve, setupId, seeds0, seeds1 };
}
export function wipeMulAliceSetup(s: MulAliceSetup): void {
  zeroize(s?.delta, s?.seeds);
}
export function wipeMulBobSetup(s: MulBobSetup): void {
  zeroize(s?.seeds0, s?.seeds1);
}

// ------------------------------------------------------------------------------------------- setup

/** Setup message 1, Bob → Alice (VSOT key and proof, DKLs18 Protocol 7 step 1). */
export function setupBobStart(curve: CurveName, sid: Uint8Array): { state: SetupBobState; msg: Uint8Array } {
  checkCurve(curve);
  checkSid(sid, 'mul setup');
  const { state, msg } = vsotSenderStart(curve, sid, OTE_KAPPA);
  return { state: { kind: 'setup-bob-state', setupId: setupIdOf(curve, sid), vsot: state }, msg };
}
/** Setup message 2, Alice → Bob. Alice's random VSOT choices become her KOS Δ. */
export function setupAliceRespond(curve: CurveName, sid: Uint8Array, msg: Uint8Array): { state: SetupAliceState; msg: Uint8Array } {
  checkCurve(curve);
  checkSid(sid, 'mul setup');
  const delta = new Uint8Array(randomBytes(OTE_KAPPA / 8));
  try {
    const r = vsotReceiverRespond(curve, sid, OTE_KAPPA, delta, msg);
    return { state: { kind: 'setup-alice-state', setupId: setupIdOf(curve, sid), vsot: r.state, delta }, msg: r.msg };
  } catch (e) {
    zeroize(delta);
    throw e;
  }
}
/** Setup message 3, Bob → Alice. */
export function setupBobChallenge(state: SetupBobState, msg: Uint8Array): { msg: Uint8Array } {
  if (state?.kind !== 'setup-bob-state') throw new TesseraError(ErrorCode.BadState, 'mul setup: not a Bob setup state');
  return { msg: vsotSenderChallenge(state.vsot, msg) };
}
/** Setup message 4, Alice → Bob. */
export function setupAliceProve(state: SetupAliceState, msg: Uint8Array): { msg: Uint8Array } {
  if (state?.kind !== 'setup-alice-state') throw new TesseraError(ErrorCode.BadState, 'mul setup: not an Alice setup state');
  return { msg: vsotReceiverProve(state.vsot, msg) };
}
/** Setup message 5, Bob → Alice; Bob's setup is complete once Alice's responses verify. */
export function setupBobFinish(state: SetupBobState, msg: Uint8Array): { setup: MulBobSetup; msg: Uint8Array } {
  if (state?.kind !== 'setup-bob-state') throw new TesseraError(ErrorCode.BadState, 'mul setup: not a Bob setup state');
  const r = vsotSenderVerify(state.vsot, msg);
  return { setup: { kind: 'mul-bob-setup', curve: state.vsot.curve, setupId: state.setupId, seeds0: r.pads0, seeds1: r.pads1 }, msg: r.msg };
}
/** Alice's setup is complete once Bob's openings verify. */
export function setupAliceFinish(state: SetupAliceState, msg: Uint8Array): MulAliceSetup {
  if (state?.kind !== 'setup-alice-state') throw new TesseraError(ErrorCode.BadState, 'mul setup: not an Alice setup state');
  try {
    const seeds = vsotReceiverFinish(state.vsot, msg);
    return { kind: 'mul-alice-setup', curve: state.vsot.curve, setupId: state.setupId, delta: state.delta, seeds };
  } catch (e) {
    zeroize(state.delta);
    throw e;
  }
}
/** Runs all five setup messages in one process (tests, local simulation). */
export function mulSetupLocal(curve: CurveName, sid: Uint8Array): { alice: MulAliceSetup; bob: MulBobSetup } {
  const b1 = setupBobStart(curve, sid);
  const a2 = setupAliceRespond(curve, sid, b1.msg);
  const b3 = setupBobChallenge(b1.state, a2.msg);
  const a4 = setupAliceProve(a2.state, b3.msg);
  const b5 = setupBobFinish(b1.state, a4.msg);
  const alice = setupAliceFinish(a2.state, b5.msg);
  return { alice, bob: b5.setup };
}

// ---------------------------------------------------------------------------------- multiplication

/** Length of Alice's message: τ (ξ × 4 scalars) ‖ u (2) ‖ γ (2) ‖ r̃ (32 bytes). */
export const MUL_ALICE_MSG_LENGTH = MUL_XI * WIDTH * SCALAR + 4 * SCALAR + 32;

/**
 * Malicious-party tests only (never passed by honest code): Bob deviates in the OT extension
 * (core/ecdsa/ote.ts KosReceiverCheat), changing his columns before deriving the KOS check.
 */
export type MulBobCheat = KosReceiverCheat;

/**
 * Malicious-party tests only: Alice uses `correlation(j, k, value)` instead of the k-th entry
 * (ã₀, â₀, ã₁, â₁)[k] of her correlation in OT j; everything after (χ, u, r̃) is computed honestly
 * from what she sends, as an adversary would.
 */
export interface MulAliceCheat {
  correlation?: (j: number, k: number, value: bigint) => bigint;
}

/** Message 1 (Bob → Alice): Bob's random input b = ⟨g, β⟩ and the KOS15 extension with choices β. */
export function mulBobStart(setup: MulBobSetup, sid: Uint8Array, cheat?: MulBobCheat): { state: MulBobState; b: bigint; msg: Uint8Array } {
  checkBobSetup(setup);
  const sidp = instanceSid(setup.setupId, sid);
  const group = groupOf(setup.curve);
  const { msg, choices, rows } = kosReceiverExtend(setup.seeds0, setup.seeds1, sidp, MUL_XI, cheat);
  const g = gadget(setup.curve);
  let b = 0n;
  for (let j = 0; j < MUL_XI; j++) if (bitAt(choices, j)) b += g[j]!;
  b = group.reduce(b);
  const state: MulBobState = { kind: 'mul-bob-state', used: false, curve: setup.curve, sidp, beta: choices, rows, msgDigest: digestOf(msg), b };
  return { state, b, msg };
}

/**
 * Message 2 (Alice → Bob). Returns Alice's shares c_A with c_A[k] + c_B[k] = a[k]·b. Answer at most
 * once per sid: two answers to one extension (fresh ã each time) would show Bob a − a' for two
 * different inputs.
 */
export function mulAliceRespond(
  setup: MulAliceSetup,
  sid: Uint8Array,
  a: readonly [bigint, bigint],
  msg: Uint8Array,
  cheat?: MulAliceCheat,
): { cA: [bigint, bigint]; msg: Uint8Array } {
  checkAliceSetup(setup);
  const group = groupOf(setup.curve);
  const q = group.order;
  if (!Array.isArray(a) || a.length !== 2 || a.some((x) => typeof x !== 'bigint' || x < 0n || x >= q)) {
    throw new TesseraError(ErrorCode.BadScalar, 'mul: Alice\'s inputs must be two scalars in [0, q)');
  }
  const sidp = instanceSid(setup.setupId, sid);
  const rows = kosSenderExtend(setup.delta, setup.seeds, sidp, MUL_XI, msg);
  const msgDigest = digestOf(msg);
  // ã (pads) and â (check values), interleaved as the correlation (ã₀, â₀, ã₁, â₁).
  const corr = [randomScalarIn(setup.curve), randomScalarIn(setup.curve), randomScalarIn(setup.curve), randomScalarIn(setup.curve)];
  const out = new Uint8Array(MUL_ALICE_MSG_LENGTH);
  // Rows q_j and q_j ⊕ Δ, interleaved, hashed in one batch: v⁰_j, v¹_j = RO(sid', j, ·) (wide, unreduced).
  const xs = new Uint8Array(2 * MUL_XI * ROW_BYTES);
  for (let j = 0; j < MUL_XI; j++) {
    const o = 2 * j * ROW_BYTES;
    for (let k = 0; k < ROW_BYTES; k++) {
      const v = rows[j * ROW_BYTES + k]!;
      xs[o + k] = v;
      xs[o + ROW_BYTES + k] = v ^ setup.delta[k]!;
    }
  }
  zeroize(rows);
  const pads = rotOutputs(sidp, xs, (n) => n >>> 1);
  zeroize(xs);
  const v = wideScalars(pads, 2 * MUL_XI); // v[(2j + b)·WIDTH + k] = v^b_j[k]
  zeroize(pads);
  const taus: bigint[] = new Array(MUL_XI * WIDTH);
  // c + q·2^(8·WIDE) ≡ c (mod q) exceeds every wide v⁰, so v¹ − v⁰ + it is positive: one reduction, no sign fix.
  const lift = q << BigInt(8 * WIDE);
  const corrLifted = corr.map((c) => c + lift);
  for (let j = 0; j < MUL_XI; j++) {
    for (let k = 0; k < WIDTH; k++) {
      const c = cheat?.correlation ? group.reduce(cheat.correlation(j, k, corr[k]!)) + lift : corrLifted[k]!;
      // τ = v¹ − v⁰ + c mod q (v⁰, v¹ wide; bigint arithmetic is not constant time in JavaScript in any case).
      taus[j * WIDTH + k] = (v[(2 * j + 1) * WIDTH + k]! - v[2 * j * WIDTH + k]! + c) % q;
    }
  }
  writeScalars(out, 0, taus);
  const tauBytes = out.subarray(0, MUL_XI * WIDTH * SCALAR);
  const chi = checkCoefficients(q, sidp, msgDigest, tauBytes);
  const g = gadget(setup.curve);
  const rBytes = new Uint8Array(2 * MUL_XI * SCALAR);
  const rs: bigint[] = new Array(2 * MUL_XI);
  const cA: [bigint, bigint] = [0n, 0n];
  const tail: bigint[] = [];
  for (let i = 0; i < 2; i++) {
    const chiT = chi[2 * i]!;
    const chiH = chi[2 * i + 1]!;
    let acc = 0n;
    for (let j = 0; j < MUL_XI; j++) {
      // Alice's shares z_A,j = v⁰_j, used unreduced (every sum below is reduced once).
      const zt = v[2 * j * WIDTH + 2 * i]!;
      const zh = v[2 * j * WIDTH + 2 * i + 1]!;
      rs[i * MUL_XI + j] = (chiT * zt + chiH * zh) % q;
      acc += g[j]! * zt;
    }
    cA[i] = acc % q;
    tail[i] = group.add(group.mul(chiT, corr[2 * i]!), group.mul(chiH, corr[2 * i + 1]!)); // u_i
    tail[2 + i] = group.sub(a[i]!, corr[2 * i]!); // γ_i
  }
  writeScalars(rBytes, 0, rs);
  let o = MUL_XI * WIDTH * SCALAR;
  writeScalars(out, o, tail);
  o += 4 * SCALAR;
  out.set(hashChecks(sidp, rBytes), o);
  zeroize(rBytes);
  return { cA, msg: out };
}

/**
 * Bob's output c_B (wipes and consumes the state). Throws BadMessage for a malformed message and
 * BadProof when DKLs19 Protocol 1's consistency check fails (no culprit: the check uses Bob's
 * private state, so no third party could confirm it).
 */
export function mulBobFinish(state: MulBobState, msg: Uint8Array): [bigint, bigint] {
  if (state?.kind !== 'mul-bob-state' || state.used) throw new TesseraError(ErrorCode.BadState, 'mul: Bob\'s state is missing or already used');
  state.used = true;
  try {
    const group = groupOf(state.curve);
    const q = group.order;
    if (!(msg instanceof Uint8Array) || msg.length !== MUL_ALICE_MSG_LENGTH) badMsg(`Alice's message must be ${MUL_ALICE_MSG_LENGTH} bytes`);
    // Strict decoding before any use of secrets: every scalar canonical.
    const tau = readScalars(q, msg, 0, MUL_XI * WIDTH, 'τ');
    let o = MUL_XI * WIDTH * SCALAR;
    const u = readScalars(q, msg, o, 2, 'u');
    const gamma = readScalars(q, msg, o + 2 * SCALAR, 2, 'γ');
    o += 4 * SCALAR;
    const rTilde = msg.subarray(o, o + 32);

    const chi = checkCoefficients(q, state.sidp, state.msgDigest, msg.subarray(0, MUL_XI * WIDTH * SCALAR));
    // w_j = v^{β_j}_j = RO(sid', j, t_j), wide and unreduced; z_B,j = β_j·τ_j − w_j, also left unreduced
    // (in (−2^384, q)): every sum below is reduced once.
    const pads = rotOutputs(state.sidp, state.rows, (n) => n);
    const w = wideScalars(pads, MUL_XI);
    zeroize(pads);
    const zB: bigint[] = new Array(MUL_XI * WIDTH);
    for (let j = 0; j < MUL_XI; j++) {
      const bit = bitAt(state.beta, j);
      for (let k = 0; k < WIDTH; k++) zB[j * WIDTH + k] = (bit ? tau[j * WIDTH + k]! : 0n) - w[j * WIDTH + k]!;
    }
    const g = gadget(state.curve);
    const rBytes = new Uint8Array(2 * MUL_XI * SCALAR);
    const rs: bigint[] = new Array(2 * MUL_XI);
    const cB: [bigint, bigint] = [0n, 0n];
    for (let i = 0; i < 2; i++) {
      const chiT = chi[2 * i]!;
      const chiH = chi[2 * i + 1]!;
      let acc = 0n;
      for (let j = 0; j < MUL_XI; j++) {
        const zt = zB[j * WIDTH + 2 * i]!;
        const zh = zB[j * WIDTH + 2 * i + 1]!;
        const bu = bitAt(state.beta, j) ? u[i]! : 0n;
        const r = (bu - chiT * zt - chiH * zh) % q;
        rs[i * MUL_XI + j] = r < 0n ? r + q : r;
        acc += g[j]! * zt;
      }
      const c = acc % q;
      cB[i] = group.add(group.mul(state.b, gamma[i]!), c < 0n ? c + q : c);
    }
    writeScalars(rBytes, 0, rs);
    const ok = equalBytes(hashChecks(state.sidp, rBytes), rTilde);
    zeroize(rBytes);
    if (!ok) {
      throw new TesseraError(ErrorCode.BadProof, 'mul: the multiplication consistency check failed (DKLs19 Protocol 1, DKLs23 Protocol 5.2); discard this pairwise setup');
    }
    return cB;
  } finally {
    zeroize(state.beta, state.rows);
  }
}
