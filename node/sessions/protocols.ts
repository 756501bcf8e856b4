/**
 * Protocol drivers: run core/ round functions over a session's end-to-end channel.
 *
 * Each driver only moves messages: encode with core/wire.ts, send through the channel, decode what
 * arrives, call the next core round. All protocol decisions live in core/. Bytes that do not decode
 * name nobody: a third party cannot tell the sender's garbage from the relay's (issue 9).
 */
import { identitySign, identityVerify, type IdentityKeyPair } from '../../core/identity.js';
import type { PartyAuthenticator } from '../../core/auth.js';
import { ErrorCode, TesseraError, isTesseraError } from '../../core/errors.js';
import { dkgDiscard, dkgFinish, dkgRound1, dkgRound2, dkgRound3, wipeShareMessages } from '../../core/dkg.js';
import { zeroize } from '../../core/bytes.js';
import { isContiguous, partyIndices } from '../../core/committee.js';
import { refreshDiscard, refreshFinish, refreshRound1, refreshRound2, refreshRound3 } from '../../core/refresh.js';
import { signSessionDiscard, signSessionFinish, signSessionRound1, signSessionRound2, type SignSessionState } from '../../core/sign.js';
import { decodeMessage, encodeMessage } from '../../core/wire.js';
import type { MessageBodies, MessageType } from '../../core/messages.js';
import { getEcdsaSuite, getSigningSuite, getSuite, type SuiteId } from '../../core/suites.js';
import type { EcdsaSigningKey, Presignature } from '../../core/ecdsa/dkls23.js';
import {
  discardSetup,
  ecdsaSigningKey,
  encodePairwiseSetup,
  setupBinding,
  setupFinish,
  setupRound1,
  setupRound2,
  setupRound3,
  setupRound4,
  setupRound5,
  wipeEcdsaSigningKey,
  wipePairwiseSetup,
  type PairwiseSetup,
  type SetupState,
} from '../../core/ecdsa/setup.js';
import { ecdsaCombine, ecdsaDiscard, ecdsaPresign, ecdsaRound1, ecdsaRound2, ecdsaRound3, ecdsaSessionId, type EcdsaSession1, type EcdsaSession2 } from '../../core/ecdsa/session.js';
import { ecdsaPresignSessionIds } from '../../core/ecdsa/session.js';
import type { EcdsaRound1Msg, EcdsaRound2Msg } from '../../core/messages.js';
import type { FinalEcdsaSignature } from '../../core/ecdsa/signature.js';
import type { KeyShare } from '../../core/types.js';
import type { SessionChannel } from './channel.js';
import { badShare, ecdsaRound2For, ecdsaRound3For, ecdsaSignCheat, setupMessageFor, targets, type Deviations } from './deviations.js';
import { isSessionAborted } from './link.js';

export interface DriverContext {
  readonly session: Uint8Array;
  /**
   * 32 bytes, fresh for this run and contributed by every player (core/run-id.ts deriveRunId over the
   * session digest and the contributions exchanged in the signed channel hello). Every identity-signed
   * protocol message binds it, so a message signed in another run of the same session never verifies.
   */
  readonly runId: Uint8Array;
  readonly self: number;
  readonly players: readonly number[];
  readonly channel: SessionChannel;
  readonly identity: IdentityKeyPair;
  readonly membership: ReadonlyMap<number, Uint8Array>;
  /** Test-only scripted misbehaviour (node/sessions/deviations.ts); absent in production. */
  readonly deviations?: Deviations;
  /** Test-only crash points inside the rounds (node/service.ts FAULT_POINTS); absent in production. */
  readonly crashPoint?: (name: string) => void;
}

/** Identity signatures for signed protocol messages (DKG / refresh round 1, FROST rounds 1 and 2). */
export function identityAuthenticator(ctx: Pick<DriverContext, 'identity' | 'membership'>): PartyAuthenticator {
  return {
    sign: (m) => identitySign(ctx.identity.secretKey, m),
    verify: (index, m, s) => {
      const pk = ctx.membership.get(index);
      return pk !== undefined && identityVerify(pk, m, s);
    },
  };
}

interface Limits {
  threshold?: number;
  parties?: number;
}

/**
 * The wire limits of a run among `committee` (core/committee.ts partyIndices of the key, or the DKG's
 * players): maps keyed by party (the joint-Feldman echo) take node indices up to the highest holder.
 */
function committeeLimits(threshold: number, committee: readonly number[]): Limits {
  return { threshold, parties: Math.max(...committee) };
}

function send<T extends MessageType>(ctx: DriverContext, to: number, type: T, suite: SuiteId, body: MessageBodies[T]): void {
  const payload = encodeMessage(type, suite, body);
  try {
    ctx.channel.send(to, type, payload);
  } finally {
    // A dealt share is secret in transit: its plaintext encoding is wiped once encrypted (or not sent).
    if (type === 'dkg/round2') zeroize(payload);
  }
}

function broadcast<T extends MessageType>(ctx: DriverContext, type: T, suite: SuiteId, body: MessageBodies[T]): void {
  ctx.channel.broadcast(type, encodeMessage(type, suite, body));
}

/**
 * Receive one `type` message from every peer, decoding strictly. Bytes that do not decode fail the
 * session naming nobody (a relay fault for all a third party can tell).
 */
async function receiveAll<T extends MessageType>(
  ctx: DriverContext,
  type: T,
  suite: SuiteId,
  limits: Limits = {},
): Promise<Map<number, MessageBodies[T]>> {
  // From the players of this driver: a reshare runs the new committee's ECDSA setup inside a larger session.
  const raw = await ctx.channel.receiveAll(type, ctx.players.filter((p) => p !== ctx.self));
  const out = new Map<number, MessageBodies[T]>();
  try {
    for (const [from, bytes] of raw) {
      try {
        out.set(from, decodeMessage(bytes, type, suite, limits));
      } catch (e) {
        const code = isTesseraError(e) ? e.code : ErrorCode.BadMessage;
        throw new TesseraError(code, `a malformed ${type} arrived from node ${from}: ${(e as Error).message}`);
      }
    }
    return out;
  } finally {
    // A dealt share is secret in transit: the decoded copy goes on (and is wiped by the driver); the
    // decrypted plaintext is wiped here, decoded or not.
    if (type === 'dkg/round2') for (const bytes of raw.values()) zeroize(bytes);
  }
}

/** The joint-Feldman shape shared by DKG and refresh: round 1 broadcast, shares + echo, confirm, finish. */
interface JointFeldmanRounds<S1, S2, S3> {
  round1(): { state: S1; broadcast: MessageBodies['dkg/round1'] };
  round2(state: S1, received: Map<number, MessageBodies['dkg/round1']>): {
    state: S2;
    echo: MessageBodies['dkg/echo'];
    shares: Map<number, MessageBodies['dkg/round2']>;
  };
  round3(
    state: S2,
    echoes: Map<number, MessageBodies['dkg/echo']>,
    shares: Map<number, MessageBodies['dkg/round2']>,
  ): { state: S3; confirm: MessageBodies['dkg/confirm'] };
  finish(state: S3, confirms: Map<number, MessageBodies['dkg/confirm']>): KeyShare;
  /** Abandon a state of any round: its secrets are wiped (also the harness's second round-1 package). */
  discard(state: S1 | S2 | S3): void;
}

async function runJointFeldman<S1, S2, S3>(
  ctx: DriverContext,
  suite: SuiteId,
  limits: Limits,
  rounds: JointFeldmanRounds<S1, S2, S3>,
): Promise<KeyShare> {
  // Secret round state (polynomial, f_self(self), the old share, the new share before release) and
  // the round-2 shares in transit are wiped on every exit path: a peer's bad message, a timeout, a
  // failed session, success (a finished state is already empty, so discarding it does nothing).
  let state: S1 | S2 | S3 | undefined;
  let dealt: Map<number, MessageBodies['dkg/round2']> | undefined;
  let receivedShares: Map<number, MessageBodies['dkg/round2']> | undefined;
  try {
    const r1 = rounds.round1();
    state = r1.state;
    const equivocateTo = ctx.deviations?.equivocateDkgTo;
    if (!equivocateTo) broadcast(ctx, 'dkg/round1', suite, r1.broadcast);
    else {
      // The harness's malicious node: round 1 dealt a second time (fresh randomness, validly signed), to some peers only.
      const other = rounds.round1();
      rounds.discard(other.state);
      for (const to of ctx.players) if (to !== ctx.self) send(ctx, to, 'dkg/round1', suite, targets(equivocateTo, to) ? other.broadcast : r1.broadcast);
    }
    ctx.crashPoint?.('rounds-after-round1');
    const received1 = await receiveAll(ctx, 'dkg/round1', suite, limits);
    const r2 = rounds.round2(r1.state, received1);
    state = r2.state;
    dealt = r2.shares;
    // The harness's bad-share-to: a share that does not verify against this node's commitments.
    for (const [to, share] of r2.shares) send(ctx, to, 'dkg/round2', suite, targets(ctx.deviations?.badShareTo, to) ? badShare(suite, share) : share);
    broadcast(ctx, 'dkg/echo', suite, r2.echo);
    ctx.crashPoint?.('rounds-after-echo');
    const sharesArriving = receiveAll(ctx, 'dkg/round2', suite, limits);
    const [echoes, shares] = await Promise.all([receiveAll(ctx, 'dkg/echo', suite, limits), sharesArriving]).catch((e: unknown) => {
      // The echoes failed first: the shares may still arrive; wipe them when they do.
      sharesArriving.then(wipeShareMessages, () => undefined);
      throw e;
    });
    receivedShares = shares;
    const r3 = rounds.round3(r2.state, echoes, shares);
    state = r3.state;
    const wrongTo = ctx.deviations?.wrongConfirmTo;
    if (!wrongTo) broadcast(ctx, 'dkg/confirm', suite, r3.confirm);
    else {
      // The harness's malicious node: a wrong confirmation to some peers only (the epoch-split attack).
      const wrong = { digest: r3.confirm.digest.map((b) => b ^ 0xff) };
      for (const to of ctx.players) if (to !== ctx.self) send(ctx, to, 'dkg/confirm', suite, wrongTo.includes(to) ? wrong : r3.confirm);
    }
    ctx.crashPoint?.('rounds-after-confirm');
    const confirms = await receiveAll(ctx, 'dkg/confirm', suite, limits);
    return rounds.finish(r3.state, confirms);
  } finally {
    if (state !== undefined) rounds.discard(state);
    wipeShareMessages(dealt);
    wipeShareMessages(receivedShares);
  }
}

/**
 * Distributed key generation among the session's players (every node for keygen; the old version's
 * committee for rotate), which become the key's committee; for a threshold ECDSA suite, followed by the
 * pairwise setup (withPairwiseSetup). `_clusterSize` is not used: the players are the parties. The
 * caller wipes the result's `secret.value` and `secret.pairwise`.
 */
export async function runDkg(ctx: DriverContext, suite: SuiteId, threshold: number): Promise<KeyShare> {
  const auth = identityAuthenticator(ctx);
  const committee = [...ctx.players].sort((a, b) => a - b);
  const parties = committee.length;
  const indices = isContiguous(committee) ? {} : { indices: committee };
  const key = await runJointFeldman(ctx, suite, committeeLimits(threshold, committee), {
    round1: () => dkgRound1({ suite, threshold, parties, ...indices, self: ctx.self, sessionId: ctx.session, runId: ctx.runId }, auth),
    round2: dkgRound2,
    round3: dkgRound3,
    finish: dkgFinish,
    discard: dkgDiscard,
  });
  return withPairwiseSetup(ctx, key);
}

/**
 * Re-randomise every share; the group key stays, the epoch goes up by one. Shares made to be kept (a
 * refresh, an import) of a threshold ECDSA key get a new pairwise setup with them; an export's shares
 * leave the cluster and need none (`forExport`). The caller wipes the result's secrets.
 */
export async function runRefresh(ctx: DriverContext, key: KeyShare, opts: { forExport?: boolean } = {}): Promise<KeyShare> {
  const auth = identityAuthenticator(ctx);
  const { suite, threshold } = key.publicKey;
  // The key's holders refresh it (its committee stays; core/refresh.ts).
  const next = await runJointFeldman(ctx, suite, committeeLimits(threshold, partyIndices(key.publicKey)), {
    round1: () => refreshRound1({ sessionId: ctx.session, runId: ctx.runId, key }, auth),
    round2: refreshRound2,
    round3: refreshRound3,
    finish: refreshFinish,
    discard: refreshDiscard,
  });
  return opts.forExport === true ? next : withPairwiseSetup(ctx, next);
}

const SETUP_ROUNDS = ['ecdsa/setup1', 'ecdsa/setup2', 'ecdsa/setup3', 'ecdsa/setup4', 'ecdsa/setup5'] as const;

/**
 * Threshold ECDSA (DKLs23): the pairwise multiplication setup of core/ecdsa/setup.ts among all players,
 * run once the joint-Feldman rounds made this node's share; the encoded setups travel with the share
 * (SecretShare.pairwise), sealed by the store with it. Any other suite: `key` unchanged. On failure the
 * share is wiped (the caller never sees it).
 */
export async function withPairwiseSetup(ctx: DriverContext, key: KeyShare): Promise<KeyShare> {
  const suite = getSuite(key.publicKey.suite);
  if (suite.kind !== 'ecdsa') return key;
  const peers = ctx.players.filter((p) => p !== ctx.self);
  let state: SetupState | undefined;
  let setup: PairwiseSetup | undefined;
  const exchange = async (round: (typeof SETUP_ROUNDS)[number], out: Map<number, Uint8Array>): Promise<Map<number, Uint8Array>> => {
    // setupMessageFor: the harness's ecdsa-setup-tamper-to (the message unchanged without deviations).
    for (const [to, msg] of out) send(ctx, to, round, suite.id, { msg: setupMessageFor(ctx.deviations, SETUP_ROUNDS.indexOf(round) + 1, to, msg) });
    const received = await receiveAll(ctx, round, suite.id);
    return new Map([...received].map(([from, m]) => [from, m.msg]));
  };
  try {
    const r1 = setupRound1(suite.curve, setupBinding(suite.curve, ctx.session, ctx.runId), ctx.self, peers);
    state = r1.state;
    let incoming = await exchange('ecdsa/setup1', r1.out);
    incoming = await exchange('ecdsa/setup2', setupRound2(state, incoming).out);
    incoming = await exchange('ecdsa/setup3', setupRound3(state, incoming).out);
    incoming = await exchange('ecdsa/setup4', setupRound4(state, incoming).out);
    incoming = await exchange('ecdsa/setup5', setupRound5(state, incoming).out);
    setup = setupFinish(state, incoming);
    return { publicKey: key.publicKey, secret: { ...key.secret, pairwise: encodePairwiseSetup(setup) } };
  } catch (e) {
    zeroize(key.secret.value, key.secret.pairwise);
    throw e;
  } finally {
    if (state) discardSetup(state);
    wipePairwiseSetup(setup);
  }
}

export interface EcdsaSignHooks {
  /**
   * Called (and awaited) before the error is rethrown when a multiplication check failed on this node:
   * KOS15's (this node as F_RVOLE's Alice, round 2) or F_RVOLE's own (as Bob, presign). `peers`: the
   * signers whose pairwise setup with this node must be discarded (node/sessions/ecdsa-burn.ts). core/
   * does not say which pair failed, so with more than one peer every peer of the session is named
   * (conservative: a refresh restores them all).
   */
  readonly onSetupCheckFailed?: (peers: readonly number[], error: TesseraError) => Promise<void>;
}

/**
 * Threshold ECDSA signing among the session's players (DKLs23 Protocol 3.6 over point-to-point
 * messages, core/ecdsa/session.ts): three rounds, every player combines and verifies. `digest` is the
 * message digest the suite's messageDigest made. The decoded setups and every round state are wiped
 * however the session ends.
 */
export async function runEcdsaSign(ctx: DriverContext, key: KeyShare, digest: Uint8Array, hooks: EcdsaSignHooks = {}): Promise<FinalEcdsaSignature> {
  const suite = getEcdsaSuite(key.publicKey.suite);
  const limits = committeeLimits(key.publicKey.threshold, partyIndices(key.publicKey));
  let signingKey: EcdsaSigningKey | undefined;
  let state: EcdsaSession1 | EcdsaSession2 | Presignature | undefined;
  let mulChecks = false;
  try {
    signingKey = ecdsaSigningKey(suite.curve, key);
    // The harness's F_RVOLE cheats (deviations.ts ecdsaSignCheat): undefined without deviations.
    const cheat = ecdsaSignCheat(ctx.deviations);
    const r1 = ecdsaRound1(signingKey, ecdsaSessionId(ctx.session, ctx.runId), ctx.players, cheat);
    state = r1.state;
    for (const [to, m] of r1.out) send(ctx, to, 'ecdsa/round1', suite.id, m);
    const in1 = await receiveAll(ctx, 'ecdsa/round1', suite.id, limits);
    mulChecks = true; // KOS15's check (as Alice) runs in round 2, F_RVOLE's (as Bob) in presign
    const r2 = ecdsaRound2(r1.state, in1, cheat);
    mulChecks = false;
    state = r2.state;
    for (const [to, m] of r2.out) send(ctx, to, 'ecdsa/round2', suite.id, ecdsaRound2For(ctx.deviations, to, m));
    const in2 = await receiveAll(ctx, 'ecdsa/round2', suite.id, limits);
    mulChecks = true;
    const presig = ecdsaPresign(r2.state, in2);
    mulChecks = false;
    state = presig;
    const r3 = ecdsaRound3(presig, digest);
    if (!ctx.deviations) broadcast(ctx, 'ecdsa/round3', suite.id, r3.broadcast);
    // The harness's ecdsa-bad-share-to: a wrong u_i to some signers only.
    else for (const to of ctx.players) if (to !== ctx.self) send(ctx, to, 'ecdsa/round3', suite.id, ecdsaRound3For(ctx.deviations, to, r3.broadcast));
    const in3 = await receiveAll(ctx, 'ecdsa/round3', suite.id, limits);
    return ecdsaCombine(r3.state, in3, r3.broadcast);
  } catch (e) {
    throw await ecdsaFailure(ctx, e, mulChecks, hooks);
  } finally {
    // Consumed states are already wiped; discarding again is harmless.
    if (state) ecdsaDiscard(state);
    wipeEcdsaSigningKey(signingKey);
  }
}

/**
 * What a failed DKLs23 signing or presigning run throws, for both drivers (one place):
 * - a BAD_PROOF naming no one from round 2 or presign (`mulChecks`) is a failed KOS15 or F_RVOLE check
 *   (the other BAD_PROOF there, a decommitment that does not open, names its author): the pairwise
 *   setups with the peers are burned first (hooks.onSetupCheckFailed);
 * - core/ecdsa reports some failed checks of its own (Γ consistency, the round-1 echo, R = identity) as
 *   SESSION_ABORTED: re-coded VERIFICATION_FAILED, so the SDK never takes a failed check for an abort
 *   the coordinator reported. The link's own aborts (SessionAbortedError) pass unchanged.
 */
async function ecdsaFailure(ctx: DriverContext, e: unknown, mulChecks: boolean, hooks: EcdsaSignHooks): Promise<unknown> {
  if (mulChecks && isTesseraError(e) && e.code === ErrorCode.BadProof && e.culprits.length === 0) {
    await hooks.onSetupCheckFailed?.(ctx.players.filter((p) => p !== ctx.self), e);
  }
  if (isTesseraError(e) && e.code === ErrorCode.SessionAborted && !isSessionAborted(e)) {
    return new TesseraError(ErrorCode.VerificationFailed, e.message, [...e.culprits]);
  }
  return e;
}

/**
 * DKLs23 presigning among the session's players (ePrint 2023/765 Protocol 3.6 rounds 1-2 and the
 * message-free part of round 3, core/ecdsa/session.ts): `count` independent instances, each with its own
 * session id (ecdsaPresignSessionIds), in two rounds whatever the count (one message per peer per round
 * carries every instance's message). Returns this player's presignatures, in instance order; each signs
 * exactly one digest (ecdsaRound3). On any failure every instance's state is wiped and nothing is returned.
 */
export async function runEcdsaPresign(ctx: DriverContext, key: KeyShare, count: number, hooks: EcdsaSignHooks = {}): Promise<Presignature[]> {
  const suite = getEcdsaSuite(key.publicKey.suite);
  const limits = committeeLimits(key.publicKey.threshold, partyIndices(key.publicKey));
  let signingKey: EcdsaSigningKey | undefined;
  const states: (EcdsaSession1 | EcdsaSession2 | Presignature)[] = [];
  let mulChecks = false;
  const expectCount = (from: number, got: readonly unknown[], round: string) => {
    if (got.length !== count) throw new TesseraError(ErrorCode.BadMessage, `node ${from} sent ${got.length} ${round} instances, ${count} expected`);
  };
  try {
    signingKey = ecdsaSigningKey(suite.curve, key);
    const sessionIds = ecdsaPresignSessionIds(ctx.session, ctx.runId, count);
    const out1 = new Map<number, EcdsaRound1Msg[]>(ctx.players.filter((p) => p !== ctx.self).map((p) => [p, []]));
    for (const sid of sessionIds) {
      const r1 = ecdsaRound1(signingKey, sid, ctx.players);
      states.push(r1.state);
      for (const [to, m] of r1.out) out1.get(to)!.push(m);
    }
    for (const [to, instances] of out1) send(ctx, to, 'ecdsa/presign1', suite.id, { instances });
    const in1 = await receiveAll(ctx, 'ecdsa/presign1', suite.id, limits);
    for (const [from, m] of in1) expectCount(from, m.instances, 'round-1');
    const out2 = new Map<number, EcdsaRound2Msg[]>([...out1.keys()].map((p) => [p, []]));
    mulChecks = true; // KOS15's check (as Alice) runs in round 2
    for (let k = 0; k < count; k++) {
      const r2 = ecdsaRound2(states[k] as EcdsaSession1, new Map([...in1].map(([from, m]) => [from, m.instances[k]!])));
      states[k] = r2.state;
      for (const [to, m] of r2.out) out2.get(to)!.push(m);
    }
    mulChecks = false;
    for (const [to, instances] of out2) send(ctx, to, 'ecdsa/presign2', suite.id, { instances });
    const in2 = await receiveAll(ctx, 'ecdsa/presign2', suite.id, limits);
    for (const [from, m] of in2) expectCount(from, m.instances, 'round-2');
    mulChecks = true; // F_RVOLE's check (as Bob) runs in presign
    for (let k = 0; k < count; k++) {
      states[k] = ecdsaPresign(states[k] as EcdsaSession2, new Map([...in2].map(([from, m]) => [from, m.instances[k]!])));
    }
    mulChecks = false;
    const made = [...states] as Presignature[];
    states.length = 0; // handed to the caller: not wiped here
    return made;
  } catch (e) {
    throw await ecdsaFailure(ctx, e, mulChecks, hooks);
  } finally {
    // A failed run: every instance's state is wiped (consumed ones are already; again is harmless).
    for (const st of states) ecdsaDiscard(st);
    wipeEcdsaSigningKey(signingKey);
  }
}

/**
 * FROST signing among the session's players (RFC 9591 §5), with identity-signed round-1 commitments
 * echo-checked inside round 2 (core/sign.ts signing session). Every player aggregates and verifies.
 */
export async function runSign(ctx: DriverContext, key: KeyShare, message: Uint8Array): Promise<Uint8Array> {
  const suite = getSigningSuite(key.publicKey.suite);
  const limits = committeeLimits(key.publicKey.threshold, partyIndices(key.publicKey));
  let state: SignSessionState<1> | SignSessionState<2> | undefined;
  try {
    const r1 = signSessionRound1({
      suite,
      key,
      signers: ctx.players,
      sessionId: ctx.session,
      runId: ctx.runId,
      auth: identityAuthenticator(ctx),
    });
    state = r1.state;
    const equivocateTo = ctx.deviations?.equivocateSignTo;
    if (!equivocateTo) broadcast(ctx, 'sign/commit', suite.id, r1.commit);
    else {
      // The harness's malicious signer: other validly signed nonce commitments (round 1 run again) to some signers.
      const other = signSessionRound1({ suite, key, signers: ctx.players, sessionId: ctx.session, runId: ctx.runId, auth: identityAuthenticator(ctx) });
      signSessionDiscard(other.state);
      for (const to of ctx.players) if (to !== ctx.self) send(ctx, to, 'sign/commit', suite.id, targets(equivocateTo, to) ? other.commit : r1.commit);
    }
    const commits = await receiveAll(ctx, 'sign/commit', suite.id, limits);
    const r2 = signSessionRound2(r1.state, commits, message);
    state = r2.state;
    broadcast(ctx, 'sign/share', suite.id, r2.share);
    const shares = await receiveAll(ctx, 'sign/share', suite.id, limits);
    return signSessionFinish(r2.state, shares);
  } finally {
    // Whatever happened (timeout, abort, a peer's error), the nonces do not outlive the session.
    if (state) signSessionDiscard(state);
  }
}
