/**
 * Threshold ECDSA presignatures, the SDK's side (issue 12, "Presigning"; the node's side is
 * node/presign/ecdsa-pools.ts).
 *
 * A DKLs23 presignature (ePrint 2023/765 Protocol 3.6, rounds 1-2 and the message-free part of round 3)
 * is made in a session among a fixed signer set, so this cache is per (key id, version, epoch, sorted
 * signers), apart from the FROST cache of sdk/presign.ts and small. It holds only public values: each
 * presignature's id (the same at every signer) and R. An entry is taken out of the cache before it is
 * used and never put back: whatever happens to the request, the id is not offered twice by this SDK
 * (and the nodes refuse a second use anyway).
 *
 * Combining: s = Σ w_i / Σ u_i over every signer's answer, low-s, verified under the group key
 * (core/ecdsa/dkls23.ts combineShares, the same arithmetic the signers use in the two-round session).
 * Anything wrong (a refusal, answers that do not combine or verify) makes Cluster.sign fall back to the
 * two-round session: a wrong signature is never returned.
 */
import type { EcdsaPresignatureJson, EcdsaPresignaturesResponse, EcdsaSignShareResponse } from '../contract/http.js';
import { fromHex, toHex } from '../core/bytes.js';
import { combineShares } from '../core/ecdsa/dkls23.js';
import { isTesseraError } from '../core/errors.js';
import { getEcdsaSuite } from '../core/suites.js';
import { TesseraClientError } from './http.js';

/** Default most presignatures cached per (key version, epoch, signer set): the nodes' per-pool cap (node/presign/ecdsa-pools.ts). */
export const DEFAULT_ECDSA_PRESIGN_CACHE = 1024;

const scopeOf = (keyId: string, version: number, epoch: number, players: readonly number[]) =>
  JSON.stringify([keyId, version, epoch, [...players].sort((a, b) => a - b)]);

/** Cached ECDSA presignatures (public ids and R only). */
export class EcdsaPresignCache {
  private readonly byScope = new Map<string, EcdsaPresignatureJson[]>();
  constructor(readonly maxPerScope = DEFAULT_ECDSA_PRESIGN_CACHE) {}

  add(keyId: string, version: number, epoch: number, players: readonly number[], entries: readonly EcdsaPresignatureJson[]): void {
    const k = scopeOf(keyId, version, epoch, players);
    const list = [...(this.byScope.get(k) ?? []), ...entries];
    // Over the cap: the oldest go (the nodes drop unused ones under their own caps too).
    this.byScope.set(k, list.slice(Math.max(0, list.length - this.maxPerScope)));
  }

  /** Take one presignature out of the cache (it is never offered again), or undefined. */
  take(keyId: string, version: number, epoch: number, players: readonly number[]): EcdsaPresignatureJson | undefined {
    const k = scopeOf(keyId, version, epoch, players);
    const list = this.byScope.get(k);
    const e = list?.shift();
    if (list && list.length === 0) this.byScope.delete(k);
    return e;
  }

  size(keyId: string, version: number, epoch: number, players: readonly number[]): number {
    return this.byScope.get(scopeOf(keyId, version, epoch, players))?.length ?? 0;
  }

  /** Forget one signer set's presignatures (a node refused one: it restarted, or the key changed). */
  dropScope(keyId: string, version: number, epoch: number, players: readonly number[]): void {
    this.byScope.delete(scopeOf(keyId, version, epoch, players));
  }

  /** Forget every presignature of a key. */
  dropKey(keyId: string): void {
    for (const k of [...this.byScope.keys()]) if (JSON.parse(k)[0] === keyId) this.byScope.delete(k);
  }
}

/**
 * Every signer's answer to one presigning session, checked: the same key version, epoch, signer set and
 * presignature list (ids and R) from every node, `count` of them, each well formed. Returns the list.
 */
export function checkEcdsaPresignAnswers(
  answers: readonly EcdsaPresignaturesResponse[],
  o: { keyId: string; players: readonly number[]; count: number },
): { version: number; epoch: number; presignatures: EcdsaPresignatureJson[] } {
  const bad = (node: number | undefined, why: string) => new TesseraClientError('BAD_RESPONSE', `ECDSA presignatures: ${why}`, node !== undefined ? { node } : {});
  const sorted = [...o.players].sort((a, b) => a - b);
  const first = answers[0];
  if (!first || answers.length !== sorted.length) throw bad(undefined, `expected one answer per signer`);
  const canonical = JSON.stringify([first.version, first.epoch, first.players, first.presignatures]);
  for (const [k, a] of answers.entries()) {
    if (a.keyId !== o.keyId) throw bad(a.node, `node ${a.node} answered for key ${a.keyId}`);
    if (a.node !== sorted[k] && !sorted.includes(a.node)) throw bad(a.node, `an answer from node ${a.node}, not a signer`);
    if (JSON.stringify([a.version, a.epoch, a.players, a.presignatures]) !== canonical) {
      throw new TesseraClientError('VERIFICATION_FAILED', `nodes returned different ECDSA presignature lists (node ${a.node} differs from node ${first.node})`, { node: a.node });
    }
  }
  if (JSON.stringify(first.players) !== JSON.stringify(sorted)) throw bad(first.node, `the signer set is ${String(first.players)}, not ${sorted.join(',')}`);
  if (!Array.isArray(first.presignatures) || first.presignatures.length !== o.count) throw bad(first.node, `expected ${o.count} presignatures`);
  const ids = new Set<string>();
  for (const p of first.presignatures) {
    if (typeof p?.id !== 'string' || !/^[0-9a-f]{32}$/.test(p.id) || typeof p.R !== 'string' || !/^[0-9a-f]{66}$/.test(p.R)) throw bad(first.node, 'a malformed presignature entry');
    if (ids.has(p.id)) throw bad(first.node, `presignature ${p.id} is listed twice`);
    ids.add(p.id);
  }
  return { version: first.version, epoch: first.epoch, presignatures: first.presignatures.map((p) => ({ id: p.id, R: p.R })) };
}

/**
 * Combine every signer's (u_i, w_i) for one presignature into the ECDSA signature over `message`
 * (SHA-256 of it, or the digest itself when `prehashed`), verified under `publicKey` (SEC 1 compressed,
 * hex). Throws VERIFICATION_FAILED (naming no one: the shares are not signed) when they do not combine.
 */
export function combineEcdsaPresigned(o: {
  suite: string;
  publicKey: string;
  presignature: EcdsaPresignatureJson;
  message: string;
  prehashed?: boolean;
  players: readonly number[];
  answers: readonly EcdsaSignShareResponse[];
}): { signature: string; der: string; recoveryId: number } {
  try {
    const suite = getEcdsaSuite(o.suite);
    const digest = suite.messageDigest(fromHex(o.message, 'message'), o.prehashed === true);
    const shares = new Map(o.answers.map((a) => [a.node, { u: fromHex(a.u, 'u', 32), w: fromHex(a.w, 'w', 32) }] as const));
    const sig = combineShares(
      { curve: suite.curve, R: fromHex(o.presignature.R, 'R', 33), digest, groupKey: fromHex(o.publicKey, 'publicKey'), signers: [...o.players].sort((a, b) => a - b) },
      shares,
    );
    return { signature: toHex(sig.compact), der: toHex(sig.der), recoveryId: sig.recovery };
  } catch (e) {
    if (isTesseraError(e)) throw new TesseraClientError('VERIFICATION_FAILED', `the ECDSA presigned shares do not combine into a valid signature: ${e.message}`);
    throw e;
  }
}
