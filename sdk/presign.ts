/**
 * SDK side of one-round signing from presignatures (FROST with preprocessing, RFC 9591 §5.1 done ahead
 * of time; issue 10).
 *
 * A node hands out the commitments of its in-memory nonce pool in batches it signs with its ML-DSA-65
 * identity (core/presign.ts). This module
 * - checks each batch against the identity key the SDK trusts for that node (verifyPresignedBatch),
 * - keeps the verified commitments in a cache per (node, key id, version, epoch) and hands each out
 *   once (PresignCache): a commitment taken for a signature is gone from the cache whatever happens
 *   to that signature, so this SDK never offers one twice (the node refuses a second use anyway),
 * - refills the cache in the background when it runs low, on use only: no timers (Presigner), and
 * - combines the players' signature shares into the signature (combineSignatureShares, RFC 9591 §5.3),
 *   for a Cluster and for operators that run separate SDKs, each fetching its own node's share.
 */
import { fromHex, toHex } from '../core/bytes.js';
import { checkCommittee } from '../core/committee.js';
import { TesseraError } from '../core/errors.js';
import type { SignCommitMsg, SignShareMsg } from '../core/messages.js';
import { verifyPresignBatch } from '../core/presign.js';
import { aggregatePrepared, prepareAggregation, type PreparedAggregation } from '../core/sign.js';
import { getSigningSuite } from '../core/suites.js';
import type { PublicKeyPackage } from '../core/types.js';
import {
  MAX_PRESIGN_BATCH,
  type PresignaturesResponse,
  type PresignedCommitmentJson,
  type PublicKeyPackageJson,
} from '../contract/http.js';
import { bytesOrHex } from './formats.js';
import { TesseraClientError } from './http.js';

/** How a Cluster uses presignatures. */
export interface PresignOptions {
  /** false: never sign from presignatures, always the two-round session path. Default true. */
  enabled?: boolean;
  /**
   * Refill a node's cached commitments for a key in the background when fewer than this many are left
   * after a signature with that key. 0: never refill by itself (only warmPresignatures and signMany
   * fetch). Default 64. Refills run for the keys this Cluster presigns with (warmed or signMany'd),
   * or for every key it signs with when `auto` is set.
   */
  lowWater?: number;
  /**
   * true (the default): any signature with a key starts its background refill, so the first signature
   * takes two rounds and the following ones one. false: a key presigns only once it was warmed
   * (warmPresignatures) or signed with by signMany; a Cluster that does neither always signs in two
   * rounds, through the coordinator (what a one-shot process such as the CLI wants: no fetch it will
   * never use).
   */
  auto?: boolean;
  /**
   * How many commitments one background refill asks each node for (1..MAX_PRESIGN_BATCH). Default 256,
   * the ready entries a node keeps per key (node/presign/pools.ts DEFAULT_PRESIGN_TARGET).
   */
  batch?: number;
}

/** What a Cluster's signing did so far (counters only; the SDK's own bookkeeping, not part of the HTTP contract). */
export interface PresignStats {
  /** Signatures made in one round from presignatures. */
  presigned: number;
  /** Signatures made by the two-round session path (no commitments cached, presigning off, or a fallback). */
  twoRound: number;
  /** Presigned attempts that fell back to the two-round path (a node refused its commitment, a share failed). */
  fallbacks: number;
  /** Verified commitment batches fetched, and the commitments in them. */
  batches: number;
  commitments: number;
  /** Batch fetches that failed or did not verify (a background refill never throws). */
  fetchErrors: number;
}

/** A batch whose identity signature verified: what the cache holds (the response without its tenant and signature). */
export type VerifiedPresignBatch = Omit<PresignaturesResponse, 'tenant' | 'signature'>;

const HEX = /^([0-9a-f]{2})*$/;

/**
 * Check a presignatures answer before anything of it is used: its shape, that it is for the key, node
 * and count asked, and its ML-DSA-65 signature (core/presign.ts presignBatchSignedBytes) under
 * `identityPublicKey`, the node's identity key as this SDK trusts it (the cluster file's, or what the
 * node reported when first asked), never a key the answer names.
 */
export function verifyPresignedBatch(
  r: PresignaturesResponse,
  expect: { keyId: string; node?: number; count: number; version?: number; suite?: string; identityPublicKey: Uint8Array },
): VerifiedPresignBatch {
  const bad = (why: string): never => {
    throw new TesseraClientError('BAD_RESPONSE', `presignature batch of node ${expect.node ?? r?.node ?? '?'} refused: ${why}`, {
      ...(expect.node !== undefined ? { node: expect.node } : {}),
    });
  };
  if (typeof r !== 'object' || r === null) bad('not an object');
  if (r.keyId !== expect.keyId) bad(`it is for key ${String(r.keyId)}`);
  if (!Number.isSafeInteger(r.node) || (expect.node !== undefined && r.node !== expect.node)) bad(`it names node ${String(r.node)}`);
  if (!Number.isSafeInteger(r.version) || r.version < 1 || (expect.version !== undefined && r.version !== expect.version)) bad(`it is for version ${String(r.version)}`);
  if (!Number.isSafeInteger(r.epoch) || r.epoch < 0) bad('bad epoch');
  if (expect.suite !== undefined && r.suite !== expect.suite) bad(`it is for suite ${String(r.suite)}`);
  if (typeof r.poolId !== 'string' || r.poolId.length !== 32 || !HEX.test(r.poolId)) bad('bad pool id');
  if (!Array.isArray(r.commitments) || r.commitments.length === 0 || r.commitments.length > Math.min(expect.count, MAX_PRESIGN_BATCH)) {
    bad(`${Array.isArray(r.commitments) ? r.commitments.length : 'no'} commitments for ${expect.count} asked`);
  }
  const seen = new Set<number>();
  for (const c of r.commitments) {
    if (typeof c !== 'object' || c === null || !Number.isSafeInteger(c.index) || c.index < 0 || seen.has(c.index)) bad('a commitment with a bad or repeated index');
    if (typeof c.hiding !== 'string' || typeof c.binding !== 'string' || !HEX.test(c.hiding) || !HEX.test(c.binding)) bad(`commitment ${c.index} is not hex`);
    seen.add(c.index);
  }
  // The points themselves are decoded where a list is used (every player's checkPresignedList, and
  // combineSignatureShares here): a batch with a bad point only makes its signatures fall back.
  if (!verifyPresignBatch(expect.identityPublicKey, r)) bad("its signature does not verify under the node's identity key");
  return {
    keyId: r.keyId,
    version: r.version,
    epoch: r.epoch,
    suite: r.suite,
    node: r.node,
    poolId: r.poolId.toLowerCase(),
    commitments: r.commitments.map((c) => ({ index: c.index, hiding: c.hiding.toLowerCase(), binding: c.binding.toLowerCase() })),
  };
}

const slot = (node: number, keyId: string, version: number, epoch: number): string => JSON.stringify([node, keyId, version, epoch]);

/**
 * Verified commitments per (node, key id, version, epoch), each handed out once (first in, first out).
 * Commitments of an older version or epoch are never offered for a newer one.
 */
export class PresignCache {
  private readonly slots = new Map<string, PresignedCommitmentJson[]>();

  add(batch: VerifiedPresignBatch): void {
    const k = slot(batch.node, batch.keyId, batch.version, batch.epoch);
    let list = this.slots.get(k);
    if (!list) this.slots.set(k, (list = []));
    for (const c of batch.commitments) list.push({ node: batch.node, poolId: batch.poolId, index: c.index, hiding: c.hiding, binding: c.binding });
  }

  size(node: number, keyId: string, version: number, epoch: number): number {
    return this.slots.get(slot(node, keyId, version, epoch))?.length ?? 0;
  }

  /**
   * Take up to `count` commitment lists, one commitment per player each (sorted by node index), for
   * as many signatures as every player has commitments for. Taken commitments leave the cache.
   */
  take(keyId: string, version: number, epoch: number, players: readonly number[], count: number): PresignedCommitmentJson[][] {
    const sorted = [...players].sort((a, b) => a - b);
    const n = Math.min(count, ...sorted.map((p) => this.size(p, keyId, version, epoch)));
    if (!(n > 0)) return [];
    const taken = sorted.map((p) => this.slots.get(slot(p, keyId, version, epoch))!.splice(0, n));
    return Array.from({ length: n }, (_, k) => taken.map((t) => t[k]!));
  }

  /** Forget every commitment of one node's pool (the node no longer knows it: restarted, or pool invalidated). */
  dropPool(node: number, poolId: string): void {
    for (const [k, list] of this.slots) {
      if (JSON.parse(k)[0] !== node) continue;
      const kept = list.filter((c) => c.poolId !== poolId);
      if (kept.length !== list.length) this.slots.set(k, kept);
    }
  }

  /** Forget every commitment for a key (all nodes, versions and epochs), e.g. after a refresh or rotate. */
  dropKey(keyId: string): void {
    for (const k of [...this.slots.keys()]) if (JSON.parse(k)[1] === keyId) this.slots.delete(k);
  }

  /** Forget the commitments for a key at any (version, epoch) other than the current one of that version. */
  dropStale(keyId: string, version: number, epoch: number): void {
    for (const k of [...this.slots.keys()]) {
      const [, id, v, e] = JSON.parse(k) as [number, string, number, number];
      if (id === keyId && v === version && e !== epoch) this.slots.delete(k);
    }
  }
}

/** Fetch one verified batch of `count` commitments of node `node` for a key version. */
export type FetchPresignatures = (node: number, keyId: string, version: number, count: number) => Promise<VerifiedPresignBatch>;

/**
 * The cache with its refills. A refill is started only by use (a signature, warm, signMany), never by
 * a timer, so nothing keeps the process alive once the caller stops signing; idle() waits for the
 * refills in flight.
 */
export class Presigner {
  readonly cache = new PresignCache();
  readonly enabled: boolean;
  readonly lowWater: number;
  readonly batch: number;
  readonly auto: boolean;
  private readonly inflight = new Map<string, Promise<void>>();
  /** Key ids this Cluster presigns with (warmed or signMany'd): the ones refilled in the background. */
  private readonly active = new Set<string>();

  constructor(
    private readonly fetch: FetchPresignatures,
    private readonly stats: PresignStats,
    o: PresignOptions = {},
  ) {
    this.enabled = o.enabled !== false;
    this.auto = o.auto !== false;
    this.lowWater = Math.max(0, Math.floor(o.lowWater ?? 64));
    this.batch = Math.min(MAX_PRESIGN_BATCH, Math.max(1, Math.floor(o.batch ?? 256)));
    if (!Number.isSafeInteger(this.lowWater) || !Number.isSafeInteger(this.batch)) throw new TesseraClientError('BAD_INPUT', 'presign options: lowWater and batch must be integers');
  }

  /** Fetch `count` commitments of `node` (in batches of at most MAX_PRESIGN_BATCH) into the cache. */
  private async fill(node: number, keyId: string, version: number, count: number): Promise<void> {
    for (let left = count; left > 0; ) {
      const b = await this.fetch(node, keyId, version, Math.min(left, MAX_PRESIGN_BATCH));
      this.cache.add(b);
      this.stats.batches++;
      this.stats.commitments += b.commitments.length;
      left -= b.commitments.length;
    }
  }

  private track(node: number, keyId: string, version: number, count: number): Promise<void> {
    const k = JSON.stringify([node, keyId, version]);
    const running = this.inflight.get(k);
    if (running) return running;
    const p = this.fill(node, keyId, version, count)
      .catch(() => {
        this.stats.fetchErrors++;
      })
      .finally(() => this.inflight.delete(k));
    this.inflight.set(k, p);
    return p;
  }

  /** Start background refills for the players that are low on commitments for this key version. Never throws. */
  refillIfLow(keyId: string, version: number, epoch: number, players: readonly number[]): void {
    if (!this.enabled || this.lowWater === 0 || !(this.auto || this.active.has(keyId))) return;
    for (const p of players) {
      if (this.cache.size(p, keyId, version, epoch) < this.lowWater) void this.track(p, keyId, version, this.batch);
    }
  }

  /**
   * Have at least `count` commitments of every player cached for this key version (fetched now, in
   * parallel). Waits for a refill already in flight first. Fetch failures are counted in the stats,
   * not thrown: whatever is missing afterwards signs by the two-round path.
   */
  async ensure(keyId: string, version: number, epoch: number, players: readonly number[], count: number): Promise<void> {
    this.active.add(keyId);
    await Promise.all(
      players.map(async (p) => {
        const k = JSON.stringify([p, keyId, version]);
        await this.inflight.get(k);
        const missing = count - this.cache.size(p, keyId, version, epoch);
        if (missing > 0) await this.track(p, keyId, version, missing);
      }),
    );
  }

  /** Wait until no refill is in flight (tests, orderly shutdown). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight.values()]);
  }
}

/** One player's signature share: what NodeClient.signShare returns (`node`, `share` and `commitment` are used). */
export interface SignatureShareJson {
  node: number;
  share: string;
  /**
   * Optional: the group commitment R the node reported with its share (SignShareResponse.commitment).
   * With it the combination skips recomputing R; the signature is still verified before it is returned.
   */
  commitment?: string;
}

function toPackage(j: PublicKeyPackageJson | PublicKeyPackage): PublicKeyPackage {
  if (j.commitments.every((c) => c instanceof Uint8Array)) return j as PublicKeyPackage;
  const p = j as PublicKeyPackageJson;
  return {
    suite: getSigningSuite(p.suite).id,
    threshold: p.threshold,
    parties: p.parties,
    // The committee when it is not 1..n (core/committee.ts): checked here, so a bad one is refused up front.
    ...(p.indices !== undefined ? { indices: checkCommittee(p.indices, p.threshold, 'publicPackage.indices') } : {}),
    epoch: p.epoch,
    commitments: p.commitments.map((c, i) => fromHex(c, `commitments[${i}]`)),
    verifyingShares: p.verifyingShares.map((c, i) => fromHex(c, `verifyingShares[${i}]`)),
  };
}

/**
 * Combine the players' signature shares over `message` into the signature (RFC 9591 §5.3), with the
 * commitment list every player was sent, and verify it under the group key before returning it (hex).
 *
 * For operators that run separate SDKs: each gets its own node's share with NodeClient.signShare (over
 * the same message and the same list), and anyone holding the shares, the list and the key's public
 * package combines them here. Shares over different messages or lists do not combine: this throws
 * VERIFICATION_FAILED. A share that does not verify is not evidence against its node (shares are not
 * signed by the node's identity, so anyone relaying them could have changed one): no culprits are named.
 */
export function combineSignatureShares(o: {
  suite: string;
  publicPackage: PublicKeyPackageJson | PublicKeyPackage;
  message: Uint8Array | string;
  commitments: readonly PresignedCommitmentJson[];
  shares: readonly SignatureShareJson[];
}): string {
  return combinePreparedShares(prepareSignatureShares(o), o.shares);
}

/** What prepareSignatureShares computed: the aggregation context of one message and list, or why it failed. */
export interface PreparedSignatureShares {
  readonly prepared?: PreparedAggregation;
  readonly error?: TesseraClientError;
}

/**
 * combineSignatureShares in two steps: everything that does not need the shares (check the package,
 * the list's signer set and the message: core/sign.ts prepareAggregation), done while the players
 * compute their shares; then combinePreparedShares with the shares (with the R the players report, or
 * else R computed from the list). Never throws: an error is kept and thrown by combinePreparedShares,
 * as combineSignatureShares throws it.
 */
export function prepareSignatureShares(o: {
  suite: string;
  publicPackage: PublicKeyPackageJson | PublicKeyPackage;
  message: Uint8Array | string;
  commitments: readonly PresignedCommitmentJson[];
}): PreparedSignatureShares {
  try {
    const suite = getSigningSuite(o.suite);
    const pkg = toPackage(o.publicPackage);
    const message = bytesOrHex(o.message, 'message');
    if (!Array.isArray(o.commitments)) throw new TesseraClientError('BAD_INPUT', 'commitments must be a list');
    const commits = new Map<number, SignCommitMsg>();
    for (const c of o.commitments) {
      if (commits.has(c.node)) throw new TesseraClientError('BAD_INPUT', `two commitments for node ${c.node}`);
      commits.set(c.node, { hiding: fromHex(c.hiding, 'hiding'), binding: fromHex(c.binding, 'binding') });
    }
    return { prepared: prepareAggregation(suite, pkg, commits, message) };
  } catch (e) {
    return { error: combineError(e) };
  }
}

/** The second step of combineSignatureShares: the signature (hex), verified, or the error. */
export function combinePreparedShares(prepared: PreparedSignatureShares, shareList: readonly SignatureShareJson[]): string {
  if (prepared.error !== undefined) throw prepared.error;
  try {
    if (!Array.isArray(shareList)) throw new TesseraClientError('BAD_INPUT', 'shares must be a list');
    const shares = new Map<number, SignShareMsg>();
    for (const s of shareList) {
      if (shares.has(s.node)) throw new TesseraClientError('BAD_INPUT', `two shares from node ${s.node}`);
      shares.set(s.node, {
        share: fromHex(s.share, 'share'),
        ...(s.commitment !== undefined ? { commitment: fromHex(s.commitment, 'commitment') } : {}),
      });
    }
    return toHex(aggregatePrepared(prepared.prepared!, shares));
  } catch (e) {
    throw combineError(e);
  }
}

/** Any failure of combining as the SDK's error: codes of bad input kept, anything else VERIFICATION_FAILED. */
function combineError(e: unknown): TesseraClientError {
  if (e instanceof TesseraClientError) return e;
  if (e instanceof TesseraError) {
    const which = e.culprits.length ? ` (the shares of node(s) ${e.culprits.join(',')} do not verify against this list; not evidence against them)` : '';
    const code = e.code === 'BAD_INPUT' || e.code === 'BAD_PARAMETERS' || e.code === 'UNKNOWN_SUITE' || e.code === 'UNEXPECTED_PARTY' ? e.code : 'VERIFICATION_FAILED';
    return new TesseraClientError(code, `the signature shares do not combine: ${e.message}${which}`);
  }
  return new TesseraClientError('BAD_INPUT', `the signature shares cannot be combined: ${(e as Error).message}`);
}
