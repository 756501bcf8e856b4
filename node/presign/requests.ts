/**
 * One-round signing requests (sign-share, sign-batch): parse and check an item, then sign with the
 * presignatures it names. The order is the whole point (node/presign/pools.ts):
 *   1. parseItem / the pools' check(): everything that can be wrong with a request is found here, and
 *      nothing is consumed;
 *   2. signWithPresignatures: the nonces are deleted from their pool (one synchronous step for the whole
 *      request), then each share is computed (core/sign.ts signRound2 wipes its nonce), then the shares
 *      are returned. A share exists only after its nonce left the pool.
 */
import { fromHex } from '../../core/bytes.js';
import { ErrorCode, ensure } from '../../core/errors.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import { PRESIGN_POOL_ID_LENGTH, checkPresignedList, presignRef, presignedListFromJson, type PresignedEntryJson } from '../../core/presign.js';
import { discardNonces, signRound2 } from '../../core/sign.js';
import type { KeyShare } from '../../core/types.js';
import type { PresignPools, PresignScope, PresignUse } from './pools.js';

/** One checked item: the message, the commitment list as core/sign.ts takes it, and this node's presignature. */
export interface PresignedItem {
  readonly message: Uint8Array;
  readonly commits: Map<number, SignCommitMsg>;
  readonly use: PresignUse;
}

/**
 * The audit reference of an item (core/presign.ts presignRef of this node's entry), read before the
 * item is checked so that even a refused request is audited with it; undefined if the entry is missing
 * or malformed.
 */
export function ownRef(self: number, commitments: readonly PresignedEntryJson[] | undefined): Uint8Array | undefined {
  try {
    const own = Array.isArray(commitments) ? commitments.find((c) => c?.node === self) : undefined;
    return own ? presignRef(fromHex(own.poolId, 'poolId', PRESIGN_POOL_ID_LENGTH), own.index) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Check one item against the key's own record (threshold and parties from the node's store, never
 * from the request): the message is hex, the list passes core/presign.ts checkPresignedList (entries
 * well formed, nodes distinct and holders of the key (its committee), at least the threshold, this node present, every
 * point valid for the suite). Consumes nothing.
 */
export function parseItem(
  pools: PresignPools,
  scope: PresignScope,
  params: { threshold: number; parties: number; indices?: readonly number[] },
  self: number,
  item: { message: string; commitments: readonly PresignedEntryJson[] },
  what: string,
): PresignedItem {
  const message = fromHex(item.message, `${what}message`);
  const list = presignedListFromJson(item.commitments);
  // This node's own entry: its pooled commitment's elements were decoded when made, not again here.
  const mine = list.find((e) => e?.node === self);
  const pooled = mine && mine.poolId instanceof Uint8Array && Number.isSafeInteger(mine.index) ? pools.pooledCommitment(scope, mine.poolId, mine.index) : undefined;
  const commits = checkPresignedList(scope.suite, params, list, self, pooled ? new Map([[self, pooled]]) : undefined);
  ensure(mine !== undefined, ErrorCode.BadParameters, `${what}commitments: this node (${self}) has no entry`);
  return { message, commits, use: { poolId: mine.poolId, index: mine.index, hiding: mine.hiding, binding: mine.binding } };
}

/**
 * Sign every item with its presignature: delete all their nonces from the pools first (all or none,
 * synchronously: PRESIGNATURE_UNAVAILABLE if any is gone), then compute the shares in order
 * (RFC 9591 §5.2). Every nonce taken is wiped whatever happens; on any failure no share is returned.
 */
export function signWithPresignatures(pools: PresignPools, scope: PresignScope, key: KeyShare, items: readonly PresignedItem[]): SignShareMsg[] {
  const nonces = pools.take(
    scope,
    items.map((i) => i.use),
  );
  try {
    return items.map((item, k) => signRound2(scope.suite, key, nonces[k]!, item.commits, item.message));
  } finally {
    for (const n of nonces) discardNonces(n);
  }
}
