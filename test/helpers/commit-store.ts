/**
 * Store-level helpers for tests that need a committed refresh without running a session: stage the
 * new epoch as node/sessions/commit.ts does, then commit it with a placeholder certificate (the store
 * keeps certificates as opaque bytes; the session engine is what verifies them).
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { resultDigest } from '../../core/commit.js';
import type { KeyShare } from '../../core/types.js';
import type { KeyRecord, ShareStore } from '../../node/store/storage.js';

export const PLACEHOLDER_CERTIFICATE = Uint8Array.of(0xce, 0x57);
export const PLACEHOLDER_VOTE = Uint8Array.of(0x70, 0x7e);

/** Stage `share` as the next epoch of a version (a refresh's staged result); returns the session id. */
export async function stageEpoch(store: ShareStore, tenant: string, keyId: string, version: number, share: KeyShare): Promise<Uint8Array> {
  const session = randomBytes(16);
  await store.stageChange(tenant, keyId, { session, operation: 'refresh', version, resultDigest: resultDigest({ kind: 'epoch', package: share.publicKey }), vote: PLACEHOLDER_VOTE }, [
    { kind: 'new-epoch', version, share },
  ]);
  return session;
}

/** Stage and commit the next epoch of a version. */
export async function commitEpoch(store: ShareStore, tenant: string, keyId: string, version: number, share: KeyShare): Promise<KeyRecord> {
  const session = await stageEpoch(store, tenant, keyId, version, share);
  const [rec] = await store.commitStaged(tenant, keyId, session, PLACEHOLDER_CERTIFICATE);
  return rec!;
}
