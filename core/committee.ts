/**
 * Key committees: which party identifiers hold shares of a key.
 *
 * A share's x-coordinate is its holder's node index (RFC 9591 §4.2 identifiers), so a key may live on
 * any set of nodes: 1..n for every key dealt by DKG, any set after a reshare (issue 13). Everything
 * that loops over a key's parties, or looks up a verifying share, goes through these functions rather
 * than assuming 1..n.
 */
import { ErrorCode, ensure } from './errors.js';
import type { PublicKeyPackage } from './types.js';

/** The largest party identifier (a node index; parties and thresholds are at most 255). */
export const MAX_PARTY_INDEX = 255;

/** 1..n. */
export function contiguousIndices(parties: number): number[] {
  return Array.from({ length: parties }, (_, k) => k + 1);
}

/** The key's holders, ascending: `indices`, or 1..parties when absent. */
export function partyIndices(pkg: Pick<PublicKeyPackage, 'parties' | 'indices'>): readonly number[] {
  return pkg.indices ?? contiguousIndices(pkg.parties);
}

/** Whether `index` holds a share of the key. */
export function isParty(pkg: Pick<PublicKeyPackage, 'parties' | 'indices'>, index: number): boolean {
  if (!Number.isSafeInteger(index)) return false;
  return pkg.indices ? pkg.indices.includes(index) : index >= 1 && index <= pkg.parties;
}

/** The position of `index` in the key's committee (and in verifyingShares), or -1. */
export function partyPosition(pkg: Pick<PublicKeyPackage, 'parties' | 'indices'>, index: number): number {
  if (!Number.isSafeInteger(index)) return -1;
  if (pkg.indices) return pkg.indices.indexOf(index);
  return index >= 1 && index <= pkg.parties ? index - 1 : -1;
}

/** Party `index`'s verifying share (its canonical encoding); BAD_PARAMETERS if it holds none. */
export function verifyingShareOf(pkg: Pick<PublicKeyPackage, 'parties' | 'indices' | 'verifyingShares'>, index: number): Uint8Array {
  const k = partyPosition(pkg, index);
  ensure(k >= 0 && k < pkg.verifyingShares.length, ErrorCode.BadParameters, `party ${index} holds no share of this key`);
  return pkg.verifyingShares[k]!;
}

/**
 * Validate a committee: strictly ascending integers in 1..255, at least 2 and at least `threshold`.
 * Returns a frozen copy.
 */
export function checkCommittee(indices: unknown, threshold?: number, what = 'committee'): readonly number[] {
  ensure(Array.isArray(indices), ErrorCode.BadParameters, `${what} must be a list of node indices`);
  const list = indices as unknown[];
  ensure(list.length >= 2 && list.length <= MAX_PARTY_INDEX, ErrorCode.BadParameters, `${what} must name 2..${MAX_PARTY_INDEX} nodes, got ${list.length}`);
  for (let k = 0; k < list.length; k++) {
    const i = list[k];
    ensure(typeof i === 'number' && Number.isSafeInteger(i) && i >= 1 && i <= MAX_PARTY_INDEX, ErrorCode.BadParameters, `${what}: node ${String(i).slice(0, 12)} is not an index 1..${MAX_PARTY_INDEX}`);
    ensure(k === 0 || (list[k - 1] as number) < i, ErrorCode.BadParameters, `${what} must be strictly ascending (no node twice)`);
  }
  if (threshold !== undefined) {
    ensure(Number.isSafeInteger(threshold) && threshold >= 2 && threshold <= list.length, ErrorCode.BadParameters, `threshold ${threshold} must be 2..${list.length} for ${what} (${list.length} nodes)`);
  }
  return Object.freeze([...(list as number[])]);
}

/** Whether a committee is exactly 1..n (such a package omits `indices`, so its digest is unchanged). */
export function isContiguous(indices: readonly number[]): boolean {
  return indices.every((i, k) => i === k + 1);
}
