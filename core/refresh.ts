/**
 * Proactive refresh (re-randomisation) of a shared key: every party deals a Feldman-committed sharing
 * of zero (Herzberg–Jarecki–Krawczyk–Yung 1995) with the same engine as the DKG (core/jointfeldman.ts):
 * signed round-1 packages, echo check, share verification, confirmation.
 *
 * Differences from the DKG: the dealt constant is zero, so C_0 (the identity) is omitted from the
 * broadcast and there is no proof of knowledge (`proof` is empty); new share = old share + Σ deltas,
 * checked against new commitments = old commitments + Σ delta commitments; the group key is unchanged
 * (checked) and the epoch goes up by one. Packages are signed for the epoch being refreshed, so a
 * package made for another epoch never combines: EpochMismatch. Parties holding different keys end
 * in ConfirmationMismatch (their public results differ), with nobody blamed.
 *
 * The parties are the key's committee (core/committee.ts partyIndices): a refresh keeps the key on the
 * nodes that hold it, and the result names the same committee.
 *
 * The old KeyShare is not modified: if refresh fails anywhere, the old key stays usable.
 */
import type { PartyAuthenticator } from './auth.js';
import { ErrorCode, ensure } from './errors.js';
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
import type { KeyShare } from './types.js';

export { publicResultDigest, round1SignedBytes, type Round1Binding };
/** Wipe paths: the dealt / received round-2 shares (secret in transit), and a probe for the wipe test. */
export { jointFeldmanWipeProbe, wipeShareMessages };

export interface RefreshParams {
  /** 16..64 bytes, bound into every transcript and digest of the session. */
  readonly sessionId: Uint8Array;
  /** 32 bytes, fresh for this run (core/run-id.ts deriveRunId): bound into every identity signature. */
  readonly runId: Uint8Array;
  /** The key to refresh; self = key.secret.index, suite / t / n / committee / epoch from the key. */
  readonly key: KeyShare;
}

/** Secret, one-use round states (opaque; reuse throws BadState). */
export type RefreshRound1State = JointFeldmanState<1>;
export type RefreshRound2State = JointFeldmanState<2>;
export type RefreshRound3State = JointFeldmanState<3>;

/** Round 1: deal a sharing of zero; broadcast C_1..C_{t-1} with the sender's signature. */
export function refreshRound1(params: RefreshParams, auth: PartyAuthenticator): { state: RefreshRound1State; broadcast: DkgRound1Msg } {
  ensure(typeof params === 'object' && params !== null, ErrorCode.BadInput, 'refresh: parameters expected');
  const { sessionId, runId, key } = params;
  ensure(
    typeof key === 'object' && key !== null && typeof key.publicKey === 'object' && key.publicKey !== null && typeof key.secret === 'object' && key.secret !== null,
    ErrorCode.BadInput,
    'refresh: key must be a KeyShare',
  );
  return engineRound1({
    mode: 'refresh',
    suite: key.publicKey.suite,
    threshold: key.publicKey.threshold,
    parties: key.publicKey.parties,
    self: key.secret.index,
    sessionId,
    runId,
    auth,
    key,
  });
}

/** Round 2: validate the other n-1 packages (culprits named), send delta shares, echo all packages. */
export function refreshRound2(
  state: RefreshRound1State,
  received: Map<number, DkgRound1Msg>,
): { state: RefreshRound2State; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> } {
  return engineRound2(state, 'refresh', received);
}

/** Round 3: echo check, delta-share verification, new share and package; returns the confirmation. */
export function refreshRound3(
  state: RefreshRound2State,
  echoes: Map<number, DkgEchoMsg>,
  shares: Map<number, DkgRound2Msg>,
): { state: RefreshRound3State; confirm: DkgConfirmMsg } {
  return engineRound3(state, 'refresh', echoes, shares);
}

/** Finish: all confirmations must match; returns the KeyShare at epoch + 1 with the same group key. */
export function refreshFinish(state: RefreshRound3State, confirms: Map<number, DkgConfirmMsg>): KeyShare {
  return engineFinish(state, 'refresh', confirms);
}

/** Abandon a refresh at any round: the state's secrets are dropped; the old key is untouched. */
export function refreshDiscard(state: RefreshRound1State | RefreshRound2State | RefreshRound3State): void {
  discardState(state);
}
