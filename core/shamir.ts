/**
 * Shamir secret sharing with Feldman commitments over a suite's scalar field.
 *
 * RFC 9591 Appendix C.1 (secret_share_shard, polynomial evaluation), C.2 (vss_commit, vss_verify,
 * derive_group_info) and §4.2 (derive_interpolating_value). Used by refresh, decapsulation, and by
 * import/export of keys that come from outside a cluster.
 */
import { ErrorCode, TesseraError, ensure } from './errors.js';
import { checkCommittee, contiguousIndices, isContiguous } from './committee.js';
import type { Group, Point } from './group.js';

/** Validate (t, n) and return them. t >= 2 because 1-of-n is not threshold custody. */
export function checkThreshold(threshold: number, parties: number): void {
  ensure(Number.isSafeInteger(parties) && parties >= 2 && parties <= 255, ErrorCode.BadParameters, `party count must be 2..255, got ${parties}`);
  ensure(
    Number.isSafeInteger(threshold) && threshold >= 2 && threshold <= parties,
    ErrorCode.BadParameters,
    `threshold must be 2..${parties}, got ${threshold}`,
  );
}

/**
 * Validate the committee fields of a public key package (core/types.ts): (t, n) as checkThreshold,
 * and `indices`, when present, a committee (core/committee.ts checkCommittee) of exactly n nodes that is
 * not 1..n (such a package omits `indices`, so each committee has one encoding and one digest).
 * `what` names the package in the error.
 */
export function checkPackageCommittee(pkg: { readonly threshold: number; readonly parties: number; readonly indices?: unknown }, what = 'public key package'): void {
  checkThreshold(pkg.threshold, pkg.parties);
  if (pkg.indices === undefined) return;
  const list = checkCommittee(pkg.indices, pkg.threshold, `${what}: committee`);
  ensure(list.length === pkg.parties, ErrorCode.BadParameters, `${what}: a committee of ${list.length} nodes for ${pkg.parties} parties`);
  ensure(!isContiguous(list), ErrorCode.BadParameters, `${what}: a committee of nodes 1..${pkg.parties} is written without indices`);
}

/**
 * Check a player set: distinct members of the key's committee (a count n means 1..n; a list is the
 * committee itself, core/committee.ts partyIndices), sorted ascending on return.
 */
export function checkPlayers(players: readonly number[], committee: number | readonly number[], threshold?: number): number[] {
  ensure(Array.isArray(players), ErrorCode.BadParameters, 'players must be a list');
  const sorted = [...players].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i]!;
    if (typeof committee === 'number') {
      ensure(Number.isSafeInteger(p) && p >= 1 && p <= committee, ErrorCode.BadParameters, `player ${String(p).slice(0, 12)} is not in 1..${committee}`);
    } else {
      ensure(Number.isSafeInteger(p) && committee.includes(p), ErrorCode.BadParameters, `player ${String(p).slice(0, 12)} is not a holder of this key`);
    }
    ensure(i === 0 || sorted[i - 1] !== p, ErrorCode.BadParameters, `player ${p} appears twice`);
  }
  if (threshold !== undefined) {
    ensure(sorted.length >= threshold, ErrorCode.BadParameters, `need at least ${threshold} players, got ${sorted.length}`);
  }
  return sorted;
}

/** f(x) = Σ coeffs[k]·x^k by Horner's rule (RFC 9591 Appendix C.1 polynomial_evaluate). */
export function evalPolynomial(group: Group, coeffs: readonly bigint[], x: bigint): bigint {
  let acc = 0n;
  for (let k = coeffs.length - 1; k >= 0; k--) acc = group.add(group.mul(acc, x), coeffs[k]!);
  return acc;
}

/**
 * Lagrange coefficient of x_i for evaluating at `at`: Π_{j≠i} (at - x_j) / (x_i - x_j).
 * At 0 this is RFC 9591 §4.2 derive_interpolating_value(L, x_i).
 */
export function lagrangeAt(group: Group, xs: readonly number[], xi: number, at = 0): bigint {
  ensure(new Set(xs).size === xs.length, ErrorCode.BadParameters, 'duplicate participant in interpolation set');
  ensure(xs.includes(xi), ErrorCode.BadParameters, `participant ${xi} not in interpolation set`);
  let num = 1n;
  let den = 1n;
  for (const xj of xs) {
    if (xj === xi) continue;
    num = group.mul(num, group.sub(BigInt(at), BigInt(xj)));
    den = group.mul(den, group.sub(BigInt(xi), BigInt(xj)));
  }
  return group.mul(num, group.inv(den));
}

export function lagrangeAtZero(group: Group, xs: readonly number[], xi: number): bigint {
  return lagrangeAt(group, xs, xi, 0);
}

/** A random polynomial of degree t-1 with the given constant term. */
export function randomPolynomial(group: Group, constant: bigint, threshold: number): bigint[] {
  const coeffs = [constant];
  for (let k = 1; k < threshold; k++) coeffs.push(group.randomScalar());
  return coeffs;
}

/** RFC 9591 Appendix C.2 vss_commit: C_k = a_k·G. */
export function commitPolynomial(group: Group, coeffs: readonly bigint[]): Point[] {
  return coeffs.map((a) => group.mulBase(a));
}

/** Σ_k C_k·x^k: the public image f(x)·G of a committed polynomial (public inputs, variable time). */
export function evalCommitment(group: Group, commitments: readonly Point[], x: number): Point {
  const powers: bigint[] = [];
  let p = 1n;
  for (let k = 0; k < commitments.length; k++) {
    powers.push(p);
    p = group.mul(p, BigInt(x));
  }
  return group.msm([...commitments], powers);
}

/** RFC 9591 Appendix C.2 vss_verify: share·G == Σ C_k·i^k. */
export function verifyShareAgainstCommitments(group: Group, index: number, share: bigint, commitments: readonly Point[]): boolean {
  return group.eqPoints(group.mulBase(share), evalCommitment(group, commitments, index));
}

export interface Sharing {
  /** shares[k] is the share of party k + 1, or of indices[k] when split was given a committee. Secret. */
  readonly shares: bigint[];
  /** Feldman commitments, [0] = secret·G. */
  readonly commitments: Point[];
}

/**
 * RFC 9591 Appendix C.1 secret_share_shard plus C.2 vss_commit, for parties 1..n, or for the given
 * committee (`indices`, strictly ascending node indices; shares[k] belongs to indices[k]).
 */
export function split(group: Group, secret: bigint, threshold: number, parties: number, indices?: readonly number[]): Sharing {
  checkThreshold(threshold, parties);
  const xs = indices === undefined ? contiguousIndices(parties) : checkCommittee(indices, threshold);
  ensure(xs.length === parties, ErrorCode.BadParameters, `a committee of ${xs.length} nodes for ${parties} parties`);
  const coeffs = randomPolynomial(group, secret, threshold);
  const shares: bigint[] = [];
  for (const i of xs) shares.push(evalPolynomial(group, coeffs, BigInt(i)));
  const commitments = commitPolynomial(group, coeffs);
  coeffs.fill(0n); // bigints cannot be wiped; drop our references at least
  return { shares, commitments };
}

/** Interpolate f(0) from t or more shares (RFC 9591 Appendix C.1 secret_share_combine). */
export function combine(group: Group, shares: readonly { index: number; value: bigint }[]): bigint {
  const xs = shares.map((s) => s.index);
  ensure(new Set(xs).size === xs.length, ErrorCode.BadParameters, 'duplicate share index');
  let acc = 0n;
  for (const s of shares) acc = group.add(acc, group.mul(s.value, lagrangeAtZero(group, xs, s.index)));
  return acc;
}

/** Σ λ_i(at)·P_i over the given indexes: interpolation in the exponent (public inputs). */
export function interpolatePoints(group: Group, points: readonly { index: number; point: Point }[], at = 0): Point {
  const xs = points.map((p) => p.index);
  return group.msm(
    points.map((p) => p.point),
    points.map((p) => lagrangeAt(group, xs, p.index, at)),
  );
}

/**
 * Check, in the exponent and without any secret, that verifying shares Y_1..Y_n lie on one polynomial
 * of degree < t whose constant term is `groupKey`: every Y_j for j > t must equal the interpolation
 * of Y_1..Y_t at j, and the interpolation at 0 must be the group key. Returns the culprit-free
 * verdict; which share is wrong cannot be decided from public data alone.
 */
export function verifyingSharesMatchGroupKey(
  group: Group,
  groupKey: Point,
  verifyingShares: readonly Point[],
  threshold: number,
  indices?: readonly number[],
): boolean {
  const n = verifyingShares.length;
  checkThreshold(threshold, n);
  // verifyingShares[k] belongs to party xs[k] (core/committee.ts partyIndices).
  const xs = indices === undefined ? contiguousIndices(n) : checkCommittee(indices, threshold);
  ensure(xs.length === n, ErrorCode.BadParameters, `${n} verifying shares for a committee of ${xs.length}`);
  const base = verifyingShares.slice(0, threshold).map((point, k) => ({ index: xs[k]!, point }));
  if (!group.eqPoints(interpolatePoints(group, base), groupKey)) return false;
  for (let k = threshold; k < n; k++) {
    if (!group.eqPoints(interpolatePoints(group, base, xs[k]!), verifyingShares[k]!)) return false;
  }
  return true;
}

/** Decode a list of encoded points, naming the position of the first bad one. */
export function decodePoints(group: Group, encoded: readonly Uint8Array[], what: string): Point[] {
  return encoded.map((e, k) => group.pointFromBytes(e, `${what}[${k}]`));
}

/** Throws BadShare naming `culprit` unless share·G matches the commitments at `index`. */
export function assertShare(group: Group, index: number, share: bigint, commitments: readonly Point[], culprit: number): void {
  if (!verifyShareAgainstCommitments(group, index, share, commitments)) {
    throw new TesseraError(ErrorCode.BadShare, `share for party ${index} from party ${culprit} does not match its commitments`, [culprit]);
  }
}
