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
import { ErrorCode, TesseraError, ensure } from './errors.js';
import type { EquivocationEvidence } from './evidence.js';
import type { Group, Point } from './group.js';
import { checkSessionId, publicResultDigest, throwIfAny, throwUnattributed } from './jointfeldman.js';
import type { ReshareConfirmMsg, ReshareDealMsg, ReshareEchoMsg, ReshareShareMsg } from './messages.js';
import { checkRunId } from './run-id.js';
import { checkThreshold, commitPolynomial, evalCommitment, evalPolynomial, lagrangeAt, randomPolynomial, verifyShareAgainstCommitments } from './shamir.js';
import { getSuite, type Suite, type SuiteId } from './suites.js';
import type { PublicKeyPackage, SecretShare } from './types.js';
import { wipeProbe, type WipeProbe } from './wipe.js';

/** Length of the old-package digest a deal carries (core/commit.ts publicPackageDigest, SHA-256). */
export const RESHARE_PACKAGE_DIGEST_LENGTH = 32;
const DIGEST_LENGTH = 32;
const TAG_DEAL = utf8ToBytes('TESSERA-v1/reshare/deal');
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
  checkThreshold(p.threshold, p.parties);
  const committee = p.indices === undefined ? partyIndices(p) : checkCommittee(p.indices, p.threshold, `${what} committee`);
  ensure(committee.length === p.parties, ErrorCode.BadParameters, `${what}: ${p.parties} parties but a committee of ${committee.length}`);
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
