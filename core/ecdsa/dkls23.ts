/**
 * DKLs23 threshold ECDSA signing: Doerner, Kondi, Lee, shelat, "Threshold ECDSA in Three Rounds",
 * IEEE S&P 2024, ePrint 2023/765, Protocol 3.6 (signing) in its threshold form: any t players P holding
 * Shamir shares p(i) of the key x sign with additive shares sk_i = λ_i(P)·p(i) (λ_i the Lagrange
 * coefficient of i at 0 over P, core/shamir.ts), using the two-party multiplication F_RVOLE of
 * core/ecdsa/mul.ts for every ordered pair (the per-pair setups come from the key's pairwise setup).
 *
 * Notation (Protocol 3.6): r_i the instance key (nonce share), R_i = r_i·G, φ_i the inversion mask,
 * χ_ij P_i's random input as Bob in the multiplication with Alice = P_j, (c^u, c^v) Alice's and
 * (d^u, d^v) Bob's outputs, Γ^u = c^u·G, Γ^v = c^v·G, ψ_ij = φ_i - χ_ij.
 * The players compute additive shares of u = r·φ and v = sk·φ; with R = Σ R_i, r_x = x(R) mod q and
 * e the message digest as a scalar, s = Σ w_i / Σ u_i where w_i = e·φ_i + r_x·v_i, i.e.
 * s = (e + r_x·sk)·φ / (r·φ) = r^{-1}(e + r_x·sk): a standard ECDSA signature under nonce r.
 *
 *   round 1 (signRound1)  step 5–6: sample r_i, φ_i; broadcast a commitment to R_i; start F_RVOLE
 *                          as Bob with every P_j (one message to each).
 *   round 2 (signRound2)  step 7: sk_i = λ_i·p(i); continue F_RVOLE as Alice with input (r_i, sk_i);
 *                          broadcast the decommitment of R_i; send each P_j Γ^u, Γ^v, ψ and the F_RVOLE reply.
 *   round 3 (signRound3)  steps 8–9: check every decommitment and the Γ consistency checks, finish
 *                          F_RVOLE as Bob, compute u_i, v_i; with the message digest, w_i; broadcast (u_i, w_i).
 *   combine               step 10: s = Σ w_i / Σ u_i, low-s normalised, verified under the group key.
 *
 * Rounds 1 and 2 never see the message: the digest enters only in signRound3 (and combine). The
 * message-free part of round 3 is `presign` (the checks, u_i and v_i), and `signWithPresignature` is the
 * online part, so rounds 1–2 plus `presign` can run ahead and leave one round per signature.
 *
 * Session binding: every commitment and every F_RVOLE session id hashes the caller's session id, the
 * curve, the group key and the ordered signer set (and for F_RVOLE the ordered pair), so no message
 * of one session or signer set is valid in another.
 *
 * Culprits: an abort names party j only where a third party holding j's signed messages could check it:
 * a malformed message from j, or a decommitment from j that does not open the commitment j broadcast.
 * The Γ consistency checks and F_RVOLE's own checks use this party's private values (χ, d), so their
 * failure names no one, and neither does a final signature that does not verify.
 *
 * Deviation from the paper, on purpose: Protocol 3.6 adds a zero-share ζ_i (F_Zero) to sk_i and has P_j
 * send pk_j = sk_j·G, checked by Σ pk_j = pk. Here there is no F_Zero (the pairwise setup has no shared
 * seeds for it yet): pk_j = λ_j·Y_j is computed by every player from the public verifying share Y_j of
 * the key package, and Σ_j pk_j = X is checked once in round 1 (it holds iff the package is consistent).
 *
 * Secret state: the round states keep r_i, φ_i, sk_i, χ_ij, c^u, c^v, u_i, v_i as byte arrays, used once
 * and zeroized on every exit (success or abort; `discardSignState` for a session abandoned between
 * rounds). Scalars exist as bigints only inside a round function; bigints cannot be wiped in JavaScript,
 * so those copies live until the garbage collector reclaims them.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { equalBytes, framed, i2osp, utf8ToBytes, zeroize } from '../bytes.js';
import { ErrorCode, TesseraError, ensure, isTesseraError } from '../errors.js';
import type { Group, Point } from '../group.js';
import { partyIndices, verifyingShareOf } from '../committee.js';
import type { PublicKeyPackage } from '../types.js';
import { checkPackageCommittee, checkPlayers, lagrangeAtZero } from '../shamir.js';
import { P256, SECP256K1 } from '../suites.js';
import { wipeProbe, type WipeProbe } from '../wipe.js';
import {
  mulAliceRespond,
  mulBobFinish,
  mulBobStart,
  type MulAliceCheat,
  type MulAliceSetup,
  type MulBobCheat,
  type MulBobSetup,
  type MulBobState,
} from './mul.js';
import {
  checkDigest,
  checkEcdsaCurve,
  digestToScalar,
  finalizeSignature,
  rFromCompressedPoint,
  verifyEcdsa,
  type EcdsaCurveName,
  type FinalEcdsaSignature,
} from './signature.js';

// ---------------------------------------------------------------------------------------------
// Inputs

/** The public key package of a t-of-n ECDSA key (what the DKG or an import produced). Public. */
export interface EcdsaKeyPackage {
  readonly curve: EcdsaCurveName;
  readonly threshold: number;
  /** X = x·G, SEC 1 compressed (33 bytes). */
  readonly groupKey: Uint8Array;
  /**
   * Y_i = p(i)·G, SEC 1 compressed, for every party i in committee order: verifyingShares[k] belongs to
   * party indices[k] (1..n when `indices` is absent; core/committee.ts).
   */
  readonly verifyingShares: readonly Uint8Array[];
  /** The key's committee when it is not 1..n (core/types.ts PublicKeyPackage.indices). */
  readonly indices?: readonly number[];
}

/** The committee view of an ECDSA key package (core/committee.ts takes parties, indices and verifying shares). */
function committeeOf(pkg: EcdsaKeyPackage): Pick<PublicKeyPackage, 'parties' | 'indices' | 'verifyingShares'> {
  const { verifyingShares, indices } = pkg;
  return indices !== undefined ? { parties: verifyingShares.length, indices, verifyingShares } : { parties: verifyingShares.length, verifyingShares };
}

/** What one player holds to sign: its Shamir share and its multiplication setups with every other player. */
export interface EcdsaSigningKey {
  readonly pkg: EcdsaKeyPackage;
  /** This player's index i (1-based). */
  readonly index: number;
  /** p(i), 32 bytes big-endian. Secret. */
  readonly share: Uint8Array;
  /** For each other player j: the setup where this player is Alice and j is Bob. */
  readonly mulAlice: ReadonlyMap<number, MulAliceSetup>;
  /** For each other player j: the setup where this player is Bob and j is Alice. */
  readonly mulBob: ReadonlyMap<number, MulBobSetup>;
}

// ---------------------------------------------------------------------------------------------
// Messages (what is sent)

/** Round 1, broadcast (echo-checked by the session layer): the commitment to R_i (step 6). */
export interface Round1Broadcast {
  readonly commitment: Uint8Array;
}
/** Round 1, to one P_j: this player's first F_RVOLE message as Bob (step 6). */
export interface Round1Direct {
  readonly mul: Uint8Array;
}
/**
 * Round 2, broadcast (echo-checked by the session layer; step 7 "decommit"): R_i and the salt that open
 * the round-1 commitment. Sent as a broadcast, not inside the pairwise messages, so that a decommitment
 * that fails to open is evidence a third party can check with two of P_i's signed broadcasts alone.
 */
export interface Round2Broadcast {
  readonly R: Uint8Array;
  readonly salt: Uint8Array;
}
/** Round 2, to one P_j (step 7): the check values Γ^u, Γ^v, ψ and the F_RVOLE reply as Alice. */
export interface Round2Direct {
  readonly gammaU: Uint8Array;
  readonly gammaV: Uint8Array;
  readonly psi: Uint8Array;
  readonly mul: Uint8Array;
}
/** Round 3, broadcast (step 9): this player's shares u_i of r·φ and w_i of (e + r_x·sk)·φ. */
export interface Round3Broadcast {
  readonly u: Uint8Array;
  readonly w: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Secret round state (what is kept); each is used once

interface Common {
  readonly curve: EcdsaCurveName;
  readonly index: number;
  /** The signer set, sorted. */
  readonly signers: readonly number[];
  readonly sessionId: Uint8Array;
  readonly pkg: EcdsaKeyPackage;
  /** Session binding: H(curve, session id, group key, signers), hashed into everything. */
  readonly binding: Uint8Array;
  /** pk_j = λ_j·Y_j for every signer j (public; checked to sum to the group key in round 1). */
  readonly pks: ReadonlyMap<number, Point>;
}

export interface SignRound1State extends Common {
  readonly kind: 'dkls23-round1';
  consumed: boolean;
  /** p(i). Secret (a private copy). */
  readonly share: Uint8Array;
  /** r_i, φ_i. Secret. */
  readonly r: Uint8Array;
  readonly phi: Uint8Array;
  /** R_i and its commitment salt (public once decommitted). */
  readonly R: Uint8Array;
  readonly salt: Uint8Array;
  /** χ_ij per j. Secret. */
  readonly chi: Map<number, Uint8Array>;
  /** F_RVOLE Bob state per j (wiped by mulBobFinish). Secret. */
  readonly mulBob: Map<number, MulBobState>;
  readonly mulAlice: ReadonlyMap<number, MulAliceSetup>;
}

export interface SignRound2State extends Common {
  readonly kind: 'dkls23-round2';
  consumed: boolean;
  /** r_i, φ_i, sk_i = λ_i·p(i). Secret. */
  readonly r: Uint8Array;
  readonly phi: Uint8Array;
  readonly sk: Uint8Array;
  readonly R: Uint8Array;
  readonly chi: Map<number, Uint8Array>;
  readonly mulBob: Map<number, MulBobState>;
  /** Alice's outputs c^u_ij, c^v_ij per j. Secret. */
  readonly cU: Map<number, Uint8Array>;
  readonly cV: Map<number, Uint8Array>;
  /** The commitment each P_j broadcast in round 1. Public. */
  readonly commitments: ReadonlyMap<number, Uint8Array>;
}

/**
 * The message-free result of the protocol for this player (steps 8–9 without w_i): R and the secret
 * shares φ_i, u_i, v_i. Used for exactly one message: two w_i under one φ_i reveal φ_i, and two
 * signatures under one R reveal the key.
 */
export interface Presignature extends Common {
  readonly kind: 'dkls23-presignature';
  consumed: boolean;
  /** R = Σ R_j, SEC 1 compressed. Public. */
  readonly R: Uint8Array;
  readonly phi: Uint8Array;
  readonly u: Uint8Array;
  readonly v: Uint8Array;
}

/** After round 3: public values combine needs. */
export interface SignRound3State extends Common {
  readonly kind: 'dkls23-round3';
  readonly R: Uint8Array;
  readonly digest: Uint8Array;
  /** A private copy of what this player broadcast in round 3. */
  readonly own: Round3Broadcast;
}

export type SignState = SignRound1State | SignRound2State | Presignature;

/** Wipe a state that will not be used (an aborted or abandoned session). Safe to call more than once. */
export function discardSignState(state: SignState): void {
  state.consumed = true;
  zeroize(...secretArrays(state));
}

/** A probe over the secret byte arrays a state holds now (tests check they are wiped; core/wipe.ts). */
export function signStateWipeProbe(state: SignState): WipeProbe {
  return wipeProbe(secretArrays(state));
}

function secretArrays(state: SignState): Uint8Array[] {
  switch (state.kind) {
    case 'dkls23-round1':
      return [state.share, state.r, state.phi, ...state.chi.values()];
    case 'dkls23-round2':
      return [state.r, state.phi, state.sk, ...state.chi.values(), ...state.cU.values(), ...state.cV.values()];
    case 'dkls23-presignature':
      return [state.phi, state.u, state.v];
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const DST_BINDING = utf8ToBytes('tessera/dkls23/v1/session');
const DST_COMMIT = utf8ToBytes('tessera/dkls23/v1/commit-R');
const DST_MUL = utf8ToBytes('tessera/dkls23/v1/mul-sid');
const SALT_BYTES = 32;
const COMMITMENT_BYTES = 32;
const SCALAR_BYTES = 32;
const POINT_BYTES = 33;

function groupOf(curve: EcdsaCurveName): Group {
  return curve === 'secp256k1' ? SECP256K1.group : P256.group;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

function sessionBinding(curve: EcdsaCurveName, sessionId: Uint8Array, groupKey: Uint8Array, signers: readonly number[]): Uint8Array {
  return sha256(framed(DST_BINDING, utf8ToBytes(curve), sessionId, groupKey, Uint8Array.from(signers)));
}

/** Step 6: com_i = H(binding, i, R_i, salt) (the random-oracle commitment of the paper's F_Com). */
function commitR(binding: Uint8Array, index: number, R: Uint8Array, salt: Uint8Array): Uint8Array {
  return sha256(framed(DST_COMMIT, binding, i2osp(index, 1), R, salt));
}

/** The F_RVOLE session id of the ordered pair (alice, bob) in this session (Protocol 3.6 binds both indexes). */
function mulSessionId(binding: Uint8Array, alice: number, bob: number): Uint8Array {
  return sha256(framed(DST_MUL, binding, i2osp(alice, 1), i2osp(bob, 1)));
}

/** Run `fn` on a value from P_j; any failure is a malformed message from j (checkable on j's signed message). */
function fromPeer<T>(j: number, what: string, fn: () => T): T {
  try {
    return fn();
  } catch {
    throw new TesseraError(ErrorCode.BadMessage, `${what} from party ${j} is malformed`, [j]);
  }
}

function peerBytes(j: number, v: unknown, what: string, length: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== length) {
    throw new TesseraError(ErrorCode.BadMessage, `${what} from party ${j}: expected ${length} bytes`, [j]);
  }
  return v;
}

/** The messages of a round: a Map with exactly one entry per expected party. */
function checkFrom<T>(msgs: unknown, expected: readonly number[], what: string): ReadonlyMap<number, T> {
  ensure(msgs instanceof Map, ErrorCode.BadInput, `${what}: expected a Map keyed by party index`);
  for (const k of msgs.keys()) {
    ensure(expected.includes(k as number), ErrorCode.UnexpectedParty, `${what}: unexpected party ${String(k)}`);
  }
  for (const j of expected) ensure(msgs.has(j), ErrorCode.UnexpectedParty, `${what}: missing the message of party ${j}`);
  for (const j of expected) {
    if (!isObject(msgs.get(j))) throw new TesseraError(ErrorCode.BadMessage, `${what} from party ${j} is not an object`, [j]);
  }
  return msgs as ReadonlyMap<number, T>;
}

function others(c: Common): number[] {
  return c.signers.filter((j) => j !== c.index);
}

function checkStateUse<S extends { kind: string; consumed: boolean }>(state: S, kind: S['kind'], what: string): void {
  ensure(isObject(state) && state.kind === kind, ErrorCode.BadState, `${what}: expected a ${kind} state`);
  ensure(!state.consumed, ErrorCode.BadState, `${what}: this state was already used`);
  state.consumed = true;
}

/** pk_j = λ_j(P)·Y_j: P_j's additive key share in the exponent (step 7/8, computed from public data). */
function publicShares(group: Group, pkg: EcdsaKeyPackage, signers: readonly number[]): Map<number, Point> {
  const out = new Map<number, Point>();
  for (const j of signers) {
    const Y = group.pointFromBytes(verifyingShareOf(committeeOf(pkg), j), `verifying share ${j}`);
    out.set(j, group.mulPoint(Y, lagrangeAtZero(group, signers, j)));
  }
  return out;
}

function packageDigest(pkg: EcdsaKeyPackage): Uint8Array {
  // The committee only when the package names one: the digest of a key on nodes 1..n is unchanged.
  const committee = pkg.indices !== undefined ? [utf8ToBytes('indices'), Uint8Array.from(pkg.indices)] : [];
  return sha256(framed(utf8ToBytes(pkg.curve), i2osp(pkg.threshold, 1), pkg.groupKey, ...pkg.verifyingShares, ...committee));
}

/**
 * Signer sets whose pk_j passed the Σ pk_j = X check, per package (keyed by the package object, and
 * used only while the package's bytes still hash to the digest they had): repeated signing with one
 * key and signer set does not redo t scalar multiplications of public points.
 */
const CHECKED_SETS = new WeakMap<EcdsaKeyPackage, { digest: Uint8Array; sets: Map<string, ReadonlyMap<number, Point>> }>();

/** Shares whose match with their verifying share was checked: the package digest, index and a share digest. */
const MATCHED_SHARES = new WeakMap<Uint8Array, { pkgDigest: Uint8Array; index: number; digest: Uint8Array }>();

function checkPackage(pkg: EcdsaKeyPackage): EcdsaCurveName {
  ensure(isObject(pkg), ErrorCode.BadInput, 'key package: expected an object');
  const curve = checkEcdsaCurve(pkg.curve);
  ensure(pkg.groupKey instanceof Uint8Array && pkg.groupKey.length === POINT_BYTES, ErrorCode.BadInput, 'key package: group key must be 33 bytes');
  ensure(Array.isArray(pkg.verifyingShares), ErrorCode.BadInput, 'key package: verifying shares must be a list');
  const n = pkg.verifyingShares.length;
  ensure(
    Number.isSafeInteger(pkg.threshold) && pkg.threshold >= 2 && pkg.threshold <= n && n <= 255,
    ErrorCode.BadParameters,
    'key package: bad threshold or party count',
  );
  checkPackageCommittee({ threshold: pkg.threshold, parties: n, indices: pkg.indices }, 'key package');
  const committee = partyIndices(committeeOf(pkg));
  for (const [k, y] of pkg.verifyingShares.entries()) {
    ensure(y instanceof Uint8Array && y.length === POINT_BYTES, ErrorCode.BadInput, `key package: verifying share of party ${committee[k]} must be 33 bytes`);
  }
  return curve;
}

// ---------------------------------------------------------------------------------------------
// Malicious-party tests

/**
 * Tests only; never passed by honest code (the malicious-node harness, node/sessions/deviations.ts).
 * Per peer j, the deviation of this signer's F_RVOLE with P_j, as an adversary would run it:
 * `mulBob(j)` as Bob in round 1 (core/ecdsa/ote.ts KosReceiverCheat: columns changed before the KOS
 * check is derived), `mulAlice(j)` as Alice in round 2 (core/ecdsa/mul.ts MulAliceCheat: an
 * inconsistent correlation, the selective-failure attack DKLs19 Protocol 1's check defends against).
 */
export interface SignCheat {
  readonly mulBob?: (j: number) => MulBobCheat | undefined;
  readonly mulAlice?: (j: number) => MulAliceCheat | undefined;
}

// ---------------------------------------------------------------------------------------------
// Round 1 (Protocol 3.6 steps 4–6)

/**
 * Start a signing session as player `key.index` among `signers` (exactly t players, including this one).
 * `sessionId` (16..64 bytes) must be unique per session (the caller's run id); it is bound into every
 * commitment and every F_RVOLE session. Does not depend on the message.
 */
export function signRound1(
  key: EcdsaSigningKey,
  sessionId: Uint8Array,
  signers: readonly number[],
  cheat?: SignCheat,
): { state: SignRound1State; broadcast: Round1Broadcast; direct: Map<number, Round1Direct> } {
  ensure(isObject(key), ErrorCode.BadInput, 'signing key: expected an object');
  const curve = checkPackage(key.pkg);
  const group = groupOf(curve);
  ensure(sessionId instanceof Uint8Array && sessionId.length >= 16 && sessionId.length <= 64, ErrorCode.BadInput, 'session id: expected 16..64 bytes');
  const sorted = checkPlayers(signers, key.pkg.indices ?? key.pkg.verifyingShares.length);
  // Step 4: exactly t signers (the Lagrange coefficients are those of this set).
  ensure(sorted.length === key.pkg.threshold, ErrorCode.BadParameters, `need exactly ${key.pkg.threshold} signers, got ${sorted.length}`);
  ensure(sorted.includes(key.index), ErrorCode.BadParameters, `party ${String(key.index)} is not among the signers`);
  ensure(key.share instanceof Uint8Array && key.share.length === SCALAR_BYTES, ErrorCode.BadInput, 'secret share: expected 32 bytes');
  ensure(key.mulAlice instanceof Map && key.mulBob instanceof Map, ErrorCode.BadInput, 'signing key: multiplication setups must be Maps');

  const share = group.scalarFromBytes(key.share, 'secret share');
  const pkgDigest = packageDigest(key.pkg);
  // Our share must be the one the package vouches for, or every Γ^v we send would fail honest checks.
  const shareDigest = sha256(key.share);
  const matched = MATCHED_SHARES.get(key.share);
  if (!(matched && matched.index === key.index && equalBytes(matched.pkgDigest, pkgDigest) && equalBytes(matched.digest, shareDigest))) {
    ensure(
      group.eqPoints(group.mulBase(share), group.pointFromBytes(verifyingShareOf(committeeOf(key.pkg), key.index), `verifying share ${key.index}`)),
      ErrorCode.BadShare,
      `secret share of party ${key.index} does not match its verifying share`,
    );
    MATCHED_SHARES.set(key.share, { pkgDigest, index: key.index, digest: shareDigest });
  }
  // Step 8, second consistency check (Σ_j pk_j = pk), done here on public data: with pk_j = λ_j·Y_j it
  // holds iff the signers' verifying shares interpolate to the group key.
  let cached = CHECKED_SETS.get(key.pkg);
  if (!cached || !equalBytes(cached.digest, pkgDigest)) {
    cached = { digest: pkgDigest, sets: new Map() };
    CHECKED_SETS.set(key.pkg, cached);
  }
  const setKey = sorted.join(',');
  let pks = cached.sets.get(setKey);
  if (!pks) {
    const computed = publicShares(group, key.pkg, sorted);
    const groupKey = group.pointFromBytes(key.pkg.groupKey, 'group key');
    ensure(
      group.eqPoints(group.msm([...computed.values()], [...computed.values()].map(() => 1n)), groupKey),
      ErrorCode.BadInput,
      "key package: the signers' verifying shares do not interpolate to the group key",
    );
    pks = computed;
    cached.sets.set(setKey, pks);
  }
  const binding = sessionBinding(curve, sessionId, key.pkg.groupKey, sorted);
  const common: Common = {
    curve,
    index: key.index,
    signers: Object.freeze(sorted),
    sessionId: Uint8Array.from(sessionId),
    pkg: key.pkg,
    binding,
    pks,
  };
  for (const j of others(common)) {
    ensure(key.mulAlice.has(j) && key.mulBob.has(j), ErrorCode.BadInput, `signing key: no multiplication setup with party ${j}`);
  }

  // Step 5: instance key r_i, inversion mask φ_i, R_i = r_i·G.
  const r = group.randomScalar();
  const phi = group.randomScalar();
  const R = group.pointToBytes(group.mulBase(r));
  // Step 6: commit to R_i (one commitment, broadcast to all).
  const salt = randomBytes(SALT_BYTES);
  const commitment = commitR(binding, key.index, R, salt);

  // Step 6: F_RVOLE as Bob with every P_j (Bob's input χ_ij is sampled inside F_RVOLE).
  const chi = new Map<number, Uint8Array>();
  const mulBob = new Map<number, MulBobState>();
  const direct = new Map<number, Round1Direct>();
  try {
    for (const j of others(common)) {
      const started = mulBobStart(key.mulBob.get(j)!, mulSessionId(binding, j, key.index), cheat?.mulBob?.(j));
      chi.set(j, group.scalarToBytes(started.b));
      mulBob.set(j, started.state);
      direct.set(j, { mul: started.msg });
    }
  } catch (e) {
    zeroize(...chi.values());
    if (isTesseraError(e)) throw e;
    throw new TesseraError(ErrorCode.SessionAborted, 'round 1 failed');
  }
  const state: SignRound1State = {
    ...common,
    kind: 'dkls23-round1',
    consumed: false,
    share: Uint8Array.from(key.share),
    r: group.scalarToBytes(r),
    phi: group.scalarToBytes(phi),
    R,
    salt,
    chi,
    mulBob,
    mulAlice: key.mulAlice,
  };
  return { state, broadcast: { commitment }, direct };
}

// ---------------------------------------------------------------------------------------------
// Round 2 (step 7)

/**
 * Given every other signer's round-1 broadcast (its commitment) and its F_RVOLE message to this
 * player, run F_RVOLE as Alice with input (r_i, sk_i); broadcast the decommitment (R_i, salt) and send
 * each P_j the check values Γ^u_ij = c^u_ij·G, Γ^v_ij = c^v_ij·G, ψ_ij = φ_i - χ_ij and the F_RVOLE reply.
 * Does not depend on the message. Consumes and wipes the round-1 state (on success and on failure; the
 * F_RVOLE Bob states it holds are dropped, since mul.ts offers no wipe for an unfinished one).
 */
export function signRound2(
  state: SignRound1State,
  broadcasts: ReadonlyMap<number, Round1Broadcast>,
  direct: ReadonlyMap<number, Round1Direct>,
  cheat?: SignCheat,
): { state: SignRound2State; broadcast: Round2Broadcast; direct: Map<number, Round2Direct> } {
  checkStateUse(state, 'dkls23-round1', 'signRound2');
  const group = groupOf(state.curve);
  const cU = new Map<number, Uint8Array>();
  const cV = new Map<number, Uint8Array>();
  let sk: Uint8Array | undefined;
  let r: Uint8Array | undefined;
  let phi: Uint8Array | undefined;
  let chi: Map<number, Uint8Array> | undefined;
  let ok = false;
  try {
    const peers = others(state);
    const b1 = checkFrom<Round1Broadcast>(broadcasts, peers, 'round-1 broadcast');
    const d1 = checkFrom<Round1Direct>(direct, peers, 'round-1 message');
    const commitments = new Map<number, Uint8Array>();
    for (const j of peers) {
      commitments.set(j, Uint8Array.from(peerBytes(j, b1.get(j)!.commitment, 'round-1 commitment', COMMITMENT_BYTES)));
      ensure(d1.get(j)!.mul instanceof Uint8Array, ErrorCode.BadMessage, `round-1 multiplication message from party ${j}: expected bytes`, [j]);
    }
    // Step 7: sk_i = λ_i(P)·p(i).
    const rScalar = group.scalarFromBytes(state.r, 'r_i');
    const phiScalar = group.scalarFromBytes(state.phi, 'φ_i');
    const skScalar = group.mul(lagrangeAtZero(group, state.signers, state.index), group.scalarFromBytes(state.share, 'secret share'));
    const out = new Map<number, Round2Direct>();
    for (const j of peers) {
      // F_RVOLE as Alice with P_j as Bob; its errors are its own (they name no one unless checkable).
      const res = mulAliceRespond(state.mulAlice.get(j)!, mulSessionId(state.binding, state.index, j), [rScalar, skScalar], d1.get(j)!.mul, cheat?.mulAlice?.(j));
      cU.set(j, group.scalarToBytes(res.cA[0]));
      cV.set(j, group.scalarToBytes(res.cA[1]));
      const chiIJ = group.scalarFromBytes(state.chi.get(j)!, 'χ', true);
      out.set(j, {
        // Step 7 check-adjust values.
        gammaU: group.pointToBytes(group.mulBase(res.cA[0])),
        gammaV: group.pointToBytes(group.mulBase(res.cA[1])),
        psi: group.scalarToBytes(group.sub(phiScalar, chiIJ)),
        mul: res.msg,
      });
    }
    sk = group.scalarToBytes(skScalar);
    r = Uint8Array.from(state.r);
    phi = Uint8Array.from(state.phi);
    chi = new Map([...state.chi].map(([j, c]) => [j, Uint8Array.from(c)]));
    const next: SignRound2State = {
      curve: state.curve,
      index: state.index,
      signers: state.signers,
      sessionId: state.sessionId,
      pkg: state.pkg,
      binding: state.binding,
      pks: state.pks,
      kind: 'dkls23-round2',
      consumed: false,
      r,
      phi,
      sk,
      R: state.R,
      chi,
      mulBob: state.mulBob,
      cU,
      cV,
      commitments,
    };
    ok = true;
    // Decommitment of R_i (step 7 "decommit"), the same to everyone.
    return { state: next, broadcast: { R: state.R, salt: state.salt }, direct: out };
  } catch (e) {
    if (isTesseraError(e)) throw e;
    throw new TesseraError(ErrorCode.SessionAborted, 'round 2 failed');
  } finally {
    zeroize(...secretArrays(state));
    if (!ok) {
      zeroize(sk, r, phi, ...(chi?.values() ?? []), ...cU.values(), ...cV.values());
      state.mulBob.clear();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Round 3 (steps 8–9), split into the message-free presign and the online signature share

/**
 * Steps 8–9 without the message: for every P_j, check that (R_j, salt) opens the commitment P_j
 * broadcast in round 1, finish F_RVOLE as Bob (d^u_ij, d^v_ij), and run the consistency checks
 *   χ_ij·R_j = Γ^u_ji + d^u_ij·G   and   χ_ij·pk_j = Γ^v_ji + d^v_ij·G;
 * then R = Σ R_j, u_i = r_i·(φ_i + Σ ψ_ji) + Σ (c^u_ij + d^u_ij), v_i = sk_i·(φ_i + Σ ψ_ji) + Σ (c^v_ij + d^v_ij).
 * Consumes and wipes the round-2 state. The result signs exactly one message (signWithPresignature).
 */
export function presign(
  state: SignRound2State,
  broadcasts: ReadonlyMap<number, Round2Broadcast>,
  direct: ReadonlyMap<number, Round2Direct>,
): Presignature {
  checkStateUse(state, 'dkls23-round2', 'presign');
  const group = groupOf(state.curve);
  try {
    const peers = others(state);
    const b2 = checkFrom<Round2Broadcast>(broadcasts, peers, 'round-2 broadcast');
    const d2 = checkFrom<Round2Direct>(direct, peers, 'round-2 message');
    // Decode and check the form of every message before any F_RVOLE step.
    const decoded = new Map<number, { R: Point; Rbytes: Uint8Array; gammaU: Point; gammaV: Point; psi: bigint; mul: Uint8Array }>();
    for (const j of peers) {
      const m = d2.get(j)!;
      const Rbytes = peerBytes(j, b2.get(j)!.R, 'R', POINT_BYTES);
      const salt = peerBytes(j, b2.get(j)!.salt, 'salt', SALT_BYTES);
      const R = fromPeer(j, 'R', () => group.pointFromBytes(Rbytes, 'R'));
      const gammaU = fromPeer(j, 'Γ^u', () => group.pointFromBytes(peerBytes(j, m.gammaU, 'Γ^u', POINT_BYTES), 'Γ^u'));
      const gammaV = fromPeer(j, 'Γ^v', () => group.pointFromBytes(peerBytes(j, m.gammaV, 'Γ^v', POINT_BYTES), 'Γ^v'));
      const psi = fromPeer(j, 'ψ', () => group.scalarFromBytes(peerBytes(j, m.psi, 'ψ', SCALAR_BYTES), 'ψ', true));
      ensure(m.mul instanceof Uint8Array, ErrorCode.BadMessage, `round-2 multiplication message from party ${j}: expected bytes`, [j]);
      // Step 8: the decommitment must open P_j's round-1 commitment. Both are P_j's (signed) broadcasts,
      // so anyone can check this failure: P_j is named.
      if (!equalBytes(commitR(state.binding, j, Rbytes, salt), state.commitments.get(j)!)) {
        throw new TesseraError(ErrorCode.BadProof, `party ${j}'s R does not open the commitment it broadcast in round 1`, [j]);
      }
      decoded.set(j, { R, Rbytes, gammaU, gammaV, psi, mul: m.mul });
    }

    const r = group.scalarFromBytes(state.r, 'r_i');
    const phi = group.scalarFromBytes(state.phi, 'φ_i');
    const sk = group.scalarFromBytes(state.sk, 'sk_i');
    let phiSum = phi;
    let sumU = 0n;
    let sumV = 0n;
    const Rs: Point[] = [group.pointFromBytes(state.R, 'R_i')];
    for (const j of peers) {
      const m = decoded.get(j)!;
      // Finish F_RVOLE as Bob with P_j as Alice (its own checks throw; they name no one).
      const mulState = state.mulBob.get(j)!;
      state.mulBob.delete(j);
      const [dU, dV] = mulBobFinish(mulState, m.mul);
      const chi = group.scalarFromBytes(state.chi.get(j)!, 'χ', true);
      // Step 8, first consistency checks (they bind P_j's F_RVOLE input to R_j and to pk_j). They use
      // this player's private χ and d, so a failure is not checkable by others: no one is named.
      if (!group.eqPoints(group.mulPoint(m.R, chi), group.addPoints(m.gammaU, group.mulBase(dU)))) {
        throw new TesseraError(ErrorCode.SessionAborted, `consistency check on the u-values with party ${j} failed (DKLs23 Protocol 3.6 step 8)`);
      }
      if (!group.eqPoints(group.mulPoint(state.pks.get(j)!, chi), group.addPoints(m.gammaV, group.mulBase(dV)))) {
        throw new TesseraError(ErrorCode.SessionAborted, `consistency check on the v-values with party ${j} failed (DKLs23 Protocol 3.6 step 8)`);
      }
      phiSum = group.add(phiSum, m.psi);
      sumU = group.add(sumU, group.add(group.scalarFromBytes(state.cU.get(j)!, 'c^u', true), dU));
      sumV = group.add(sumV, group.add(group.scalarFromBytes(state.cV.get(j)!, 'c^v', true), dV));
      Rs.push(m.R);
    }
    // Step 9: R = Σ R_j, u_i, v_i.
    const Rsum = group.msm(Rs, Rs.map(() => 1n));
    if (group.isIdentity(Rsum)) throw new TesseraError(ErrorCode.SessionAborted, 'the combined nonce point R is the identity');
    const u = group.add(group.mul(r, phiSum), sumU);
    const v = group.add(group.mul(sk, phiSum), sumV);
    return {
      curve: state.curve,
      index: state.index,
      signers: state.signers,
      sessionId: state.sessionId,
      pkg: state.pkg,
      binding: state.binding,
      pks: state.pks,
      kind: 'dkls23-presignature',
      consumed: false,
      R: group.pointToBytes(Rsum),
      phi: group.scalarToBytes(phi),
      u: group.scalarToBytes(u),
      v: group.scalarToBytes(v),
    };
  } catch (e) {
    if (isTesseraError(e)) throw e;
    throw new TesseraError(ErrorCode.SessionAborted, 'round 3 failed');
  } finally {
    zeroize(...secretArrays(state));
    state.mulBob.clear(); // F_RVOLE states not finished are dropped (mul.ts has no separate wipe for them)
  }
}

/**
 * The online part of step 9: w_i = e·φ_i + r_x·v_i for the message digest e (SEC 1 §4.1.3 step 5),
 * broadcast with u_i. Consumes and wipes the presignature: it can never sign a second message.
 */
export function signWithPresignature(presig: Presignature, digest: Uint8Array): { state: SignRound3State; broadcast: Round3Broadcast } {
  checkStateUse(presig, 'dkls23-presignature', 'signWithPresignature');
  try {
    checkDigest(digest);
    const group = groupOf(presig.curve);
    const e = digestToScalar(presig.curve, digest);
    const rx = rFromCompressedPoint(presig.curve, presig.R);
    ensure(rx !== 0n, ErrorCode.SessionAborted, 'r = x(R) mod q is zero');
    const phi = group.scalarFromBytes(presig.phi, 'φ_i');
    const v = group.scalarFromBytes(presig.v, 'v_i', true);
    const w = group.add(group.mul(e, phi), group.mul(rx, v));
    const broadcast: Round3Broadcast = { u: Uint8Array.from(presig.u), w: group.scalarToBytes(w) };
    const state: SignRound3State = {
      curve: presig.curve,
      index: presig.index,
      signers: presig.signers,
      sessionId: presig.sessionId,
      pkg: presig.pkg,
      binding: presig.binding,
      pks: presig.pks,
      kind: 'dkls23-round3',
      R: presig.R,
      digest: Uint8Array.from(digest),
      own: { u: Uint8Array.from(broadcast.u), w: Uint8Array.from(broadcast.w) },
    };
    return { state, broadcast };
  } finally {
    zeroize(...secretArrays(presig));
  }
}

/** Round 3 in one call: presign (steps 8–9 checks, u_i, v_i) then the signature share for `digest`. */
export function signRound3(
  state: SignRound2State,
  broadcasts: ReadonlyMap<number, Round2Broadcast>,
  direct: ReadonlyMap<number, Round2Direct>,
  digest: Uint8Array,
): { state: SignRound3State; broadcast: Round3Broadcast } {
  try {
    checkDigest(digest);
  } catch (e) {
    discardSignState(state);
    throw e;
  }
  return signWithPresignature(presign(state, broadcasts, direct), digest);
}

// ---------------------------------------------------------------------------------------------
// Combine (step 10)

/**
 * Step 10: s = Σ w_j / Σ u_j over every signer's round-3 broadcast (this player's included), low-s
 * normalised, and verified under the group key before it is returned. A failure names no one: which
 * share was wrong cannot be told from public data.
 */
export function combine(state: SignRound3State, broadcasts: ReadonlyMap<number, Round3Broadcast>): FinalEcdsaSignature {
  ensure(isObject(state) && state.kind === 'dkls23-round3', ErrorCode.BadState, 'combine: expected a dkls23-round3 state');
  const b3 = checkFrom<Round3Broadcast>(broadcasts, state.signers, 'round-3 broadcast');
  const own = b3.get(state.index)!;
  ensure(
    own.u instanceof Uint8Array && own.w instanceof Uint8Array && equalBytes(own.u, state.own.u) && equalBytes(own.w, state.own.w),
    ErrorCode.BadInput,
    'round-3 broadcasts: this player\'s own entry is not what it sent',
  );
  return combineShares({ curve: state.curve, R: state.R, digest: state.digest, groupKey: state.pkg.groupKey, signers: state.signers }, b3);
}

/**
 * Step 10 on public data alone: s = Σ w_j / Σ u_j over the round-3 broadcasts of exactly `signers`,
 * low-s normalised, verified under `groupKey` (SEC 1 §4.1.4) before it is returned. What `combine` does
 * after its own-entry check, and what a party outside the signers (the SDK combining shares made from
 * presignatures) does with R, the digest and every signer's (u_j, w_j). A failure names no one.
 */
export function combineShares(
  p: { curve: EcdsaCurveName; R: Uint8Array; digest: Uint8Array; groupKey: Uint8Array; signers: readonly number[] },
  broadcasts: ReadonlyMap<number, Round3Broadcast>,
): FinalEcdsaSignature {
  ensure(isObject(p), ErrorCode.BadInput, 'combine: expected the public values');
  const group = groupOf(checkEcdsaCurve(p.curve));
  checkDigest(p.digest);
  ensure(p.R instanceof Uint8Array && p.R.length === POINT_BYTES, ErrorCode.BadInput, `combine: R must be a ${POINT_BYTES}-byte compressed point`);
  ensure(p.groupKey instanceof Uint8Array, ErrorCode.BadInput, 'combine: the group key must be bytes');
  ensure(Array.isArray(p.signers) && p.signers.length >= 1, ErrorCode.BadInput, 'combine: expected the signer set');
  const b3 = checkFrom<Round3Broadcast>(broadcasts, p.signers, 'round-3 broadcast');
  let sumU = 0n;
  let sumW = 0n;
  for (const j of p.signers) {
    const m = b3.get(j)!;
    sumU = group.add(sumU, fromPeer(j, 'u', () => group.scalarFromBytes(peerBytes(j, m.u, 'u', SCALAR_BYTES), 'u', true)));
    sumW = group.add(sumW, fromPeer(j, 'w', () => group.scalarFromBytes(peerBytes(j, m.w, 'w', SCALAR_BYTES), 'w', true)));
  }
  if (sumU === 0n) throw new TesseraError(ErrorCode.VerificationFailed, 'the combined u is zero: the signature shares are inconsistent');
  const s = group.mul(sumW, group.inv(sumU));
  if (s === 0n) throw new TesseraError(ErrorCode.VerificationFailed, 'the combined s is zero');
  const sig = finalizeSignature(p.curve, p.R, s);
  // Step 10: verify the signature before output (SEC 1 §4.1.4).
  if (!verifyEcdsa(sig, p.digest, p.groupKey, { lowS: true })) {
    throw new TesseraError(ErrorCode.VerificationFailed, 'the combined ECDSA signature does not verify under the group key');
  }
  return sig;
}

/** Field sizes of the messages above, for a wire codec. */
export const DKLS23_SIZES = Object.freeze({ commitment: COMMITMENT_BYTES, salt: SALT_BYTES, scalar: SCALAR_BYTES, point: POINT_BYTES });
