/**
 * The pairwise setup of a threshold ECDSA key (DKLs23, ePrint 2023/765, §3 "Setup" of Protocol 3.6:
 * every ordered pair of parties initialises F_RVOLE once per key): for every ordered pair (Alice = i,
 * Bob = j) the five setup messages of core/ecdsa/mul.ts (VSOT base OTs, DKLs18 Protocol 7, whose pads
 * seed the KOS15 extension), run for all peers at once as five rounds of point-to-point messages.
 *
 * In round k this party sends every peer j one message: for odd k its Bob message in the pair
 * (Alice = j, Bob = self), for even k its Alice message in the pair (Alice = self, Bob = j). After round
 * 5 and the last Alice step, the party holds, for every peer, both its Alice and its Bob setup.
 *
 * Binding: the setup id of the pair (alice, bob) hashes the caller's binding (session id, run id, curve:
 * fresh for every key, refresh and import), so no setup message of one run is valid in another, and no
 * pair's message is valid for another pair.
 *
 * Culprits: none. The VSOT checks (DKLs18 Protocol 7 steps 1, 7, 8) are made with this party's private
 * values, so a third party could not confirm a failure; a failed setup aborts the session, naming no
 * one, and is simply run again.
 *
 * The result is stored sealed with the share (core/types.ts SecretShare.pairwise) by
 * encodePairwiseSetup: a secret, zeroized by its owner.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, framed, i2osp, utf8ToBytes, zeroize } from '../bytes.js';
import { ErrorCode, TesseraError, ensure, isTesseraError } from '../errors.js';
import { contiguousIndices, partyIndices } from '../committee.js';
import type { KeyShare } from '../types.js';
import type { EcdsaKeyPackage, EcdsaSigningKey } from './dkls23.js';
import {
  decodeMulAliceSetup,
  decodeMulBobSetup,
  encodeMulAliceSetup,
  encodeMulBobSetup,
  setupAliceFinish,
  setupAliceProve,
  setupAliceRespond,
  setupBobChallenge,
  setupBobFinish,
  setupBobStart,
  wipeMulAliceSetup,
  wipeMulBobSetup,
  type MulAliceSetup,
  type MulBobSetup,
  type SetupAliceState,
  type SetupBobState,
} from './mul.js';
import { checkEcdsaCurve, type EcdsaCurveName } from './signature.js';

const DST_SETUP = utf8ToBytes('tessera/ecdsa-setup/v1');
const PAIRWISE_FORMAT = 1;
/** Largest encoded single setup accepted when decoding (the current ones are about 4 and 8 KiB). */
const MAX_SETUP_BYTES = 1 << 20;

/** One party's setups with every other party. Secret. */
export interface PairwiseSetup {
  readonly curve: EcdsaCurveName;
  /** Setups where this party is Alice and the key is Bob's index. */
  readonly alice: Map<number, MulAliceSetup>;
  /** Setups where this party is Bob and the key is Alice's index. */
  readonly bob: Map<number, MulBobSetup>;
}

/** The setup rounds' state: the unfinished VSOT states per peer. Secret, used once. */
export interface SetupState {
  readonly curve: EcdsaCurveName;
  readonly self: number;
  readonly peers: readonly number[];
  /** setupBinding of this run (public). */
  readonly binding: Uint8Array;
  /** The next round this state accepts (2..6; 6 is setupFinish). */
  round: number;
  readonly bobStates: Map<number, SetupBobState>;
  readonly aliceStates: Map<number, SetupAliceState>;
  readonly bob: Map<number, MulBobSetup>;
}

/** The setup id of the ordered pair: H(binding, alice, bob). */
function pairSid(binding: Uint8Array, alice: number, bob: number): Uint8Array {
  return sha256(framed(DST_SETUP, binding, i2osp(alice, 1), i2osp(bob, 1)));
}

/**
 * The binding of one run of the setup: H(curve, session id, run id). The run id is fresh for every run
 * (core/run-id.ts), so two runs never share a setup id.
 */
export function setupBinding(curve: EcdsaCurveName, sessionId: Uint8Array, runId: Uint8Array): Uint8Array {
  return sha256(framed(DST_SETUP, utf8ToBytes(checkEcdsaCurve(curve)), sessionId, runId));
}

/** A failure of one pair's step: no culprit (see the module comment); a bug keeps its code. */
function pairFailure(e: unknown, peer: number, round: number): TesseraError {
  const reason = isTesseraError(e) ? e.message : 'internal error';
  return new TesseraError(isTesseraError(e) && e.code !== ErrorCode.BadState ? e.code : ErrorCode.SessionAborted, `ECDSA pairwise setup with node ${peer} failed in round ${round}: ${reason}`);
}

function checkIncoming(state: SetupState, round: number, incoming: ReadonlyMap<number, Uint8Array>): void {
  ensure(state.round === round, ErrorCode.BadState, `ECDSA pairwise setup: round ${round} out of order (expected ${state.round})`);
  ensure(incoming instanceof Map && incoming.size === state.peers.length, ErrorCode.BadMessage, `ECDSA pairwise setup round ${round - 1}: expected one message from each of ${state.peers.length} peers`);
  for (const j of state.peers) ensure(incoming.get(j) instanceof Uint8Array, ErrorCode.BadMessage, `ECDSA pairwise setup round ${round - 1}: no message from node ${j}`);
}

/** Round 1: as Bob with every peer, the VSOT key and its proof. */
export function setupRound1(curve: EcdsaCurveName, binding: Uint8Array, self: number, peers: readonly number[]): { state: SetupState; out: Map<number, Uint8Array> } {
  checkEcdsaCurve(curve);
  ensure(binding instanceof Uint8Array && binding.length === 32, ErrorCode.BadInput, 'ECDSA pairwise setup: binding must be 32 bytes');
  ensure(Array.isArray(peers) && peers.length >= 1 && !peers.includes(self) && new Set(peers).size === peers.length, ErrorCode.BadInput, 'ECDSA pairwise setup: bad peer list');
  const state: SetupState = { curve, self, peers: [...peers], binding: Uint8Array.from(binding), round: 2, bobStates: new Map(), aliceStates: new Map(), bob: new Map() };
  const out = new Map<number, Uint8Array>();
  for (const j of peers) {
    const started = setupBobStart(curve, pairSid(binding, j, self));
    state.bobStates.set(j, started.state);
    out.set(j, started.msg);
  }
  return { state, out };
}

/** Round 2: as Alice with every peer, the VSOT points (Alice's choices are her KOS Δ). */
export function setupRound2(state: SetupState, incoming: ReadonlyMap<number, Uint8Array>): { out: Map<number, Uint8Array> } {
  checkIncoming(state, 2, incoming);
  return step(state, (j) => {
    const r = setupAliceRespond(state.curve, pairSid(state.binding, state.self, j), incoming.get(j)!);
    state.aliceStates.set(j, r.state);
    return r.msg;
  });
}

/** Round 3: as Bob, the VSOT challenges. */
export function setupRound3(state: SetupState, incoming: ReadonlyMap<number, Uint8Array>): { out: Map<number, Uint8Array> } {
  checkIncoming(state, 3, incoming);
  return step(state, (j) => setupBobChallenge(state.bobStates.get(j)!, incoming.get(j)!).msg);
}

/** Round 4: as Alice, the VSOT responses. */
export function setupRound4(state: SetupState, incoming: ReadonlyMap<number, Uint8Array>): { out: Map<number, Uint8Array> } {
  checkIncoming(state, 4, incoming);
  return step(state, (j) => setupAliceProve(state.aliceStates.get(j)!, incoming.get(j)!).msg);
}

/** Round 5: as Bob, check the responses (DKLs18 Protocol 7 step 7) and open; Bob's setups are ready. */
export function setupRound5(state: SetupState, incoming: ReadonlyMap<number, Uint8Array>): { out: Map<number, Uint8Array> } {
  checkIncoming(state, 5, incoming);
  return step(state, (j) => {
    const r = setupBobFinish(state.bobStates.get(j)!, incoming.get(j)!);
    state.bob.set(j, r.setup);
    return r.msg;
  });
}

/** Last step: as Alice, check the openings (DKLs18 Protocol 7 step 8). Consumes the state. */
export function setupFinish(state: SetupState, incoming: ReadonlyMap<number, Uint8Array>): PairwiseSetup {
  checkIncoming(state, 6, incoming);
  const alice = new Map<number, MulAliceSetup>();
  try {
    for (const j of state.peers) {
      try {
        alice.set(j, setupAliceFinish(state.aliceStates.get(j)!, incoming.get(j)!));
      } catch (e) {
        throw pairFailure(e, j, 6);
      }
    }
  } catch (e) {
    for (const s of alice.values()) wipeMulAliceSetup(s);
    discardSetup(state);
    throw e;
  }
  state.round = 7;
  const bob = new Map(state.bob);
  // Handed to the caller: Alice's Δ lives on in her setups (setupAliceFinish keeps the same array).
  state.bob.clear();
  state.aliceStates.clear();
  discardSetup(state);
  return { curve: state.curve, alice, bob };
}

function step(state: SetupState, fn: (peer: number) => Uint8Array): { out: Map<number, Uint8Array> } {
  const out = new Map<number, Uint8Array>();
  for (const j of state.peers) {
    try {
      out.set(j, fn(j));
    } catch (e) {
      discardSetup(state);
      throw pairFailure(e, j, state.round);
    }
  }
  state.round += 1;
  return { out };
}

/**
 * Abandon a setup run: drop the VSOT states and wipe the finished Bob setups and Alice's Δ. (mul.ts has
 * no wipe for an unfinished VSOT state; its secret scalars are bigints, which cannot be wiped anyway.)
 */
export function discardSetup(state: SetupState): void {
  state.round = 7;
  for (const s of state.bob.values()) wipeMulBobSetup(s);
  for (const s of state.aliceStates.values()) zeroize(s.delta);
  state.bob.clear();
  state.bobStates.clear();
  state.aliceStates.clear();
}

// ---------------------------------------------------------------------------------------------
// Storage encoding

/** Wipe every setup of a pairwise setup. */
export function wipePairwiseSetup(p: PairwiseSetup | undefined): void {
  if (!p) return;
  for (const s of p.alice.values()) wipeMulAliceSetup(s);
  for (const s of p.bob.values()) wipeMulBobSetup(s);
}

/** format ‖ count ‖ (peer ‖ len ‖ Alice setup ‖ len ‖ Bob setup)*, peers ascending. Secret. */
export function encodePairwiseSetup(p: PairwiseSetup): Uint8Array {
  const peers = [...p.alice.keys()].sort((a, b) => a - b);
  ensure(peers.length === p.bob.size && peers.every((j) => p.bob.has(j)), ErrorCode.BadInput, 'pairwise setup: Alice and Bob setups name different peers');
  const parts: Uint8Array[] = [Uint8Array.of(PAIRWISE_FORMAT, peers.length)];
  for (const j of peers) {
    const a = encodeMulAliceSetup(p.alice.get(j)!);
    const b = encodeMulBobSetup(p.bob.get(j)!);
    parts.push(i2osp(j, 1), i2osp(a.length, 4), a, i2osp(b.length, 4), b);
  }
  const out = concatBytes(...parts);
  zeroize(...parts.slice(1).filter((x) => x.length > 4));
  return out;
}

/**
 * Decode a stored pairwise setup of a key of `curve` held by party `self` of the key's committee (a
 * count n means parties 1..n; a list is the committee, core/committee.ts partyIndices): exactly one
 * Alice and one Bob setup per other holder, of that curve. The caller wipes the result.
 */
export function decodePairwiseSetup(bytes: Uint8Array, curve: EcdsaCurveName, self: number, committee: number | readonly number[]): PairwiseSetup {
  const bad = (why: string) => new TesseraError(ErrorCode.BadInput, `stored ECDSA pairwise setup: ${why}`);
  const holders = typeof committee === 'number' ? contiguousIndices(committee) : committee;
  if (!(bytes instanceof Uint8Array) || bytes.length < 2 || bytes[0] !== PAIRWISE_FORMAT) throw bad('unknown format');
  const count = bytes[1]!;
  if (count !== holders.length - 1) throw bad(`expected setups with ${holders.length - 1} peers, found ${count}`);
  const out: PairwiseSetup = { curve, alice: new Map(), bob: new Map() };
  let o = 2;
  const take = (): Uint8Array => {
    if (o + 4 > bytes.length) throw bad('truncated');
    const len = ((bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!) >>> 0;
    o += 4;
    if (len > MAX_SETUP_BYTES || o + len > bytes.length) throw bad('truncated');
    return bytes.subarray(o, (o += len));
  };
  try {
    for (let k = 0; k < count; k++) {
      if (o >= bytes.length) throw bad('truncated');
      const j = bytes[o++]!;
      if (!holders.includes(j) || j === self || out.alice.has(j)) throw bad(`bad peer index ${j}`);
      const alice = decodeMulAliceSetup(take());
      out.alice.set(j, alice);
      const bob = decodeMulBobSetup(take());
      out.bob.set(j, bob);
      if (alice.curve !== curve || bob.curve !== curve) throw bad(`the setups with node ${j} are for another curve`);
    }
    if (o !== bytes.length) throw bad('trailing bytes');
    return out;
  } catch (e) {
    wipePairwiseSetup(out);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// From a stored key to DKLs23's signing key

/** The DKLs23 key package of a Tessera key package: the group key is C_0 (SEC 1 compressed). */
export function ecdsaKeyPackage(curve: EcdsaCurveName, key: KeyShare): EcdsaKeyPackage {
  const pkg = key.publicKey;
  return {
    curve,
    threshold: pkg.threshold,
    groupKey: pkg.commitments[0]!,
    verifyingShares: pkg.verifyingShares,
    ...(pkg.indices !== undefined ? { indices: pkg.indices } : {}),
  };
}

/**
 * What DKLs23 signs with: the Shamir share (a private copy) and the decoded setups. The caller wipes
 * it with wipeEcdsaSigningKey. Refuses a key without its pairwise setup.
 */
export function ecdsaSigningKey(curve: EcdsaCurveName, key: KeyShare): EcdsaSigningKey {
  const pairwise = key.secret.pairwise;
  ensure(pairwise !== undefined, ErrorCode.BadState, `key share of party ${key.secret.index} has no ECDSA pairwise setup`);
  const setup = decodePairwiseSetup(pairwise, curve, key.secret.index, partyIndices(key.publicKey));
  return { pkg: ecdsaKeyPackage(curve, key), index: key.secret.index, share: Uint8Array.from(key.secret.value), mulAlice: setup.alice, mulBob: setup.bob };
}

export function wipeEcdsaSigningKey(key: EcdsaSigningKey | undefined): void {
  if (!key) return;
  zeroize(key.share);
  for (const s of key.mulAlice.values()) wipeMulAliceSetup(s);
  for (const s of key.mulBob.values()) wipeMulBobSetup(s);
}
