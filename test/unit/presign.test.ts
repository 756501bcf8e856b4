/**
 * Presignatures, in process: core/presign.ts (the batch signature binds every field; the signer-side
 * list check) and node/presign/ (the in-memory pools: each commitment handed out once, a nonce taken
 * once and wiped, invalid input consumes nothing, invalidation and close wipe, caps hold), and
 * presigned signing end to end with core/sign.ts aggregateSignature.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { toHex } from '../../core/bytes.js';
import {
  checkPresignedList,
  presignBatchSignedBytes,
  presignRef,
  presignedListFromJson,
  presignedListToJson,
  signPresignBatch,
  verifyPresignBatch,
  type PresignBatch,
  type PresignBatchJson,
  type PresignedEntry,
} from '../../core/presign.js';
import { aggregateSignature, groupPublicKey } from '../../core/sign.js';
import { getSigningSuite, type SigningSuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import type { SignShareMsg } from '../../core/messages.js';
import { PresignPools, type PresignScope } from '../../node/presign/pools.js';
import { signWithPresignatures, parseItem } from '../../node/presign/requests.js';
import { runDkg } from '../helpers/run-dkg.js';
import { useTempStores } from '../helpers/temp-store.js';

const logger = pino({ level: 'silent' });
const copyKey = (k: KeyShare): KeyShare => ({ publicKey: k.publicKey, secret: { ...k.secret, value: Uint8Array.from(k.secret.value) } });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof TesseraError ? e.code : `not a TesseraError: ${String(e)}`;
  }
  return undefined;
}

function toJson(b: PresignBatch, signature: Uint8Array): PresignBatchJson {
  return {
    suite: b.suite,
    node: b.node,
    tenant: b.tenant,
    keyId: b.keyId,
    version: b.version,
    epoch: b.epoch,
    poolId: toHex(b.poolId),
    commitments: b.commitments.map((c) => ({ index: c.index, hiding: toHex(c.hiding), binding: toHex(c.binding) })),
    signature: toHex(signature),
  };
}

let identity: IdentityKeyPair;
beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
});

describe('core/presign.ts: batch signatures', () => {
  const suite = getSigningSuite('ed25519');
  const point = () => suite.group.pointToBytes(suite.group.mulBase(suite.group.randomScalar()));
  const batch = (): PresignBatch => ({
    suite: 'ed25519',
    node: 2,
    tenant: 'acme',
    keyId: 'k1',
    version: 3,
    epoch: 4,
    poolId: new Uint8Array(16).fill(7),
    commitments: [0, 1, 2].map((index) => ({ index, hiding: point(), binding: point() })),
  });

  it('verifies under the issuing identity only, and any changed field fails', () => {
    const b = batch();
    const sig = signPresignBatch(identity.secretKey, b);
    expect(verifyPresignBatch(identity.publicKey, toJson(b, sig))).toBe(true);
    expect(verifyPresignBatch(generateIdentity().publicKey, toJson(b, sig))).toBe(false);
    const changes: Partial<PresignBatch>[] = [
      { suite: 'secp256k1' as SigningSuiteId },
      { node: 3 },
      { tenant: 'other' },
      { keyId: 'k2' },
      { version: 4 },
      { epoch: 5 },
      { poolId: new Uint8Array(16).fill(8) },
      { commitments: b.commitments.slice(0, 2) },
      { commitments: [{ ...b.commitments[0]!, index: 9 }, ...b.commitments.slice(1)] },
      { commitments: [{ ...b.commitments[0]!, hiding: b.commitments[0]!.binding, binding: b.commitments[0]!.hiding }, ...b.commitments.slice(1)] },
      { commitments: [b.commitments[1]!, b.commitments[0]!, b.commitments[2]!] },
    ];
    for (const c of changes) expect(verifyPresignBatch(identity.publicKey, toJson({ ...b, ...c }, sig)), JSON.stringify(Object.keys(c))).toBe(false);
    // Malformed input is simply not valid (never a throw).
    expect(verifyPresignBatch(identity.publicKey, { ...toJson(b, sig), poolId: 'zz' })).toBe(false);
    expect(verifyPresignBatch(identity.publicKey, { ...toJson(b, sig), suite: 'rsa' })).toBe(false);
    expect(verifyPresignBatch(identity.publicKey, null as never)).toBe(false);
  });

  it('the signed bytes are domain-separated and framed (no two batches share them)', () => {
    const b = batch();
    const bytes = presignBatchSignedBytes(b);
    expect(new TextDecoder().decode(bytes.subarray(4, 4 + 24))).toBe('TESSERA-v1/presign/batch');
    // Moving a byte between adjacent fields changes the bytes (length prefixes).
    expect(toHex(presignBatchSignedBytes({ ...b, tenant: 'acmek', keyId: '1' }))).not.toBe(toHex(presignBatchSignedBytes({ ...b, tenant: 'acme', keyId: 'k1' })));
    expect(codeOf(() => presignBatchSignedBytes({ ...b, poolId: new Uint8Array(15) }))).toBe(ErrorCode.BadInput);
    expect(codeOf(() => presignBatchSignedBytes({ ...b, node: 0 }))).toBe(ErrorCode.BadInput);
    expect(codeOf(() => presignBatchSignedBytes({ ...b, tenant: '../x' }))).toBe(ErrorCode.BadInput);
  });

  it('presignRef is pool id || I2OSP(index, 4)', () => {
    const ref = presignRef(new Uint8Array(16).fill(1), 258);
    expect(toHex(ref)).toBe('01'.repeat(16) + '00000102');
    expect(codeOf(() => presignRef(new Uint8Array(16), -1))).toBe(ErrorCode.BadInput);
  });
});

describe('core/presign.ts: checkPresignedList', () => {
  const suite = getSigningSuite('secp256k1');
  const point = () => suite.group.pointToBytes(suite.group.mulBase(suite.group.randomScalar()));
  const entry = (node: number, over: Partial<PresignedEntry> = {}): PresignedEntry => ({ node, poolId: new Uint8Array(16).fill(node), index: node * 10, hiding: point(), binding: point(), ...over });
  const params = { threshold: 2, parties: 3 };

  it('accepts a well-formed list and returns it keyed by node', () => {
    const list = [entry(3), entry(1)];
    const m = checkPresignedList(suite, params, list, 1);
    expect([...m.keys()]).toEqual([1, 3]);
    expect(toHex(m.get(3)!.hiding)).toBe(toHex(list[0]!.hiding));
    // JSON round trip
    expect(presignedListFromJson(presignedListToJson(list)).map((e) => e.index)).toEqual([30, 10]);
  });

  it('refuses, each with its code: duplicate node, too few, outside 1..parties, own entry missing, bad points', () => {
    expect(codeOf(() => checkPresignedList(suite, params, [entry(1), entry(1)], 1))).toBe(ErrorCode.BadInput);
    expect(codeOf(() => checkPresignedList(suite, params, [entry(1)], 1))).toBe(ErrorCode.BadParameters);
    expect(codeOf(() => checkPresignedList(suite, params, [entry(1), entry(4)], 1))).toBe(ErrorCode.UnexpectedParty);
    expect(codeOf(() => checkPresignedList(suite, params, [entry(2), entry(3)], 1))).toBe(ErrorCode.BadParameters);
    expect(codeOf(() => checkPresignedList(suite, params, [entry(1), entry(2, { hiding: new Uint8Array(33) })], 1))).toBe(ErrorCode.BadPoint);
    expect(codeOf(() => checkPresignedList(suite, params, [entry(1), entry(2, { binding: Uint8Array.from([2, ...new Uint8Array(32).fill(255)]) })], 1))).toBe(ErrorCode.BadPoint);
    expect(codeOf(() => checkPresignedList(suite, params, [entry(1), entry(2, { poolId: new Uint8Array(3) })], 1))).toBe(ErrorCode.BadInput);
    expect(codeOf(() => checkPresignedList(suite, params, [entry(1), entry(2, { index: -1 })], 1))).toBe(ErrorCode.BadInput);
    // ed25519's identity element is not a valid commitment either.
    const ed = getSigningSuite('ed25519');
    const edPoint = () => ed.group.pointToBytes(ed.group.mulBase(ed.group.randomScalar()));
    const identityPoint = Uint8Array.from([1, ...new Uint8Array(31)]); // y = 1: the identity's RFC 8032 encoding
    expect(
      codeOf(() =>
        checkPresignedList(ed, params, [
          { node: 1, poolId: new Uint8Array(16), index: 0, hiding: edPoint(), binding: edPoint() },
          { node: 2, poolId: new Uint8Array(16), index: 0, hiding: identityPoint, binding: edPoint() },
        ]),
      ),
    ).toBe(ErrorCode.BadPoint);
  });
});

describe('node/presign: pools', () => {
  const suiteId = 'ed25519';
  const suite = getSigningSuite(suiteId);
  let keys: KeyShare[];
  beforeAll(() => {
    keys = runDkg(suiteId, 2, 3);
  });
  const scopeOf = (epoch = 0): PresignScope => ({ tenant: 'acme', keyId: 'k', version: 1, epoch, suite });
  const poolsFor = (i: number, o: { target?: number; maxPerKey?: number; maxTotal?: number } = {}) =>
    new PresignPools({ node: i, identity, loadShare: async () => copyKey(keys[i - 1]!), logger, target: 0, ...o });

  it('presigned signing: batches from two nodes, shares from each, aggregate verifies; a consumed nonce is refused', async () => {
    const p1 = poolsFor(1);
    const p2 = poolsFor(2);
    const b1 = await p1.issue(scopeOf(), 3);
    const b2 = await p2.issue(scopeOf(), 3);
    expect(b1.commitments.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(toHex(b1.poolId)).not.toBe(toHex(b2.poolId));
    const json = (i: number, b: typeof b1) => ({ suite: suiteId, node: i, tenant: 'acme', keyId: 'k', version: 1, epoch: 0, poolId: toHex(b.poolId), commitments: b.commitments.map((c) => ({ index: c.index, hiding: toHex(c.hiding), binding: toHex(c.binding) })), signature: toHex(b.signature) });
    expect(verifyPresignBatch(identity.publicKey, json(1, b1))).toBe(true);
    const message = new TextEncoder().encode('one round');
    const list = [
      { node: 1, poolId: toHex(b1.poolId), index: 1, hiding: toHex(b1.commitments[1]!.hiding), binding: toHex(b1.commitments[1]!.binding) },
      { node: 2, poolId: toHex(b2.poolId), index: 2, hiding: toHex(b2.commitments[2]!.hiding), binding: toHex(b2.commitments[2]!.binding) },
    ];
    const item = { message: toHex(message), commitments: list };
    const pkg = keys[0]!.publicKey;
    const i1 = parseItem(p1, scopeOf(), pkg, 1, item, '');
    const i2 = parseItem(p2, scopeOf(), pkg, 2, item, '');
    const [{ share: z1 }] = signWithPresignatures(p1, scopeOf(), copyKey(keys[0]!), [i1]);
    const [{ share: z2 }] = signWithPresignatures(p2, scopeOf(), copyKey(keys[1]!), [i2]);
    const shares = new Map<number, SignShareMsg>([
      [1, { share: z1! }],
      [2, { share: z2! }],
    ]);
    const signature = aggregateSignature(suite, pkg, i1.commits, message, shares);
    expect(suite.verify(signature, message, groupPublicKey(suite, pkg))).toBe(true);
    // Used: refused on reuse (check and take), and the stats say so.
    expect(codeOf(() => p1.check(scopeOf(), [i1.use]))).toBe(ErrorCode.PresignatureUnavailable);
    expect(codeOf(() => signWithPresignatures(p1, scopeOf(), copyKey(keys[0]!), [i1]))).toBe(ErrorCode.PresignatureUnavailable);
    expect(p1.stats()).toMatchObject({ pools: 1, issued: 2, used: 1 });
    // Never offered again: the next batch continues with new indexes and new commitments.
    const again = await p1.issue(scopeOf(), 2);
    expect(again.commitments.map((c) => c.index)).toEqual([3, 4]);
    const offered = new Set(b1.commitments.map((c) => toHex(c.hiding)));
    for (const c of again.commitments) expect(offered.has(toHex(c.hiding))).toBe(false);
    p1.close();
    p2.close();
  });

  it('invalid input consumes nothing: wrong own commitments, another scope, unknown pool, an entry named twice', async () => {
    const p = poolsFor(1);
    const b = await p.issue(scopeOf(), 2);
    const c0 = b.commitments[0]!;
    const use = { poolId: b.poolId, index: c0.index, hiding: c0.hiding, binding: c0.binding };
    expect(codeOf(() => p.take(scopeOf(), [{ ...use, hiding: b.commitments[1]!.hiding }]))).toBe(ErrorCode.BadInput);
    expect(codeOf(() => p.take(scopeOf(1), [use]))).toBe(ErrorCode.PresignatureUnavailable);
    expect(codeOf(() => p.take({ ...scopeOf(), version: 2 }, [use]))).toBe(ErrorCode.PresignatureUnavailable);
    expect(codeOf(() => p.take({ ...scopeOf(), tenant: 'mallory' }, [use]))).toBe(ErrorCode.PresignatureUnavailable);
    expect(codeOf(() => p.take(scopeOf(), [{ ...use, poolId: new Uint8Array(16) }]))).toBe(ErrorCode.PresignatureUnavailable);
    expect(codeOf(() => p.take(scopeOf(), [{ ...use, index: 99 }]))).toBe(ErrorCode.PresignatureUnavailable);
    // All or none: a good entry and a bad one together take neither.
    const c1 = b.commitments[1]!;
    const use1 = { poolId: b.poolId, index: c1.index, hiding: c1.hiding, binding: c1.binding };
    expect(codeOf(() => p.take(scopeOf(), [use, { ...use1, index: 77 }]))).toBe(ErrorCode.PresignatureUnavailable);
    expect(codeOf(() => p.take(scopeOf(), [use, use]))).toBe(ErrorCode.BadInput);
    expect(p.stats()).toMatchObject({ issued: 2, used: 0 });
    // Both still usable, once each.
    const [n0, n1] = p.take(scopeOf(), [use, use1]);
    expect(n0!.consumed).toBe(false);
    expect(n1!.consumed).toBe(false);
    expect(codeOf(() => p.take(scopeOf(), [use]))).toBe(ErrorCode.PresignatureUnavailable);
    p.close();
  });

  it('a ready entry that was never handed out cannot sign', async () => {
    const p = poolsFor(1, { target: 8 });
    const b = await p.issue(scopeOf(), 1);
    await new Promise((r) => setTimeout(r, 50)); // let the background refill run
    expect(p.stats().ready).toBeGreaterThan(0);
    expect(codeOf(() => p.check(scopeOf(), [{ poolId: b.poolId, index: 1, hiding: b.commitments[0]!.hiding, binding: b.commitments[0]!.binding }]))).toBe(
      ErrorCode.PresignatureUnavailable,
    );
    p.close();
  });

  it('invalidate drops every pool of the key (all versions) and wipes its nonces; other keys keep theirs', async () => {
    const p = poolsFor(1);
    const a = await p.issue(scopeOf(), 2);
    await p.issue({ ...scopeOf(), version: 2 }, 1);
    const other = await p.issue({ ...scopeOf(), keyId: 'other' }, 1);
    const c = a.commitments[0]!;
    // Hold a reference to the nonce state to see it wiped (peeked through check + the pool's own object).
    const [held] = p.take(scopeOf(), [{ poolId: a.poolId, index: c.index, hiding: c.hiding, binding: c.binding }]);
    expect(held!.hiding.some((x) => x !== 0)).toBe(true);
    const c1 = a.commitments[1]!;
    const probe = p.wipeProbe('acme', 'k');
    expect(probe.count).toBe(4); // version 1's unused entry and version 2's, two nonces each
    expect(probe.allZero()).toBe(false);
    const otherProbe = p.wipeProbe('acme', 'other');
    p.invalidate('acme', 'k');
    expect(probe.allZero()).toBe(true);
    expect(otherProbe.allZero()).toBe(false);
    expect(p.stats().pools).toBe(1);
    expect(codeOf(() => p.check(scopeOf(), [{ poolId: a.poolId, index: c1.index, hiding: c1.hiding, binding: c1.binding }]))).toBe(ErrorCode.PresignatureUnavailable);
    const oc = other.commitments[0]!;
    expect(() => p.check({ ...scopeOf(), keyId: 'other' }, [{ poolId: other.poolId, index: oc.index, hiding: oc.hiding, binding: oc.binding }])).not.toThrow();
    // A new pool for the key gets a new id.
    const fresh = await p.issue(scopeOf(), 1);
    expect(toHex(fresh.poolId)).not.toBe(toHex(a.poolId));
    const all = [p.wipeProbe('acme', 'k'), p.wipeProbe('acme', 'other')];
    p.close();
    expect(p.stats()).toMatchObject({ pools: 0, ready: 0, issued: 0 });
    for (const pr of all) expect(pr.count > 0 && pr.allZero()).toBe(true);
  });

  it('a pool whose key moved to another epoch is replaced; close wipes the nonces it held', async () => {
    let key = copyKey(keys[0]!);
    const p = new PresignPools({ node: 1, identity, loadShare: async () => copyKey(key), logger, target: 0 });
    const a = await p.issue(scopeOf(0), 1);
    // Refresh: the store now holds epoch 1; a request for epoch 1 replaces the pool.
    const refreshed = runDkg(suiteId, 2, 3)[0]!; // any share will do for the epoch test
    key = { publicKey: { ...refreshed.publicKey, epoch: 1 }, secret: { ...refreshed.secret, epoch: 1 } };
    const b = await p.issue(scopeOf(1), 1);
    expect(toHex(b.poolId)).not.toBe(toHex(a.poolId));
    const ca = a.commitments[0]!;
    expect(codeOf(() => p.check(scopeOf(0), [{ poolId: a.poolId, index: 0, hiding: ca.hiding, binding: ca.binding }]))).toBe(ErrorCode.PresignatureUnavailable);
    // A pool asked for an epoch the store does not hold gets no entries.
    await expect(p.issue(scopeOf(5), 1)).rejects.toMatchObject({ code: ErrorCode.PresignatureUnavailable });
    p.close();
    await expect(p.issue(scopeOf(1), 1)).rejects.toMatchObject({ code: ErrorCode.Unavailable });
  });

  it('caps: per key and in total; the oldest unused handed-out entries make room first', async () => {
    const p = poolsFor(1, { maxPerKey: 8, maxTotal: 12 });
    const a = await p.issue(scopeOf(), 6);
    const b = await p.issue(scopeOf(), 4); // 10 > 8: the two oldest of `a` are dropped
    expect(p.stats()).toMatchObject({ issued: 8 });
    const first = a.commitments[0]!;
    expect(codeOf(() => p.check(scopeOf(), [{ poolId: a.poolId, index: 0, hiding: first.hiding, binding: first.binding }]))).toBe(ErrorCode.PresignatureUnavailable);
    const last = a.commitments[5]!;
    expect(() => p.check(scopeOf(), [{ poolId: a.poolId, index: 5, hiding: last.hiding, binding: last.binding }])).not.toThrow();
    expect(b.commitments).toHaveLength(4);
    await p.issue({ ...scopeOf(), keyId: 'k2' }, 8); // total 16 > 12: the other pool's oldest go
    expect(p.stats().issued).toBeLessThanOrEqual(12);
    await expect(p.issue(scopeOf(), 9)).rejects.toMatchObject({ code: ErrorCode.PresignatureUnavailable });
    p.close();
  });

  it('the background refill fills to the target, in chunks, and stops at it', async () => {
    const p = poolsFor(1, { target: 40 });
    await p.issue(scopeOf(), 1);
    for (let i = 0; i < 200 && p.stats().ready < 40; i++) await new Promise((r) => setTimeout(r, 10));
    expect(p.stats()).toMatchObject({ ready: 40, issued: 1, made: 41 });
    p.close();
  });
});

describe('node/store/storage.ts onKeyChange: the one invalidation hook', () => {
  const stores = useTempStores('tessera-presign-hook-');

  it('every write of a key\'s records tells (tenant, keyId), and a pool wired to it is dropped; other writes do not', async () => {
    const store = await stores.open();
    const [k1] = runDkg('ed25519', 2, 3);
    const seen: string[] = [];
    const off = store.onKeyChange((t, k) => seen.push(`${t}/${k}`));
    const pools = new PresignPools({ node: 1, identity, loadShare: (t, k, v) => store.getShare(t, k, v), logger, target: 0 });
    store.onKeyChange((t, k) => pools.invalidate(t, k));
    const share = { publicKey: k1!.publicKey, secret: k1!.secret };
    await store.put({ tenant: 'acme', keyId: 'k', version: 1, exportable: false, share });
    expect(seen).toEqual(['acme/k']);
    const scope: PresignScope = { tenant: 'acme', keyId: 'k', version: 1, epoch: 0, suite: getSigningSuite('ed25519') };
    const b = await pools.issue(scope, 1);
    const probe = pools.wipeProbe('acme', 'k');
    await store.setState('acme', 'k', 1, 'retired');
    expect(seen).toEqual(['acme/k', 'acme/k']);
    expect(pools.stats().pools).toBe(0);
    expect(probe.count > 0 && probe.allZero()).toBe(true);
    const c = b.commitments[0]!;
    expect(codeOf(() => pools.check(scope, [{ poolId: b.poolId, index: c.index, hiding: c.hiding, binding: c.binding }]))).toBe(ErrorCode.PresignatureUnavailable);
    // Not about a key: session claims and secrets.
    await store.claimSession(new Uint8Array(16).fill(1));
    await store.putSecret('something', new Uint8Array(8));
    expect(seen).toHaveLength(2);
    // A failed write is told too (the listener cannot know what part landed).
    await expect(store.setState('acme', 'k', 1, 'retired')).rejects.toBeDefined();
    expect(seen).toHaveLength(3);
    off();
    await store.destroy('acme', 'k', 1);
    expect(seen).toHaveLength(3);
    pools.close();
  });
});
