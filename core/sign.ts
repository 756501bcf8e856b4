/**
 * FROST threshold signing (RFC 9591 §5) with any t of the n parties, over the RFC 9591 algebra of
 * core/frost.ts (which runs on the suite's `Group`, so a native group backend speeds it up).
 *
 * Round 1 (§5.1): every signer commits to a fresh pair of nonces and sends the commitments.
 * Round 2 (§5.2): every signer, given the commitment list and the message, sends its signature share.
 * Aggregation (§5.3), aggregate-first: the shares are summed and the signature verified under the
 * group public key; only if that fails is every share checked (§5.4), so that every bad signer is
 * named. verifySignatureShares checks every share on its own (§5.4).
 *
 * What this module adds to the algebra: typed errors, validation of every input before any
 * arithmetic, culprit attribution, one-use secret nonce state, and the epoch / suite binding of shares.
 * Public inputs are decoded once (core/frost.ts decodePackage / decodePoint): a package kept as one
 * object and the commitments core/wire.ts decoded are not decoded again here.
 *
 * On top of the algebra, the signing session (signSessionRound1 / signSessionRound2 /
 * signSessionFinish, at the end of this file) is what nodes run: round-1 commitments signed with each
 * signer's identity for the run and echo-checked inside round 2, so an equivocating signer is named
 * with transferable evidence and an honest one never is.
 *
 * Party i's RFC 9591 identifier is the scalar i.
 *
 * bip340: the key package stores the untweaked group key with whatever y parity it has; the share, the
 * verifying shares and the nonces are negated at signing time when the group key or the group
 * commitment has odd y (the BIP-340 "even y" convention, as @noble/curves' FROST-secp256k1-SHA256-TR-v1
 * does), so the result is a plain BIP-340 signature under the x-only group key. No TapTweak is applied.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { MAX_AUTH_SIGNATURE_LENGTH, authSign, authVerify, checkAuthenticator, type PartyAuthenticator } from './auth.js';
import { equalBytes, framed, i2osp, utf8ToBytes, zeroize } from './bytes.js';
import { OneUseState, wipeProbe, type WipeProbe } from './wipe.js';
import { ErrorCode, TesseraError, ensure, guard } from './errors.js';
import type { EquivocationEvidence } from './evidence.js';
import {
  aggregate,
  aggregateWithReportedCommitment,
  checkSignerSet,
  bindingFactorInputs as frostBindingFactorInputs,
  commit as frostCommit,
  decodeCommitmentList,
  decodePackage,
  decodePoint,
  knownPoint,
  rememberPoint,
  signShare,
  signatureCommitmentBytes,
  signingContext,
  verifyShare,
  type DecodedPackage,
  type SigningContext,
} from './frost.js';
import { checkSessionId } from './jointfeldman.js';
import type { SignCommitMsg, SignShareMsg, SignedCommitMsg, SignedShareMsg } from './messages.js';
import { checkRunId } from './run-id.js';
import { isParty, partyIndices, partyPosition } from './committee.js';
import { checkPlayers } from './shamir.js';
import { getSuite, type SigningSuite, type SigningSuiteId, type Suite } from './suites.js';
import type { KeyShare, PublicKeyPackage, SecretShare } from './types.js';

// ---------------------------------------------------------------------------------------------
// Secret round state

/**
 * A signer's round-1 secret: the hiding and binding nonces of RFC 9591 §5.1. Never sent, used once.
 * `signRound2` wipes the nonce bytes and sets `consumed` whether it succeeds or not, so a nonce pair
 * can never sign twice (two shares under one nonce pair with different binding factors reveal the
 * share). A failed signing attempt restarts from round 1.
 */
export interface SigningNonces {
  readonly suite: SigningSuiteId;
  /** The party that made the nonces. */
  readonly index: number;
  /** The epoch of the share the nonces were made for. */
  readonly epoch: number;
  /** SerializeScalar(hiding_nonce). Secret. */
  readonly hiding: Uint8Array;
  /** SerializeScalar(binding_nonce). Secret. */
  readonly binding: Uint8Array;
  /** A private copy of the commitments this party sent (round 2 checks the list carries exactly these). */
  readonly commit: SignCommitMsg;
  /** Set once the nonces have been used (or discarded); any further use throws BadState. */
  consumed: boolean;
}

/** Wipe round-1 nonces that will not be used (an aborted session). Safe to call more than once. */
export function discardNonces(nonces: SigningNonces): void {
  zeroize(nonces.hiding, nonces.binding);
  nonces.consumed = true;
}

// ---------------------------------------------------------------------------------------------
// Validation (before any crypto)

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

function checkSigningSuite(suite: SigningSuite): void {
  ensure(isObject(suite) && suite.kind === 'sign', ErrorCode.UnknownSuite, 'not a signing suite');
}

function checkSecretShare(suite: SigningSuite, share: SecretShare): bigint {
  ensure(isObject(share), ErrorCode.BadInput, 'secret share: expected an object');
  ensure(share.suite === suite.id, ErrorCode.UnknownSuite, `secret share is for suite ${String(share.suite)}, not ${suite.id}`);
  ensure(Number.isSafeInteger(share.index) && share.index >= 1 && share.index <= 255, ErrorCode.BadInput, 'secret share: bad party index');
  ensure(Number.isSafeInteger(share.epoch) && share.epoch >= 0, ErrorCode.BadInput, 'secret share: bad epoch');
  // RFC 9591 §3.1 DeserializeScalar: canonical, and a zero share is never a valid key share.
  return suite.group.scalarFromBytes(share.value, 'secret share');
}

function checkMessage(message: Uint8Array): void {
  ensure(message instanceof Uint8Array, ErrorCode.BadInput, 'message: expected bytes');
}

/**
 * Shares whose match with their verifying share (s·G == Y_i) was checked, keyed by the share object:
 * the package it was checked against and a digest of the share bytes (the share itself is not kept).
 */
const MATCHED_SHARES = new WeakMap<SecretShare, { pkg: DecodedPackage; index: number; digest: Uint8Array }>();

/** Our share must be the one the package vouches for, or every share we send would be "bad". */
function checkOwnShare(pkg: DecodedPackage, share: SecretShare, s: bigint): void {
  const digest = sha256(share.value);
  const hit = MATCHED_SHARES.get(share);
  if (hit !== undefined && hit.pkg === pkg && hit.index === share.index && equalBytes(hit.digest, digest)) return;
  const { group } = pkg;
  const position = partyPosition(pkg, share.index);
  ensure(position >= 0, ErrorCode.BadInput, `secret share of party ${share.index}: not a holder of this key`);
  ensure(
    group.eqPoints(group.mulBase(s), pkg.verifyingShares[position]!),
    ErrorCode.BadShare,
    `secret share of party ${share.index} does not match its verifying share`,
  );
  MATCHED_SHARES.set(share, { pkg, index: share.index, digest });
}

/** The package, the commitment list and the message, checked and decoded once, and the §4.4 - §4.6 context. */
function context(suite: SigningSuite, pkg: PublicKeyPackage, commits: Map<number, SignCommitMsg>, message: Uint8Array): SigningContext {
  checkSigningSuite(suite);
  const decoded = decodePackage(suite, pkg);
  const list = decodeCommitmentList(decoded, commits);
  checkMessage(message);
  return signingContext(decoded, list, message);
}

/** The share encodings of a share Map (a value that is not a share message becomes a malformed share). */
function shareBytes(shares: Map<number, SignShareMsg>): Map<number, Uint8Array | undefined> {
  ensure(shares instanceof Map, ErrorCode.BadInput, 'signature shares: expected a Map keyed by party index');
  return new Map([...shares].map(([i, m]) => [i, isObject(m) && m.share instanceof Uint8Array ? m.share : undefined]));
}

// ---------------------------------------------------------------------------------------------
// Round 1 (RFC 9591 §5.1 commit)

/**
 * Make this party's nonces and their commitments. `rng` replaces the CSPRNG (tests feed the RFC 9591
 * vectors' randomness): rng(32) for the hiding nonce, then rng(32) for the binding nonce, each nonce
 * derived as H3(random_bytes || SerializeScalar(secret)) (§4.1 nonce_generate).
 */
export function signRound1(
  suite: SigningSuite,
  share: SecretShare,
  rng?: (n: number) => Uint8Array,
): { nonces: SigningNonces; commit: SignCommitMsg } {
  checkSigningSuite(suite);
  checkSecretShare(suite, share);
  ensure(rng === undefined || typeof rng === 'function', ErrorCode.BadInput, 'rng: expected a function');
  const checkedRng =
    rng === undefined
      ? undefined
      : (n: number): Uint8Array => {
          const r = rng(n);
          ensure(r instanceof Uint8Array && r.length === n, ErrorCode.BadInput, `rng: expected ${n} bytes`);
          return Uint8Array.from(r);
        };
  const made = guard(ErrorCode.BadInput, 'nonce generation failed', () => frostCommit(suite, share.value, checkedRng));
  // A private copy for the round-2 check, remembered as validated (this party computed the points).
  const own = { hiding: Uint8Array.from(made.commit.hiding), binding: Uint8Array.from(made.commit.binding) };
  rememberPoint(suite.group, own.hiding, made.hiding);
  rememberPoint(suite.group, own.binding, made.binding);
  const nonces: SigningNonces = {
    suite: suite.id as SigningSuiteId,
    index: share.index,
    epoch: share.epoch,
    hiding: made.hidingNonce,
    binding: made.bindingNonce,
    commit: own,
    consumed: false,
  };
  return { nonces, commit: made.commit };
}

// ---------------------------------------------------------------------------------------------
// Round 2 (RFC 9591 §5.2 sign)

/**
 * This party's own entry in a received list, when it holds exactly the commitments this party made,
 * is not decoded again: it takes the points remembered with the nonces (computed by this party).
 */
function adoptOwnCommit(suite: SigningSuite, nonces: SigningNonces, commits: unknown, index: number): void {
  if (!(commits instanceof Map) || !isObject(nonces.commit)) return;
  const own: unknown = commits.get(index);
  if (!isObject(own)) return;
  for (const [theirs, mine] of [
    [own.hiding, nonces.commit.hiding],
    [own.binding, nonces.commit.binding],
  ] as const) {
    if (!(theirs instanceof Uint8Array) || !equalBytes(theirs, mine)) continue;
    const p = knownPoint(suite.group, mine);
    if (p !== undefined) rememberPoint(suite.group, theirs, p);
  }
}

/**
 * Compute this party's signature share over `message` for the signer set in `commits` (keyed by
 * sender index, this party included). Consumes `nonces` in every case.
 */
export function signRound2(
  suite: SigningSuite,
  key: KeyShare,
  nonces: SigningNonces,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): SignShareMsg {
  const { share, ctx } = round2(suite, key, nonces, commits, message);
  // The R this share is bound to, for an aggregator that did not sign (SignShareMsg.commitment).
  return { share, commitment: signatureCommitmentBytes(suite, ctx.groupCommitment) };
}

/** signRound2, also returning the signing context (the session keeps it for aggregation). */
function round2(
  suite: SigningSuite,
  key: KeyShare,
  nonces: SigningNonces,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): { share: Uint8Array; ctx: SigningContext } {
  ensure(isObject(nonces), ErrorCode.BadInput, 'nonces: expected round-1 state');
  ensure(nonces.consumed === false, ErrorCode.BadState, 'signing nonces were already used');
  try {
    checkSigningSuite(suite);
    ensure(isObject(key), ErrorCode.BadInput, 'key: expected a key share');
    const pkg = decodePackage(suite, key.publicKey);
    const share = key.secret;
    const s = checkSecretShare(suite, share);
    // Shares and packages of different epochs must never combine.
    ensure(share.epoch === pkg.epoch, ErrorCode.EpochMismatch, `secret share is at epoch ${share.epoch}, package at ${pkg.epoch}`);
    ensure(isParty(pkg, share.index), ErrorCode.BadInput, `secret share of party ${share.index}: not a holder of this key`);
    ensure(nonces.suite === suite.id, ErrorCode.UnknownSuite, `nonces are for suite ${String(nonces.suite)}, not ${suite.id}`);
    ensure(nonces.index === share.index, ErrorCode.BadInput, `nonces belong to party ${nonces.index}, not ${share.index}`);
    ensure(nonces.epoch === share.epoch, ErrorCode.EpochMismatch, `nonces were made at epoch ${nonces.epoch}, share is at ${share.epoch}`);
    adoptOwnCommit(suite, nonces, commits, share.index);
    const list = decodeCommitmentList(pkg, commits);
    checkMessage(message);
    // The list must carry exactly the commitments this party made (RFC 9591 §5.2: the signer checks
    // its own entry); a substituted entry would make us sign with nonces nobody committed to.
    const own = commits.get(share.index);
    ensure(own !== undefined, ErrorCode.BadInput, `the signer set does not include this party (${share.index})`);
    ensure(
      equalBytes(own.hiding, nonces.commit.hiding) && equalBytes(own.binding, nonces.commit.binding),
      ErrorCode.BadInput,
      'the commitment list entry for this party does not match its nonces',
    );
    checkOwnShare(pkg, share, s);
    const d = suite.group.scalarFromBytes(nonces.hiding, 'hiding nonce');
    const e = suite.group.scalarFromBytes(nonces.binding, 'binding nonce');
    const ctx = signingContext(pkg, list, message, { index: share.index, hidingNonce: d, bindingNonce: e });
    // RFC 9591 §5.2. The nonce bigints cannot be wiped; their encodings are, in `finally`.
    return { share: suite.group.scalarToBytes(signShare(ctx, share.index, s, d, e)), ctx };
  } finally {
    discardNonces(nonces);
  }
}

// ---------------------------------------------------------------------------------------------
// Share verification (RFC 9591 §5.4) and aggregation (§5.3)

/** Verify every signer's share on its own (RFC 9591 §5.4). Throws BadSignatureShare naming ALL bad signers. */
export function verifySignatureShares(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
  shares: Map<number, SignShareMsg>,
): void {
  const ctx = context(suite, pkg, commits, message);
  const bytes = shareBytes(shares);
  const expected = new Set(ctx.signers);
  const extra = [...bytes.keys()].filter((i) => !expected.has(i));
  if (extra.length > 0) {
    // A share from a party outside the signer set: the authenticated sender sent something it should not.
    const named = extra.filter((i) => isParty(ctx.pkg, i));
    throw new TesseraError(ErrorCode.UnexpectedParty, `signature shares from parties outside the signer set`, named);
  }
  const missing = ctx.signers.filter((i) => !bytes.has(i));
  // Absence proves nothing about the party (the message may have been dropped): no culprits.
  ensure(missing.length === 0, ErrorCode.UnexpectedParty, `missing signature shares from parties ${missing.join(', ')}`);
  const bad = ctx.signers.filter((i) => {
    try {
      // RFC 9591 §3.1 DeserializeScalar (zero is a legal, if unlikely, share), then §5.4.
      return !verifyShare(ctx, i, suite.group.scalarFromBytes(bytes.get(i) as Uint8Array, `signature share of party ${i}`, true));
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      return true;
    }
  });
  if (bad.length > 0) {
    throw new TesseraError(ErrorCode.BadSignatureShare, `signature shares from parties ${bad.join(', ')} do not verify`, bad);
  }
}

/**
 * Aggregate the shares (RFC 9591 §5.3: R = Σ(D_i + ρ_i·E_i), z = Σ z_i) and verify the signature
 * under the group public key before returning it. When every share reports the same R
 * (SignShareMsg.commitment), R is taken from them and the list is not decoded: the signature is kept
 * only if it verifies (core/frost.ts aggregateWithReportedCommitment). Otherwise, or if it does not
 * verify, R is computed from the list; aggregate-first: the shares are checked one by one (§5.4) only
 * when that signature does not verify, to throw BadSignatureShare naming all bad signers.
 */
export function aggregateSignature(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
  shares: Map<number, SignShareMsg>,
): Uint8Array {
  return aggregatePrepared(prepareAggregation(suite, pkg, commits, message), shares);
}

/**
 * aggregateSignature in two steps, for an aggregator that knows the list and the message before the
 * shares arrive (the SDK's presigned path): the checks that need no share and no group operation (the
 * suite, the package, the signer set of the list, the message), while the players compute; then
 * aggregatePrepared with the shares (§5.3): R reported by the shares, or else the list decoded and
 * the §4.3 - §4.6 context computed then (once), with the same checks and errors as aggregateSignature.
 */
export class PreparedAggregation {
  #context: SigningContext | undefined;
  private constructor(
    readonly suite: SigningSuite,
    readonly pkg: DecodedPackage,
    readonly signers: readonly number[],
    private readonly commits: Map<number, SignCommitMsg>,
    readonly message: Uint8Array,
  ) {}

  static make(suite: SigningSuite, pkg: PublicKeyPackage, commits: Map<number, SignCommitMsg>, message: Uint8Array): PreparedAggregation {
    checkSigningSuite(suite);
    const decoded = decodePackage(suite, pkg);
    const signers = checkSignerSet(decoded, commits);
    checkMessage(message);
    // Private copies of the elements, decoded only if the reported R does not serve (context()).
    const copy = (b: unknown) => (b instanceof Uint8Array ? Uint8Array.from(b) : b);
    const list = new Map(
      [...commits].map(([i, c]) => [i, (isObject(c) ? { hiding: copy(c.hiding), binding: copy(c.binding) } : c) as SignCommitMsg] as const),
    );
    return new PreparedAggregation(suite, decoded, signers, list, Uint8Array.from(message));
  }

  /** The §4.3 - §4.6 context, computed on first use (the list decoded and checked: BadPoint naming senders). */
  context(): SigningContext {
    this.#context ??= signingContext(this.pkg, decodeCommitmentList(this.pkg, this.commits), this.message);
    return this.#context;
  }
}

export function prepareAggregation(suite: SigningSuite, pkg: PublicKeyPackage, commits: Map<number, SignCommitMsg>, message: Uint8Array): PreparedAggregation {
  return PreparedAggregation.make(suite, pkg, commits, message);
}

export function aggregatePrepared(prepared: PreparedAggregation, shares: Map<number, SignShareMsg>): Uint8Array {
  ensure(prepared instanceof PreparedAggregation, ErrorCode.BadInput, 'prepared aggregation: expected prepareAggregation output');
  ensure(shares instanceof Map, ErrorCode.BadInput, 'signature shares: expected a Map keyed by party index');
  const reported = aggregateWithReportedCommitment(prepared.pkg, prepared.signers, prepared.message, shares);
  if (reported !== undefined) return reported;
  return aggregate(prepared.context(), shareBytes(shares));
}

/**
 * The suite's standard public-key encoding of the group key commitments[0]: 32 bytes for ed25519,
 * 32-byte x-only for bip340, 33-byte compressed SEC1 for secp256k1 and p256 (and the KEM suites'
 * RFC 9180 SerializePublicKey).
 */
export function groupPublicKey(suite: Suite, pkg: PublicKeyPackage): Uint8Array {
  ensure(isObject(suite) && isObject(pkg), ErrorCode.BadInput, 'group public key: expected a suite and a package');
  ensure(pkg.suite === suite.id, ErrorCode.UnknownSuite, `public key package is for suite ${String(pkg.suite)}, not ${suite.id}`);
  ensure(Array.isArray(pkg.commitments) && pkg.commitments.length > 0, ErrorCode.BadInput, 'public key package: no commitments');
  return suite.publicKeyBytes(decodePoint(suite.group, pkg.commitments[0]!, 'group public key'));
}

// ---------------------------------------------------------------------------------------------
// Binding factors (RFC 9591 §4.3, §4.4), computed by core/frost.ts

/**
 * RFC 9591 §4.4 rho_input for every signer, keyed by party index:
 *   rho_input_prefix = SerializeElement(group_public_key) || H4(msg) || H5(encode_group_commitment_list(list))
 *   rho_input        = rho_input_prefix || SerializeScalar(identifier)
 * with H4(m) = H(contextString || "msg" || m) and H5(m) = H(contextString || "com" || m) (§6).
 * For bip340 the group key is the even-y one the signature verifies under.
 */
export function bindingFactorInputs(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): Map<number, Uint8Array> {
  const ctx = context(suite, pkg, commits, message);
  return frostBindingFactorInputs(ctx.pkg, ctx.list, ctx.message);
}

/** RFC 9591 §4.4 compute_binding_factors: binding_factor_i = H1(rho_input_i), H1 = hash-to-scalar with DST contextString || "rho". */
export function bindingFactors(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): Map<number, bigint> {
  return new Map(context(suite, pkg, commits, message).bindingFactors);
}

// ---------------------------------------------------------------------------------------------
// The signing session: FROST with signed, echo-checked round-1 commitments (identifiable abort)
//
// The algebra above is RFC 9591 as written; the session layer below adds what a deployment with
// possibly malicious signers needs (issue 9, "identifiable abort with transferable evidence"):
//
//   round 1  each signer signs its commitments with its identity over (run id, session, signer,
//            hiding, binding) — signCommitSignedBytes — and sends them to every other signer.
//   round 2  each signer checks every received commitment's signature (a bad one names nobody: the
//            relay or a replay could have made it), computes its share over the list (RFC 9591 §5.2),
//            and sends the share together with the echo of every signed commitment it used, all
//            under its identity signature (signShareSignedBytes). This is the broadcast echo check of
//            round 1 folded into round 2: no extra round trip.
//   finish   each signer checks every round-2 message's signature (bad: nobody named), then compares
//            every echoed commitment with its own copy. Two different commitments both signed by j
//            for this run prove that j equivocated: Equivocation naming j, with both signed
//            commitments as evidence (core/evidence.ts). An echoed commitment that j did not sign
//            for this run names nobody. Only when every signer used the same list are the shares
//            verified (RFC 9591 §5.4); before that an equivocator could make an honest share look bad.
//            A share that fails §5.4 against the agreed list was signed by its sender, so it is named.

const TAG_SIGN_COMMIT = utf8ToBytes('TESSERA-v1/frost/commit');
const TAG_SIGN_SHARE = utf8ToBytes('TESSERA-v1/frost/share');

/** What every identity signature of a signing session binds besides its content. */
export interface SignBinding {
  readonly suite: SigningSuiteId;
  /** 16..64 bytes. */
  readonly sessionId: Uint8Array;
  /** 32 bytes (core/run-id.ts). */
  readonly runId: Uint8Array;
}

function checkBinding(binding: SignBinding): Suite {
  ensure(isObject(binding), ErrorCode.BadInput, 'signing binding: expected an object');
  const suite = getSuite(binding.suite);
  ensure(suite.kind === 'sign', ErrorCode.UnknownSuite, `suite ${suite.id} is not a signing suite`);
  checkSessionId(binding.sessionId);
  checkRunId(binding.runId);
  return suite;
}

function checkSigner(signer: number): void {
  ensure(Number.isSafeInteger(signer) && signer >= 1 && signer <= 255, ErrorCode.BadInput, 'signer index must be 1..255');
}

/**
 * The exact bytes signer `signer` signs for its round-1 commitments (domain label, suite, run id,
 * session, signer index, hiding, binding). Exported so equivocation evidence can be checked anywhere.
 */
export function signCommitSignedBytes(binding: SignBinding, signer: number, commit: SignCommitMsg): Uint8Array {
  const suite = checkBinding(binding);
  checkSigner(signer);
  ensure(isObject(commit) && commit.hiding instanceof Uint8Array && commit.binding instanceof Uint8Array, ErrorCode.BadMessage, 'commitment expected');
  return framed(TAG_SIGN_COMMIT, utf8ToBytes(suite.contextString), binding.runId, binding.sessionId, i2osp(signer, 2), commit.hiding, commit.binding);
}

/**
 * The exact bytes signer `signer` signs for its round-2 message: the binding, the message, the
 * commitment list it used (RFC 9591 §4.3 order, content only: the commitment signatures may be
 * randomised) and its signature share.
 */
export function signShareSignedBytes(
  binding: SignBinding,
  signer: number,
  message: Uint8Array,
  commits: ReadonlyMap<number, SignCommitMsg>,
  share: Uint8Array,
): Uint8Array {
  const suite = checkBinding(binding);
  checkSigner(signer);
  checkMessage(message);
  ensure(commits instanceof Map && share instanceof Uint8Array, ErrorCode.BadMessage, 'commitment list and share expected');
  const list = [...commits.keys()].sort((a, b) => a - b);
  const encoded = list.map((i) => {
    const c = commits.get(i)!;
    checkSigner(i);
    ensure(isObject(c) && c.hiding instanceof Uint8Array && c.binding instanceof Uint8Array, ErrorCode.BadMessage, 'commitment expected');
    return framed(i2osp(i, 2), c.hiding, c.binding);
  });
  return framed(TAG_SIGN_SHARE, utf8ToBytes(suite.contextString), binding.runId, binding.sessionId, i2osp(signer, 2), message, framed(...encoded), share);
}

export interface SignSessionParams {
  readonly suite: SigningSuite;
  readonly key: KeyShare;
  /** The signer set, this party included (t..n distinct indexes). */
  readonly signers: readonly number[];
  /** 16..64 bytes. */
  readonly sessionId: Uint8Array;
  /** 32 bytes, fresh for this run (core/run-id.ts deriveRunId). */
  readonly runId: Uint8Array;
  /** This party's identity signer and the other signers' verifiers. */
  readonly auth: PartyAuthenticator;
  /** Replaces the CSPRNG for the nonces (tests only), as in signRound1. */
  readonly rng?: (n: number) => Uint8Array;
}

interface SessionCore {
  readonly suite: SigningSuite;
  readonly key: KeyShare;
  readonly self: number;
  readonly signers: readonly number[];
  readonly binding: SignBinding;
  readonly auth: PartyAuthenticator;
}

interface SignSessionInner1 extends SessionCore {
  readonly nonces: SigningNonces;
  readonly own: SignedCommitMsg;
}

interface SignSessionInner2 extends SessionCore {
  /** Every signer's signed commitment as this party received it (its own included). */
  readonly commits: ReadonlyMap<number, SignedCommitMsg>;
  readonly message: Uint8Array;
  readonly ownShare: SignedShareMsg;
  /** The decoded list, binding factors, group commitment and challenge of round 2, reused to aggregate. */
  readonly ctx: SigningContext;
}

type SignInner<R extends 1 | 2> = R extends 1 ? SignSessionInner1 : SignSessionInner2;

/** An opaque, one-use signing-session state (reuse throws BadState). Round 1 holds the secret nonces. */
export class SignSessionState<R extends 1 | 2> extends OneUseState<SignInner<R>> {
  readonly round: R;

  private constructor(round: R, inner: SignInner<R>) {
    super(inner);
    this.round = round;
  }

  /** @internal */
  static make<R extends 1 | 2>(round: R, inner: SignInner<R>): SignSessionState<R> {
    return new SignSessionState(round, inner);
  }

  /** @internal Check the round and empty the state: every state is used exactly once. */
  static take<R extends 1 | 2>(state: unknown, round: R, fn: string): SignInner<R> {
    ensure(state instanceof SignSessionState, ErrorCode.BadState, `${fn}: not a signing-session state`);
    ensure(state.round === round, ErrorCode.BadState, `${fn}: got the state of round ${state.round}, expected round ${round}`);
    return OneUseState.use(state, fn) as SignInner<R>;
  }

  /** @internal Look at a state's contents without using it (the wipe probe only). */
  static peek(state: unknown): SignInner<1 | 2> | undefined {
    return state instanceof SignSessionState ? (OneUseState.contents(state) as SignInner<1 | 2> | undefined) : undefined;
  }

  /** @internal */
  static discard(state: unknown): void {
    if (!(state instanceof SignSessionState)) return;
    const inner = OneUseState.empty(state) as SignInner<1 | 2> | undefined;
    if (inner && 'nonces' in inner) discardNonces(inner.nonces);
  }

  override toString(): string {
    return `SignSessionState(round ${this.round}${this.consumed ? ', consumed' : ''})`;
  }

  toJSON(): { round: R; consumed: boolean } {
    return { round: this.round, consumed: this.consumed };
  }
}

/** Abandon a signing session at any round: the nonces are wiped and the state can no longer be used. */
export function signSessionDiscard(state: SignSessionState<1> | SignSessionState<2>): void {
  SignSessionState.discard(state);
}

/**
 * A probe over the secret byte arrays a signing-session state holds now (core/wipe.ts): the round-1
 * nonces. Round 2 holds no secret (its signature share is sent to every signer). It says whether the
 * arrays were wiped, never what they were. The share itself is the caller's KeyShare, not the state's.
 */
export function signSessionWipeProbe(state: unknown): WipeProbe {
  const inner = SignSessionState.peek(state);
  return wipeProbe(inner && 'nonces' in inner ? [inner.nonces.hiding, inner.nonces.binding] : []);
}

/**
 * Round 1: make this signer's nonces (RFC 9591 §5.1, signRound1) and sign the commitments with its
 * identity for this run. Send `commit` to every other signer.
 */
export function signSessionRound1(params: SignSessionParams): { state: SignSessionState<1>; commit: SignedCommitMsg } {
  ensure(isObject(params), ErrorCode.BadInput, 'signing session: parameters expected');
  // Read each field once, so a getter on the caller's object cannot show two different values.
  const { suite, key, signers, sessionId, runId, auth, rng } = params;
  checkSigningSuite(suite);
  ensure(isObject(key) && isObject(key.publicKey) && isObject(key.secret), ErrorCode.BadInput, 'key: expected a key share');
  const pkg = decodePackage(suite, key.publicKey);
  const self = key.secret.index;
  const set = checkPlayers(signers, partyIndices(pkg), pkg.threshold);
  ensure(set.includes(self), ErrorCode.BadParameters, `the signer set does not include this party (${String(self)})`);
  checkSessionId(sessionId);
  checkRunId(runId);
  checkAuthenticator(auth);
  const binding: SignBinding = { suite: suite.id as SigningSuiteId, sessionId: Uint8Array.from(sessionId), runId: Uint8Array.from(runId) };
  const { nonces, commit } = signRound1(suite, key.secret, rng);
  try {
    const signature = authSign(auth, signCommitSignedBytes(binding, self, commit), 'signing round 1');
    const own: SignedCommitMsg = { hiding: commit.hiding, binding: commit.binding, signature };
    const sent: SignedCommitMsg = { hiding: Uint8Array.from(commit.hiding), binding: Uint8Array.from(commit.binding), signature: Uint8Array.from(signature) };
    return { state: SignSessionState.make(1, { suite, key, self, signers: set, binding, auth, nonces, own }), commit: sent };
  } catch (e) {
    discardNonces(nonces);
    throw e;
  }
}

/** Check that `msgs` is a Map with exactly one message from every other signer (no culprits otherwise). */
function checkSignerMessages<M>(core: SessionCore, msgs: unknown, what: string): Map<number, M> {
  ensure(msgs instanceof Map, ErrorCode.BadInput, `${what}: expected a Map keyed by signer index`);
  const expected = core.signers.filter((i) => i !== core.self);
  const unexpected = [...(msgs as Map<unknown, M>).keys()].filter((k) => typeof k !== 'number' || !expected.includes(k));
  ensure(unexpected.length === 0, ErrorCode.UnexpectedParty, `${what}: message from outside the other signers`);
  const missing = expected.filter((i) => !(msgs as Map<number, M>).has(i));
  // Absence proves nothing about the party (the message may have been dropped): no culprits.
  ensure(missing.length === 0, ErrorCode.UnexpectedParty, `${what}: missing message(s) from signer ${missing.join(', ')}`);
  return msgs as Map<number, M>;
}

/**
 * Copy a signed commitment after checking its shape (lengths only); a string says why it is malformed.
 * The copies keep what core/wire.ts already validated of the originals (validate once); nothing is
 * validated here.
 */
function snapshotCommit(suite: SigningSuite, m: unknown): SignedCommitMsg | string {
  if (!isObject(m)) return 'not a commitment';
  const { hiding, binding, signature } = m as Partial<SignedCommitMsg>;
  const len = suite.group.pointLength;
  if (!(hiding instanceof Uint8Array) || hiding.length !== len || !(binding instanceof Uint8Array) || binding.length !== len) {
    return `commitments must be ${len}-byte elements`;
  }
  if (!(signature instanceof Uint8Array) || signature.length === 0 || signature.length > MAX_AUTH_SIGNATURE_LENGTH) return 'signature missing or of the wrong length';
  const copy = { hiding: Uint8Array.from(hiding), binding: Uint8Array.from(binding), signature: Uint8Array.from(signature) };
  for (const [from, to] of [[hiding, copy.hiding], [binding, copy.binding]] as const) {
    const p = knownPoint(suite.group, from);
    if (p !== undefined) rememberPoint(suite.group, to, p);
  }
  return copy;
}

function describeParties(bad: ReadonlyMap<number, string>): string {
  return [...bad].sort((a, b) => a[0] - b[0]).map(([j, why]) => `signer ${j}: ${why}`).join('; ');
}

/**
 * Round 2: check every other signer's signed commitment, then compute this signer's share over the
 * list (RFC 9591 §5.2) and sign it together with the list. Send `share` to every other signer.
 * Consumes the round-1 nonces in every case.
 */
export function signSessionRound2(
  stateIn: SignSessionState<1>,
  commits: Map<number, SignedCommitMsg>,
  message: Uint8Array,
): { state: SignSessionState<2>; share: SignedShareMsg } {
  const fn = 'signSessionRound2';
  const inner = SignSessionState.take(stateIn, 1, fn);
  const { suite, binding, auth, self, nonces } = inner;
  try {
    const msgs = checkSignerMessages<SignedCommitMsg>(inner, commits, `${fn}: commitments`);
    checkMessage(message);
    // 1. Shapes, before any crypto; copies, so the caller cannot change what we checked.
    const copies = new Map<number, SignedCommitMsg>([[self, inner.own]]);
    const malformed = new Map<number, string>();
    for (const [j, m] of msgs) {
      const snap = snapshotCommit(suite, m);
      if (typeof snap === 'string') malformed.set(j, snap);
      else copies.set(j, snap);
    }
    // Bytes that do not form a commitment: a relay fault as far as a third party can tell.
    ensure(malformed.size === 0, ErrorCode.BadMessage, `${fn}: malformed commitment from ${describeParties(malformed)}`);
    // 2. Each signer's identity signature for this run (a replay from another run fails here).
    const unsigned = new Map<number, string>();
    for (const [j, m] of copies) {
      if (j !== self && !authVerify(auth, j, signCommitSignedBytes(binding, j, m), m.signature)) unsigned.set(j, 'commitment not signed by this signer for this run');
    }
    ensure(unsigned.size === 0, ErrorCode.BadProof, `${fn}: ${describeParties(unsigned)}`);
    // 3. RFC 9591 §5.2 over the signed list. Invalid elements are validly signed here, so checkCommits
    //    naming their signers (BadPoint) rests on a signed message that fails a public check.
    const plain = new Map<number, SignCommitMsg>([...copies].map(([j, m]) => [j, { hiding: m.hiding, binding: m.binding }]));
    const { share: sigShare, ctx } = round2(suite, inner.key, nonces, plain, message);
    const signature = authSign(auth, signShareSignedBytes(binding, self, message, plain, sigShare), 'signing round 2');
    const echo: Record<number, SignedCommitMsg> = {};
    for (const j of [...copies.keys()].sort((a, b) => a - b)) {
      const c = copies.get(j)!;
      echo[j] = { hiding: Uint8Array.from(c.hiding), binding: Uint8Array.from(c.binding), signature: Uint8Array.from(c.signature) };
    }
    const ownShare: SignedShareMsg = { share: sigShare, commitments: echo, signature };
    const state = SignSessionState.make(2, { ...coreOf(inner), commits: copies, message: Uint8Array.from(message), ownShare, ctx });
    return { state, share: { share: Uint8Array.from(sigShare), commitments: echo, signature: Uint8Array.from(signature) } };
  } finally {
    discardNonces(nonces);
  }
}

function coreOf(inner: SessionCore): SessionCore {
  const { suite, key, self, signers, binding, auth } = inner;
  return { suite, key, self, signers, binding, auth };
}

/** Equivocation evidence: two different commitments `signer` signed for this run. */
function signEvidence(binding: SignBinding, signer: number, first: SignedCommitMsg, second: SignedCommitMsg): EquivocationEvidence {
  const copy = (m: SignedCommitMsg): SignedCommitMsg => ({ hiding: Uint8Array.from(m.hiding), binding: Uint8Array.from(m.binding), signature: Uint8Array.from(m.signature) });
  return {
    protocol: 'sign',
    signer,
    binding: { suite: binding.suite, sessionId: Uint8Array.from(binding.sessionId), runId: Uint8Array.from(binding.runId) },
    first: copy(first),
    second: copy(second),
  };
}

/**
 * Finish: check every other signer's round-2 message (its signature, then the echo of the commitment
 * list against ours: Equivocation with evidence if a signer signed two different commitments), then
 * verify every share against the agreed list (RFC 9591 §5.4, naming bad signers), aggregate (§5.3)
 * and verify the signature under the group key. Returns the signature.
 */
export function signSessionFinish(stateIn: SignSessionState<2>, shares: Map<number, SignedShareMsg>): Uint8Array {
  const fn = 'signSessionFinish';
  const inner = SignSessionState.take(stateIn, 2, fn);
  const { suite, binding, auth, self, commits, message } = inner;
  const msgs = checkSignerMessages<SignedShareMsg>(inner, shares, `${fn}: shares`);
  const signerSet = [...commits.keys()].sort((a, b) => a - b);

  // 1. Shapes: a share of the right length, an echo of exactly the signer set, a signature.
  const malformed = new Map<number, string>();
  const echoes = new Map<number, Map<number, SignedCommitMsg>>();
  const received = new Map<number, { share: Uint8Array; signature: Uint8Array }>();
  for (const [k, m] of msgs) {
    if (!isObject(m)) {
      malformed.set(k, 'not a share message');
      continue;
    }
    const { share, commitments, signature } = m as Partial<SignedShareMsg>;
    if (!(share instanceof Uint8Array) || share.length !== suite.group.scalarLength) {
      malformed.set(k, `share must be ${suite.group.scalarLength} bytes`);
      continue;
    }
    if (!(signature instanceof Uint8Array) || signature.length === 0 || signature.length > MAX_AUTH_SIGNATURE_LENGTH) {
      malformed.set(k, 'signature missing or of the wrong length');
      continue;
    }
    if (!isObject(commitments) || Array.isArray(commitments)) {
      malformed.set(k, 'commitment echo missing');
      continue;
    }
    const keys = Object.keys(commitments);
    if (keys.length !== signerSet.length || !signerSet.every((j) => Object.hasOwn(commitments, String(j)))) {
      malformed.set(k, 'must echo the commitments of exactly the signer set');
      continue;
    }
    const echo = new Map<number, SignedCommitMsg>();
    for (const j of signerSet) {
      const snap = snapshotCommit(suite, (commitments as Record<string, unknown>)[String(j)]);
      if (typeof snap === 'string') {
        malformed.set(k, `echoed commitment of signer ${j}: ${snap}`);
        break;
      }
      echo.set(j, snap);
    }
    if (echo.size !== signerSet.length) continue;
    echoes.set(k, echo);
    received.set(k, { share: Uint8Array.from(share), signature: Uint8Array.from(signature) });
  }
  // Not identity-checked yet: bytes that do not form a message name nobody.
  ensure(malformed.size === 0, ErrorCode.BadMessage, `${fn}: malformed share message from ${describeParties(malformed)}`);

  // 2. Each signer's identity signature over its share and the list it used (bad: nobody named).
  const unsigned = new Map<number, string>();
  for (const [k, r] of received) {
    const bytes = signShareSignedBytes(binding, k, message, echoes.get(k)!, r.share);
    if (!authVerify(auth, k, bytes, r.signature)) unsigned.set(k, 'share message not signed by this signer for this run');
  }
  ensure(unsigned.size === 0, ErrorCode.BadProof, `${fn}: ${describeParties(unsigned)}`);

  // 3. The echo check: did every signer use the commitments we received?
  const equivocators = new Map<number, string>();
  const evidence: EquivocationEvidence[] = [];
  const forged = new Map<number, string>();
  for (const [k, echo] of echoes) {
    for (const j of signerSet) {
      const theirs = echo.get(j)!;
      const ours = commits.get(j)!;
      if (equalBytes(theirs.hiding, ours.hiding) && equalBytes(theirs.binding, ours.binding)) continue;
      if (j === self || !authVerify(auth, j, signCommitSignedBytes(binding, j, theirs), theirs.signature)) {
        // We signed exactly one commitment; any other for j was not signed by j for this run (made up
        // or replayed from another run): nothing a third party could pin on j, or on the echoer.
        forged.set(k, `echoed a commitment for signer ${j} that signer ${j} did not sign for this run`);
      } else if (!equivocators.has(j)) {
        // Two different commitments signed by j for one run: transferable proof that j equivocated.
        equivocators.set(j, `signed different round-1 commitments (signer ${k} received another one)`);
        evidence.push(signEvidence(binding, j, ours, theirs));
      }
    }
  }
  if (equivocators.size > 0) {
    throw new TesseraError(ErrorCode.Equivocation, `${fn}: echo check failed: ${describeParties(equivocators)}`, [...equivocators.keys()], evidence);
  }
  ensure(forged.size === 0, ErrorCode.BadProof, `${fn}: forged echo from ${describeParties(forged)}`);

  // 4. Every signer used the same list: §5.3 aggregation and the final verification over round 2's
  //    context (nothing decoded again); if the signature fails, RFC 9591 §5.4 names exactly the
  //    signers whose signed share fails.
  const all = new Map<number, Uint8Array>([[self, inner.ownShare.share]]);
  for (const [k, r] of received) all.set(k, r.share);
  return aggregate(inner.ctx, all);
}
