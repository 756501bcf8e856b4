/**
 * Threshold ECDSA presignature pools (DKLs23, ePrint 2023/765 Protocol 3.6): the node's side of the
 * one-round online path (issue 12, "Presigning").
 *
 * DKLs23's rounds 1–2 and the message-free part of round 3 need every signer, so a presignature is made
 * in a node session among a fixed signer set (node/sessions/protocols.ts runEcdsaPresign) and belongs to
 * that set: a pool is per (tenant, key id, version, epoch, sorted signers). The rules are those of the
 * FROST pools (node/presign/pools.ts), for the same reasons:
 *
 *  - ONLY IN MEMORY. Presignatures (φ_i, u_i, v_i: secret; one signature each) are never written to disk,
 *    so a restart or a restored data-directory backup can never revive one: the restarted node knows
 *    none of the ids the SDK holds and refuses them (PRESIGNATURE_UNAVAILABLE), and the SDK signs in a
 *    two-round session instead. Two signatures under one R reveal the key; two w_i under one φ_i reveal
 *    φ_i: each entry must sign at most once, ever.
 *  - Each id names one entry, the same at every signer (core/ecdsa/session.ts ecdsaPresignatureIds).
 *  - A SHARE IS RELEASED ONLY AFTER ITS ENTRY IS DELETED: the online request is checked completely first
 *    (check(): consumes nothing), then take() deletes the entry from the pool in one synchronous step
 *    (a concurrent second request for the same id finds nothing), and only then is (u_i, w_i) computed
 *    (core/ecdsa/session.ts ecdsaRound3 wipes the presignature) and answered.
 *  - INVALIDATION: any change of a key's records (ShareStore onKeyChange: every commit of every session,
 *    refresh, rotate, lifecycle changes, repair) drops every pool of that key and wipes it; so does a
 *    presigning session that finishes after such a change began (the key's generation moved on).
 *  - Memory is CAPPED: at most `maxPerPool` entries per pool and `maxTotal` over all pools (defaults
 *    1024 and 8192; an entry holds three 32-byte secrets and its public R, a few hundred bytes with the
 *    shared per-session state). Adding beyond a cap drops the oldest entries (this pool's first, then
 *    the least recently used pools'), wiped; their ids are then refused, and the SDK falls back.
 */
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import { discardSignState, type Presignature } from '../../core/ecdsa/dkls23.js';
import { toHex } from '../../core/bytes.js';
import { wipeProbe, type WipeProbe } from '../../core/wipe.js';

export const DEFAULT_ECDSA_PRESIGN_MAX_PER_POOL = 1024;
export const DEFAULT_ECDSA_PRESIGN_MAX_TOTAL = 8192;

/** Which key version, epoch and signer set a pool (or a request) is about. */
export interface EcdsaPresignScope {
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly epoch: number;
  /** The signers, sorted ascending. */
  readonly players: readonly number[];
}

/** Counters, for logs and tests: never anything secret. */
export interface EcdsaPresignStats {
  pools: number;
  entries: number;
  made: number;
  used: number;
  dropped: number;
}

interface Pool {
  readonly key: string;
  readonly scope: EcdsaPresignScope;
  /** id (hex) -> presignature; Map order: oldest first. */
  readonly entries: Map<string, Presignature>;
  lastUsed: number;
}

const poolKey = (s: EcdsaPresignScope) => JSON.stringify([s.tenant, s.keyId, s.version, s.epoch, s.players]);
const keyOfKey = (tenant: string, keyId: string) => JSON.stringify([tenant, keyId]);

function unavailable(message: string): TesseraError {
  return new TesseraError(ErrorCode.PresignatureUnavailable, message);
}

export class EcdsaPresignPools {
  private readonly pools = new Map<string, Pool>();
  /** id (hex) -> its pool: ids are unique over all pools (derived from a fresh session and run id). */
  private readonly byId = new Map<string, Pool>();
  /** Per (tenant, key id): bumped by every invalidation, so that a presigning run that began before a change adds nothing. */
  private readonly generations = new Map<string, number>();
  private total = 0;
  private closed = false;
  private readonly counters = { made: 0, used: 0, dropped: 0 };
  readonly maxPerPool: number;
  readonly maxTotal: number;
  private readonly node: number;

  constructor(o: { node: number; maxPerPool?: number; maxTotal?: number }) {
    this.node = o.node;
    this.maxPerPool = o.maxPerPool ?? DEFAULT_ECDSA_PRESIGN_MAX_PER_POOL;
    this.maxTotal = o.maxTotal ?? DEFAULT_ECDSA_PRESIGN_MAX_TOTAL;
    ensure(Number.isSafeInteger(this.maxPerPool) && this.maxPerPool >= 1, ErrorCode.BadInput, 'ecdsa presign: maxPerPool must be a positive integer');
    ensure(Number.isSafeInteger(this.maxTotal) && this.maxTotal >= this.maxPerPool, ErrorCode.BadInput, 'ecdsa presign: maxTotal must be at least maxPerPool');
  }

  stats(): EcdsaPresignStats {
    return { pools: this.pools.size, entries: this.total, ...this.counters };
  }

  /** The key's generation now: pass it to add() for presignatures whose making starts now. */
  generation(tenant: string, keyId: string): number {
    return this.generations.get(keyOfKey(tenant, keyId)) ?? 0;
  }

  /**
   * Keep freshly made presignatures under their ids. If the key changed since `generation` was read,
   * or the node is closing, they are wiped and PRESIGNATURE_UNAVAILABLE is thrown. Caps: the oldest
   * entries make room (wiped). Takes ownership of every presignature given, whatever happens.
   */
  add(scope: EcdsaPresignScope, generation: number, made: readonly { id: Uint8Array; presig: Presignature }[]): void {
    try {
      ensure(!this.closed, ErrorCode.Unavailable, 'ecdsa presign: the node is shutting down');
      if (this.generation(scope.tenant, scope.keyId) !== generation) {
        throw unavailable(`key ${scope.keyId} changed while its presignatures were being made; ask again`);
      }
      ensure(made.length <= this.maxPerPool, ErrorCode.BadInput, `ecdsa presign: at most ${this.maxPerPool} presignatures per signer set`);
      for (const m of made) ensure(!this.byId.has(toHex(m.id)), ErrorCode.BadState, 'ecdsa presign: a presignature id is already in use');
    } catch (e) {
      for (const m of made) discardSignState(m.presig);
      throw e;
    }
    const key = poolKey(scope);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = { key, scope: { ...scope, players: [...scope.players] }, entries: new Map(), lastUsed: Date.now() };
      this.pools.set(key, pool);
    }
    pool.lastUsed = Date.now();
    this.makeRoom(pool, made.length);
    for (const m of made) {
      const id = toHex(m.id);
      pool.entries.set(id, m.presig);
      this.byId.set(id, pool);
    }
    this.total += made.length;
    this.counters.made += made.length;
  }

  /**
   * Check, consuming nothing, that `id` names a live entry of exactly `scope` (key, version, epoch and
   * signer set). PRESIGNATURE_UNAVAILABLE otherwise: unknown (a restarted node, a changed key, used,
   * evicted), or another key's, version's, epoch's or signer set's.
   */
  check(scope: EcdsaPresignScope, id: Uint8Array): void {
    this.resolve(scope, id);
  }

  /**
   * check(), then delete the entry from its pool in the same synchronous step and return it: a
   * concurrent request for the same id finds nothing. The caller signs with it once (ecdsaRound3 wipes
   * it) or discards it.
   */
  take(scope: EcdsaPresignScope, id: Uint8Array): Presignature {
    const { pool, idHex, presig } = this.resolve(scope, id);
    pool.entries.delete(idHex);
    this.byId.delete(idHex);
    this.total -= 1;
    this.counters.used += 1;
    pool.lastUsed = Date.now();
    if (pool.entries.size === 0) this.pools.delete(pool.key);
    return presig;
  }

  /** How many entries the pool of `scope` holds (tests, logs). */
  size(scope: EcdsaPresignScope): number {
    return this.pools.get(poolKey(scope))?.entries.size ?? 0;
  }

  /** A probe (core/wipe.ts) over the secret bytes every pool of a key holds now: for the wipe tests. Never the bytes. */
  wipeProbe(tenant: string, keyId: string): WipeProbe {
    const arrays: Uint8Array[] = [];
    for (const pool of this.pools.values()) {
      if (pool.scope.tenant !== tenant || pool.scope.keyId !== keyId) continue;
      for (const p of pool.entries.values()) arrays.push(p.phi, p.u, p.v);
    }
    return wipeProbe(arrays);
  }

  /** Drop every pool of a key (all versions, epochs and signer sets), wiped: the key's records changed. */
  invalidate(tenant: string, keyId: string): void {
    const k = keyOfKey(tenant, keyId);
    this.generations.set(k, (this.generations.get(k) ?? 0) + 1);
    for (const pool of [...this.pools.values()]) {
      if (pool.scope.tenant === tenant && pool.scope.keyId === keyId) this.drop(pool);
    }
  }

  /** Wipe everything (node shutdown). */
  close(): void {
    this.closed = true;
    for (const pool of [...this.pools.values()]) this.drop(pool);
  }

  // -------------------------------------------------------------------------------------------

  private resolve(scope: EcdsaPresignScope, id: Uint8Array): { pool: Pool; idHex: string; presig: Presignature } {
    ensure(!this.closed, ErrorCode.Unavailable, 'ecdsa presign: the node is shutting down');
    const idHex = toHex(id);
    const pool = this.byId.get(idHex);
    const presig = pool?.entries.get(idHex);
    if (!pool || !presig) throw unavailable(`presignature ${idHex} is not held by node ${this.node} (used, never made here, or dropped by a restart or a change of the key)`);
    const s = pool.scope;
    if (s.tenant !== scope.tenant || s.keyId !== scope.keyId || s.version !== scope.version) {
      throw unavailable(`presignature ${idHex} of node ${this.node} is not for key ${scope.keyId} version ${scope.version}`);
    }
    if (s.epoch !== scope.epoch) throw unavailable(`presignature ${idHex} of node ${this.node} is for epoch ${s.epoch}, not ${scope.epoch}`);
    if (s.players.length !== scope.players.length || s.players.some((p, k) => p !== scope.players[k])) {
      throw unavailable(`presignature ${idHex} of node ${this.node} was made by signers ${s.players.join(',')}, not ${scope.players.join(',')}`);
    }
    return { pool, idHex, presig };
  }

  private drop(pool: Pool): void {
    for (const [id, p] of pool.entries) {
      discardSignState(p);
      this.byId.delete(id);
    }
    this.total -= pool.entries.size;
    this.counters.dropped += pool.entries.size;
    pool.entries.clear();
    this.pools.delete(pool.key);
  }

  /** Make room for `need` more entries in `pool` by dropping the oldest ones (wiped): this pool's first, then the least recently used pools'. */
  private makeRoom(pool: Pool, need: number): void {
    const dropOldest = (p: Pool, n: number): number => {
      let k = 0;
      for (const [id, presig] of p.entries) {
        if (k >= n) break;
        p.entries.delete(id);
        this.byId.delete(id);
        discardSignState(presig);
        k++;
      }
      this.total -= k;
      this.counters.dropped += k;
      if (p !== pool && p.entries.size === 0) this.pools.delete(p.key);
      return k;
    };
    const over = pool.entries.size + need - this.maxPerPool;
    if (over > 0) dropOldest(pool, over);
    let overall = this.total + need - this.maxTotal;
    if (overall <= 0) return;
    const others = [...this.pools.values()].filter((p) => p !== pool).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const p of others) if (overall > 0) overall -= dropOldest(p, overall);
    if (overall > 0) dropOldest(pool, overall);
  }
}
