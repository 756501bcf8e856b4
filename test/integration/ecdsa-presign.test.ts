/**
 * Threshold ECDSA presignatures (issue 12, "Presigning"): DKLs23 rounds 1-2 and the message-free part of
 * round 3 made ahead in a session among the signers (node/presign/ecdsa-pools.ts), then one round per
 * signature (POST /v1/keys/:keyId/ecdsa-sign-share), combined by the SDK (sdk/ecdsa-presign.ts). One
 * 2-of-3 cluster:
 * - presigned signatures (sha256 and prehashed) verify in node:crypto; the SDK reports path 'presigned';
 * - a batch of 64 (the most one session makes) fits the wire; 65 is refused;
 * - a presignature id is used at most once: a second sign-share is refused (PRESIGNATURE_UNAVAILABLE),
 *   and of two concurrent requests for the same id exactly one succeeds;
 * - a wrong signer set or epoch is refused before anything is consumed (the id then still signs);
 * - a refused presignature makes the SDK fall back to the two-round session (path 'two-round');
 * - every operator's hook sees each presigned signature's message; its refusal is the answer;
 * - a refresh drops every presignature of the key (the old ids are refused; the SDK still signs);
 * - a restarted node holds no presignature (pools are in memory only); the SDK falls back and signs.
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ECDSA_PRESIGN_BATCH, type EcdsaPresignaturesResponse, type EcdsaSignShareRequest, type KeyInfo } from '../../contract/http.js';
import { combineEcdsaPresigned } from '../../sdk/ecdsa-presign.js';
import { newSessionId } from '../../sdk/client.js';
import { bytesToHex, hexToBytes, message32, rejectionOf, startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ECDSA_SECP256K1 } from '../../core/suites.js';
import { split } from '../../core/shamir.js';
import type { KeyShare } from '../../core/types.js';
import type { Presignature } from '../../core/ecdsa/dkls23.js';
import { ecdsaPresign, ecdsaPresignSessionIds, ecdsaPresignatureIds, ecdsaRound1, ecdsaRound2, ecdsaRound3 } from '../../core/ecdsa/session.js';
import { ecdsaSigningKey, wipeEcdsaSigningKey } from '../../core/ecdsa/setup.js';
import { EcdsaPresignPools, type EcdsaPresignScope } from '../../node/presign/ecdsa-pools.js';
import { withPairwiseSetup } from '../helpers/ecdsa.js';

function nodeKey(compressed: Uint8Array): KeyObject {
  const raw = secp256k1.Point.fromBytes(compressed).toBytes(false);
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: 'secp256k1', x: b64(raw.subarray(1, 33)), y: b64(raw.subarray(33)) }, format: 'jwk' });
}

describe('threshold ECDSA presignatures on a 2-of-3 cluster', () => {
  let tc: TestCluster;
  let key: KeyInfo;
  const keyId = 'ecdsa-presign';
  const players = [1, 2];

  /** Every player's node makes `count` presignatures in one session (the raw route, as the SDK does). */
  async function presign(count: number, who = players): Promise<EcdsaPresignaturesResponse[]> {
    const req = { sessionId: newSessionId(), players: who, count };
    return Promise.all(who.map((i) => tc.client(i).ecdsaPresignatures(keyId, req)));
  }

  function shareRequest(id: string, message: Uint8Array, over: Partial<EcdsaSignShareRequest> = {}): EcdsaSignShareRequest {
    return { presignatureId: id, message: bytesToHex(message), version: key.version, epoch: key.epoch, players, ...over };
  }

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    key = await tc.cluster.keygen({ suite: 'ecdsa-secp256k1', keyId });
  }, 180_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('presigned signatures verify in node:crypto (SHA-256 and prehashed); every signer lists the same ids and R', async () => {
    const made = await presign(3);
    expect(made[0]!.presignatures).toHaveLength(3);
    expect(made[1]!.presignatures).toEqual(made[0]!.presignatures);
    expect(made[0]!.players).toEqual(players);

    const cached = await tc.cluster.warmPresignatures(keyId, 2, { players });
    expect(cached).toBe(2);
    const message = message32('ecdsa presigned 1');
    const r = await tc.cluster.sign({ keyId, message, players });
    expect(r.path).toBe('presigned');
    const pk = nodeKey(hexToBytes(key.publicKey));
    expect(nodeVerify('sha256', message, { key: pk, dsaEncoding: 'ieee-p1363' }, hexToBytes(r.signature))).toBe(true);
    expect(nodeVerify('sha256', message, pk, hexToBytes(r.der!))).toBe(true);
    expect(r.recoveryId).toBeGreaterThanOrEqual(0);

    const digest = sha256(message32('ecdsa presigned prehashed'));
    const p = await tc.cluster.sign({ keyId, message: digest, players, prehashed: true });
    expect(p.path).toBe('presigned');
    expect(secp256k1.verify(hexToBytes(p.signature), digest, hexToBytes(key.publicKey), { prehash: false })).toBe(true);
    expect(tc.cluster.ecdsaPresignaturesCached(keyId, players)).toBe(0);

    // The raw route, combined by hand: the same arithmetic.
    const id = made[0]!.presignatures[0]!;
    const m = message32('ecdsa presigned raw');
    const answers = await Promise.all(players.map((i) => tc.client(i).ecdsaSignShare(keyId, shareRequest(id.id, m))));
    const sig = combineEcdsaPresigned({ suite: key.suite, publicKey: key.publicKey, presignature: id, message: bytesToHex(m), players, answers });
    expect(nodeVerify('sha256', m, { key: pk, dsaEncoding: 'ieee-p1363' }, hexToBytes(sig.signature))).toBe(true);
  }, 180_000);

  it('a batch of MAX_ECDSA_PRESIGN_BATCH (64) fits the wire in two rounds; 65 is refused before any session', async () => {
    const made = await presign(MAX_ECDSA_PRESIGN_BATCH);
    expect(made[0]!.presignatures).toHaveLength(MAX_ECDSA_PRESIGN_BATCH);
    expect(new Set(made[0]!.presignatures.map((p) => p.id)).size).toBe(MAX_ECDSA_PRESIGN_BATCH);
    expect(made[1]!.presignatures).toEqual(made[0]!.presignatures);
    const tooMany = await rejectionOf(tc.client(1).ecdsaPresignatures(keyId, { sessionId: newSessionId(), players, count: MAX_ECDSA_PRESIGN_BATCH + 1 }));
    expect(tooMany.status).toBe(400);
  }, 240_000);

  it('a presignature id is used once: a second request is refused, and of two concurrent requests exactly one succeeds', async () => {
    const [made] = await presign(2);
    const [a, b] = made!.presignatures;
    const m = message32('once');
    await tc.client(1).ecdsaSignShare(keyId, shareRequest(a!.id, m));
    const again = await rejectionOf(tc.client(1).ecdsaSignShare(keyId, shareRequest(a!.id, m)));
    expect(again.code).toBe('PRESIGNATURE_UNAVAILABLE');
    expect(again.status).toBe(409);
    // Another message with the used id: refused too (two w_i under one φ_i would reveal it).
    expect((await rejectionOf(tc.client(1).ecdsaSignShare(keyId, shareRequest(a!.id, message32('other'))))).code).toBe('PRESIGNATURE_UNAVAILABLE');

    const both = await Promise.allSettled([
      tc.client(2).ecdsaSignShare(keyId, shareRequest(b!.id, message32('race 1'))),
      tc.client(2).ecdsaSignShare(keyId, shareRequest(b!.id, message32('race 2'))),
    ]);
    expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = both.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
    expect((lost.reason as { code?: string }).code).toBe('PRESIGNATURE_UNAVAILABLE');
  }, 180_000);

  it('a wrong signer set or epoch is refused before anything is consumed; the presignature then still signs', async () => {
    const [made] = await presign(1);
    const id = made!.presignatures[0]!;
    const m = message32('checked first');
    const wrongSet = await rejectionOf(tc.client(1).ecdsaSignShare(keyId, shareRequest(id.id, m, { players: [1, 3] })));
    expect(wrongSet.code).toBe('PRESIGNATURE_UNAVAILABLE');
    const wrongEpoch = await rejectionOf(tc.client(1).ecdsaSignShare(keyId, shareRequest(id.id, m, { epoch: key.epoch + 1 })));
    expect(wrongEpoch.code).toBe('PRESIGNATURE_UNAVAILABLE');
    const badDigest = await rejectionOf(tc.client(1).ecdsaSignShare(keyId, shareRequest(id.id, new Uint8Array(3), { prehashed: true })));
    expect(badDigest.status).toBe(400);
    const answers = await Promise.all(players.map((i) => tc.client(i).ecdsaSignShare(keyId, shareRequest(id.id, m))));
    const sig = combineEcdsaPresigned({ suite: key.suite, publicKey: key.publicKey, presignature: id, message: bytesToHex(m), players, answers });
    expect(nodeVerify('sha256', m, { key: nodeKey(hexToBytes(key.publicKey)), dsaEncoding: 'ieee-p1363' }, hexToBytes(sig.signature))).toBe(true);
  }, 180_000);

  it('a refused presignature: the SDK falls back to the two-round session and still signs', async () => {
    await tc.cluster.warmPresignatures(keyId, 1, { players });
    expect(tc.cluster.ecdsaPresignaturesCached(keyId, players)).toBe(1);
    // Spend node 2's entry of the SDK's cached presignature behind the SDK's back (the raw route), and
    // put the id back in the SDK's cache: node 2 will refuse it.
    const cachedId = (tc.cluster as unknown as { ecdsaPresignatures: { take: (...a: unknown[]) => { id: string; R: string } } }).ecdsaPresignatures.take(
      keyId,
      key.version,
      key.epoch,
      players,
    );
    await tc.client(2).ecdsaSignShare(keyId, shareRequest(cachedId.id, message32('spent elsewhere')));
    (tc.cluster as unknown as { ecdsaPresignatures: { add: (...a: unknown[]) => void } }).ecdsaPresignatures.add(keyId, key.version, key.epoch, players, [cachedId]);
    const message = message32('falls back');
    const r = await tc.cluster.sign({ keyId, message, players });
    expect(r.path).toBe('two-round');
    expect(nodeVerify('sha256', message, { key: nodeKey(hexToBytes(key.publicKey)), dsaEncoding: 'ieee-p1363' }, hexToBytes(r.signature))).toBe(true);
  }, 180_000);

  it("every operator's hook sees the message of a presigned signature; a refusal is the answer (no fallback) and consumes nothing", async () => {
    const seen: { message: string; players: number[] }[] = [];
    const refused = bytesToHex(message32('refused by operator 2'));
    const hooked = tc.withHooks({
      2: (r) => {
        if (r.operation === 'sign') seen.push({ message: r.message, players: r.players });
        return !(r.operation === 'sign' && r.message === refused);
      },
    });
    expect(await hooked.warmPresignatures(keyId, 1, { players })).toBe(1);
    const denied = await rejectionOf(hooked.sign({ keyId, message: hexToBytes(refused), players }));
    expect(denied.code).toBe('POLICY_DENIED');
    expect(seen.map((s) => s.message)).toEqual([refused]);
    // No node was asked: the presignature is still cached, and signs the next approved message in one round.
    expect(hooked.ecdsaPresignaturesCached(keyId, players)).toBe(1);
    const ok = message32('approved by operator 2');
    const r = await hooked.sign({ keyId, message: ok, players });
    expect(r.path).toBe('presigned');
    expect(seen.at(-1)).toEqual({ message: bytesToHex(ok), players });
  }, 180_000);

  it('a refresh drops every presignature of the key: old ids are refused, the SDK signs through the session', async () => {
    const [made] = await presign(2);
    await tc.cluster.warmPresignatures(keyId, 1, { players });
    await tc.cluster.refresh({ keyId });
    const now = await tc.cluster.getKey(keyId);
    expect(now.epoch).toBe(key.epoch + 1);
    const old = await rejectionOf(tc.client(1).ecdsaSignShare(keyId, shareRequest(made!.presignatures[0]!.id, message32('after refresh'))));
    expect(old.code).toBe('PRESIGNATURE_UNAVAILABLE');
    const stale = await rejectionOf(tc.client(1).ecdsaSignShare(keyId, shareRequest(made!.presignatures[1]!.id, message32('after refresh'), { epoch: now.epoch })));
    expect(stale.code).toBe('PRESIGNATURE_UNAVAILABLE');
    key = now;
    const message = message32('signed after refresh');
    const r = await tc.cluster.sign({ keyId, message, players });
    expect(nodeVerify('sha256', message, { key: nodeKey(hexToBytes(key.publicKey)), dsaEncoding: 'ieee-p1363' }, hexToBytes(r.signature))).toBe(true);
    // New presignatures at the new epoch sign in one round.
    await tc.cluster.warmPresignatures(keyId, 1, { players });
    const p = await tc.cluster.sign({ keyId, message: message32('presigned after refresh'), players });
    expect(p.path).toBe('presigned');
  }, 240_000);

  it('a restarted node holds no presignature: its ids are refused and the SDK falls back and signs', async () => {
    const [made] = await presign(1);
    await tc.cluster.warmPresignatures(keyId, 2, { players });
    await tc.dev.kill(2);
    await tc.restart(2);
    const refused = await rejectionOf(tc.client(2).ecdsaSignShare(keyId, shareRequest(made!.presignatures[0]!.id, message32('after restart'))));
    expect(refused.code).toBe('PRESIGNATURE_UNAVAILABLE');
    const message = message32('signed after restart');
    const r = await tc.cluster.sign({ keyId, message, players });
    expect(r.path).toBe('two-round');
    expect(nodeVerify('sha256', message, { key: nodeKey(hexToBytes(key.publicKey)), dsaEncoding: 'ieee-p1363' }, hexToBytes(r.signature))).toBe(true);
    // The SDK forgot the signer set's presignatures after the refusal.
    expect(tc.cluster.ecdsaPresignaturesCached(keyId, players)).toBe(0);
  }, 240_000);
});

/** Signers 1 and 2 of a 2-of-3 secp256k1 key make `count` presignatures in process (the rounds runEcdsaPresign runs). */
function presignInProcess(keys: readonly KeyShare[], count: number): { ids: Uint8Array[]; bySigner: Map<number, Presignature[]> } {
  const signers = [1, 2];
  const session = randomBytes(16);
  const runId = randomBytes(32);
  const sids = ecdsaPresignSessionIds(session, runId, count);
  const sk = new Map(signers.map((i) => [i, ecdsaSigningKey('secp256k1', keys[i - 1]!)]));
  try {
    const bySigner = new Map<number, Presignature[]>(signers.map((i) => [i, []]));
    for (const sid of sids) {
      const r1 = new Map(signers.map((i) => [i, ecdsaRound1(sk.get(i)!, sid, signers)]));
      const r2 = new Map(signers.map((i) => [i, ecdsaRound2(r1.get(i)!.state, new Map(signers.filter((j) => j !== i).map((j) => [j, r1.get(j)!.out.get(i)!])))]));
      for (const i of signers) bySigner.get(i)!.push(ecdsaPresign(r2.get(i)!.state, new Map(signers.filter((j) => j !== i).map((j) => [j, r2.get(j)!.out.get(i)!]))));
    }
    return { ids: ecdsaPresignatureIds(session, runId, count), bySigner };
  } finally {
    for (const k of sk.values()) wipeEcdsaSigningKey(k);
  }
}

describe('ECDSA presignature pools in process (node/presign/ecdsa-pools.ts)', () => {
  const { group } = ECDSA_SECP256K1;
  const x = group.randomScalar();
  const { shares } = split(group, x, 2, 3);
  const publicKey = {
    suite: ECDSA_SECP256K1.id,
    threshold: 2,
    parties: 3,
    epoch: 0,
    commitments: [group.pointToBytes(group.mulBase(x))],
    verifyingShares: shares.map((v) => group.pointToBytes(group.mulBase(v))),
  };
  const keys = withPairwiseSetup('ecdsa-secp256k1', shares.map((v, k) => ({ publicKey, secret: { suite: ECDSA_SECP256K1.id, index: k + 1, epoch: 0, value: group.scalarToBytes(v) } })));
  const scope: EcdsaPresignScope = { tenant: 'default', keyId: 'k', version: 1, epoch: 0, players: [1, 2] };

  it('take deletes before use (a second take is refused); invalidation wipes every entry and refuses a run that overlapped it', () => {
    const pools = new EcdsaPresignPools({ node: 1 });
    const gen = pools.generation('default', 'k');
    const { ids, bySigner } = presignInProcess(keys, 3);
    pools.add(scope, gen, ids.map((id, k) => ({ id, presig: bySigner.get(1)![k]! })));
    expect(pools.size(scope)).toBe(3);
    // Wrong signer set, epoch, version: refused, nothing consumed.
    for (const other of [{ ...scope, players: [1, 3] }, { ...scope, epoch: 1 }, { ...scope, version: 2 }]) {
      expect(() => pools.check(other, ids[0]!)).toThrow(/PRESIGNATURE_UNAVAILABLE|not for|epoch|signers/);
      expect(() => pools.take(other, ids[0]!)).toThrow();
    }
    expect(pools.size(scope)).toBe(3);
    const taken = pools.take(scope, ids[0]!);
    expect(pools.size(scope)).toBe(2);
    expect(() => pools.take(scope, ids[0]!)).toThrow();
    ecdsaRound3(taken, sha256(new Uint8Array([1])));
    expect(() => ecdsaRound3(taken, sha256(new Uint8Array([2])))).toThrow();
    // The store's key-change hook: every entry of the key wiped and gone.
    const probe = pools.wipeProbe('default', 'k');
    expect(probe.count).toBe(6);
    pools.invalidate('default', 'k');
    expect(probe.allZero()).toBe(true);
    expect(pools.size(scope)).toBe(0);
    expect(() => pools.take(scope, ids[1]!)).toThrow();
    // A presigning run that began before the change (the old generation): its presignatures are wiped, not kept.
    const late = presignInProcess(keys, 1);
    const presig = late.bySigner.get(1)![0]!;
    expect(() => pools.add(scope, gen, [{ id: late.ids[0]!, presig }])).toThrow(/changed/);
    expect(presig.phi.every((b) => b === 0) && presig.u.every((b) => b === 0) && presig.v.every((b) => b === 0)).toBe(true);
    expect(pools.size(scope)).toBe(0);
  }, 120_000);

  it('caps: adding beyond the per-pool cap drops (and wipes) the oldest entries', () => {
    const pools = new EcdsaPresignPools({ node: 1, maxPerPool: 2, maxTotal: 2 });
    const { ids, bySigner } = presignInProcess(keys, 3);
    const mine = bySigner.get(1)!;
    pools.add(scope, 0, [{ id: ids[0]!, presig: mine[0]! }, { id: ids[1]!, presig: mine[1]! }]);
    pools.add(scope, 0, [{ id: ids[2]!, presig: mine[2]! }]);
    expect(pools.size(scope)).toBe(2);
    expect(() => pools.check(scope, ids[0]!)).toThrow();
    expect(mine[0]!.phi.every((b) => b === 0)).toBe(true);
    pools.check(scope, ids[1]!);
    pools.check(scope, ids[2]!);
    pools.close();
    expect(mine[2]!.u.every((b) => b === 0)).toBe(true);
  }, 120_000);
});
