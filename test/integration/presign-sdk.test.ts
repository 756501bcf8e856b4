/**
 * One-round signing from presignatures, SDK side (issue 10, items 3 and 6), on a real 2-of-3 dev cluster:
 * - after warm-up, Cluster.sign is ONE round trip: exactly one request per player (sign-share), no key
 *   lookup, and the signature verifies independently (node:crypto for ed25519, libsecp256k1 for bip340);
 * - an exhausted cache, a refresh done by another SDK (stale epoch) and a restarted node (its pool is
 *   gone) fall back to the two-round path with no error, and the `path` says so;
 * - signMany of 64 messages: one sign-batch request per player, 64 valid signatures;
 * - operators with separate SDKs: each NodeClient gets its own node's share (its hook sees the message
 *   and the list), combineSignatureShares makes a valid signature; a malicious SDK that sends different
 *   lists to the two players gets shares that do not combine, and a used commitment is refused;
 * - a batch is only accepted under the node's own identity key; every operator's hook approves every
 *   presigned signature before any node is asked; by default any key signed with refills in the
 *   background; with presign.auto false only a warmed key does, and a key never warmed signs in two
 *   rounds and fetches nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combineSignatureShares, Cluster, NodeClient, type ApproveHook, type PresignedCommitmentJson, type SessionRequest } from '../../sdk/client.js';
import { message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

const SUITES = ['ed25519', 'secp256k1', 'bip340'] as const;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));

interface Seen {
  node: number;
  method: string;
  path: string;
}

describe('presigned signing from the SDK (2-of-3)', () => {
  let tc: TestCluster;
  const keys = new Map<string, { keyId: string; publicKey: string }>();
  /** Every request the counting clients sent. */
  const seen: Seen[] = [];

  /** A Cluster whose NodeClients trust the cluster file's identity keys and record every request. */
  function counting(o: { lowWater?: number; hooks?: Partial<Record<number, ApproveHook>> } = {}): Cluster {
    return new Cluster(
      tc.dev.cluster.nodes.map(
        (n) =>
          new NodeClient({
            url: n.url,
            apiKey: n.apiKey,
            index: n.index,
            ...(n.identityPublicKey ? { identityPublicKey: n.identityPublicKey } : {}),
            onRequest: (r) => seen.push({ node: n.index, method: r.method, path: r.path }),
            ...(o.hooks?.[n.index] ? { approve: o.hooks[n.index] } : {}),
          }),
      ),
      { threshold: 2, presign: { lowWater: o.lowWater ?? 0 } },
    );
  }

  const valid = (suite: string, signature: string, message: Uint8Array, publicKey: string) => verifySignature(suite, bytes(signature), message, bytes(publicKey));

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    for (const suite of SUITES) {
      const k = await tc.cluster.keygen({ suite, keyId: `pre-${suite}` });
      keys.set(suite, { keyId: k.keyId, publicKey: k.publicKey });
    }
  }, 90_000);

  afterAll(async () => {
    await tc?.close();
  });

  describe.each(SUITES)('%s', (suite) => {
    it('after warm-up a sign is one request per player, with no key lookup', async () => {
      const { keyId, publicKey } = keys.get(suite)!;
      const c = counting();
      expect(await c.warmPresignatures(keyId, 3)).toBeGreaterThanOrEqual(3);
      for (let k = 0; k < 3; k++) {
        seen.length = 0;
        const message = message32(`one round ${suite} ${k}`);
        const r = await c.sign({ keyId, message });
        expect(r.path).toBe('presigned');
        expect(valid(suite, r.signature, message, publicKey)).toBe(true);
        expect(seen.map((s) => `${s.node} ${s.method} ${s.path}`).sort()).toEqual([
          `1 POST /v1/keys/${keyId}/sign-share`,
          `2 POST /v1/keys/${keyId}/sign-share`,
        ]);
      }
      // Any two players, the same way.
      await c.warmPresignatures(keyId, 1, { players: [1, 3] });
      seen.length = 0;
      const message = message32(`players 1,3 ${suite}`);
      const r = await c.sign({ keyId, message, players: [1, 3] });
      expect(r.path).toBe('presigned');
      expect(valid(suite, r.signature, message, publicKey)).toBe(true);
      expect(seen.map((s) => s.node).sort()).toEqual([1, 3]);
      expect(c.presignStats).toMatchObject({ presigned: 4, twoRound: 0, fallbacks: 0, fetchErrors: 0 });
    });

    it('an exhausted cache falls back to the two-round path, with no error', async () => {
      const { keyId, publicKey } = keys.get(suite)!;
      const c = counting();
      await c.warmPresignatures(keyId, 1);
      const first = await c.sign({ keyId, message: message32(`exhaust ${suite} 1`) });
      expect(first.path).toBe('presigned');
      expect(c.presignaturesCached(keyId, 1)).toBe(0);
      seen.length = 0;
      const message = message32(`exhaust ${suite} 2`);
      const second = await c.sign({ keyId, message });
      expect(second.path).toBe('two-round');
      expect(valid(suite, second.signature, message, publicKey)).toBe(true);
      expect(seen.some((s) => s.path.endsWith('/sign-share'))).toBe(false);
      // Forcing the two-round path (as the bench's comparison row does) works with commitments cached.
      await c.warmPresignatures(keyId, 1);
      const forced = await c.sign({ keyId, message, presigned: false });
      expect(forced.path).toBe('two-round');
      expect(c.presignaturesCached(keyId, 1)).toBe(1);
      expect(c.presignStats).toMatchObject({ presigned: 1, twoRound: 2, fallbacks: 0 });
    });

    it('signMany of 64 messages: one sign-batch request per player, 64 valid signatures', async () => {
      const { keyId, publicKey } = keys.get(suite)!;
      const c = counting();
      await c.warmPresignatures(keyId, 64);
      seen.length = 0;
      const messages = Array.from({ length: 64 }, (_, k) => message32(`many ${suite} ${k}`));
      const out = await c.signMany({ keyId, messages });
      expect(out).toHaveLength(64);
      out.forEach((r, k) => {
        expect(r.path).toBe('presigned');
        expect(valid(suite, r.signature, messages[k]!, publicKey)).toBe(true);
      });
      expect(new Set(out.map((r) => r.signature)).size).toBe(64);
      expect(seen.map((s) => `${s.node} ${s.method} ${s.path}`).sort()).toEqual(['1 POST /v1/sign-batch', '2 POST /v1/sign-batch']);
    });

    it('separate operators: each SDK gets its own share, combineSignatureShares signs; different lists do not combine', async () => {
      const { keyId, publicKey } = keys.get(suite)!;
      const asked: Record<number, SessionRequest[]> = { 1: [], 2: [] };
      const operator = (i: 1 | 2) => {
        const n = tc.dev.cluster.nodes[i - 1]!;
        return new NodeClient({ url: n.url, apiKey: n.apiKey, index: i, approve: (r) => (asked[i].push(r), true) });
      };
      const a = operator(1);
      const b = operator(2);
      const info = await a.getKey(keyId);
      const [ba, bb] = await Promise.all([a.presignatures(keyId, 2), b.presignatures(keyId, 1)]);
      expect(ba.commitments).toHaveLength(2);
      const entry = (batch: typeof ba, k: number): PresignedCommitmentJson => ({ node: batch.node, poolId: batch.poolId, ...batch.commitments[k]! });
      const list = [entry(ba, 0), entry(bb, 0)];
      const message = hex(message32(`operators ${suite}`));
      const req = { message, commitments: list, version: info.version, epoch: info.epoch };
      const shares = await Promise.all([a.signShare(keyId, req), b.signShare(keyId, req)]);
      expect(asked[1]![0]).toMatchObject({ operation: 'sign', keyId, message, players: [1, 2], commitments: list });
      expect(asked[2]![0]).toMatchObject({ operation: 'sign', keyId, message, players: [1, 2], commitments: list });
      const signature = combineSignatureShares({ suite, publicPackage: info.publicPackage, message, commitments: list, shares });
      expect(valid(suite, signature, bytes(message), publicKey)).toBe(true);
      // Shares come in any order.
      expect(combineSignatureShares({ suite, publicPackage: info.publicPackage, message, commitments: list, shares: [...shares].reverse() })).toBe(signature);
      // Each node reported the group commitment R (the signature's R part). Without it, or with a wrong
      // one, the shares combine to the same signature (R recomputed from the list); bad hex is bad input.
      for (const s of shares) expect(signature.startsWith(s.commitment)).toBe(true);
      const bare = shares.map((s) => ({ node: s.node, share: s.share }));
      expect(combineSignatureShares({ suite, publicPackage: info.publicPackage, message, commitments: list, shares: bare })).toBe(signature);
      const wrongR = shares.map((s) => ({ ...s, commitment: list[0]!.hiding }));
      expect(combineSignatureShares({ suite, publicPackage: info.publicPackage, message, commitments: list, shares: wrongR })).toBe(signature);
      expect(() => combineSignatureShares({ suite, publicPackage: info.publicPackage, message, commitments: list, shares: shares.map((s) => ({ ...s, commitment: 'zz' })) })).toThrow(
        expect.objectContaining({ code: 'BAD_INPUT' }),
      );

      // A used commitment is never signed with again.
      const again = await rejectionOf(b.signShare(keyId, { ...req, message: hex(message32(`reuse ${suite}`)) }));
      expect(again).toMatchObject({ code: 'PRESIGNATURE_UNAVAILABLE' });

      // A malicious SDK sends node 1 one list and node 2 another: the shares combine under neither.
      const bc = await b.presignatures(keyId, 1);
      const l1 = [entry(ba, 1), entry(bc, 0)];
      const l2 = [entry(ba, 0), entry(bc, 0)]; // node 1's first commitment (used above) in node 2's list
      const m2 = hex(message32(`split ${suite}`));
      const s1 = await a.signShare(keyId, { message: m2, commitments: l1, version: info.version, epoch: info.epoch });
      const s2 = await b.signShare(keyId, { message: m2, commitments: l2, version: info.version, epoch: info.epoch });
      for (const commitments of [l1, l2]) {
        let err: unknown;
        try {
          combineSignatureShares({ suite, publicPackage: info.publicPackage, message: m2, commitments, shares: [s1, s2] });
        } catch (e) {
          err = e;
        }
        expect(err).toMatchObject({ code: 'VERIFICATION_FAILED', culprits: [] });
      }
    });
  });

  it('a refresh by another SDK (stale epoch) and a restarted node (its pool gone) fall back with no error', async () => {
    const suite = 'ed25519';
    const { keyId, publicKey } = keys.get(suite)!;
    const c = counting();
    await c.warmPresignatures(keyId, 4);
    await tc.cluster.refresh({ keyId });
    // signMany with commitments of the old epoch: the players refuse the batch, both sign in two rounds.
    const messages = [message32('after refresh 1'), message32('after refresh 2')];
    const many = await c.signMany({ keyId, messages });
    expect(many.map((r) => r.path)).toEqual(['two-round', 'two-round']);
    many.forEach((r, k) => expect(valid(suite, r.signature, messages[k]!, publicKey)).toBe(true));
    expect(c.presignStats.fallbacks).toBe(1);
    // The SDK looked the key up again: the old epoch's commitments are gone, and a sign takes two rounds.
    const message = message32('after refresh 3');
    const r = await c.sign({ keyId, message });
    expect(r.path).toBe('two-round');
    expect(valid(suite, r.signature, message, publicKey)).toBe(true);
    // Warm at the new epoch and sign in one round again.
    await c.warmPresignatures(keyId, 2);
    expect((await c.sign({ keyId, message: message32('new epoch') })).path).toBe('presigned');

    // Node 1 restarts: the commitment this SDK holds of it names a pool that died with the process.
    await tc.dev.kill(1);
    await tc.restart(1);
    const after = message32('after restart');
    const r2 = await c.sign({ keyId, message: after });
    expect(r2.path).toBe('two-round');
    expect(valid(suite, r2.signature, after, publicKey)).toBe(true);
    expect(c.presignStats.fallbacks).toBe(2);
    await c.warmPresignatures(keyId, 1);
    expect((await c.sign({ keyId, message: message32('restarted pool') })).path).toBe('presigned');
  }, 90_000);

  it('every operator approves every presigned signature before any node is asked', async () => {
    const { keyId } = keys.get('ed25519')!;
    const seenBy2: SessionRequest[] = [];
    const c = counting({ hooks: { 2: (r) => (seenBy2.push(r), !(r.operation === 'sign' && r.message.startsWith('ff'))) } });
    await c.warmPresignatures(keyId, 2);
    seen.length = 0;
    const refused = await rejectionOf(c.sign({ keyId, message: 'ff01' }));
    expect(refused).toMatchObject({ code: 'POLICY_DENIED', node: 2 });
    expect(seen).toEqual([]);
    expect(seenBy2.at(-1)).toMatchObject({ operation: 'sign', message: 'ff01', commitments: [{ node: 1 }, { node: 2 }] });
    const ok = await c.sign({ keyId, message: '0001' });
    expect(ok.path).toBe('presigned');
    // signMany: one refused message refuses the call, before any node is asked.
    seen.length = 0;
    expect(await rejectionOf(c.signMany({ keyId, messages: ['0002', 'ff03'] }))).toMatchObject({ code: 'POLICY_DENIED' });
    expect(seen.filter((s) => s.path === '/v1/sign-batch')).toEqual([]);
  });

  it('a batch is accepted only under its node identity key; a warmed key refills in the background', async () => {
    const { keyId, publicKey } = keys.get('secp256k1')!;
    const n1 = tc.dev.cluster.nodes[0]!;
    const wrongKey = tc.dev.cluster.nodes[1]!.identityPublicKey!;
    const impostor = new NodeClient({ url: n1.url, apiKey: n1.apiKey, index: 1, identityPublicKey: wrongKey });
    expect(await rejectionOf(impostor.presignatures(keyId, 1))).toMatchObject({ code: 'BAD_RESPONSE', message: expect.stringMatching(/identity key/) });

    // presign.auto false: a key that was never warmed signs in two rounds and fetches nothing.
    const c = new Cluster(tc.cluster.nodes, { threshold: 2, presign: { auto: false } });
    const m0 = message32('refill 0');
    expect((await c.sign({ keyId, message: m0 })).path).toBe('two-round');
    await c.presignIdle();
    expect(c.presignStats.batches).toBe(0);
    // Once warmed, the key's cache refills in the background when it runs low.
    await c.warmPresignatures(keyId, 1);
    expect((await c.sign({ keyId, message: message32('refill 1') })).path).toBe('presigned');
    await c.presignIdle();
    expect(c.presignaturesCached(keyId, 1)).toBeGreaterThan(0);
    expect(c.presignaturesCached(keyId, 2)).toBeGreaterThan(0);
    const m2 = message32('refill 2');
    const r = await c.sign({ keyId, message: m2 });
    expect(r.path).toBe('presigned');
    expect(valid('secp256k1', r.signature, m2, publicKey)).toBe(true);
    expect(c.presignStats.fetchErrors).toBe(0);
    // The default (presign.auto): any sign starts the refill; the first takes two rounds, the next one.
    const auto = new Cluster(tc.cluster.nodes, { threshold: 2 });
    expect((await auto.sign({ keyId, message: message32('auto 1') })).path).toBe('two-round');
    await auto.presignIdle();
    expect((await auto.sign({ keyId, message: message32('auto 2') })).path).toBe('presigned');
    // signMany without anything cached fetches what it needs, then signs in one batch per player.
    const d = counting();
    seen.length = 0;
    const messages = [message32('cold 1'), message32('cold 2'), message32('cold 3')];
    const out = await d.signMany({ keyId, messages });
    expect(out.map((x) => x.path)).toEqual(['presigned', 'presigned', 'presigned']);
    out.forEach((x, k) => expect(valid('secp256k1', x.signature, messages[k]!, publicKey)).toBe(true));
    expect(seen.filter((s) => s.path === '/v1/sign-batch').map((s) => s.node).sort()).toEqual([1, 2]);
    // With presigning off, signMany signs every message by the two-round path.
    const two = await d.signMany({ keyId, messages: messages.slice(0, 2), presigned: false });
    expect(two.map((x) => x.path)).toEqual(['two-round', 'two-round']);
    await c.presignIdle();
  });
});
