/**
 * Presignature pools: FROST with preprocessing (RFC 9591 §5.1 done ahead of time), the node's side.
 *
 * Design (issue 10, item 3) — why a nonce can never be used twice, across crashes, restarts and
 * restores of a data-directory backup:
 *
 *  - Pools live ONLY IN MEMORY, one per (tenant, key id, version, epoch), under a random 16-byte pool
 *    id drawn when the pool is made. Nothing about nonces (not the nonces, not the commitments, not the
 *    pool ids, not which entries were used) is ever written to disk. A pool dies with the process, so
 *    a restart, or a restore of a data-directory backup, can never revive a nonce: the restored node
 *    does not know the old pool ids and refuses every entry of them (PRESIGNATURE_UNAVAILABLE), and
 *    its new pools have new ids and new random nonces. (Builder Vault documents that restoring a
 *    backup revives used presignatures; keeping them out of the backup removes the hazard.)
 *  - Each commitment is HANDED OUT ONCE: POST /v1/keys/:keyId/presignatures moves `count` ready
 *    entries to "issued" and returns their commitments in a batch signed with the node's ML-DSA-65
 *    identity (core/presign.ts). Only an issued entry can sign; an unknown, never-issued or used
 *    (pool id, index) is refused with PRESIGNATURE_UNAVAILABLE (HTTP 409), and the SDK falls back to
 *    the two-round session path.
 *  - A SHARE IS RELEASED ONLY AFTER ITS NONCE IS DELETED: sign-share validates everything first (the
 *    gate's policy and key checks, version and epoch, the commitment list: core/presign.ts
 *    checkPresignedList, and that its own entry equals the issued entry byte for byte: check()), then
 *    removes the nonce from the pool with a synchronous Map delete (take(): a concurrent second
 *    request with the same entry finds nothing), then computes the share with core/sign.ts signRound2,
 *    which wipes the nonce, and only then answers. Invalid input never consumes a nonce.
 *  - Pools REFILL IN THE BACKGROUND, in chunks of at most CHUNK_MS of synchronous work between
 *    setImmediate yields (the event loop never blocks for long), up to `target` ready entries per
 *    key once that key has been asked for presignatures.
 *  - Memory is CAPPED: at most `maxPerKey` entries (ready + issued) per pool and `maxTotal` over all
 *    pools (defaults 4096 and 32768; an entry holds two 32-byte nonces and their two commitments,
 *    well under 1 KiB with object overhead, so the defaults stay under about 32 MiB). When a request
 *    needs room, the oldest issued-but-unused entries are dropped first (this pool's, then the least
 *    recently used pools'), then other pools' ready entries; failing that, PRESIGNATURE_UNAVAILABLE.
 *  - INVALIDATION: any write under a key's record lock in the ShareStore (node/store/storage.ts
 *    onKeyChange: every commit of every session — refresh, rotate, every state change, repair — and
 *    every other change of a key's records goes through it, so no operation can forget) drops every
 *    pool of that key, all versions, and wipes their nonces. A pool is also dropped when a request
 *    shows the key's epoch moved on.
 *
 * The node never needs the other signers' batch signatures (RFC 9591 §5.2): a signer checks that its
 * own commitment is in the list and that the list is well formed; the binding factors (§4.4) bind
 * every share to the whole list and the message, so shares over different lists or messages never
 * aggregate (§5.3). Every operator still approves every signature: a node answers only its own
 * operator's API keys, and its policy engine decides 'sign' for every message, as on the two-round
 * path (node/governance/gate.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { equalBytes, toHex, zeroize } from '../../core/bytes.js';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import type { IdentityKeyPair } from '../../core/identity.js';
import type { SignCommitMsg } from '../../core/messages.js';
import { PRESIGN_POOL_ID_LENGTH, signPresignBatch, type PresignCommitment } from '../../core/presign.js';
import { discardNonces, signRound1, type SigningNonces } from '../../core/sign.js';
import { wipeProbe, type WipeProbe } from '../../core/wipe.js';
import type { SigningSuite, SigningSuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';

/** Default ready entries a pool is refilled to, once its key was asked for presignatures. */
export const DEFAULT_PRESIGN_TARGET = 256;
/** Default cap on one pool's entries (ready + issued). At least MAX_PRESIGN_BATCH (contract/http.ts). */
export const DEFAULT_PRESIGN_MAX_PER_KEY = 4096;
/** Default cap on all pools' entries together. */
export const DEFAULT_PRESIGN_MAX_TOTAL = 32768;
/** At most this much synchronous nonce generation between two yields to the event loop. */
const CHUNK_MS = 4;

/** Which key version (and epoch) a pool or a request is about. */
export interface PresignScope {
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly epoch: number;
  readonly suite: SigningSuite;
}

/** One presignature a request wants to use: this node's entry of its commitment list. */
export interface PresignUse {
  readonly poolId: Uint8Array;
  readonly index: number;
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
}

/** What issue() returns: the batch and the node's signature over it (core/presign.ts presignBatchSignedBytes). */
export interface IssuedBatch {
  readonly poolId: Uint8Array;
  readonly commitments: PresignCommitment[];
  readonly signature: Uint8Array;
}

export interface PresignPoolsOptions {
  /** This node's index (bound in every batch signature). */
  readonly node: number;
  /** The node's identity: its secret key signs every batch. Used, not copied. */
  readonly identity: IdentityKeyPair;
  /**
   * The committed share of a key version (ShareStore.getShare); the pools zeroize it when done. Its
   * epoch must be the pool's, or the pool is dropped.
   */
  readonly loadShare: (tenant: string, keyId: string, version: number) => Promise<KeyShare | undefined>;
  readonly logger: Logger;
  /** Ready entries kept per asked key (default DEFAULT_PRESIGN_TARGET; 0: no background refill). */
  readonly target?: number;
  /** Entries (ready + issued) per pool (default DEFAULT_PRESIGN_MAX_PER_KEY). */
  readonly maxPerKey?: number;
  /** Entries over all pools (default DEFAULT_PRESIGN_MAX_TOTAL). */
  readonly maxTotal?: number;
}

/** Counters, for logs, tests and benchmarks: never anything secret. */
export interface PresignStats {
  pools: number;
  ready: number;
  issued: number;
  /** Entries made since start. */
  made: number;
  /** Entries used to sign since start. */
  used: number;
  /** Entries dropped unused (invalidation, eviction, close) since start. */
  dropped: number;
}

class Pool {
  readonly id = Uint8Array.from(randomBytes(PRESIGN_POOL_ID_LENGTH));
  readonly idHex = toHex(this.id);
  /** Made, not handed out yet (Map order: oldest first). */
  readonly ready = new Map<number, SigningNonces>();
  /** Handed out in a batch, not used yet (Map order: oldest first). */
  readonly issued = new Map<number, SigningNonces>();
  nextIndex = 0;
  dead = false;
  /** Ready entries the current fill aims at. */
  goal = 0;
  filling: Promise<void> | undefined;
  lastUsed = Date.now();
  constructor(
    readonly scope: PresignScope,
    readonly key: string,
  ) {}
  get size(): number {
    return this.ready.size + this.issued.size;
  }
}

const keyOf = (tenant: string, keyId: string, version: number) => `${tenant}/${keyId}/${version}`;
const prefixOf = (tenant: string, keyId: string) => `${tenant}/${keyId}/`;
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

function unavailable(message: string): TesseraError {
  return new TesseraError(ErrorCode.PresignatureUnavailable, message);
}

export class PresignPools {
  private readonly byKey = new Map<string, Pool>();
  private readonly byId = new Map<string, Pool>();
  private closed = false;
  private total = 0;
  private readonly counters = { made: 0, used: 0, dropped: 0 };
  readonly target: number;
  readonly maxPerKey: number;
  readonly maxTotal: number;

  constructor(private readonly o: PresignPoolsOptions) {
    this.target = o.target ?? DEFAULT_PRESIGN_TARGET;
    this.maxPerKey = o.maxPerKey ?? DEFAULT_PRESIGN_MAX_PER_KEY;
    this.maxTotal = o.maxTotal ?? DEFAULT_PRESIGN_MAX_TOTAL;
    ensure(Number.isSafeInteger(this.target) && this.target >= 0, ErrorCode.BadInput, 'presign: target must be a non-negative integer');
    ensure(Number.isSafeInteger(this.maxPerKey) && this.maxPerKey >= 1, ErrorCode.BadInput, 'presign: maxPerKey must be a positive integer');
    ensure(Number.isSafeInteger(this.maxTotal) && this.maxTotal >= this.maxPerKey, ErrorCode.BadInput, 'presign: maxTotal must be at least maxPerKey');
  }

  stats(): PresignStats {
    let ready = 0;
    let issued = 0;
    for (const p of this.byId.values()) {
      ready += p.ready.size;
      issued += p.issued.size;
    }
    return { pools: this.byId.size, ready, issued, ...this.counters };
  }

  /**
   * Hand out `count` commitments of the pool of `scope` (made now if the pool has too few ready),
   * each exactly once, in a batch signed with the node's identity. The pool then refills in the
   * background. PRESIGNATURE_UNAVAILABLE if the caps leave no room or the key changed meanwhile.
   */
  async issue(scope: PresignScope, count: number): Promise<IssuedBatch> {
    ensure(Number.isSafeInteger(count) && count >= 1, ErrorCode.BadInput, 'presign: count must be a positive integer');
    ensure(!this.closed, ErrorCode.Unavailable, 'presign: the node is shutting down');
    if (count > this.maxPerKey) throw unavailable(`at most ${this.maxPerKey} presignatures per key on node ${this.o.node}`);
    const pool = this.poolFor(scope);
    pool.lastUsed = Date.now();
    for (let attempt = 0; pool.ready.size < count; attempt++) {
      if (attempt >= 4) throw unavailable(`node ${this.o.node} cannot make ${count} presignatures for key ${scope.keyId} now (its presignature memory is full)`);
      // Room for what is missing: this pool's oldest unused handed-out entries go first, then others'.
      this.makeRoom(pool, count - pool.ready.size);
      pool.goal = Math.max(pool.goal, count);
      await this.fill(pool);
      if (pool.dead) throw unavailable(`key ${scope.keyId} version ${scope.version} changed while its presignatures were being made; ask again`);
    }
    const commitments: PresignCommitment[] = [];
    for (const [index, nonces] of pool.ready) {
      if (commitments.length === count) break;
      pool.ready.delete(index);
      pool.issued.set(index, nonces);
      commitments.push({ index, hiding: Uint8Array.from(nonces.commit.hiding), binding: Uint8Array.from(nonces.commit.binding) });
    }
    const { tenant, keyId, version, epoch, suite } = scope;
    const signature = signPresignBatch(this.o.identity.secretKey, {
      suite: suite.id as SigningSuiteId,
      node: this.o.node,
      tenant,
      keyId,
      version,
      epoch,
      poolId: pool.id,
      commitments,
    });
    // Refill to the target in the background (and keep the pool's cap: issued entries count too).
    pool.goal = this.target;
    if (this.target > 0) void this.fill(pool).catch(() => undefined);
    return { poolId: Uint8Array.from(pool.id), commitments, signature };
  }

  /**
   * Check, without consuming anything, that every use names an issued, unused entry of a live pool of
   * `scope` and carries exactly that entry's commitments. PRESIGNATURE_UNAVAILABLE for an unknown pool
   * (restarted node, changed key), another key's or epoch's pool, or an entry never issued or used;
   * BAD_INPUT for commitments that differ from the entry's or an entry named twice.
   */
  check(scope: PresignScope, uses: readonly PresignUse[]): void {
    this.resolve(scope, uses);
  }

  /**
   * The commitment this node made for a presignature it handed out (its elements decoded when they
   * were made), or undefined if the pool does not hold it. Consumes nothing and checks nothing else:
   * check() and take() decide whether the request may use it.
   */
  pooledCommitment(scope: PresignScope, poolId: Uint8Array, index: number): SignCommitMsg | undefined {
    const pool = this.byId.get(toHex(poolId));
    if (!pool || pool.dead || pool.scope.suite.id !== scope.suite.id) return undefined;
    return pool.issued.get(index)?.commit;
  }

  /**
   * check(), then delete every named nonce from its pool, all in one synchronous step (all or none):
   * a concurrent request naming one of them finds it gone. The caller signs with the returned nonces
   * (core/sign.ts signRound2 wipes them) and must discardNonces() any it does not use.
   */
  take(scope: PresignScope, uses: readonly PresignUse[]): SigningNonces[] {
    const found = this.resolve(scope, uses);
    for (const { pool, index } of found) {
      pool.issued.delete(index);
      this.total -= 1;
      pool.lastUsed = Date.now();
    }
    this.counters.used += found.length;
    return found.map((f) => f.nonces);
  }

  /**
   * A probe (core/wipe.ts) over the nonce bytes every pool of a key holds now: how many arrays, and
   * whether they are all zeros later. Never the bytes. For the wipe tests.
   */
  wipeProbe(tenant: string, keyId: string): WipeProbe {
    const prefix = prefixOf(tenant, keyId);
    const arrays: Uint8Array[] = [];
    for (const [k, pool] of this.byKey) {
      if (!k.startsWith(prefix)) continue;
      for (const n of [...pool.ready.values(), ...pool.issued.values()]) arrays.push(n.hiding, n.binding);
    }
    return wipeProbe(arrays);
  }

  /** Drop every pool of a key (all versions) and wipe their nonces: the key's record changed. */
  invalidate(tenant: string, keyId: string): void {
    const prefix = prefixOf(tenant, keyId);
    for (const [k, pool] of this.byKey) if (k.startsWith(prefix)) this.drop(pool);
  }

  /** Stop refilling and wipe every nonce (node shutdown). */
  close(): void {
    this.closed = true;
    for (const pool of [...this.byId.values()]) this.drop(pool);
  }

  // -------------------------------------------------------------------------------------------

  private resolve(scope: PresignScope, uses: readonly PresignUse[]): { pool: Pool; index: number; nonces: SigningNonces }[] {
    ensure(!this.closed, ErrorCode.Unavailable, 'presign: the node is shutting down');
    const seen = new Set<string>();
    const out: { pool: Pool; index: number; nonces: SigningNonces }[] = [];
    for (const u of uses) {
      const idHex = toHex(u.poolId);
      const ref = `${idHex}:${u.index}`;
      ensure(!seen.has(ref), ErrorCode.BadInput, `presignature ${u.index} of pool ${idHex} is named twice`);
      seen.add(ref);
      const pool = this.byId.get(idHex);
      if (!pool || pool.dead) {
        throw unavailable(`node ${this.o.node} has no presignature pool ${idHex} (it restarted, or the key changed since the batch was issued)`);
      }
      const s = pool.scope;
      if (s.tenant !== scope.tenant || s.keyId !== scope.keyId || s.version !== scope.version) {
        throw unavailable(`presignature pool ${idHex} of node ${this.o.node} is not for key ${scope.keyId} version ${scope.version}`);
      }
      if (s.epoch !== scope.epoch) {
        throw unavailable(`presignature pool ${idHex} of node ${this.o.node} is for epoch ${s.epoch}, not ${scope.epoch}`);
      }
      const nonces = pool.issued.get(u.index);
      if (!nonces) throw unavailable(`presignature ${u.index} of pool ${idHex} on node ${this.o.node} was already used or never handed out`);
      const same = u.hiding instanceof Uint8Array && u.binding instanceof Uint8Array && equalBytes(u.hiding, nonces.commit.hiding) && equalBytes(u.binding, nonces.commit.binding);
      ensure(same, ErrorCode.BadInput, `the commitment list's entry for node ${this.o.node} does not match its presignature ${u.index} of pool ${idHex}`);
      out.push({ pool, index: u.index, nonces });
    }
    return out;
  }

  private poolFor(scope: PresignScope): Pool {
    const key = keyOf(scope.tenant, scope.keyId, scope.version);
    const existing = this.byKey.get(key);
    if (existing && existing.scope.epoch === scope.epoch && existing.scope.suite.id === scope.suite.id) return existing;
    if (existing) this.drop(existing); // the key moved on (a refresh this pool missed)
    const pool = new Pool(scope, key);
    this.byKey.set(key, pool);
    this.byId.set(pool.idHex, pool);
    return pool;
  }

  private drop(pool: Pool): void {
    if (pool.dead) return;
    pool.dead = true;
    for (const n of pool.ready.values()) discardNonces(n);
    for (const n of pool.issued.values()) discardNonces(n);
    const n = pool.size;
    this.total -= n;
    this.counters.dropped += n;
    pool.ready.clear();
    pool.issued.clear();
    if (this.byKey.get(pool.key) === pool) this.byKey.delete(pool.key);
    this.byId.delete(pool.idHex);
  }

  /** Make room for `need` more entries in `pool` (per-key and total caps) by dropping unused ones. */
  private makeRoom(pool: Pool, need: number): void {
    const dropOldest = (p: Pool, from: Map<number, SigningNonces>, n: number): number => {
      let k = 0;
      for (const [i, nonces] of from) {
        if (k >= n) break;
        from.delete(i);
        discardNonces(nonces);
        k++;
      }
      this.total -= k;
      this.counters.dropped += k;
      return k;
    };
    let over = pool.size + need - this.maxPerKey;
    if (over > 0) over -= dropOldest(pool, pool.issued, over);
    let overall = this.total + need - this.maxTotal;
    if (overall <= 0) return;
    const others = [...this.byId.values()].filter((p) => p !== pool).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const p of others) if (overall > 0) overall -= dropOldest(p, p.issued, overall);
    for (const p of others) if (overall > 0) overall -= dropOldest(p, p.ready, overall);
    if (overall > 0) overall -= dropOldest(pool, pool.issued, overall);
  }

  /** Make entries until the pool has `goal` ready, within the caps; one fill per pool at a time. */
  private fill(pool: Pool): Promise<void> {
    pool.filling ??= this.runFill(pool).finally(() => {
      pool.filling = undefined;
    });
    return pool.filling;
  }

  private async runFill(pool: Pool): Promise<void> {
    const { tenant, keyId, version, epoch, suite } = pool.scope;
    const wanted = () => !this.closed && !pool.dead && pool.ready.size < pool.goal && pool.size < this.maxPerKey && this.total < this.maxTotal;
    if (!wanted()) return;
    let key: KeyShare | undefined;
    try {
      key = await this.o.loadShare(tenant, keyId, version);
      if (!key || key.secret.epoch !== epoch || key.publicKey.epoch !== epoch) {
        // The committed share is not this pool's any more: the pool is stale.
        this.drop(pool);
        return;
      }
      while (wanted()) {
        const until = performance.now() + CHUNK_MS;
        do {
          const { nonces } = signRound1(suite, key.secret);
          const index = pool.nextIndex++;
          pool.ready.set(index, nonces);
          this.total += 1;
          this.counters.made += 1;
        } while (wanted() && performance.now() < until);
        if (wanted()) await yieldToLoop();
      }
    } catch (e) {
      this.o.logger.warn({ keyId, version, err: { message: (e as Error).message } }, 'presignature refill stopped');
    } finally {
      if (key) zeroize(key.secret.value);
      // Nonces made for a pool that died meanwhile are wiped by drop(); none can be left behind.
      if (pool.dead) for (const n of pool.ready.values()) discardNonces(n);
    }
  }
}
