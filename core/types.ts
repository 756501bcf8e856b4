/**
 * The key-share data model shared by every protocol in core/.
 *
 * Parties are numbered 1..n; party i's RFC 9591 identifier is the scalar i. What is public and what is
 * secret are separate types: a `PublicKeyPackage` may be sent, logged by id and stored in the clear;
 * a `SecretShare` never leaves its node except wrapped (core/wrap.ts).
 */
import type { SuiteId } from './suites.js';

/** The public result of DKG / refresh / import, identical at every party. */
export interface PublicKeyPackage {
  readonly suite: SuiteId;
  /** t: how many parties are needed. */
  readonly threshold: number;
  /** n: how many parties hold shares (= the length of `indices` when that is given). */
  readonly parties: number;
  /**
   * The party identifiers (node indices, RFC 9591 identifiers) that hold shares, strictly ascending,
   * each 1..255. Absent means 1..parties: every key dealt before resharing (issue 13), and every key
   * whose committee is exactly that. A reshare may move a key to any committee (e.g. nodes 1,2,4,5),
   * so a share's x-coordinate is always its holder's node index. core/committee.ts reads it.
   */
  readonly indices?: readonly number[];
  /** Incremented by every refresh; shares and packages of different epochs never combine. */
  readonly epoch: number;
  /** Feldman commitments to the shared polynomial, canonical element encodings; [0] is the group key. */
  readonly commitments: readonly Uint8Array[];
  /**
   * share_i · G for every party i, canonical element encodings, in the order of partyIndices(pkg)
   * (core/committee.ts verifyingShareOf): verifyingShares[k] belongs to party partyIndices(pkg)[k].
   */
  readonly verifyingShares: readonly Uint8Array[];
}

/** One party's secret share. Secret: zeroize `value` when done with it. */
export interface SecretShare {
  readonly suite: SuiteId;
  /** The 1-based party index (RFC 9591 identifier). */
  readonly index: number;
  readonly epoch: number;
  /** The share scalar, canonical SerializeScalar encoding. */
  readonly value: Uint8Array;
  /**
   * Threshold ECDSA suites only: this party's DKLs23 pairwise multiplication setups with every other
   * party (core/ecdsa/setup.ts encodePairwiseSetup), made with the key and remade by every refresh.
   * Secret: zeroize it with `value`. Never exported (an importing cluster runs its own setup).
   */
  readonly pairwise?: Uint8Array;
}

/** A party's full key material: the public package plus its own share. */
export interface KeyShare {
  readonly publicKey: PublicKeyPackage;
  readonly secret: SecretShare;
}
