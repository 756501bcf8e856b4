/**
 * Burned pairwise setups of threshold ECDSA keys (DKLs23; core/ecdsa/mul.ts: "After any failed check
 * the pairwise setup must be discarded and re-run (a failed KOS check may leak a bit of Δ)").
 *
 * When a signing session fails on a KOS15 check (core/ecdsa/ote.ts kosSenderExtend, this node as
 * Alice) or on F_RVOLE's check (core/ecdsa/mul.ts mulBobFinish, this node as Bob), the peer may have
 * learnt a bit of this node's Δ or of its choice bits by the failure itself (a selective-failure
 * probe). This node then refuses to sign with that key version, at that epoch, together with that peer,
 * until the key is refreshed: a refresh makes new pairwise setups under a new epoch, and the marker,
 * which names the epoch, no longer applies.
 *
 * Markers are kept in the node's store (ShareStore.namespace(ECDSA_BURN_NAMESPACE)), so a restart does
 * not forget them. Key: `<tenant>/<keyId>/<version>/<epoch>/<peer>`; value: the failed session id (hex),
 * for the refusal's message. They hold no secret.
 */
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import type { RecordNamespace, ShareStore } from '../store/storage.js';

/** The store namespace of the burned-setup markers. */
export const ECDSA_BURN_NAMESPACE = 'ecdsa-burn';

/** A key version at one epoch (the epoch names the pairwise setups: every refresh makes new ones). */
export interface BurnScope {
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly epoch: number;
}

function markerKey(s: BurnScope, peer: number): string {
  return `${s.tenant}/${s.keyId}/${s.version}/${s.epoch}/${peer}`;
}

export class BurnedSetups {
  constructor(private readonly records: RecordNamespace) {
    ensure(typeof records?.get === 'function' && typeof records.put === 'function', ErrorCode.BadInput, 'ecdsa burn: records namespace required');
  }

  /** Record that the setups with `peers` of this key version at this epoch failed a check in `session` (hex). Durable before it returns. */
  async burn(scope: BurnScope, peers: readonly number[], session: string): Promise<void> {
    for (const peer of peers) await this.records.put(markerKey(scope, peer), utf8ToBytes(session), { sync: true });
  }

  /** The peers among `players` (this node `self` excluded) whose setup with this node is burned, with the failed session. */
  async burned(scope: BurnScope, players: readonly number[], self: number): Promise<{ peer: number; session: string }[]> {
    const out: { peer: number; session: string }[] = [];
    for (const peer of players) {
      if (peer === self) continue;
      const v = await this.records.get(markerKey(scope, peer));
      if (v) out.push({ peer, session: new TextDecoder().decode(v) });
    }
    return out;
  }

  /** Throw BAD_STATE when the setup with any of `players` is burned (before any session starts). */
  async refuse(scope: BurnScope, players: readonly number[], self: number): Promise<void> {
    const burned = await this.burned(scope, players, self);
    if (burned.length === 0) return;
    const which = burned.map((b) => `the pairwise setup with node ${b.peer} was burned by a failed check in session ${b.session}`).join('; ');
    throw new TesseraError(
      ErrorCode.BadState,
      `key ${scope.keyId} version ${scope.version} (epoch ${scope.epoch}): ${which}; refresh the key (new pairwise setups) before signing with ${burned.length > 1 ? 'these nodes' : 'this node'} again`,
    );
  }
}

const perStore = new WeakMap<ShareStore, BurnedSetups>();

/** The burned-setup markers of a node's store (one instance per store). */
export function burnedSetups(store: ShareStore): BurnedSetups {
  let b = perStore.get(store);
  if (!b) {
    b = new BurnedSetups(store.namespace(ECDSA_BURN_NAMESPACE));
    perStore.set(store, b);
  }
  return b;
}
