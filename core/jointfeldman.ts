/**
 * The joint-Feldman engine behind both DKG (core/dkg.ts) and refresh (core/refresh.ts).
 *
 * Every party deals a Feldman-committed Shamir sharing of its own random polynomial (Pedersen's
 * joint-Feldman DKG) and the shares are summed. The two protocols differ only in the dealt constant:
 *
 *   - DKG ('dkg'): a random constant term a_0, with a Schnorr proof of knowledge of a_0 bound to the
 *     session (FROST, Komlo–Goldberg 2020, Figure 1 round 1, as in frost-rs and noble's frost DKG;
 *     RFC 9591 leaves DKG out of scope). The result is a fresh key at epoch 0.
 *   - refresh ('refresh'): constant term zero (proactive re-randomisation, Herzberg et al. 1995). C_0
 *     is the identity and is omitted from the broadcast; there is nothing to prove knowledge of, so
 *     the proof is empty. New share = old share + Σ deltas, new commitments = old + Σ delta
 *     commitments; the group key is unchanged and the epoch increases by one.
 *
 * Rounds (each a plain function; secret state is one-use and wiped when a round ends, however it
 * ends). Between rounds, while the node waits on the network, a state keeps its secrets (polynomial
 * coefficients, f_self(self), the old share, the new share) as SerializeScalar bytes, which
 * discardState and every round's `finally` zeroize. The arithmetic needs bigints, and JavaScript
 * cannot wipe a bigint: those exist only inside one round function call and are dropped (never
 * wiped) when it returns. jointFeldmanWipeProbe (core/wipe.ts) lets a test check the wiping.
 *   1. deal: polynomial, commitments, proof, and the sender's identity signature over a framed
 *      transcript of everything in the package and the run id (core/run-id.ts), so that two different
 *      packages from one sender for one run are transferable evidence of equivocation, and a package
 *      signed in an earlier run under the same session id never verifies again.
 *   2. validate the other n-1 packages (counts and lengths, then the signature, then points and the
 *      proof), send f_self(j) point to point, and echo every package received (plus our own). A
 *      package that is malformed or not validly signed names nobody: the relay could have made it.
 *      A validly signed package that fails a public check (a point, the proof) names its signer.
 *   3. echo check (Byzantine-agreement-free broadcast check): every echoed package for sender j must
 *      carry j's valid signature — an echo that relays an unsigned/forged one aborts naming nobody
 *      (the echo itself is not identity-signed, so it proves nothing to a third party) — and two
 *      different validly signed packages from j prove that j equivocated: j is named and the error
 *      carries both packages as evidence (core/evidence.ts). Then verify every
 *      received share against its sender's commitments (RFC 9591 Appendix C.2 vss_verify) and compute
 *      the result; the confirmation carries publicResultDigest of the public result.
 *   4. finish: every confirmation must equal our own digest. Only then is the KeyShare released, so
 *      a malicious party cannot make the protocol succeed for one honest party and fail for another.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, framed, i2osp, utf8ToBytes, zeroize } from './bytes.js';
import { OneUseState, wipeProbe, wipeShareMessages, type WipeProbe } from './wipe.js';

export { wipeShareMessages };
import { ErrorCode, TesseraError, ensure, guard } from './errors.js';
import type { Point } from './group.js';
import { MAX_AUTH_SIGNATURE_LENGTH, authSign, authVerify as verifyWith, checkAuthenticator, type PartyAuthenticator } from './auth.js';
import type { EquivocationEvidence } from './evidence.js';
import type { DkgConfirmMsg, DkgEchoMsg, DkgRound1Msg, DkgRound2Msg } from './messages.js';
import { checkRunId } from './run-id.js';
import { checkCommittee, contiguousIndices, isContiguous, isParty, partyIndices, verifyingShareOf } from './committee.js';
import {
  checkPackageCommittee,
  checkThreshold,
  commitPolynomial,
  evalCommitment,
  evalPolynomial,
  interpolatePoints,
  randomPolynomial,
  verifyShareAgainstCommitments,
} from './shamir.js';
import { getSuite, type Suite } from './suites.js';
import type { KeyShare, PublicKeyPackage } from './types.js';

export type JointFeldmanMode = 'dkg' | 'refresh';

export const SESSION_ID_MIN_LENGTH = 16;
export const SESSION_ID_MAX_LENGTH = 64;
const MAX_SIGNATURE_LENGTH = MAX_AUTH_SIGNATURE_LENGTH;
const DIGEST_LENGTH = 32;

const TAG_ROUND1 = utf8ToBytes('TESSERA-v1/joint-feldman/round1');
const TAG_RESULT = utf8ToBytes('TESSERA-v1/joint-feldman/result');

// ---------------------------------------------------------------------------------------------
// One-use state handles

/** What the engine knows about the session, fixed at round 1. Public except `oldShare`. */
interface Context {
  readonly mode: JointFeldmanMode;
  readonly suite: Suite;
  readonly threshold: number;
  readonly parties: number;
  /**
   * The parties, strictly ascending node indices (RFC 9591 identifiers; core/committee.ts): 1..n for
   * a DKG unless it names another committee, the old key's committee for a refresh.
   */
  readonly indices: readonly number[];
  readonly self: number;
  readonly sessionId: Uint8Array;
  /** The run id (core/run-id.ts): bound into every signed transcript. */
  readonly runId: Uint8Array;
  readonly auth: PartyAuthenticator;
  /** Epoch of the key being refreshed; 0 for DKG (whose result is epoch 0). */
  readonly epoch: number;
  /** Refresh only: the key being refreshed. */
  readonly old?: {
    readonly commitments: readonly Point[];
    /** Secret: our own copy of our current share (SerializeScalar bytes), zeroized after round 3. */
    readonly oldShare: Uint8Array;
  };
}

/** A validated round-1 package: the decoded commitments and the exact bytes the sender signed. */
interface ReceivedPackage {
  /** C_0..C_{t-1} (refresh: C_0 = identity prepended). */
  readonly commitments: readonly Point[];
  /** The framed transcript the sender signed: equality of transcripts is equality of content. */
  readonly transcript: Uint8Array;
  /** The package as received (a private copy): the evidence if its sender turns out to equivocate. */
  readonly message: DkgRound1Msg;
}

interface Round1Inner {
  readonly ctx: Context;
  /** Secret: SerializeScalar(a_0..a_{t-1}) (refresh: a_0 = 0). */
  readonly coefficients: Uint8Array[];
  readonly own: ReceivedPackage;
}

interface Round2Inner {
  readonly ctx: Context;
  /** Secret: SerializeScalar(f_self(self)). */
  readonly ownShare: Uint8Array;
  /** Every party's package as we received it (our own included), keyed by sender. */
  readonly received: ReadonlyMap<number, ReceivedPackage>;
}

interface Round3Inner {
  readonly ctx: Context;
  readonly publicKey: PublicKeyPackage;
  /** Secret: our resulting share, SerializeScalar encoding. Handed to the caller or zeroized. */
  shareBytes: Uint8Array;
  readonly digest: Uint8Array;
}

type Inner<R extends 1 | 2 | 3> = R extends 1 ? Round1Inner : R extends 2 ? Round2Inner : Round3Inner;

/**
 * An opaque, one-use round state. The secrets live in a private field, so logging or serialising a
 * state shows only its mode and round; taking the state (which every round function does first)
 * empties it, so reusing it throws BadState.
 */
export class JointFeldmanState<R extends 1 | 2 | 3> extends OneUseState<Inner<R>> {
  readonly mode: JointFeldmanMode;
  readonly round: R;

  private constructor(mode: JointFeldmanMode, round: R, inner: Inner<R>) {
    super(inner);
    this.mode = mode;
    this.round = round;
  }

  /** @internal */
  static make<R extends 1 | 2 | 3>(mode: JointFeldmanMode, round: R, inner: Inner<R>): JointFeldmanState<R> {
    return new JointFeldmanState(mode, round, inner);
  }

  /** @internal Check the state fits this call and empty it: every state is used exactly once. */
  static take<R extends 1 | 2 | 3>(state: unknown, mode: JointFeldmanMode, round: R, fn: string): Inner<R> {
    ensure(state instanceof JointFeldmanState, ErrorCode.BadState, `${fn}: not a ${mode} state`);
    ensure(state.mode === mode, ErrorCode.BadState, `${fn}: got a ${state.mode} state, expected ${mode}`);
    ensure(state.round === round, ErrorCode.BadState, `${fn}: got the state of round ${state.round}, expected round ${round}`);
    return OneUseState.use(state, fn) as Inner<R>;
  }

  /** @internal Look at a state's contents without using it (the wipe probe only). */
  static peek(state: unknown): Inner<1 | 2 | 3> | undefined {
    return state instanceof JointFeldmanState ? (OneUseState.contents(state) as Inner<1 | 2 | 3> | undefined) : undefined;
  }

  /** @internal Empty a state of any mode and round without running it (session aborted). */
  static discard(state: unknown): Inner<1 | 2 | 3> | undefined {
    return state instanceof JointFeldmanState ? (OneUseState.empty(state) as Inner<1 | 2 | 3> | undefined) : undefined;
  }

  override toString(): string {
    return `JointFeldmanState(${this.mode}, round ${this.round}${this.consumed ? ', consumed' : ''})`;
  }

  toJSON(): { mode: JointFeldmanMode; round: R; consumed: boolean } {
    return { mode: this.mode, round: this.round, consumed: this.consumed };
  }
}

/** Drop secrets we cannot zeroize (bigints): overwrite our references so nothing here keeps them. */
function dropScalars(a: bigint[]): void {
  a.fill(0n);
  a.length = 0;
}

/** Every secret byte array a state's contents hold (references). */
function secretBytesOf(inner: Inner<1 | 2 | 3>): Uint8Array[] {
  const out: Uint8Array[] = [];
  if ('coefficients' in inner) out.push(...inner.coefficients);
  if ('ownShare' in inner) out.push(inner.ownShare);
  if ('shareBytes' in inner) out.push(inner.shareBytes);
  if (inner.ctx.old) out.push(inner.ctx.old.oldShare);
  return out;
}

/**
 * End a session early (timeout, abort, another party's error): zeroize the secrets a state holds and
 * mark it used. Safe to call on any state, used or not.
 */
export function discardState(state: unknown): void {
  const inner = JointFeldmanState.discard(state);
  if (inner) zeroize(...secretBytesOf(inner));
}

/**
 * A probe over the secret byte arrays `state` holds now (core/wipe.ts): it says whether they have
 * been wiped, never what they were. For the wipe test; a used or foreign state holds nothing.
 */
export function jointFeldmanWipeProbe(state: unknown): WipeProbe {
  const inner = JointFeldmanState.peek(state);
  return wipeProbe(inner ? secretBytesOf(inner) : []);
}

// ---------------------------------------------------------------------------------------------
// Parameters

export interface EngineParams {
  readonly mode: JointFeldmanMode;
  readonly suite: unknown;
  readonly threshold: number;
  readonly parties: number;
  /**
   * The parties' node indices, strictly ascending, `parties` of them (core/committee.ts). Absent: 1..n
   * for a DKG, and for a refresh the old key's committee (which a given list must equal).
   */
  readonly indices?: readonly number[];
  readonly self: number;
  readonly sessionId: Uint8Array;
  /** RUN_ID_LENGTH bytes (core/run-id.ts deriveRunId). */
  readonly runId: Uint8Array;
  readonly auth: PartyAuthenticator;
  /** Refresh only: the key to refresh. */
  readonly key?: KeyShare;
}

export function checkSessionId(sessionId: unknown): asserts sessionId is Uint8Array {
  ensure(
    sessionId instanceof Uint8Array && sessionId.length >= SESSION_ID_MIN_LENGTH && sessionId.length <= SESSION_ID_MAX_LENGTH,
    ErrorCode.BadInput,
    `session id must be ${SESSION_ID_MIN_LENGTH}..${SESSION_ID_MAX_LENGTH} bytes`,
  );
}

/**
 * Validate a key to refresh: same suite and epoch in its public and secret halves, well-formed
 * package, and our share matches our verifying share. Returns the decoded old state.
 */
function checkOldKey(suite: Suite, key: KeyShare): { commitments: Point[]; shareBytes: Uint8Array } {
  ensure(typeof key === 'object' && key !== null, ErrorCode.BadInput, 'refresh: key must be a KeyShare');
  const pkg = key.publicKey;
  const sec = key.secret;
  ensure(typeof pkg === 'object' && pkg !== null && typeof sec === 'object' && sec !== null, ErrorCode.BadInput, 'refresh: key must be a KeyShare');
  ensure(sec.suite === pkg.suite, ErrorCode.BadInput, `refresh: share is for suite ${String(sec.suite)}, package for ${String(pkg.suite)}`);
  ensure(Number.isSafeInteger(pkg.epoch) && pkg.epoch >= 0, ErrorCode.BadInput, 'refresh: package epoch must be a non-negative integer');
  ensure(Number.isSafeInteger(sec.epoch) && sec.epoch >= 0, ErrorCode.BadInput, 'refresh: share epoch must be a non-negative integer');
  ensure(sec.epoch === pkg.epoch, ErrorCode.EpochMismatch, `refresh: share is at epoch ${sec.epoch}, package at epoch ${pkg.epoch}`);
  ensure(pkg.epoch < 2 ** 32 - 1, ErrorCode.BadInput, 'refresh: epoch exhausted');
  const { group } = suite;
  ensure(
    Array.isArray(pkg.commitments) && pkg.commitments.length === pkg.threshold,
    ErrorCode.BadInput,
    `refresh: package must hold ${pkg.threshold} commitments`,
  );
  ensure(
    Array.isArray(pkg.verifyingShares) && pkg.verifyingShares.length === pkg.parties,
    ErrorCode.BadInput,
    `refresh: package must hold ${pkg.parties} verifying shares`,
  );
  ensure(isParty(pkg, sec.index), ErrorCode.BadParameters, `refresh: party ${String(sec.index).slice(0, 12)} is not a holder of this key`);
  const commitments = pkg.commitments.map((c, k) => group.pointFromBytes(c, `refresh: commitment ${k}`));
  const ownVerifying = group.pointFromBytes(verifyingShareOf(pkg, sec.index), `refresh: verifying share ${sec.index}`);
  ensure(sec.value instanceof Uint8Array, ErrorCode.BadInput, 'refresh: share value must be bytes');
  // Our own copy, read once: what we check is what we use. Wiped here if the check fails.
  const shareBytes = Uint8Array.from(sec.value);
  let share: bigint;
  try {
    share = group.scalarFromBytes(shareBytes, 'refresh: share', true);
  } catch (e) {
    zeroize(shareBytes);
    throw e;
  }
  // Our share must lie on the committed polynomial: a stale or foreign share is refused before it is
  // mixed into anything (RFC 9591 Appendix C.2 vss_verify, and the verifying share derived from it).
  const matches = group.eqPoints(group.mulBase(share), ownVerifying) && group.eqPoints(evalCommitment(group, commitments, sec.index), ownVerifying);
  share = 0n; // a bigint cannot be wiped: drop our reference
  if (!matches) zeroize(shareBytes);
  ensure(matches, ErrorCode.BadInput, `refresh: share of party ${sec.index} does not match its public package`);
  return { commitments, shareBytes };
}

function makeContext(p: EngineParams): Context {
  const suite = getSuite(p.suite);
  checkThreshold(p.threshold, p.parties);
  const indices = engineCommittee(p);
  ensure(
    Number.isSafeInteger(p.self) && indices.includes(p.self),
    ErrorCode.BadParameters,
    isContiguous(indices) ? `party index must be 1..${p.parties}, got ${p.self}` : `party ${String(p.self).slice(0, 12)} is not a holder of this key`,
  );
  checkSessionId(p.sessionId);
  checkRunId(p.runId);
  checkAuthenticator(p.auth);
  let epoch = 0;
  let old: Context['old'];
  if (p.mode === 'refresh') {
    ensure(p.key !== undefined, ErrorCode.BadInput, 'refresh: a key is required');
    const k = checkOldKey(suite, p.key);
    epoch = p.key.publicKey.epoch;
    // Our own copy of the checked share bytes (the caller keeps and wipes its KeyShare).
    old = { commitments: k.commitments, oldShare: k.shareBytes };
  }
  return {
    mode: p.mode,
    suite,
    threshold: p.threshold,
    parties: p.parties,
    indices,
    self: p.self,
    sessionId: Uint8Array.from(p.sessionId),
    runId: Uint8Array.from(p.runId),
    auth: p.auth,
    epoch,
    old,
  };
}

/**
 * The parties of a run (EngineParams.indices): a given committee must be `parties` strictly ascending
 * node indices; a refresh runs over the old key's committee (the key stays where it is). Default 1..n.
 */
function engineCommittee(p: EngineParams): readonly number[] {
  const given = p.indices === undefined ? undefined : checkCommittee(p.indices, p.threshold);
  if (given !== undefined) ensure(given.length === p.parties, ErrorCode.BadParameters, `a committee of ${given.length} nodes for ${p.parties} parties`);
  if (p.mode === 'refresh' && typeof p.key === 'object' && p.key !== null && typeof p.key.publicKey === 'object' && p.key.publicKey !== null) {
    const pkg = p.key.publicKey;
    checkPackageCommittee(pkg, 'refresh: key');
    ensure(pkg.threshold === p.threshold && pkg.parties === p.parties, ErrorCode.BadParameters, 'refresh: threshold and parties must be the key\'s');
    const old = partyIndices(pkg);
    ensure(given === undefined || sameList(given, old), ErrorCode.BadParameters, 'refresh: a key keeps its committee; the parties must be its holders');
    return old;
  }
  return given ?? contiguousIndices(p.parties);
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((i, k) => i === b[k]);
}

// ---------------------------------------------------------------------------------------------
// Transcripts and proofs

/** What, besides the package itself, a round-1 signature is bound to. */
export interface Round1Binding {
  readonly mode: JointFeldmanMode;
  readonly suite: unknown;
  readonly threshold: number;
  readonly parties: number;
  /** The parties' node indices when they are not 1..parties (core/committee.ts); absent otherwise. */
  readonly indices?: readonly number[];
  readonly sessionId: Uint8Array;
  /** The run id the package was signed for (core/run-id.ts). */
  readonly runId: Uint8Array;
  /** The epoch being refreshed (0 for DKG). */
  readonly epoch: number;
}

/**
 * The exact bytes party `sender` signs for its round-1 package. Exported so that equivocation
 * evidence (two packages signed by one sender for one session) can be checked outside the engine.
 */
export function round1SignedBytes(binding: Round1Binding, sender: number, msg: DkgRound1Msg): Uint8Array {
  const suite = getSuite(binding.suite);
  checkPackageCommittee(binding, 'round-1 binding');
  checkSessionId(binding.sessionId);
  checkRunId(binding.runId);
  ensure(isParty(binding, sender), ErrorCode.BadParameters, binding.indices === undefined ? `sender must be 1..${binding.parties}` : 'sender is not one of the parties');
  ensure(binding.mode === 'dkg' || binding.mode === 'refresh', ErrorCode.BadInput, 'mode must be dkg or refresh');
  ensure(
    typeof msg === 'object' && msg !== null && Array.isArray(msg.commitments) && msg.commitments.every((c) => c instanceof Uint8Array) && msg.proof instanceof Uint8Array,
    ErrorCode.BadMessage,
    'round-1 package expected',
  );
  ensure(Number.isSafeInteger(binding.epoch) && binding.epoch >= 0 && binding.epoch < 2 ** 32, ErrorCode.BadInput, 'epoch must be a 32-bit integer');
  return transcriptBytes(binding.mode, suite.contextString, binding.sessionId, binding.runId, binding.epoch, binding.threshold, partyIndices(binding), sender, msg.commitments, msg.proof);
}

/**
 * The framed transcript: it binds the protocol (mode), the suite, the session, the run id, the epoch
 * being refreshed, the parameters, the sender and the whole package, so a package cannot be replayed
 * into another session, run, protocol or epoch. The group key is deliberately not bound here: a party holding a
 * different key is not a cheater, and it is caught without blame by the confirmation round.
 */
function transcriptBytes(
  mode: JointFeldmanMode,
  contextString: string,
  sessionId: Uint8Array,
  runId: Uint8Array,
  epoch: number,
  threshold: number,
  indices: readonly number[],
  sender: number,
  commitments: readonly Uint8Array[],
  proof: Uint8Array,
): Uint8Array {
  return framed(
    TAG_ROUND1,
    utf8ToBytes(contextString),
    utf8ToBytes(mode),
    sessionId,
    runId,
    i2osp(epoch, 4),
    i2osp(threshold, 2),
    i2osp(indices.length, 2),
    i2osp(sender, 2),
    framed(...commitments),
    proof,
    // The parties, only when they are not 1..n: the transcript of every such run is unchanged.
    ...(isContiguous(indices) ? [] : [Uint8Array.from(indices)]),
  );
}

function round1Transcript(ctx: Context, sender: number, commitments: readonly Uint8Array[], proof: Uint8Array, epoch = ctx.epoch): Uint8Array {
  return transcriptBytes(ctx.mode, ctx.suite.contextString, ctx.sessionId, ctx.runId, epoch, ctx.threshold, ctx.indices, sender, commitments, proof);
}

/**
 * Challenge of the proof of knowledge of a_0: c = H_dkg(session, sender, commitments, R). Like
 * FROST's c_i = H(i, Φ, g^{a_i0}, R_i) (Komlo–Goldberg Fig. 1, frost-rs `challenge`), with the
 * context Φ made of the suite context string (as the DST), the session id and every commitment.
 */
function pokChallenge(ctx: Context, sender: number, commitments: readonly Uint8Array[], R: Uint8Array): bigint {
  const dst = utf8ToBytes(`${ctx.suite.contextString}-dkg-pok`);
  return ctx.suite.group.hashToScalar(dst, framed(ctx.sessionId, i2osp(sender, 2), i2osp(ctx.threshold, 2), framed(...commitments), R));
}

/** Schnorr proof of knowledge of a_0 for C_0 = a_0·G: R = k·G, z = k + c·a_0; encoded R || z. */
function provePok(ctx: Context, a0: bigint, commitments: readonly Uint8Array[]): Uint8Array {
  const { group } = ctx.suite;
  let k = group.randomScalar();
  const R = group.pointToBytes(group.mulBase(k));
  const c = pokChallenge(ctx, ctx.self, commitments, R);
  const z = group.add(k, group.mul(c, a0));
  k = 0n;
  const out = new Uint8Array(R.length + group.scalarLength);
  out.set(R, 0);
  out.set(group.scalarToBytes(z), R.length);
  return out;
}

/** Verify a proof of knowledge: R == z·G - c·C_0 (all public: variable time is fine). */
function verifyPok(ctx: Context, sender: number, commitments: readonly Uint8Array[], C0: Point, proof: Uint8Array): boolean {
  const { group } = ctx.suite;
  try {
    const Rbytes = proof.subarray(0, group.pointLength);
    const R = group.pointFromBytes(Rbytes, 'proof R');
    const z = group.scalarFromBytes(proof.subarray(group.pointLength), 'proof z', true);
    const c = pokChallenge(ctx, sender, commitments, Rbytes);
    return group.eqPoints(R, group.msm([group.base, C0], [z, group.neg(c)]));
  } catch {
    return false;
  }
}

function authVerify(ctx: Context, index: number, message: Uint8Array, signature: Uint8Array): boolean {
  return verifyWith(ctx.auth, index, message, signature);
}

// ---------------------------------------------------------------------------------------------
// Input checks (cheap ones first, before any crypto)

const commitmentCount = (ctx: Context) => (ctx.mode === 'dkg' ? ctx.threshold : ctx.threshold - 1);
const proofLength = (ctx: Context) => (ctx.mode === 'dkg' ? ctx.suite.group.pointLength + ctx.suite.group.scalarLength : 0);

/**
 * Read a round-1 package once, check its shape (counts, lengths, types) and copy it, so nothing the
 * caller does afterwards can change what we validated. Returns why it is malformed instead, if it is.
 */
function snapshotPackage(ctx: Context, msg: unknown): DkgRound1Msg | string {
  if (typeof msg !== 'object' || msg === null) return 'not a package';
  const { commitments, proof, signature } = msg as Partial<DkgRound1Msg>;
  if (!Array.isArray(commitments)) return 'commitments missing';
  const list = [...commitments];
  if (list.length !== commitmentCount(ctx)) return `expected ${commitmentCount(ctx)} commitments, got ${list.length}`;
  if (!list.every((c) => c instanceof Uint8Array && c.length === ctx.suite.group.pointLength)) return 'commitment of the wrong length';
  if (!(proof instanceof Uint8Array) || proof.length !== proofLength(ctx)) return `proof must be ${proofLength(ctx)} bytes`;
  if (!(signature instanceof Uint8Array) || signature.length === 0 || signature.length > MAX_SIGNATURE_LENGTH) {
    return 'signature missing or of the wrong length';
  }
  return { commitments: list.map((c) => Uint8Array.from(c as Uint8Array)), proof: Uint8Array.from(proof), signature: Uint8Array.from(signature) };
}

/**
 * Check that `msgs` is a Map holding exactly one message from every other party. Unknown or missing
 * senders are UnexpectedParty without culprits: a message may be dropped or misrouted by the network.
 */
function checkSenders<M>(ctx: Context, msgs: unknown, what: string): Map<number, M> {
  ensure(msgs instanceof Map, ErrorCode.BadInput, `${what}: expected a Map keyed by sender index`);
  const m = msgs as Map<unknown, M>;
  const unexpected: string[] = [];
  for (const k of m.keys()) {
    if (typeof k !== 'number' || !ctx.indices.includes(k) || k === ctx.self) {
      unexpected.push(typeof k === 'number' ? String(k) : typeof k);
    }
  }
  ensure(unexpected.length === 0, ErrorCode.UnexpectedParty, `${what}: message from unexpected sender(s) ${unexpected.join(', ')}`);
  const missing: number[] = [];
  for (const j of ctx.indices) if (j !== ctx.self && !m.has(j)) missing.push(j);
  ensure(missing.length === 0, ErrorCode.UnexpectedParty, `${what}: missing message(s) from party ${missing.join(', ')}`);
  return m as Map<number, M>;
}

/**
 * Throw `code` naming every culprit in `bad` (sender -> reason), if any. Only for faults shown by a
 * message the culprit signed (a signed message failing a public check), or a point-to-point share.
 */
export function throwIfAny(code: ErrorCode, what: string, bad: Map<number, string>, evidence: readonly EquivocationEvidence[] = []): void {
  if (bad.size === 0) return;
  throw new TesseraError(code, `${what}: ${describe(bad, 'party')}`, [...bad.keys()], evidence);
}

/**
 * Throw `code` naming nobody, if `bad` holds anything: for faults a third party cannot pin on the
 * sender (bytes that do not form a message, a bad or missing signature, a forged echo). The message
 * still says where it came from, for the operator.
 */
export function throwUnattributed(code: ErrorCode, what: string, bad: Map<number, string>): void {
  if (bad.size === 0) return;
  throw new TesseraError(code, `${what}: ${describe(bad, 'from party')}`);
}

function describe(bad: Map<number, string>, label: string): string {
  return [...bad].sort((a, b) => a[0] - b[0]).map(([j, why]) => `${label} ${j}: ${why}`).join('; ');
}

function othersOf(ctx: Context): number[] {
  return ctx.indices.filter((j) => j !== ctx.self);
}

// ---------------------------------------------------------------------------------------------
// Round 1: deal

export function engineRound1(params: EngineParams): { state: JointFeldmanState<1>; broadcast: DkgRound1Msg } {
  const ctx = makeContext(params);
  const { group } = ctx.suite;
  // RFC 9591 Appendix C.1: a random polynomial of degree t-1. DKG: random a_0 (Komlo–Goldberg
  // round 1 step 1); refresh: a_0 = 0, so the shares dealt are a sharing of zero.
  const constant = ctx.mode === 'dkg' ? group.randomScalar() : 0n;
  const coefficients = randomPolynomial(group, constant, ctx.threshold);
  try {
    // RFC 9591 Appendix C.2 vss_commit: C_k = a_k·G. Refresh omits C_0 (the identity).
    const points = commitPolynomial(group, ctx.mode === 'dkg' ? coefficients : coefficients.slice(1));
    const commitmentBytes = points.map((p) => group.pointToBytes(p));
    const proof = ctx.mode === 'dkg' ? provePok(ctx, coefficients[0]!, commitmentBytes) : new Uint8Array(0);
    const transcript = round1Transcript(ctx, ctx.self, commitmentBytes, proof);
    const signature = authSign(ctx.auth, transcript, 'round 1');
    const broadcast: DkgRound1Msg = { commitments: commitmentBytes, proof, signature: Uint8Array.from(signature) };
    const own: ReceivedPackage = {
      commitments: ctx.mode === 'dkg' ? points : [group.identity, ...points],
      transcript,
      message: { commitments: commitmentBytes.map((c) => Uint8Array.from(c)), proof: Uint8Array.from(proof), signature: Uint8Array.from(signature) },
    };
    // Kept as bytes while we wait for the other packages: bytes can be wiped, bigints cannot.
    const secretCoefficients = coefficients.map((a) => group.scalarToBytes(a));
    return { state: JointFeldmanState.make(ctx.mode, 1, { ctx, coefficients: secretCoefficients, own }), broadcast };
  } catch (e) {
    if (ctx.old) zeroize(ctx.old.oldShare);
    throw e;
  } finally {
    dropScalars(coefficients);
  }
}

// ---------------------------------------------------------------------------------------------
// Round 2: validate packages, send shares, echo

export function engineRound2(
  stateIn: unknown,
  mode: JointFeldmanMode,
  received: Map<number, DkgRound1Msg>,
): { state: JointFeldmanState<2>; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> } {
  const fn = `${mode}Round2`;
  const inner = JointFeldmanState.take(stateIn, mode, 1, fn);
  const { ctx } = inner;
  const { group } = ctx.suite;
  let coefficients: bigint[] = [];
  try {
    const msgs = checkSenders<DkgRound1Msg>(ctx, received, `${fn}: round-1 packages`);
    const others = othersOf(ctx);

    // 1. Shapes: counts and lengths, for every sender, before any crypto. We keep copies, so later
    //    changes to the caller's objects cannot change our view. Bytes that do not form a package
    //    are a relay fault as far as a third party can tell: nobody is named.
    const malformed = new Map<number, string>();
    const copies = new Map<number, DkgRound1Msg>();
    for (const j of others) {
      const snap = snapshotPackage(ctx, msgs.get(j));
      if (typeof snap === 'string') malformed.set(j, snap);
      else copies.set(j, snap);
    }
    throwUnattributed(ErrorCode.BadMessage, `${fn}: malformed round-1 package`, malformed);

    // 2. The sender's identity signature over the framed transcript (run id included). Only a validly
    //    signed package can be evidence against its sender, so this comes before the public checks.
    //    A bad signature names nobody: a replay from another run, a relayed forgery and a sender's own
    //    garbage look the same to a third party.
    const transcripts = new Map<number, Uint8Array>();
    const badSignatures = new Map<number, string>();
    let otherEpoch: { party: number; epoch: number } | undefined;
    for (const j of others) {
      const m = copies.get(j)!;
      const t = round1Transcript(ctx, j, m.commitments, m.proof);
      transcripts.set(j, t);
      if (authVerify(ctx, j, t, m.signature)) continue;
      if (ctx.mode === 'refresh' && !otherEpoch) {
        // A party whose last refresh committed while ours did not (or the reverse) signs for a
        // neighbouring epoch: say so, without blaming it — which of us is stale is not known here.
        for (const e of [ctx.epoch - 1, ctx.epoch + 1]) {
          if (e >= 0 && e < 2 ** 32 && authVerify(ctx, j, round1Transcript(ctx, j, m.commitments, m.proof, e), m.signature)) {
            otherEpoch = { party: j, epoch: e };
            break;
          }
        }
      }
      badSignatures.set(j, 'round-1 signature does not verify for this run');
    }
    if (otherEpoch) {
      throw new TesseraError(
        ErrorCode.EpochMismatch,
        `${fn}: party ${otherEpoch.party} is refreshing epoch ${otherEpoch.epoch}, this party epoch ${ctx.epoch}`,
      );
    }
    throwUnattributed(ErrorCode.BadProof, `${fn}: bad round-1 signature`, badSignatures);

    // 3. Points: RFC 9591 §3.1 DeserializeElement (on curve, not identity, prime-order subgroup).
    //    The package is signed, so an invalid element is a signed message failing a public check.
    const decoded = new Map<number, Point[]>();
    const badPoints = new Map<number, string>();
    for (const j of others) {
      try {
        decoded.set(j, copies.get(j)!.commitments.map((c, k) => group.pointFromBytes(c, `commitment ${k}`)));
      } catch (e) {
        badPoints.set(j, e instanceof TesseraError ? e.message : 'invalid commitment');
      }
    }
    throwIfAny(ErrorCode.BadPoint, `${fn}: invalid commitment`, badPoints);

    // 4. DKG: the proof of knowledge of each sender's constant term (Komlo–Goldberg round 1 step 5),
    //    which stops a rushing party from choosing C_0 as a function of the others' (rogue key).
    if (ctx.mode === 'dkg') {
      const badProofs = new Map<number, string>();
      for (const j of others) {
        const m = copies.get(j)!;
        if (!verifyPok(ctx, j, m.commitments, decoded.get(j)![0]!, m.proof)) badProofs.set(j, 'proof of knowledge does not verify');
      }
      throwIfAny(ErrorCode.BadProof, `${fn}: bad proof of knowledge`, badProofs);
    }

    // All packages are valid. Keep them (and our own) for the echo check and the sums.
    const all = new Map<number, ReceivedPackage>([[ctx.self, inner.own]]);
    for (const j of others) {
      const points = decoded.get(j)!;
      all.set(j, { commitments: ctx.mode === 'dkg' ? points : [group.identity, ...points], transcript: transcripts.get(j)!, message: copies.get(j)! });
    }

    // Shares f_self(j) for every other party (RFC 9591 Appendix C.1 polynomial evaluation),
    // and our own f_self(self). Secret; the channel encrypts them end to end.
    coefficients = inner.coefficients.map((b, k) => group.scalarFromBytes(b, `coefficient ${k}`, true));
    const shares = new Map<number, DkgRound2Msg>();
    for (const j of others) shares.set(j, { share: group.scalarToBytes(evalPolynomial(group, coefficients, BigInt(j))) });
    const ownShare = group.scalarToBytes(evalPolynomial(group, coefficients, BigInt(ctx.self)));

    const packages: Record<number, DkgRound1Msg> = { [ctx.self]: inner.own.message };
    for (const j of others) packages[j] = copies.get(j)!;
    const echo: DkgEchoMsg = { packages };

    return { state: JointFeldmanState.make(mode, 2, { ctx, ownShare, received: all }), echo, shares };
  } catch (e) {
    // The session is over for this party: wipe the old share it was carrying too.
    if (ctx.old) zeroize(ctx.old.oldShare);
    throw e;
  } finally {
    // The polynomial is never needed again, whatever happened.
    zeroize(...inner.coefficients);
    dropScalars(coefficients);
  }
}

// ---------------------------------------------------------------------------------------------
// Round 3: echo check, share verification, result

function echoCheck(ctx: Context, fn: string, echoes: ReadonlyMap<number, DkgEchoMsg>, received: ReadonlyMap<number, ReceivedPackage>): void {
  const others = othersOf(ctx);
  // Shape of every echo first: exactly the packages of every party, each well formed. The echo is not
  // identity-signed, so a malformed one names nobody.
  const badEchoes = new Map<number, string>();
  const echoed = new Map<number, DkgRound1Msg[]>(); // echoer -> snapshots of the packages, in ctx.indices order
  for (const e of others) {
    const echo = echoes.get(e) as unknown;
    if (typeof echo !== 'object' || echo === null) {
      badEchoes.set(e, 'not an echo');
      continue;
    }
    const pk = (echo as Partial<DkgEchoMsg>).packages as unknown;
    if (typeof pk !== 'object' || pk === null || Array.isArray(pk)) {
      badEchoes.set(e, 'packages missing');
      continue;
    }
    const keys = Object.keys(pk);
    const expected = new Set<string>(ctx.indices.map(String));
    if (keys.length !== ctx.parties || !keys.every((k) => expected.has(k))) {
      badEchoes.set(e, isContiguous(ctx.indices) ? `must echo exactly the packages of parties 1..${ctx.parties}` : 'must echo exactly the packages of every party');
      continue;
    }
    const snaps: DkgRound1Msg[] = [];
    for (const j of ctx.indices) {
      const snap = snapshotPackage(ctx, (pk as Record<string, unknown>)[String(j)]);
      if (typeof snap === 'string') {
        badEchoes.set(e, `echoed package of party ${j}: ${snap}`);
        break;
      }
      snaps.push(snap);
    }
    echoed.set(e, snaps);
  }
  throwUnattributed(ErrorCode.BadMessage, `${fn}: malformed echo`, badEchoes);

  // Content: compare each echoed package's signed transcript with the one we received.
  const forged = new Map<number, string>();
  const equivocators = new Map<number, string>();
  const evidence: EquivocationEvidence[] = [];
  for (const e of others) {
    const packages = echoed.get(e)!;
    for (const [k, j] of ctx.indices.entries()) {
      const m = packages[k]!;
      const t = round1Transcript(ctx, j, m.commitments, m.proof);
      const ours = received.get(j)!;
      if (equalBytes(t, ours.transcript)) continue; // same content (signatures may be randomised)
      if (!authVerify(ctx, j, t, m.signature)) {
        // Not signed by j for this run (made up, or replayed from another run): proves nothing
        // against j, and the echo is unsigned, so nothing against the echoer either.
        forged.set(e, `echoed a package for party ${j} that party ${j} did not sign for this run`);
      } else if (!equivocators.has(j)) {
        // Two different packages, both signed by j, for one run and round: transferable proof.
        equivocators.set(j, `signed different round-1 packages (party ${e} received another one)`);
        evidence.push(jointFeldmanEvidence(ctx, j, ours.message, m));
      }
    }
  }
  // An equivocator is named whatever else went wrong.
  throwIfAny(ErrorCode.Equivocation, `${fn}: echo check failed`, equivocators, evidence);
  throwUnattributed(ErrorCode.BadProof, `${fn}: forged echo`, forged);
}

/** Equivocation evidence: two round-1 packages `signer` signed for this run, with what they bind. */
function jointFeldmanEvidence(ctx: Context, signer: number, first: DkgRound1Msg, second: DkgRound1Msg): EquivocationEvidence {
  const copy = (m: DkgRound1Msg): DkgRound1Msg => ({
    commitments: m.commitments.map((c) => Uint8Array.from(c)),
    proof: Uint8Array.from(m.proof),
    signature: Uint8Array.from(m.signature),
  });
  return {
    protocol: ctx.mode,
    signer,
    binding: {
      mode: ctx.mode,
      suite: ctx.suite.id,
      threshold: ctx.threshold,
      parties: ctx.parties,
      ...(isContiguous(ctx.indices) ? {} : { indices: [...ctx.indices] }),
      sessionId: Uint8Array.from(ctx.sessionId),
      runId: Uint8Array.from(ctx.runId),
      epoch: ctx.epoch,
    },
    first: copy(first),
    second: copy(second),
  };
}

export function engineRound3(
  stateIn: unknown,
  mode: JointFeldmanMode,
  echoes: Map<number, DkgEchoMsg>,
  shares: Map<number, DkgRound2Msg>,
): { state: JointFeldmanState<3>; confirm: DkgConfirmMsg } {
  const fn = `${mode}Round3`;
  const inner = JointFeldmanState.take(stateIn, mode, 2, fn);
  const { ctx, received } = inner;
  const { group } = ctx.suite;
  const values = new Map<number, bigint>();
  try {
    const echoMsgs = checkSenders<DkgEchoMsg>(ctx, echoes, `${fn}: echoes`);
    const shareMsgs = checkSenders<DkgRound2Msg>(ctx, shares, `${fn}: shares`);
    const others = othersOf(ctx);

    // Broadcast consistency before anything secret is touched.
    echoCheck(ctx, fn, echoMsgs, received);

    // Shares: encoding, then RFC 9591 Appendix C.2 vss_verify against the sender's commitments.
    const badShares = new Map<number, string>();
    for (const j of others) {
      const m = shareMsgs.get(j) as unknown;
      const raw = typeof m === 'object' && m !== null ? (m as Partial<DkgRound2Msg>).share : undefined;
      if (!(raw instanceof Uint8Array) || raw.length !== group.scalarLength) {
        badShares.set(j, `share must be ${group.scalarLength} bytes`);
        continue;
      }
      let v: bigint;
      try {
        v = group.scalarFromBytes(raw, 'share', true);
      } catch {
        badShares.set(j, 'share is not a canonical scalar');
        continue;
      }
      if (!verifyShareAgainstCommitments(group, ctx.self, v, received.get(j)!.commitments)) {
        badShares.set(j, `share for party ${ctx.self} does not match the sender's commitments`);
        continue;
      }
      values.set(j, v);
    }
    throwIfAny(ErrorCode.BadShare, `${fn}: bad share`, badShares);

    // Our new share: Σ_j f_j(self) (DKG), or old share + Σ_j δ_j(self) (refresh).
    let share = group.scalarFromBytes(inner.ownShare, 'own share', true);
    for (const j of others) share = group.add(share, values.get(j)!);
    values.clear();
    if (ctx.old) share = group.add(share, group.scalarFromBytes(ctx.old.oldShare, 'old share', true));

    // Group commitments: C_k = Σ_j C_{j,k} (+ old C_k for refresh; old C_0 stays the group key).
    const commitments: Point[] = [];
    for (let k = 0; k < ctx.threshold; k++) {
      let acc = ctx.old ? ctx.old.commitments[k]! : group.identity;
      for (const j of ctx.indices) acc = group.addPoints(acc, received.get(j)!.commitments[k]!);
      commitments.push(acc);
    }
    // An identity commitment has no encoding (RFC 9591 §3.1) and would mean a degenerate key.
    ensure(commitments.every((c) => !group.isIdentity(c)), ErrorCode.VerificationFailed, `${fn}: a group commitment is the identity`);

    // Verifying shares Y_i = Σ_k C_k·i^k for every party i, in committee order (RFC 9591 Appendix C.2
    // derive_group_info; core/committee.ts: verifyingShares[k] belongs to indices[k]).
    const verifying: Point[] = ctx.indices.map((i) => evalCommitment(group, commitments, i));
    ensure(verifying.every((y) => !group.isIdentity(y)), ErrorCode.VerificationFailed, `${fn}: a verifying share is the identity`);
    const ownVerifying = verifying[ctx.indices.indexOf(ctx.self)]!;
    ensure(group.eqPoints(group.mulBase(share), ownVerifying), ErrorCode.VerificationFailed, `${fn}: own share does not match the group commitments`);

    if (ctx.old) {
      // Refresh must keep the key: the new verifying shares interpolate to the old group key.
      const firstT = verifying.slice(0, ctx.threshold).map((point, k) => ({ index: ctx.indices[k]!, point }));
      const oldKey = ctx.old.commitments[0]!;
      ensure(
        group.eqPoints(commitments[0]!, oldKey) && group.eqPoints(interpolatePoints(group, firstT), oldKey),
        ErrorCode.VerificationFailed,
        `${fn}: refreshed shares do not interpolate to the group key`,
      );
    }

    const publicKey: PublicKeyPackage = Object.freeze({
      suite: ctx.suite.id,
      threshold: ctx.threshold,
      parties: ctx.parties,
      // A committee of nodes 1..n is not written (core/types.ts): such packages keep their digests.
      ...(isContiguous(ctx.indices) ? {} : { indices: Object.freeze([...ctx.indices]) }),
      epoch: ctx.old ? ctx.epoch + 1 : 0,
      commitments: Object.freeze(commitments.map((c) => group.pointToBytes(c))),
      verifyingShares: Object.freeze(verifying.map((y) => group.pointToBytes(y))),
    });
    const digest = publicResultDigest(publicKey, ctx.sessionId);
    const shareBytes = group.scalarToBytes(share);
    share = 0n;
    return {
      state: JointFeldmanState.make(mode, 3, { ctx, publicKey, shareBytes, digest }),
      confirm: { digest: Uint8Array.from(digest) },
    };
  } finally {
    // Neither f_self(self) nor the old share is needed after this round, whatever happened. The
    // received shares as bigints (`values`, `share`) can only be dropped, not wiped.
    zeroize(inner.ownShare);
    if (ctx.old) zeroize(ctx.old.oldShare);
    values.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Finish: confirmation

export function engineFinish(stateIn: unknown, mode: JointFeldmanMode, confirms: Map<number, DkgConfirmMsg>): KeyShare {
  const fn = `${mode}Finish`;
  const inner = JointFeldmanState.take(stateIn, mode, 3, fn);
  const { ctx } = inner;
  let released = false;
  try {
    const msgs = checkSenders<DkgConfirmMsg>(ctx, confirms, `${fn}: confirmations`);
    const others = othersOf(ctx);
    const malformed = new Map<number, string>();
    for (const j of others) {
      const m = msgs.get(j) as unknown;
      const d = typeof m === 'object' && m !== null ? (m as Partial<DkgConfirmMsg>).digest : undefined;
      if (!(d instanceof Uint8Array) || d.length !== DIGEST_LENGTH) malformed.set(j, `digest must be ${DIGEST_LENGTH} bytes`);
    }
    // The confirmation is not identity-signed: a malformed one names nobody.
    throwUnattributed(ErrorCode.BadMessage, `${fn}: malformed confirmation`, malformed);
    const differing = others.filter((j) => !equalBytes(msgs.get(j)!.digest, inner.digest));
    // No culprits: a differing digest shows disagreement, not who caused it (a party may have been
    // fed a different view by someone else). The key is not released.
    ensure(
      differing.length === 0,
      ErrorCode.ConfirmationMismatch,
      `${fn}: public result differs at party ${differing.join(', ')}; no key is released`,
    );
    const secret = Object.freeze({ suite: ctx.suite.id, index: ctx.self, epoch: inner.publicKey.epoch, value: inner.shareBytes });
    released = true;
    return Object.freeze({ publicKey: inner.publicKey, secret });
  } finally {
    // Released: the bytes now belong to the caller's KeyShare. Otherwise they are wiped here.
    if (!released) zeroize(inner.shareBytes);
    inner.shareBytes = new Uint8Array(0);
  }
}

// ---------------------------------------------------------------------------------------------
// The public result digest

/**
 * SHA-256 over the framed public result (suite, parameters, epoch, commitments, verifying shares),
 * bound to the session. Every party sends it in its confirmation; equal digests mean every party
 * computed the same PublicKeyPackage in this session.
 */
export function publicResultDigest(pkg: PublicKeyPackage, sessionId: Uint8Array): Uint8Array {
  checkSessionId(sessionId);
  ensure(typeof pkg === 'object' && pkg !== null, ErrorCode.BadInput, 'public key package expected');
  const suite = getSuite(pkg.suite);
  ensure(Number.isSafeInteger(pkg.epoch) && pkg.epoch >= 0 && pkg.epoch < 2 ** 32, ErrorCode.BadInput, 'epoch must be a 32-bit integer');
  checkPackageCommittee(pkg);
  ensure(
    Array.isArray(pkg.commitments) && pkg.commitments.length === pkg.threshold && pkg.commitments.every((c) => c instanceof Uint8Array),
    ErrorCode.BadInput,
    `public key package must hold ${pkg.threshold} commitments`,
  );
  ensure(
    Array.isArray(pkg.verifyingShares) && pkg.verifyingShares.length === pkg.parties && pkg.verifyingShares.every((c) => c instanceof Uint8Array),
    ErrorCode.BadInput,
    `public key package must hold ${pkg.parties} verifying shares`,
  );
  return sha256(
    framed(
      TAG_RESULT,
      utf8ToBytes(suite.id),
      sessionId,
      i2osp(pkg.threshold, 2),
      i2osp(pkg.parties, 2),
      i2osp(pkg.epoch, 4),
      framed(...pkg.commitments),
      framed(...pkg.verifyingShares),
      // The committee only when the package names one, so every 1..n result digest is unchanged.
      ...(pkg.indices !== undefined ? [Uint8Array.from(pkg.indices)] : []),
    ),
  );
}
