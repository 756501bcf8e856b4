/**
 * Resharing a key to a new committee and threshold with the public key unchanged (issue 13):
 * verifiable secret redistribution.
 *
 * Papers: Y. Desmedt and S. Jajodia, "Redistributing secret shares to new access structures and its
 * applications" (GMU tech. report ISSE-TR-97-01, 1997); T. M. Wong, C. Wang and J. M. Wing,
 * "Verifiable secret redistribution for archive systems" (IEEE SISW 2002), whose check of every dealer
 * against the old verifying shares is what makes the redistribution verifiable. The commitments and
 * share checks are Feldman's, as in RFC 9591 Appendix C.2 (vss_commit, vss_verify,
 * derive_group_info); the Lagrange coefficients are RFC 9591 §4.2 derive_interpolating_value.
 *
 * The math (a share's x-coordinate is always its holder's node index, core/committee.ts):
 *   - Dealers D ⊆ old committee, |D| ≥ old t. Dealer i deals its OWN share s_i with a fresh random
 *     polynomial g_i of degree t'-1, g_i(0) = s_i: sub-share g_i(j) to every new party j, and
 *     commitments C_{i,k} = a_{i,k}·G (so C_{i,0} = s_i·G).
 *   - Checks in the exponent: C_{i,0} must equal dealer i's OLD verifying share Y_i (else i is named:
 *     it did not deal its share), and g_i(j)·G must equal Σ_k C_{i,k}·j^k (else i is named, BadShare).
 *   - λ_i = Lagrange coefficient of i over D at 0. New share s'_j = Σ_{i∈D} λ_i·g_i(j); new
 *     commitments C'_k = Σ_i λ_i·C_{i,k} (C'_0 = Σ λ_i·Y_i = the old group key, checked); new
 *     verifying shares Y'_j = Σ_k C'_k·j^k; s'_j·G must equal Y'_j.
 *   - The new package: same suite, threshold t', parties n' = |committee|, indices = committee
 *     (omitted when it is 1..n'), epoch = old epoch + 1. Old and new shares never combine: the epochs
 *     differ and the committee is part of the package.
 *
 * Two layers, one mechanism:
 *   - the pure API (dealReshare, checkDealerCommitments, resharedPackage, combineSubShares), shared by
 *     the in-cluster session below and by export-time resharing (cross-size failover);
 *   - the session rounds, in the style of core/jointfeldman.ts: one-use state objects wiped on every
 *     exit, round-1 packages signed by each dealer over a framed transcript bound to the session id
 *     and run id (core/run-id.ts), an echo check with transferable equivocation evidence
 *     (core/evidence.ts), and a confirmation digest of the public result.
 *
 * Session rounds (players P = D ∪ committee; a dealer may also be a new party):
 *   1. reshareRound1(params, auth): a dealer deals (dealReshare), signs its package
 *      { commitments, oldPackageDigest } and returns it with one private sub-share message per other
 *      new party; a party that is not a dealer returns neither.
 *   2. reshareRound2(state, deals): every player validates the packages of every other dealer (shape,
 *      old package digest, signature, then checkDealerCommitments) and echoes all of them.
 *   3. reshareRound3(state, echoes, shares): echo check (equivocation named with evidence); every
 *      player computes the new package; a new party verifies and combines its sub-shares
 *      (combineSubShares); the confirmation carries reshareResultDigest.
 *   4. reshareFinish(state, confirms): every other player's digest equals ours -> { package, share? }.
 * Fault rules are jointfeldman's: a malformed or unsigned package names nobody (the relay could have
 * made it); a validly signed package failing a public check names its dealer; a bad sub-share names
 * its dealer; two different signed packages from one dealer name it with both as evidence.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, equalBytes, framed, i2osp, utf8ToBytes, zeroize } from './bytes.js';
import { authSign, authVerify, checkAuthenticator, MAX_AUTH_SIGNATURE_LENGTH, type PartyAuthenticator } from './auth.js';
import { publicPackageDigest } from './commit.js';
import { checkCommittee, isContiguous, isParty, partyIndices, verifyingShareOf } from './committee.js';
import { ErrorCode, TesseraError, ensure, isTesseraError } from './errors.js';
import type { EquivocationEvidence } from './evidence.js';
import type { Group, Point } from './group.js';
import { checkSessionId, publicResultDigest, throwIfAny, throwUnattributed } from './jointfeldman.js';
import type { ReshareConfirmMsg, ReshareDealMsg, ReshareEchoMsg, ReshareShareMsg } from './messages.js';
import { checkRunId } from './run-id.js';
import { checkPackageCommittee, commitPolynomial, evalCommitment, evalPolynomial, lagrangeAt, randomPolynomial, verifyShareAgainstCommitments } from './shamir.js';
import { getSuite, type Suite, type SuiteId } from './suites.js';
import type { PublicKeyPackage, SecretShare } from './types.js';
import { OneUseState, wipeProbe, type WipeProbe } from './wipe.js';

/** Length of the old-package digest a deal carries (core/commit.ts publicPackageDigest, SHA-256). */
export const RESHARE_PACKAGE_DIGEST_LENGTH = 32;
const DIGEST_LENGTH = 32;
const TAG_DEAL = utf8ToBytes('TESSERA-v1/reshare/deal');
const TAG_SHARE = utf8ToBytes('TESSERA-v1/reshare/share');
const TAG_RESULT = utf8ToBytes('TESSERA-v1/reshare/result');

// ---------------------------------------------------------------------------------------------
// The pure API

/** Where a key is reshared to: the new threshold t' and committee (node indices, strictly ascending). */
export interface ReshareTarget {
  readonly threshold: number;
  readonly indices: readonly number[];
}

/** What one dealer deals: public commitments C_{i,0..t'-1}, and one secret sub-share per new party. */
export interface DealtReshare {
  /** C_{i,k} = a_{i,k}·G, canonical encodings; C_{i,0} is the dealer's verifying share. */
  readonly commitments: Uint8Array[];
  /** Secret: new party j -> SerializeScalar(g_i(j)). The caller zeroizes them once sent or wrapped. */
  readonly subShares: Map<number, Uint8Array>;
}

/** A checked public key package, decoded. */
interface CheckedPackage {
  readonly pkg: PublicKeyPackage;
  readonly suite: Suite;
  readonly committee: readonly number[];
  readonly commitments: readonly Point[];
}

/**
 * Validate a public key package (the one being reshared): suite, (t, n), committee, epoch, counts, every
 * element, and that every verifying share lies on the committed polynomial (RFC 9591 Appendix C.2
 * derive_group_info), so that Σ λ_i·Y_i over any t holders is the group key. BadParameters otherwise.
 */
function checkPackage(pkg: unknown, what: string): CheckedPackage {
  ensure(typeof pkg === 'object' && pkg !== null, ErrorCode.BadParameters, `${what}: a public key package is required`);
  const p = pkg as PublicKeyPackage;
  const suite = getSuite(p.suite);
  const { group } = suite;
  // (t, n) and the committee: `indices` names n nodes, and is absent when they are 1..n.
  checkPackageCommittee(p, what);
  const committee = partyIndices(p);
  ensure(Number.isSafeInteger(p.epoch) && p.epoch >= 0 && p.epoch < 2 ** 32 - 1, ErrorCode.BadParameters, `${what}: epoch must be a 32-bit integer below 2^32-1`);
  ensure(
    Array.isArray(p.commitments) && p.commitments.length === p.threshold && p.commitments.every((c) => c instanceof Uint8Array),
    ErrorCode.BadParameters,
    `${what}: must hold ${p.threshold} commitments`,
  );
  ensure(
    Array.isArray(p.verifyingShares) && p.verifyingShares.length === p.parties && p.verifyingShares.every((c) => c instanceof Uint8Array),
    ErrorCode.BadParameters,
    `${what}: must hold ${p.parties} verifying shares`,
  );
  const decode = (b: Uint8Array, name: string): Point => {
    try {
      return group.pointFromBytes(b, name);
    } catch {
      throw new TesseraError(ErrorCode.BadParameters, `${what}: ${name} is not a valid group element`);
    }
  };
  const commitments = p.commitments.map((c, k) => decode(c, `commitment ${k}`));
  committee.forEach((j, k) => {
    const y = decode(p.verifyingShares[k]!, `verifying share of party ${j}`);
    ensure(group.eqPoints(y, evalCommitment(group, commitments, j)), ErrorCode.BadParameters, `${what}: verifying share of party ${j} does not match the commitments`);
  });
  return { pkg: p, suite, committee, commitments };
}

/** Validate a reshare target; returns a frozen copy. BadParameters on anything wrong. */
function checkTarget(target: unknown): ReshareTarget {
  ensure(typeof target === 'object' && target !== null, ErrorCode.BadParameters, 'reshare: a target { threshold, indices } is required');
  const { threshold, indices } = target as ReshareTarget;
  const committee = checkCommittee(indices, undefined, 'new committee');
  ensure(
    Number.isSafeInteger(threshold) && threshold >= 2 && threshold <= committee.length,
    ErrorCode.BadParameters,
    `new threshold ${String(threshold).slice(0, 12)} must be 2..${committee.length} for a new committee of ${committee.length}`,
  );
  return Object.freeze({ threshold, indices: committee });
}

/** Validate a dealer set against the old package: strictly ascending, all old holders, at least old t. */
function checkDealers(old: CheckedPackage, dealers: unknown): readonly number[] {
  ensure(Array.isArray(dealers), ErrorCode.BadParameters, 'reshare: dealers must be a list of node indices');
  const list = dealers as unknown[];
  ensure(
    list.length >= old.pkg.threshold,
    ErrorCode.BadParameters,
    `reshare: needs at least ${old.pkg.threshold} dealers (the old threshold), got ${list.length}`,
  );
  const checked = checkCommittee(list, undefined, 'dealer set');
  const outsiders = checked.filter((i) => !isParty(old.pkg, i));
  ensure(outsiders.length === 0, ErrorCode.BadParameters, `reshare: dealer ${outsiders.join(', ')} holds no share of the old key`);
  return checked;
}

/** The dealer set of a `dealt` map (its keys), checked. */
function dealersOf(old: CheckedPackage, dealt: unknown): readonly number[] {
  ensure(dealt instanceof Map, ErrorCode.BadParameters, 'reshare: dealt commitments must be a Map keyed by dealer index');
  return checkDealers(old, [...(dealt as Map<unknown, unknown>).keys()].sort((a, b) => (a as number) - (b as number)));
}

/**
 * Check a dealer's own share against the old package (same suite and epoch, it is a holder, and
 * share·G is its verifying share). Returns our own copy of the share bytes; the caller wipes it.
 */
function checkOwnShare(old: CheckedPackage, share: unknown): { index: number; bytes: Uint8Array } {
  ensure(typeof share === 'object' && share !== null, ErrorCode.BadParameters, 'reshare: the dealer\'s share is required');
  const s = share as SecretShare;
  const { group } = old.suite;
  ensure(s.suite === old.pkg.suite, ErrorCode.BadParameters, `reshare: share is for suite ${String(s.suite).slice(0, 32)}, package for ${old.pkg.suite}`);
  ensure(Number.isSafeInteger(s.epoch) && s.epoch === old.pkg.epoch, ErrorCode.EpochMismatch, `reshare: share is at epoch ${String(s.epoch).slice(0, 12)}, package at epoch ${old.pkg.epoch}`);
  ensure(isParty(old.pkg, s.index), ErrorCode.BadParameters, `reshare: party ${String(s.index).slice(0, 12)} holds no share of the old key`);
  ensure(s.value instanceof Uint8Array && s.value.length === group.scalarLength, ErrorCode.BadParameters, 'reshare: share value must be a scalar encoding');
  // Our own copy, read once: what we check is what we deal.
  const bytes = Uint8Array.from(s.value);
  let v = 0n;
  try {
    v = group.scalarFromBytes(bytes, 'share', false);
    const y = group.pointFromBytes(verifyingShareOf(old.pkg, s.index), 'verifying share');
    ensure(group.eqPoints(group.mulBase(v), y), ErrorCode.BadParameters, `reshare: share of party ${s.index} does not match its verifying share`);
  } catch (e) {
    zeroize(bytes);
    if (e instanceof TesseraError && e.code === ErrorCode.BadParameters) throw e;
    throw new TesseraError(ErrorCode.BadParameters, `reshare: share of party ${s.index} is not a valid non-zero scalar`);
  } finally {
    v = 0n;
  }
  return { index: s.index, bytes };
}

/** Drop secrets we cannot zeroize (bigints): overwrite our references. */
function dropScalars(a: bigint[]): void {
  a.fill(0n);
  a.length = 0;
}

/**
 * Dealer side: deal our own share s_i to the target committee with a fresh random polynomial g_i of
 * degree t'-1, g_i(0) = s_i (Desmedt–Jajodia; RFC 9591 Appendix C.1 polynomial evaluation and C.2
 * vss_commit). The caller's share is not modified; the sub-shares are the caller's to wipe.
 */
export function dealReshare(oldPackage: PublicKeyPackage, share: SecretShare, target: ReshareTarget): DealtReshare {
  const old = checkPackage(oldPackage, 'old package');
  const tgt = checkTarget(target);
  const own = checkOwnShare(old, share);
  return dealChecked(old, own.bytes, tgt);
}

/** dealReshare after the checks; wipes `shareBytes` (our copy) whatever happens. */
function dealChecked(old: CheckedPackage, shareBytes: Uint8Array, target: ReshareTarget): DealtReshare {
  const { group } = old.suite;
  let coefficients: bigint[] = [];
  const subShares = new Map<number, Uint8Array>();
  try {
    coefficients = randomPolynomial(group, group.scalarFromBytes(shareBytes, 'share', false), target.threshold);
    const commitments = commitPolynomial(group, coefficients).map((c) => group.pointToBytes(c));
    for (const j of target.indices) subShares.set(j, group.scalarToBytes(evalPolynomial(group, coefficients, BigInt(j))));
    return { commitments, subShares };
  } catch (e) {
    for (const v of subShares.values()) zeroize(v);
    throw e;
  } finally {
    zeroize(shareBytes);
    dropScalars(coefficients);
  }
}

/** Decode a dealer's commitments and check them (count t', elements, C_0 = Y_dealer), naming the dealer. */
function decodeDealerCommitments(old: CheckedPackage, dealer: number, commitments: unknown, target: ReshareTarget): Point[] {
  const { group } = old.suite;
  ensure(isParty(old.pkg, dealer), ErrorCode.BadParameters, `reshare: dealer ${String(dealer).slice(0, 12)} holds no share of the old key`);
  ensure(
    Array.isArray(commitments) && commitments.length === target.threshold && commitments.every((c) => c instanceof Uint8Array),
    ErrorCode.BadMessage,
    `reshare: dealer ${dealer} must commit to ${target.threshold} coefficients`,
    [dealer],
  );
  const points: Point[] = [];
  (commitments as Uint8Array[]).forEach((c, k) => {
    try {
      points.push(group.pointFromBytes(c, `commitment ${k}`));
    } catch {
      throw new TesseraError(ErrorCode.BadPoint, `reshare: commitment ${k} of dealer ${dealer} is not a valid group element`, [dealer]);
    }
  });
  // Wong–Wang–Wing: the dealt constant term must be the dealer's old share, checked in the exponent.
  const y = group.pointFromBytes(verifyingShareOf(old.pkg, dealer), 'verifying share');
  ensure(group.eqPoints(points[0]!, y), ErrorCode.BadShare, `reshare: dealer ${dealer} did not deal its own share (C_0 is not its verifying share)`, [dealer]);
  return points;
}

/**
 * Decode and check one dealer's commitments: t' of them, valid elements, and C_0 equal to the
 * dealer's old verifying share Y_dealer. Throws naming `dealer` (BadMessage, BadPoint, BadShare).
 */
export function checkDealerCommitments(oldPackage: PublicKeyPackage, dealer: number, commitments: readonly Uint8Array[], target: ReshareTarget): void {
  decodeDealerCommitments(checkPackage(oldPackage, 'old package'), dealer, commitments, checkTarget(target));
}

/** Check every dealer's commitments, naming all bad dealers at once (the worst code first). */
function decodeAllDealt(old: CheckedPackage, dealers: readonly number[], dealt: ReadonlyMap<number, unknown>, target: ReshareTarget): Map<number, Point[]> {
  const out = new Map<number, Point[]>();
  const bad = new Map<ErrorCode, Map<number, string>>();
  for (const i of dealers) {
    try {
      out.set(i, decodeDealerCommitments(old, i, dealt.get(i), target));
    } catch (e) {
      if (!(e instanceof TesseraError) || e.culprits.length === 0) throw e;
      if (!bad.has(e.code)) bad.set(e.code, new Map());
      bad.get(e.code)!.set(i, e.message);
    }
  }
  for (const code of [ErrorCode.BadMessage, ErrorCode.BadPoint, ErrorCode.BadShare]) {
    const m = bad.get(code);
    if (m) throwIfAny(code, 'reshare: bad dealer commitments', m);
  }
  return out;
}

/** The Lagrange coefficient λ_i of every dealer over D at 0 (RFC 9591 §4.2). Public. */
function lagrangeOver(group: Group, dealers: readonly number[]): Map<number, bigint> {
  return new Map(dealers.map((i) => [i, lagrangeAt(group, dealers, i, 0)]));
}

/** The public result from decoded, checked commitments. */
function computePackage(old: CheckedPackage, decoded: ReadonlyMap<number, readonly Point[]>, target: ReshareTarget): PublicKeyPackage {
  const { group } = old.suite;
  const dealers = [...decoded.keys()].sort((a, b) => a - b);
  const lambda = lagrangeOver(group, dealers);
  // C'_k = Σ_i λ_i·C_{i,k}.
  const commitments: Point[] = [];
  for (let k = 0; k < target.threshold; k++) {
    commitments.push(group.msm(dealers.map((i) => decoded.get(i)![k]!), dealers.map((i) => lambda.get(i)!)));
  }
  ensure(group.eqPoints(commitments[0]!, old.commitments[0]!), ErrorCode.VerificationFailed, 'reshare: the reshared commitments do not keep the group key');
  // An identity has no encoding (RFC 9591 §3.1) and would mean a degenerate sharing.
  ensure(commitments.every((c) => !group.isIdentity(c)), ErrorCode.VerificationFailed, 'reshare: a reshared commitment is the identity');
  const verifying = target.indices.map((j) => evalCommitment(group, commitments, j));
  ensure(verifying.every((y) => !group.isIdentity(y)), ErrorCode.VerificationFailed, 'reshare: a new verifying share is the identity');
  const base = {
    suite: old.pkg.suite,
    threshold: target.threshold,
    parties: target.indices.length,
  };
  return Object.freeze({
    ...base,
    // A package whose committee is exactly 1..n' omits `indices` (core/types.ts).
    ...(isContiguous(target.indices) ? {} : { indices: Object.freeze([...target.indices]) }),
    epoch: old.pkg.epoch + 1,
    commitments: Object.freeze(commitments.map((c) => group.pointToBytes(c))),
    verifyingShares: Object.freeze(verifying.map((y) => group.pointToBytes(y))),
  });
}

/**
 * The public result every player computes identically from the dealers' commitments (`dealt` maps
 * dealer index -> its commitments; its key set is the dealer set D). Bad dealers are named.
 */
export function resharedPackage(oldPackage: PublicKeyPackage, dealt: ReadonlyMap<number, readonly Uint8Array[]>, target: ReshareTarget): PublicKeyPackage {
  const old = checkPackage(oldPackage, 'old package');
  const tgt = checkTarget(target);
  const dealers = dealersOf(old, dealt);
  return computePackage(old, decodeAllDealt(old, dealers, dealt, tgt), tgt);
}

/** True when two packages are the same public result (every field, committee included). */
function samePackage(a: PublicKeyPackage, b: PublicKeyPackage): boolean {
  const same = (x: readonly Uint8Array[], y: readonly Uint8Array[]) => x.length === y.length && x.every((c, k) => equalBytes(c, y[k]!));
  const ia = partyIndices(a);
  const ib = partyIndices(b);
  return (
    a.suite === b.suite &&
    a.threshold === b.threshold &&
    a.parties === b.parties &&
    a.epoch === b.epoch &&
    (a.indices === undefined) === (b.indices === undefined) &&
    ia.length === ib.length &&
    ia.every((i, k) => i === ib[k]) &&
    same(a.commitments, b.commitments) &&
    same(a.verifyingShares, b.verifyingShares)
  );
}

/**
 * Recipient side, after the package is known: verify every dealer's sub-share in the exponent
 * (RFC 9591 Appendix C.2 vss_verify against its commitments), naming every bad dealer (BadShare), then
 * combine s'_j = Σ λ_i·g_i(j) and check s'_j·G = Y'_j. `decoded` is checked. Returns the share bytes.
 */
function combineChecked(
  old: CheckedPackage,
  decoded: ReadonlyMap<number, readonly Point[]>,
  subShares: unknown,
  recipient: number,
  newPackage: PublicKeyPackage,
): Uint8Array {
  const { group } = old.suite;
  const dealers = [...decoded.keys()].sort((a, b) => a - b);
  ensure(subShares instanceof Map, ErrorCode.BadInput, 'reshare: sub-shares must be a Map keyed by dealer index');
  const given = subShares as Map<unknown, unknown>;
  const unexpected = [...given.keys()].filter((k) => !dealers.includes(k as number));
  ensure(unexpected.length === 0, ErrorCode.UnexpectedParty, `reshare: sub-share from non-dealer ${unexpected.map((k) => String(k).slice(0, 12)).join(', ')}`);
  const missing = dealers.filter((i) => !given.has(i));
  ensure(missing.length === 0, ErrorCode.UnexpectedParty, `reshare: no sub-share from dealer ${missing.join(', ')}`);
  const values = new Map<number, bigint>();
  let share = 0n;
  try {
    const bad = new Map<number, string>();
    for (const i of dealers) {
      const raw = given.get(i);
      if (!(raw instanceof Uint8Array) || raw.length !== group.scalarLength) {
        bad.set(i, `sub-share must be ${group.scalarLength} bytes`);
        continue;
      }
      let v: bigint;
      try {
        v = group.scalarFromBytes(raw, 'sub-share', true);
      } catch {
        bad.set(i, 'sub-share is not a canonical scalar');
        continue;
      }
      if (!verifyShareAgainstCommitments(group, recipient, v, decoded.get(i)!)) {
        bad.set(i, `sub-share for party ${recipient} does not match the dealer's commitments`);
        continue;
      }
      values.set(i, v);
    }
    throwIfAny(ErrorCode.BadShare, 'reshare: bad sub-share', bad);
    const lambda = lagrangeOver(group, dealers);
    for (const i of dealers) share = group.add(share, group.mul(lambda.get(i)!, values.get(i)!));
    const y = group.pointFromBytes(verifyingShareOf(newPackage, recipient), 'new verifying share');
    ensure(group.eqPoints(group.mulBase(share), y), ErrorCode.VerificationFailed, `reshare: new share of party ${recipient} does not match the new package`);
    return group.scalarToBytes(share);
  } finally {
    values.clear();
    share = 0n;
  }
}

/**
 * Recipient j: verify every dealer's sub-share against its commitments (naming bad dealers), combine
 * them with the dealers' Lagrange coefficients, and check the result against `newPackage` (which must
 * be resharedPackage of the same inputs). Returns the new SecretShare at the new epoch; its value is
 * the caller's to wipe. The caller's sub-shares are not modified (the caller wipes them too).
 * ECDSA keys get no pairwise setups here: a new committee runs its own (core/ecdsa/setup.ts).
 */
export function combineSubShares(
  oldPackage: PublicKeyPackage,
  dealt: ReadonlyMap<number, readonly Uint8Array[]>,
  subShares: ReadonlyMap<number, Uint8Array>,
  recipient: number,
  newPackage: PublicKeyPackage,
): SecretShare {
  const old = checkPackage(oldPackage, 'old package');
  const fresh = checkPackage(newPackage, 'new package');
  const target = checkTarget({ threshold: fresh.pkg.threshold, indices: fresh.committee });
  ensure(isParty(fresh.pkg, recipient), ErrorCode.BadParameters, `reshare: party ${String(recipient).slice(0, 12)} is not in the new committee`);
  const dealers = dealersOf(old, dealt);
  const decoded = decodeAllDealt(old, dealers, dealt, target);
  ensure(samePackage(computePackage(old, decoded, target), fresh.pkg), ErrorCode.VerificationFailed, 'reshare: the new package is not the reshare of these commitments');
  const value = combineChecked(old, decoded, subShares, recipient, fresh.pkg);
  return Object.freeze({ suite: fresh.pkg.suite, index: recipient, epoch: fresh.pkg.epoch, value });
}

// ---------------------------------------------------------------------------------------------
// The session: one-use state handles

/** What the session knows, fixed at round 1. Public. */
interface Context {
  readonly suite: Suite;
  readonly self: number;
  readonly sessionId: Uint8Array;
  /** The run id (core/run-id.ts): bound into every signed deal. */
  readonly runId: Uint8Array;
  readonly auth: PartyAuthenticator;
  readonly old: CheckedPackage;
  /** core/commit.ts publicPackageDigest of the old package: every deal carries and signs it. */
  readonly oldDigest: Uint8Array;
  /** D, ascending. */
  readonly dealers: readonly number[];
  readonly target: ReshareTarget;
  /** D ∪ committee, ascending: who echoes and confirms. */
  readonly players: readonly number[];
}

const isDealer = (ctx: Context, i = ctx.self) => ctx.dealers.includes(i);
const isReceiver = (ctx: Context, i = ctx.self) => ctx.target.indices.includes(i);

/** A validated deal: the decoded commitments, the exact bytes its dealer signed, and a private copy. */
interface ReceivedDeal {
  readonly commitments: readonly Point[];
  readonly transcript: Uint8Array;
  readonly message: ReshareDealMsg;
}

interface Round1Inner {
  readonly ctx: Context;
  /** Our own deal (dealers only). */
  readonly own?: ReceivedDeal;
  /** Secret (a dealer that is also a new party): SerializeScalar(g_self(self)). */
  readonly ownSubShare?: Uint8Array;
}

interface Round2Inner {
  readonly ctx: Context;
  /** Every dealer's deal as we received it (our own included), keyed by dealer. */
  readonly received: ReadonlyMap<number, ReceivedDeal>;
  readonly ownSubShare?: Uint8Array;
}

interface Round3Inner {
  readonly ctx: Context;
  readonly publicKey: PublicKeyPackage;
  /** Secret (new parties): our new share, SerializeScalar. Handed to the caller or zeroized. */
  shareBytes?: Uint8Array;
  readonly digest: Uint8Array;
}

type Inner<R extends 1 | 2 | 3> = R extends 1 ? Round1Inner : R extends 2 ? Round2Inner : Round3Inner;

/**
 * An opaque, one-use round state (as core/jointfeldman.ts JointFeldmanState): the secrets live in a
 * private field; every round function empties the state first, so reusing it throws BadState.
 */
export class ReshareState<R extends 1 | 2 | 3> extends OneUseState<Inner<R>> {
  readonly round: R;

  private constructor(round: R, inner: Inner<R>) {
    super(inner);
    this.round = round;
  }

  /** @internal */
  static make<R extends 1 | 2 | 3>(round: R, inner: Inner<R>): ReshareState<R> {
    return new ReshareState(round, inner);
  }

  /** @internal Check the state fits this call and empty it. */
  static take<R extends 1 | 2 | 3>(state: unknown, round: R, fn: string): Inner<R> {
    ensure(state instanceof ReshareState, ErrorCode.BadState, `${fn}: not a reshare state`);
    ensure(state.round === round, ErrorCode.BadState, `${fn}: got the state of round ${state.round}, expected round ${round}`);
    return OneUseState.use(state, fn) as Inner<R>;
  }

  /** @internal Look without using (the wipe probe only). */
  static peek(state: unknown): Inner<1 | 2 | 3> | undefined {
    return state instanceof ReshareState ? (OneUseState.contents(state) as Inner<1 | 2 | 3> | undefined) : undefined;
  }

  /** @internal Empty a state without running it (session aborted). */
  static discard(state: unknown): Inner<1 | 2 | 3> | undefined {
    return state instanceof ReshareState ? (OneUseState.empty(state) as Inner<1 | 2 | 3> | undefined) : undefined;
  }

  override toString(): string {
    return `ReshareState(round ${this.round}${this.consumed ? ', consumed' : ''})`;
  }

  toJSON(): { round: R; consumed: boolean } {
    return { round: this.round, consumed: this.consumed };
  }
}

function secretBytesOf(inner: Inner<1 | 2 | 3>): Uint8Array[] {
  const out: Uint8Array[] = [];
  if ('ownSubShare' in inner && inner.ownSubShare) out.push(inner.ownSubShare);
  if ('shareBytes' in inner && inner.shareBytes) out.push(inner.shareBytes);
  return out;
}

/** End a reshare early (timeout, abort): zeroize what the state holds and mark it used. Safe on any state. */
export function reshareDiscard(state: unknown): void {
  const inner = ReshareState.discard(state);
  if (inner) zeroize(...secretBytesOf(inner));
}

/** A probe over the secret byte arrays `state` holds now (core/wipe.ts), for the wipe test. */
export function reshareWipeProbe(state: unknown): WipeProbe {
  const inner = ReshareState.peek(state);
  return wipeProbe(inner ? secretBytesOf(inner) : []);
}

// ---------------------------------------------------------------------------------------------
// Parameters

export interface ReshareParams {
  readonly suite: SuiteId;
  /** 16..64 bytes, bound into every signed deal and the confirmation digest. */
  readonly sessionId: Uint8Array;
  /** 32 bytes, fresh for this run (core/run-id.ts deriveRunId): bound into every identity signature. */
  readonly runId: Uint8Array;
  /** This party's node index. */
  readonly self: number;
  /**
   * The full public key package being reshared. A new party that holds no share of it gets it from
   * the driver, which checks its core/commit.ts publicPackageDigest against the session's payload.
   */
  readonly oldPackage: PublicKeyPackage;
  /** D: strictly ascending old holders, at least the old threshold. */
  readonly dealers: readonly number[];
  /** The new threshold and committee. */
  readonly target: ReshareTarget;
  /** Dealers only (and required of them): this party's share of the old key. */
  readonly share?: SecretShare;
}

function committeeBytes(list: readonly number[]): Uint8Array {
  return concatBytes(...list.map((i) => i2osp(i, 1)));
}

/** Validate everything before any secret is touched. Returns the context and (dealers) our share copy. */
function makeContext(p: ReshareParams, auth: PartyAuthenticator): { ctx: Context; shareBytes?: Uint8Array } {
  ensure(typeof p === 'object' && p !== null, ErrorCode.BadParameters, 'reshare: parameters expected');
  // Read each field once, so a getter cannot show two different values.
  const { suite: suiteId, sessionId, runId, self, oldPackage, dealers: dealerList, target: targetIn, share } = p;
  const suite = getSuite(suiteId);
  const old = checkPackage(oldPackage, 'old package');
  ensure(old.pkg.suite === suite.id, ErrorCode.BadParameters, `reshare: the old package is for suite ${old.pkg.suite}, the session for ${suite.id}`);
  const dealers = checkDealers(old, dealerList);
  const target = checkTarget(targetIn);
  const players = [...new Set([...dealers, ...target.indices])].sort((a, b) => a - b);
  ensure(Number.isSafeInteger(self) && players.includes(self), ErrorCode.BadParameters, `reshare: party ${String(self).slice(0, 12)} is neither a dealer nor in the new committee`);
  checkSessionId(sessionId);
  checkRunId(runId);
  checkAuthenticator(auth);
  const ctx: Context = {
    suite,
    self,
    sessionId: Uint8Array.from(sessionId),
    runId: Uint8Array.from(runId),
    auth,
    old,
    oldDigest: publicPackageDigest(old.pkg),
    dealers,
    target,
    players,
  };
  if (!isDealer(ctx)) {
    ensure(share === undefined, ErrorCode.BadParameters, `reshare: party ${self} is not a dealer and must not be given a share`);
    return { ctx };
  }
  const own = checkOwnShare(old, share);
  if (own.index !== self) {
    zeroize(own.bytes);
    throw new TesseraError(ErrorCode.BadParameters, `reshare: the share given is party ${own.index}'s, not party ${self}'s`);
  }
  return { ctx, shareBytes: own.bytes };
}

// ---------------------------------------------------------------------------------------------
// Transcripts

/** What a deal's signature is bound to besides the deal itself (also the evidence's binding). */
export interface ReshareBinding {
  readonly suite: unknown;
  readonly sessionId: Uint8Array;
  readonly runId: Uint8Array;
  /** core/commit.ts publicPackageDigest of the old package. */
  readonly oldPackageDigest: Uint8Array;
  /** The old committee (node indices, ascending). */
  readonly oldIndices: readonly number[];
  /** The new threshold and committee. */
  readonly threshold: number;
  readonly indices: readonly number[];
  /** D, ascending. */
  readonly dealers: readonly number[];
}

/**
 * The framed transcript a dealer signs: protocol, suite, session, run id, the old package (digest and
 * committee), the new threshold and committee, the dealer set, the sender and its commitments. A deal
 * cannot be replayed into another session, run, key, target or dealer set.
 */
function transcriptBytes(b: ReshareBinding, contextString: string, sender: number, commitments: readonly Uint8Array[]): Uint8Array {
  return framed(
    TAG_DEAL,
    utf8ToBytes(contextString),
    utf8ToBytes('reshare'),
    b.sessionId,
    b.runId,
    b.oldPackageDigest,
    committeeBytes(b.oldIndices),
    i2osp(b.threshold, 2),
    committeeBytes(b.indices),
    committeeBytes(b.dealers),
    i2osp(sender, 2),
    framed(...commitments),
  );
}

function bindingOf(ctx: Context): ReshareBinding {
  return {
    suite: ctx.suite.id,
    sessionId: ctx.sessionId,
    runId: ctx.runId,
    oldPackageDigest: ctx.oldDigest,
    oldIndices: ctx.old.committee,
    threshold: ctx.target.threshold,
    indices: ctx.target.indices,
    dealers: ctx.dealers,
  };
}

const dealTranscript = (ctx: Context, sender: number, commitments: readonly Uint8Array[]) =>
  transcriptBytes(bindingOf(ctx), ctx.suite.contextString, sender, commitments);

/**
 * The exact bytes dealer `sender` signs for its deal. Exported so that equivocation evidence (two
 * deals signed by one dealer for one run) can be checked outside the session (core/evidence.ts).
 */
export function reshareDealSignedBytes(binding: ReshareBinding, sender: number, msg: ReshareDealMsg): Uint8Array {
  const { checked, suite } = checkBinding(binding, sender);
  ensure(
    typeof msg === 'object' && msg !== null && Array.isArray(msg.commitments) && msg.commitments.every((c) => c instanceof Uint8Array),
    ErrorCode.BadMessage,
    'reshare deal expected',
  );
  return transcriptBytes(checked, suite.contextString, sender, msg.commitments);
}

/** A binding from outside the session (evidence), checked in full; `sender` must be one of its dealers. */
function checkBinding(binding: ReshareBinding, sender: number): { checked: ReshareBinding; suite: Suite } {
  ensure(typeof binding === 'object' && binding !== null, ErrorCode.BadInput, 'reshare binding expected');
  const suite = getSuite(binding.suite);
  checkSessionId(binding.sessionId);
  checkRunId(binding.runId);
  ensure(binding.oldPackageDigest instanceof Uint8Array && binding.oldPackageDigest.length === RESHARE_PACKAGE_DIGEST_LENGTH, ErrorCode.BadInput, 'old package digest must be 32 bytes');
  const oldIndices = checkCommittee(binding.oldIndices, undefined, 'old committee');
  const target = checkTarget({ threshold: binding.threshold, indices: binding.indices });
  const dealers = checkCommittee(binding.dealers, undefined, 'dealer set');
  ensure(dealers.includes(sender), ErrorCode.BadParameters, 'sender must be a dealer');
  return { checked: { ...binding, oldIndices, threshold: target.threshold, indices: target.indices, dealers }, suite };
}

/**
 * The bytes dealer `sender` signs for new party `recipient`'s sub-share: the deal's binding, both
 * indices and the sub-share itself. The sub-share travels only inside the encrypted channel; the
 * signature makes a bad one transferable evidence against its dealer (core/evidence.ts
 * ReshareBadShare), which the recipient can show without revealing anything of an honest dealer's
 * (a sub-share that matches its commitments is never evidence). Exported for that check.
 */
export function reshareShareSignedBytes(binding: ReshareBinding, sender: number, recipient: number, share: Uint8Array): Uint8Array {
  const { checked: b, suite } = checkBinding(binding, sender);
  ensure(b.indices.includes(recipient), ErrorCode.BadParameters, 'recipient must be in the new committee');
  ensure(share instanceof Uint8Array, ErrorCode.BadMessage, 'sub-share bytes expected');
  return framed(
    TAG_SHARE,
    utf8ToBytes(suite.contextString),
    b.sessionId,
    b.runId,
    b.oldPackageDigest,
    committeeBytes(b.oldIndices),
    i2osp(b.threshold, 2),
    committeeBytes(b.indices),
    committeeBytes(b.dealers),
    i2osp(sender, 2),
    i2osp(recipient, 2),
    share,
  );
}

/**
 * Whether `share` is a valid sub-share for `recipient` under the signed deal's commitments: a canonical
 * scalar on the dealer's polynomial (RFC 9591 Appendix C.2 vss_verify). For the evidence check.
 */
export function reshareSubShareFits(binding: ReshareBinding, deal: ReshareDealMsg, recipient: number, share: Uint8Array): boolean {
  const { suite } = checkBinding(binding, binding.dealers[0]!);
  const { group } = suite;
  const commitments = deal.commitments.map((c, k) => group.pointFromBytes(c, `commitment ${k}`));
  if (!(share instanceof Uint8Array) || share.length !== group.scalarLength) return false;
  let v: bigint;
  try {
    v = group.scalarFromBytes(share, 'sub-share', true);
  } catch {
    return false;
  }
  return verifyShareAgainstCommitments(group, recipient, v, commitments);
}

/**
 * The confirmation digest: core/jointfeldman.ts publicResultDigest of the new package (bound to the
 * session; it covers the committee), extended with the old package the result was reshared from.
 */
export function reshareResultDigest(newPackage: PublicKeyPackage, sessionId: Uint8Array, oldPackageDigest: Uint8Array): Uint8Array {
  ensure(oldPackageDigest instanceof Uint8Array && oldPackageDigest.length === RESHARE_PACKAGE_DIGEST_LENGTH, ErrorCode.BadInput, 'old package digest must be 32 bytes');
  return sha256(framed(TAG_RESULT, publicResultDigest(newPackage, sessionId), oldPackageDigest));
}

// ---------------------------------------------------------------------------------------------
// Input checks

/** A Map holding exactly one message from each of `expected` (UnexpectedParty without culprits otherwise). */
function checkSenders<M>(msgs: unknown, expected: readonly number[], what: string): Map<number, M> {
  ensure(msgs instanceof Map, ErrorCode.BadInput, `${what}: expected a Map keyed by sender index`);
  const m = msgs as Map<unknown, M>;
  const unexpected = [...m.keys()].filter((k) => !expected.includes(k as number)).map((k) => (typeof k === 'number' ? String(k) : typeof k));
  ensure(unexpected.length === 0, ErrorCode.UnexpectedParty, `${what}: message from unexpected sender(s) ${unexpected.join(', ')}`);
  const missing = expected.filter((j) => !m.has(j));
  ensure(missing.length === 0, ErrorCode.UnexpectedParty, `${what}: missing message(s) from party ${missing.join(', ')}`);
  return m as Map<number, M>;
}

/** Read a deal once, check its shape and copy it; or say why it is malformed. */
function snapshotDeal(ctx: Context, msg: unknown): ReshareDealMsg | string {
  if (typeof msg !== 'object' || msg === null) return 'not a deal';
  const { commitments, oldPackageDigest, signature } = msg as Partial<ReshareDealMsg>;
  if (!Array.isArray(commitments)) return 'commitments missing';
  const list = [...commitments];
  if (list.length !== ctx.target.threshold) return `expected ${ctx.target.threshold} commitments, got ${list.length}`;
  if (!list.every((c) => c instanceof Uint8Array && c.length === ctx.suite.group.pointLength)) return 'commitment of the wrong length';
  if (!(oldPackageDigest instanceof Uint8Array) || oldPackageDigest.length !== RESHARE_PACKAGE_DIGEST_LENGTH) return `old package digest must be ${RESHARE_PACKAGE_DIGEST_LENGTH} bytes`;
  if (!(signature instanceof Uint8Array) || signature.length === 0 || signature.length > MAX_AUTH_SIGNATURE_LENGTH) return 'signature missing or of the wrong length';
  return {
    commitments: list.map((c) => Uint8Array.from(c as Uint8Array)),
    oldPackageDigest: Uint8Array.from(oldPackageDigest),
    signature: Uint8Array.from(signature),
  };
}

const copyDeal = (m: ReshareDealMsg): ReshareDealMsg => ({
  commitments: m.commitments.map((c) => Uint8Array.from(c)),
  oldPackageDigest: Uint8Array.from(m.oldPackageDigest),
  signature: Uint8Array.from(m.signature),
});

const others = (list: readonly number[], self: number) => list.filter((j) => j !== self);

// ---------------------------------------------------------------------------------------------
// Round 1: deal

/**
 * Round 1. A dealer deals its share (dealReshare) and returns its signed deal (broadcast to every
 * other player) and one sub-share message per other new party (point to point, secret: wipe with
 * wipeShareMessages (core/wipe.ts) once sent). A party that only receives returns neither.
 */
export function reshareRound1(
  params: ReshareParams,
  auth: PartyAuthenticator,
): { state: ReshareState<1>; deal?: ReshareDealMsg; shares?: Map<number, ReshareShareMsg> } {
  const { ctx, shareBytes } = makeContext(params, auth);
  if (shareBytes === undefined) return { state: ReshareState.make(1, { ctx }) };
  const { group } = ctx.suite;
  const dealt = dealChecked(ctx.old, shareBytes, ctx.target); // wipes shareBytes
  let ownSubShare: Uint8Array | undefined;
  try {
    const transcript = dealTranscript(ctx, ctx.self, dealt.commitments);
    const signature = authSign(ctx.auth, transcript, 'reshare deal');
    const deal: ReshareDealMsg = { commitments: dealt.commitments, oldPackageDigest: Uint8Array.from(ctx.oldDigest), signature };
    const own: ReceivedDeal = {
      commitments: dealt.commitments.map((c, k) => group.pointFromBytes(c, `commitment ${k}`)),
      transcript,
      message: copyDeal(deal),
    };
    ownSubShare = dealt.subShares.get(ctx.self);
    dealt.subShares.delete(ctx.self);
    const shares = new Map<number, ReshareShareMsg>();
    // Each sub-share is signed for its recipient: a bad one is then evidence against this dealer.
    for (const [j, v] of dealt.subShares) shares.set(j, { share: v, signature: authSign(ctx.auth, reshareShareSignedBytes(bindingOf(ctx), ctx.self, j, v), 'reshare sub-share') });
    return { state: ReshareState.make(1, { ctx, own, ownSubShare }), deal, shares };
  } catch (e) {
    zeroize(ownSubShare, ...dealt.subShares.values());
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Round 2: validate deals, echo

/**
 * Round 2 (every player): validate every other dealer's deal — shape and the old package digest
 * (naming nobody), the dealer's signature (naming nobody), then checkDealerCommitments (naming the
 * dealer) — and echo every deal, our own included.
 */
export function reshareRound2(state: ReshareState<1>, deals: Map<number, ReshareDealMsg>): { state: ReshareState<2>; echo: ReshareEchoMsg } {
  const fn = 'reshareRound2';
  const inner = ReshareState.take(state, 1, fn);
  const { ctx } = inner;
  let ok = false;
  try {
    const senders = others(ctx.dealers, ctx.self);
    const msgs = checkSenders<ReshareDealMsg>(deals, senders, `${fn}: deals`);

    // 1. Shapes, before any crypto, on private copies.
    const malformed = new Map<number, string>();
    const copies = new Map<number, ReshareDealMsg>();
    for (const j of senders) {
      const snap = snapshotDeal(ctx, msgs.get(j));
      if (typeof snap === 'string') malformed.set(j, snap);
      else copies.set(j, snap);
    }
    throwUnattributed(ErrorCode.BadMessage, `${fn}: malformed deal`, malformed);

    // 2. The same old package: a dealer resharing another package is a disagreement on the session's
    //    input, not provable misbehaviour (which of us holds the stale package is not known here).
    const otherPackage = senders.filter((j) => !equalBytes(copies.get(j)!.oldPackageDigest, ctx.oldDigest));
    ensure(otherPackage.length === 0, ErrorCode.ConfirmationMismatch, `${fn}: party ${otherPackage.join(', ')} reshares a different key package`);

    // 3. Signatures (run id included). Only a validly signed deal is evidence against its dealer.
    const transcripts = new Map<number, Uint8Array>();
    const badSignatures = new Map<number, string>();
    for (const j of senders) {
      const m = copies.get(j)!;
      const t = dealTranscript(ctx, j, m.commitments);
      transcripts.set(j, t);
      if (!authVerify(ctx.auth, j, t, m.signature)) badSignatures.set(j, 'deal signature does not verify for this run');
    }
    throwUnattributed(ErrorCode.BadProof, `${fn}: bad deal signature`, badSignatures);

    // 4. Public checks of signed deals: elements, and C_0 = the dealer's old verifying share.
    const decoded = decodeAllDealt(ctx.old, senders, new Map(senders.map((j) => [j, copies.get(j)!.commitments])), ctx.target);

    const received = new Map<number, ReceivedDeal>();
    if (inner.own) received.set(ctx.self, inner.own);
    for (const j of senders) received.set(j, { commitments: decoded.get(j)!, transcript: transcripts.get(j)!, message: copies.get(j)! });
    const packages: Record<number, ReshareDealMsg> = {};
    for (const i of ctx.dealers) packages[i] = copyDeal(received.get(i)!.message);
    ok = true;
    return { state: ReshareState.make(2, { ctx, received, ownSubShare: inner.ownSubShare }), echo: { packages } };
  } finally {
    if (!ok) zeroize(inner.ownSubShare);
  }
}

// ---------------------------------------------------------------------------------------------
// Round 3: echo check, sub-shares, result

function echoCheck(ctx: Context, fn: string, echoes: ReadonlyMap<number, ReshareEchoMsg>, received: ReadonlyMap<number, ReceivedDeal>): void {
  const echoers = others(ctx.players, ctx.self);
  // Shape first: exactly the dealers' packages, each well formed. An echo is not identity-signed, so a
  // malformed one names nobody.
  const badEchoes = new Map<number, string>();
  const echoed = new Map<number, Map<number, ReshareDealMsg>>();
  for (const e of echoers) {
    const echo = echoes.get(e) as unknown;
    const pk = typeof echo === 'object' && echo !== null ? ((echo as Partial<ReshareEchoMsg>).packages as unknown) : undefined;
    if (typeof pk !== 'object' || pk === null || Array.isArray(pk)) {
      badEchoes.set(e, 'packages missing');
      continue;
    }
    const keys = Object.keys(pk);
    if (keys.length !== ctx.dealers.length || !ctx.dealers.every((i) => keys.includes(String(i)))) {
      badEchoes.set(e, `must echo exactly the deals of dealers ${ctx.dealers.join(', ')}`);
      continue;
    }
    const snaps = new Map<number, ReshareDealMsg>();
    for (const i of ctx.dealers) {
      const snap = snapshotDeal(ctx, (pk as Record<string, unknown>)[String(i)]);
      if (typeof snap === 'string') {
        badEchoes.set(e, `echoed deal of dealer ${i}: ${snap}`);
        break;
      }
      snaps.set(i, snap);
    }
    if (!badEchoes.has(e)) echoed.set(e, snaps);
  }
  throwUnattributed(ErrorCode.BadMessage, `${fn}: malformed echo`, badEchoes);

  const forged = new Map<number, string>();
  const equivocators = new Map<number, string>();
  const evidence: EquivocationEvidence[] = [];
  for (const e of echoers) {
    for (const i of ctx.dealers) {
      const m = echoed.get(e)!.get(i)!;
      const ours = received.get(i)!;
      const t = dealTranscript(ctx, i, m.commitments);
      if (equalBytes(t, ours.transcript) && equalBytes(m.oldPackageDigest, ctx.oldDigest)) continue;
      if (!equalBytes(m.oldPackageDigest, ctx.oldDigest) || !authVerify(ctx.auth, i, t, m.signature)) {
        // Not signed by i for this run and key: proves nothing against i, nor against the (unsigned) echoer.
        forged.set(e, `echoed a deal for dealer ${i} that dealer ${i} did not sign for this run`);
      } else if (!equivocators.has(i)) {
        equivocators.set(i, `signed different deals (party ${e} received another one)`);
        evidence.push({ protocol: 'reshare', signer: i, binding: copyBinding(bindingOf(ctx)), first: copyDeal(ours.message), second: copyDeal(m) });
      }
    }
  }
  // An equivocator is named whatever else went wrong.
  throwIfAny(ErrorCode.Equivocation, `${fn}: echo check failed`, equivocators, evidence);
  throwUnattributed(ErrorCode.BadProof, `${fn}: forged echo`, forged);
}

function copyBinding(b: ReshareBinding): ReshareBinding {
  return {
    suite: b.suite,
    sessionId: Uint8Array.from(b.sessionId),
    runId: Uint8Array.from(b.runId),
    oldPackageDigest: Uint8Array.from(b.oldPackageDigest),
    oldIndices: [...b.oldIndices],
    threshold: b.threshold,
    indices: [...b.indices],
    dealers: [...b.dealers],
  };
}

/**
 * Round 3 (every player): the echo check (Equivocation with evidence, or BadProof for a forged echo,
 * naming nobody); the new package (resharedPackage); a new party verifies and combines its sub-shares
 * (combineSubShares: BadShare naming each bad dealer). `shares` holds the sub-share of every other
 * dealer for a new party, and is empty or absent otherwise. Returns the confirmation.
 */
export function reshareRound3(
  state: ReshareState<2>,
  echoes: Map<number, ReshareEchoMsg>,
  shares?: Map<number, ReshareShareMsg>,
): { state: ReshareState<3>; confirm: ReshareConfirmMsg } {
  const fn = 'reshareRound3';
  const inner = ReshareState.take(state, 2, fn);
  const { ctx, received } = inner;
  try {
    const echoMsgs = checkSenders<ReshareEchoMsg>(echoes, others(ctx.players, ctx.self), `${fn}: echoes`);
    const shareMsgs = checkSenders<ReshareShareMsg>(shares ?? new Map(), isReceiver(ctx) ? others(ctx.dealers, ctx.self) : [], `${fn}: sub-shares`);

    // Broadcast consistency before anything secret is touched.
    echoCheck(ctx, fn, echoMsgs, received);

    const decoded = new Map<number, readonly Point[]>(ctx.dealers.map((i) => [i, received.get(i)!.commitments]));
    const publicKey = computePackage(ctx.old, decoded, ctx.target);
    let shareBytes: Uint8Array | undefined;
    if (isReceiver(ctx)) {
      const subShares = new Map<number, unknown>();
      const signatures = new Map<number, Uint8Array>();
      const unsigned = new Map<number, string>();
      for (const i of others(ctx.dealers, ctx.self)) {
        const m = shareMsgs.get(i) as unknown;
        const { share, signature } = typeof m === 'object' && m !== null ? (m as Partial<ReshareShareMsg>) : {};
        subShares.set(i, share);
        // A sub-share its dealer did not sign for us proves nothing to a third party: no one is named.
        if (!(share instanceof Uint8Array) || !(signature instanceof Uint8Array) || !authVerify(ctx.auth, i, reshareShareSignedBytes(bindingOf(ctx), i, ctx.self, share), signature)) {
          unsigned.set(i, 'sub-share signature does not verify');
        } else signatures.set(i, signature);
      }
      throwUnattributed(ErrorCode.BadMessage, `${fn}: unsigned sub-share`, unsigned);
      if (isDealer(ctx)) subShares.set(ctx.self, inner.ownSubShare);
      try {
        shareBytes = combineChecked(ctx.old, decoded, subShares, ctx.self, publicKey);
      } catch (e) {
        // A signed sub-share off its dealer's signed commitments names the dealer, with both as evidence.
        if (!isTesseraError(e) || e.code !== ErrorCode.BadShare || e.culprits.length === 0) throw e;
        const binding = copyBinding(bindingOf(ctx));
        const evidence: EquivocationEvidence[] = e.culprits.map((i) => ({
          protocol: 'reshare-share',
          signer: i,
          binding,
          recipient: ctx.self,
          deal: copyDeal(received.get(i)!.message),
          share: Uint8Array.from(subShares.get(i) as Uint8Array),
          signature: Uint8Array.from(signatures.get(i)!),
        }));
        throw new TesseraError(e.code, e.message, [...e.culprits], evidence);
      }
    }
    const digest = reshareResultDigest(publicKey, ctx.sessionId, ctx.oldDigest);
    return { state: ReshareState.make(3, { ctx, publicKey, shareBytes, digest }), confirm: { digest: Uint8Array.from(digest) } };
  } finally {
    // Our own sub-share is combined (or the session is over): never needed again.
    zeroize(inner.ownSubShare);
  }
}

// ---------------------------------------------------------------------------------------------
// Finish: confirmation

/**
 * Finish (every player): every other player must confirm our digest (ConfirmationMismatch otherwise,
 * naming nobody, and no share is released). Returns the new package, and for a new party its new
 * share (the caller's to keep and wipe). A dealer leaving the committee gets the package only: the
 * driver erases its old share once the result is committed.
 */
export function reshareFinish(state: ReshareState<3>, confirms: Map<number, ReshareConfirmMsg>): { package: PublicKeyPackage; share?: SecretShare } {
  const fn = 'reshareFinish';
  const inner = ReshareState.take(state, 3, fn);
  const { ctx } = inner;
  let released = false;
  try {
    const senders = others(ctx.players, ctx.self);
    const msgs = checkSenders<ReshareConfirmMsg>(confirms, senders, `${fn}: confirmations`);
    const malformed = new Map<number, string>();
    for (const j of senders) {
      const m = msgs.get(j) as unknown;
      const d = typeof m === 'object' && m !== null ? (m as Partial<ReshareConfirmMsg>).digest : undefined;
      if (!(d instanceof Uint8Array) || d.length !== DIGEST_LENGTH) malformed.set(j, `digest must be ${DIGEST_LENGTH} bytes`);
    }
    throwUnattributed(ErrorCode.BadMessage, `${fn}: malformed confirmation`, malformed);
    const differing = senders.filter((j) => !equalBytes(msgs.get(j)!.digest, inner.digest));
    ensure(differing.length === 0, ErrorCode.ConfirmationMismatch, `${fn}: public result differs at party ${differing.join(', ')}; no share is released`);
    const pkg = inner.publicKey;
    if (inner.shareBytes === undefined) return { package: pkg };
    const share: SecretShare = Object.freeze({ suite: pkg.suite, index: ctx.self, epoch: pkg.epoch, value: inner.shareBytes });
    released = true;
    return { package: pkg, share };
  } finally {
    if (!released) zeroize(inner.shareBytes);
    inner.shareBytes = undefined;
  }
}
