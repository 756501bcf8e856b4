/**
 * Distributed key generation without a dealer: Pedersen's joint-Feldman DKG with proofs of knowledge
 * of each dealer's constant term, as in FROST (Komlo–Goldberg 2020, Figure 1; the structure of
 * frost-rs and noble's `frost.DKG`). RFC 9591 leaves key generation out of scope (§7 / Appendix C
 * covers only a trusted dealer); the sharing, commitments and share checks here are its Appendix C.
 *
 * On top of the FROST DKG: every round-1 package is signed with the sender's identity key and echoed
 * by every receiver, so a sender that shows different packages to different parties is caught and
 * named (Equivocation); and the key is released only after every party confirmed the same public
 * result (ConfirmationMismatch otherwise). The engine is shared with refresh: core/jointfeldman.ts.
 *
 * For bip340 the result is the plain (untweaked) key; signing handles BIP-340's even-y convention.
 * For the hpke-* suites the DKG is the same, over the suite's group.
 */
import type { PartyAuthenticator } from './auth.js';
import {
  discardState,
  engineFinish,
  engineRound1,
  engineRound2,
  engineRound3,
  jointFeldmanWipeProbe,
  publicResultDigest,
  round1SignedBytes,
  wipeShareMessages,
  type JointFeldmanState,
  type Round1Binding,
} from './jointfeldman.js';
import type { DkgConfirmMsg, DkgEchoMsg, DkgRound1Msg, DkgRound2Msg } from './messages.js';
import type { SuiteId } from './suites.js';
import type { KeyShare } from './types.js';

export { publicResultDigest, round1SignedBytes, type Round1Binding };
/** Wipe paths: the dealt / received round-2 shares (secret in transit), and a probe for the wipe test. */
export { jointFeldmanWipeProbe, wipeShareMessages };

export interface DkgParams {
  readonly suite: SuiteId;
  readonly threshold: number;
  readonly parties: number;
  /**
   * The parties' node indices (RFC 9591 identifiers), strictly ascending, `parties` of them; absent:
   * 1..parties. The result's package names them (PublicKeyPackage.indices) unless they are 1..n.
   */
  readonly indices?: readonly number[];
  /** This party's index (its RFC 9591 identifier), one of the parties. */
  readonly self: number;
  /** 16..64 bytes, bound into every transcript, proof and digest of the session. */
  readonly sessionId: Uint8Array;
  /**
   * 32 bytes, fresh for this run and contributed by every party (core/run-id.ts deriveRunId): bound
   * into every identity signature, so a package signed in another run of the same session id never
   * verifies here (neither as a round-1 package nor as equivocation "evidence" in an echo).
   */
  readonly runId: Uint8Array;
}

/** Secret, one-use round states (opaque; reuse throws BadState). */
export type DkgRound1State = JointFeldmanState<1>;
export type DkgRound2State = JointFeldmanState<2>;
export type DkgRound3State = JointFeldmanState<3>;

/** Round 1: deal a random polynomial; broadcast commitments, proof of knowledge and signature. */
export function dkgRound1(params: DkgParams, auth: PartyAuthenticator): { state: DkgRound1State; broadcast: DkgRound1Msg } {
  return engineRound1({ mode: 'dkg', ...pick(params), auth });
}

/**
 * Round 2: validate the other n-1 packages (culprits: BadMessage, BadPoint, BadProof), then send each
 * party its share (point to point) and echo every package received plus our own (broadcast).
 */
export function dkgRound2(
  state: DkgRound1State,
  received: Map<number, DkgRound1Msg>,
): { state: DkgRound2State; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> } {
  return engineRound2(state, 'dkg', received);
}

/**
 * Round 3: echo check (Equivocation / BadProof for a forged echo), share verification (BadShare),
 * then the result; the confirmation carries publicResultDigest of the public key package.
 */
export function dkgRound3(
  state: DkgRound2State,
  echoes: Map<number, DkgEchoMsg>,
  shares: Map<number, DkgRound2Msg>,
): { state: DkgRound3State; confirm: DkgConfirmMsg } {
  return engineRound3(state, 'dkg', echoes, shares);
}

/** Finish: every other party must confirm our digest (else ConfirmationMismatch); returns the epoch-0 key. */
export function dkgFinish(state: DkgRound3State, confirms: Map<number, DkgConfirmMsg>): KeyShare {
  return engineFinish(state, 'dkg', confirms);
}

/** Abandon a DKG at any round: the state's secrets are dropped and the state can no longer be used. */
export function dkgDiscard(state: DkgRound1State | DkgRound2State | DkgRound3State): void {
  discardState(state);
}

function pick(p: DkgParams) {
  // Read each field once, so a getter on the caller's object cannot show two different values.
  const { suite, threshold, parties, indices, self, sessionId, runId } = p ?? ({} as DkgParams);
  return { suite, threshold, parties, ...(indices !== undefined ? { indices } : {}), self, sessionId, runId };
}
