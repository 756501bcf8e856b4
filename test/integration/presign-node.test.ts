/**
 * One-round signing from presignatures on a real 2-of-3 cluster (node processes, coordinator, LevelDB
 * stores), driven with raw HTTP (the routes of contract/http.ts), the signature aggregated with
 * core/sign.ts aggregateSignature and verified independently:
 * - presigned signing works (ed25519, secp256k1); sign-batch returns one share per item, in order,
 *   and audits every message;
 * - a consumed nonce is never offered again and is refused on reuse; after a node restart the old pool
 *   is refused and new batches have new ids and commitments; after a restore of a data-directory copy
 *   no previously offered commitment is accepted or offered again;
 * - a refresh, a rotate and a retire invalidate the key's pools;
 * - an SDK sending different lists (or messages) to different players gets shares that do not
 *   aggregate, and every nonce it used is consumed (a replay with the "right" list is refused);
 * - invalid input gets a clear 4xx and consumes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fromHex, toHex } from '../../core/bytes.js';
import { presignRef, verifyPresignBatch } from '../../core/presign.js';
import { aggregateSignature } from '../../core/sign.js';
import { getSigningSuite } from '../../core/suites.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import type { PresignaturesResponse, PresignedCommitmentJson, SignBatchResponse, SignShareResponse } from '../../contract/http.js';
import { packageFromJson } from '../../sdk/client.js';
import { message32, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

interface Reply<T> {
  status: number;
  json: T & { code?: string; message?: string };
}

describe('presigned signing on a real cluster', () => {
  let tc: TestCluster;
  const identity = new Map<number, Uint8Array>();
  /** Every commitment (hiding, hex) any node ever offered in this test: none may be offered twice. */
  const offered = new Set<string>();

  async function post<T>(node: number, path: string, body: unknown): Promise<Reply<T>> {
    const n = tc.dev.cluster.nodes[node - 1]!;
    const res = await fetch(`${n.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${n.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Reply<T>['json'] };
  }

  /** A batch from one node, its signature checked under the node's identity; every commitment new. */
  async function presign(node: number, keyId: string, count: number, version?: number): Promise<PresignaturesResponse> {
    const r = await post<PresignaturesResponse>(node, `/v1/keys/${keyId}/presignatures`, { count, ...(version !== undefined ? { version } : {}) });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.tenant).toBe('default');
    expect(r.json.node).toBe(node);
    expect(r.json.commitments).toHaveLength(count);
    expect(verifyPresignBatch(identity.get(node)!, r.json)).toBe(true);
    for (const c of r.json.commitments) {
      expect(offered.has(c.hiding), `node ${node} offered a commitment twice`).toBe(false);
      offered.add(c.hiding);
    }
    return r.json;
  }

  const entry = (b: PresignaturesResponse, k: number): PresignedCommitmentJson => ({ node: b.node, poolId: b.poolId, index: b.commitments[k]!.index, hiding: b.commitments[k]!.hiding, binding: b.commitments[k]!.binding });

  const signShare = (node: number, keyId: string, body: { message: string; commitments: PresignedCommitmentJson[]; version: number; epoch: number }) =>
    post<SignShareResponse>(node, `/v1/keys/${keyId}/sign-share`, body);

  async function keyInfo(keyId: string, version?: number) {
    return tc.cluster.getKey(keyId, version);
  }

  /** Aggregate with core/sign.ts (it verifies every share and the signature); throws if they do not combine. */
  function aggregate(info: Awaited<ReturnType<typeof keyInfo>>, list: PresignedCommitmentJson[], message: Uint8Array, shares: Map<number, string>): Uint8Array {
    const suite = getSigningSuite(info.suite);
    const commits = new Map<number, SignCommitMsg>(list.map((e) => [e.node, { hiding: fromHex(e.hiding, 'hiding'), binding: fromHex(e.binding, 'binding') }]));
    const z = new Map<number, SignShareMsg>([...shares].map(([i, s]) => [i, { share: fromHex(s, 'share') }]));
    return aggregateSignature(suite, packageFromJson(info.publicPackage), commits, message, z);
  }

  /** Sign one message with one presignature of each of `nodes` (batches fetched now), and check the signature. */
  async function signOnce(keyId: string, nodes: number[], label: string): Promise<void> {
    const info = await keyInfo(keyId);
    const batches = await Promise.all(nodes.map((i) => presign(i, keyId, 1)));
    const list = batches.map((b) => entry(b, 0));
    const message = message32(label);
    const replies = await Promise.all(nodes.map((i) => signShare(i, keyId, { message: toHex(message), commitments: list, version: info.version, epoch: info.epoch })));
    for (const r of replies) expect(r.status, JSON.stringify(r.json)).toBe(200);
    const signature = aggregate(info, list, message, new Map(replies.map((r) => [r.json.node, r.json.share])));
    expect(verifySignature(info.suite, signature, message, fromHex(info.publicKey, 'publicKey'))).toBe(true);
  }

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2, logLevel: 'warn' });
    for (const n of tc.dev.cluster.nodes) identity.set(n.index, fromHex((await tc.client(n.index).info()).identityPublicKey, 'identity'));
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'ps-ed' });
    await tc.cluster.keygen({ suite: 'secp256k1', keyId: 'ps-k1' });
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('signs in one round (ed25519, secp256k1); a used presignature is refused and never offered again', async () => {
    await signOnce('ps-ed', [1, 2], 'ed one round');
    await signOnce('ps-k1', [2, 3], 'k1 one round');

    const info = await keyInfo('ps-ed');
    const [b1, b3] = await Promise.all([presign(1, 'ps-ed', 3), presign(3, 'ps-ed', 3)]);
    const list = [entry(b1, 1), entry(b3, 2)];
    const message = toHex(message32('reuse'));
    const body = { message, commitments: list, version: info.version, epoch: info.epoch };
    const first = await Promise.all([signShare(1, 'ps-ed', body), signShare(3, 'ps-ed', body)]);
    for (const r of first) expect(r.status).toBe(200);
    expect(aggregate(info, list, message32('reuse'), new Map(first.map((r) => [r.json.node, r.json.share])))).toBeInstanceOf(Uint8Array);
    // The same request again: refused, nothing signed.
    for (const node of [1, 3]) {
      const again = await signShare(node, 'ps-ed', body);
      expect(again.status).toBe(409);
      expect(again.json.code).toBe('PRESIGNATURE_UNAVAILABLE');
      expect(again.json.message).toMatch(/already used or never handed out/);
    }
    // An entry never handed out (the next index) is refused too.
    const guess = { ...entry(b1, 2), index: b1.commitments[2]!.index + 1 };
    expect((await signShare(1, 'ps-ed', { ...body, commitments: [guess, entry(b3, 0)] })).status).toBe(409);
    // New batches continue with new entries (presign() checks none was offered before).
    const next = await presign(1, 'ps-ed', 4);
    expect(next.poolId).toBe(b1.poolId);
    expect(Math.min(...next.commitments.map((c) => c.index))).toBeGreaterThan(Math.max(...b1.commitments.map((c) => c.index)));
  });

  it('sign-batch: one share per item, in order, each aggregating; one audit entry per message and outcome', async () => {
    const info = await keyInfo('ps-ed');
    const n = 5;
    const [b1, b2] = await Promise.all([presign(1, 'ps-ed', n), presign(2, 'ps-ed', n)]);
    const items = Array.from({ length: n }, (_, k) => ({ message: toHex(message32(`batch ${k}`)), commitments: [entry(b1, k), entry(b2, k)] }));
    const body = { keyId: 'ps-ed', version: info.version, epoch: info.epoch, items };
    const [r1, r2] = await Promise.all([post<SignBatchResponse>(1, '/v1/sign-batch', body), post<SignBatchResponse>(2, '/v1/sign-batch', body)]);
    expect(r1.status, JSON.stringify(r1.json)).toBe(200);
    expect(r2.status, JSON.stringify(r2.json)).toBe(200);
    expect(r1.json.shares).toHaveLength(n);
    for (let k = 0; k < n; k++) {
      const sig = aggregate(info, items[k]!.commitments, message32(`batch ${k}`), new Map([[1, r1.json.shares[k]!], [2, r2.json.shares[k]!]]));
      expect(verifySignature('ed25519', sig, message32(`batch ${k}`), fromHex(info.publicKey, 'pk'))).toBe(true);
    }
    // Shares out of order do not aggregate (each is bound to its own message and list).
    expect(() => aggregate(info, items[0]!.commitments, message32('batch 0'), new Map([[1, r1.json.shares[1]!], [2, r2.json.shares[0]!]]))).toThrow();
    // The audit log of node 1: for every message one 'sign' ok entry (a one-shot local operation), named by the presignature it used.
    const log = (await (await fetch(`${tc.dev.cluster.nodes[0]!.url}/v1/admin/audit`, { headers: { authorization: `Bearer ${tc.dev.cluster.nodes[0]!.apiKey}` } })).json()) as { entries: string[] };
    const entries = log.entries.map((e) => JSON.parse(e) as { operation: string; outcome: string; sessionId?: string; keyId?: string });
    for (let k = 0; k < n; k++) {
      const ref = toHex(presignRef(fromHex(b1.poolId, 'pool'), b1.commitments[k]!.index));
      const mine = entries.filter((e) => e.sessionId === ref);
      expect(mine.map((e) => `${e.operation}:${e.outcome}:${e.keyId}`)).toEqual(['sign:ok:ps-ed']);
    }
    // The batch is all or nothing: one used entry refuses it, and the fresh entries stay usable.
    const [c1, c2] = await Promise.all([presign(1, 'ps-ed', 1), presign(2, 'ps-ed', 1)]);
    const mixed = { ...body, items: [{ message: toHex(message32('fresh')), commitments: [entry(c1, 0), entry(c2, 0)] }, items[0]!] };
    const refused = await post<SignBatchResponse>(1, '/v1/sign-batch', mixed);
    expect(refused.status).toBe(409);
    const fresh = await signShare(1, 'ps-ed', { ...mixed.items[0]!, version: info.version, epoch: info.epoch });
    expect(fresh.status, JSON.stringify(fresh.json)).toBe(200);
  });

  it('a malicious SDK sending different lists or messages to the players gets shares that do not aggregate, and every nonce it used is gone', async () => {
    const info = await keyInfo('ps-ed');
    const [b1, b2, b3] = await Promise.all([presign(1, 'ps-ed', 2), presign(2, 'ps-ed', 2), presign(3, 'ps-ed', 2)]);
    const at = entry;
    const m = toHex(message32('malicious'));
    // Different lists: node 1 is asked over {1, 2}, node 2 over {1, 2, 3}.
    const l1 = [at(b1, 0), at(b2, 0)];
    const l2 = [at(b1, 0), at(b2, 0), at(b3, 0)];
    const s1 = await signShare(1, 'ps-ed', { message: m, commitments: l1, version: info.version, epoch: info.epoch });
    const s2 = await signShare(2, 'ps-ed', { message: m, commitments: l2, version: info.version, epoch: info.epoch });
    expect([s1.status, s2.status]).toEqual([200, 200]);
    const shares = new Map([[1, s1.json.share], [2, s2.json.share]]);
    expect(() => aggregate(info, l1, message32('malicious'), shares)).toThrow(/BAD_SIGNATURE_SHARE|do not verify/);
    // Replays with the "right" list are refused: the nonces are gone.
    expect((await signShare(1, 'ps-ed', { message: m, commitments: l2, version: info.version, epoch: info.epoch })).json.code).toBe('PRESIGNATURE_UNAVAILABLE');
    expect((await signShare(2, 'ps-ed', { message: m, commitments: l1, version: info.version, epoch: info.epoch })).json.code).toBe('PRESIGNATURE_UNAVAILABLE');
    // Different messages over one list: no signature for either message, and no replay.
    const l = [at(b1, 1), at(b2, 1)];
    const ma = toHex(message32('pay alice'));
    const mb = toHex(message32('pay mallory'));
    const t1 = await signShare(1, 'ps-ed', { message: ma, commitments: l, version: info.version, epoch: info.epoch });
    const t2 = await signShare(2, 'ps-ed', { message: mb, commitments: l, version: info.version, epoch: info.epoch });
    const z = new Map([[1, t1.json.share], [2, t2.json.share]]);
    expect(() => aggregate(info, l, message32('pay alice'), z)).toThrow();
    expect(() => aggregate(info, l, message32('pay mallory'), z)).toThrow();
    expect((await signShare(2, 'ps-ed', { message: ma, commitments: l, version: info.version, epoch: info.epoch })).json.code).toBe('PRESIGNATURE_UNAVAILABLE');
    expect((await signShare(1, 'ps-ed', { message: mb, commitments: l, version: info.version, epoch: info.epoch })).json.code).toBe('PRESIGNATURE_UNAVAILABLE');
  });

  it('invalid input gets a clear 4xx and consumes nothing', async () => {
    const info = await keyInfo('ps-k1');
    const [b1, b2] = await Promise.all([presign(1, 'ps-k1', 2), presign(2, 'ps-k1', 2)]);
    const good = [entry(b1, 0), entry(b2, 0)];
    const message = toHex(message32('invalid'));
    const base = { message, commitments: good, version: info.version, epoch: info.epoch };
    const badPoint = '02' + 'ff'.repeat(32); // x >= p: not on the curve
    const cases: [string, unknown, number, RegExp][] = [
      ['bad point (another node)', { ...base, commitments: [good[0], { ...good[1]!, hiding: badPoint }] }, 400, /BAD_POINT/],
      ['bad point (own)', { ...base, commitments: [{ ...good[0]!, binding: badPoint }, good[1]] }, 400, /BAD_POINT/],
      ['duplicate node', { ...base, commitments: [good[0], { ...good[1]!, node: 1 }] }, 400, /BAD_INPUT/],
      ['node outside 1..3', { ...base, commitments: [good[0], { ...good[1]!, node: 4 }] }, 400, /UNEXPECTED_PARTY/],
      ['too few signers', { ...base, commitments: [good[0]] }, 400, /BAD_INPUT/],
      ['own entry missing', { ...base, commitments: [good[1], { ...entry(b2, 1), node: 3 }] }, 400, /BAD_PARAMETERS/],
      ['own entry mismatch', { ...base, commitments: [{ ...good[0]!, hiding: b1.commitments[1]!.hiding }, good[1]] }, 400, /BAD_INPUT/],
      ['own entry swapped', { ...base, commitments: [{ ...good[0]!, index: b1.commitments[1]!.index }, good[1]] }, 400, /BAD_INPUT/],
      ['wrong epoch', { ...base, epoch: info.epoch + 1 }, 409, /PRESIGNATURE_UNAVAILABLE/],
      ['wrong version', { ...base, version: info.version + 1 }, 404, /NOT_FOUND/],
      ['bad message hex', { ...base, message: 'zz' }, 400, /BAD_INPUT/],
      ['unknown field', { ...base, extra: 1 }, 400, /BAD_INPUT/],
    ];
    for (const [what, body, status, code] of cases) {
      const r = await signShare(1, 'ps-k1', body as never);
      expect(r.status, `${what}: ${JSON.stringify(r.json)}`).toBe(status);
      expect(`${r.json.code}: ${r.json.message}`, what).toMatch(code);
    }
    // A key of another suite, a missing key.
    expect((await post(1, '/v1/keys/no-such-key/sign-share', base)).status).toBe(404);
    expect((await post(1, '/v1/keys/ps-k1/presignatures', { count: 0 })).status).toBe(400);
    expect((await post(1, '/v1/keys/no-such-key/presignatures', { count: 1 })).status).toBe(404);
    // Nothing was consumed: both entries still sign, and aggregate.
    const replies = await Promise.all([signShare(1, 'ps-k1', base), signShare(2, 'ps-k1', base)]);
    for (const r of replies) expect(r.status, JSON.stringify(r.json)).toBe(200);
    aggregate(info, good, message32('invalid'), new Map(replies.map((r) => [r.json.node, r.json.share])));
  });

  it('a 3-of-3 key refuses a list below its threshold (nothing consumed)', async () => {
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'ps-t3', threshold: 3 });
    const info = await keyInfo('ps-t3');
    const bs = await Promise.all([1, 2, 3].map((i) => presign(i, 'ps-t3', 1)));
    const message = toHex(message32('t3'));
    const short = await signShare(1, 'ps-t3', { message, commitments: [entry(bs[0]!, 0), entry(bs[1]!, 0)], version: info.version, epoch: info.epoch });
    expect(short.status).toBe(400);
    expect(short.json.code).toBe('BAD_PARAMETERS');
    const list = bs.map((b) => entry(b, 0));
    const replies = await Promise.all([1, 2, 3].map((i) => signShare(i, 'ps-t3', { message, commitments: list, version: info.version, epoch: info.epoch })));
    const sig = aggregate(info, list, message32('t3'), new Map(replies.map((r) => [r.json.node, r.json.share])));
    expect(verifySignature('ed25519', sig, message32('t3'), fromHex(info.publicKey, 'pk'))).toBe(true);
  });

  it('a refresh, a rotate and a retire invalidate the key\'s pools', async () => {
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'ps-life' });
    // Refresh: old entries refused (old and new epoch alike); new batches have a new pool at the new epoch.
    let info = await keyInfo('ps-life');
    let [b1, b2] = await Promise.all([presign(1, 'ps-life', 2), presign(2, 'ps-life', 2)]);
    await tc.cluster.refresh({ keyId: 'ps-life' });
    const after = await keyInfo('ps-life');
    expect(after.epoch).toBe(info.epoch + 1);
    const message = toHex(message32('life'));
    for (const epoch of [info.epoch, after.epoch]) {
      const r = await signShare(1, 'ps-life', { message, commitments: [entry(b1, 0), entry(b2, 0)], version: info.version, epoch });
      expect(r.status).toBe(409);
      expect(r.json.code).toBe('PRESIGNATURE_UNAVAILABLE');
    }
    const nb = await presign(1, 'ps-life', 1);
    expect(nb.poolId).not.toBe(b1.poolId);
    expect(nb.epoch).toBe(after.epoch);
    await signOnce('ps-life', [1, 3], 'after refresh');

    // Retire (then activate again): the pools fetched before are gone.
    info = await keyInfo('ps-life');
    [b1, b2] = await Promise.all([presign(1, 'ps-life', 1), presign(2, 'ps-life', 1)]);
    await tc.cluster.setState({ keyId: 'ps-life', version: 1, state: 'retired' });
    expect((await post(1, '/v1/keys/ps-life/presignatures', { count: 1, version: 1 })).status).toBe(400); // retired: no signing
    await tc.cluster.setState({ keyId: 'ps-life', version: 1, state: 'active' });
    const r = await signShare(1, 'ps-life', { message, commitments: [entry(b1, 0), entry(b2, 0)], version: info.version, epoch: info.epoch });
    expect(r.json.code).toBe('PRESIGNATURE_UNAVAILABLE');
    expect(r.json.message).toMatch(/no presignature pool/);

    // Rotate retires version 1 and makes version 2; activating version 1 again shows its pool was dropped.
    [b1, b2] = await Promise.all([presign(1, 'ps-life', 1), presign(2, 'ps-life', 1)]);
    await tc.cluster.rotate({ keyId: 'ps-life' });
    await tc.cluster.setState({ keyId: 'ps-life', version: 1, state: 'active' });
    const r2 = await signShare(2, 'ps-life', { message, commitments: [entry(b1, 0), entry(b2, 0)], version: 1, epoch: info.epoch });
    expect(r2.json.code).toBe('PRESIGNATURE_UNAVAILABLE');
    const v2 = await presign(1, 'ps-life', 1);
    expect(v2.version).toBe(2);
    await signOnce('ps-life', [1, 2], 'version 2');
  });

  it('after a restart the old pool is refused and new batches have new ids; after a data-directory restore no previously offered commitment is accepted or offered again', async () => {
    const info = await keyInfo('ps-ed');
    const nodeDir = join(tc.dir, 'node-2');
    const backup = join(tc.dir, 'node-2.presign-backup');
    const [b3, before] = await Promise.all([presign(3, 'ps-ed', 1), presign(2, 'ps-ed', 3)]); // offered before the backup
    // A restart (the backup is taken while node 2 is stopped).
    await tc.dev.kill(2);
    await cp(nodeDir, backup, { recursive: true });
    await tc.restart(2);
    const restarted = await signShare(2, 'ps-ed', { message: toHex(message32('restart')), commitments: [entry(before, 1), entry(b3, 0)], version: info.version, epoch: info.epoch });
    expect(restarted.status).toBe(409);
    expect(restarted.json.message).toMatch(/no presignature pool/);
    // Run on: more batches (a new pool, new nonces: presign() checks none was offered before), some used.
    const [b1, during] = await Promise.all([presign(1, 'ps-ed', 2), presign(2, 'ps-ed', 3)]);
    expect(during.poolId).not.toBe(before.poolId);
    expect(during.commitments[0]!.index).toBe(0);
    // Node 3 was not asked about its entry: still good, with a new one of node 2.
    {
      const list = [entry(during, 2), entry(b3, 0)];
      const m = toHex(message32('after restart'));
      const rs = await Promise.all([signShare(2, 'ps-ed', { message: m, commitments: list, version: info.version, epoch: info.epoch }), signShare(3, 'ps-ed', { message: m, commitments: list, version: info.version, epoch: info.epoch })]);
      for (const x of rs) expect(x.status, JSON.stringify(x.json)).toBe(200);
      aggregate(info, list, message32('after restart'), new Map(rs.map((x) => [x.json.node, x.json.share])));
    }
    const message = toHex(message32('before restore'));
    const list = [entry(b1, 0), entry(during, 0)];
    const used = await Promise.all([signShare(1, 'ps-ed', { message, commitments: list, version: info.version, epoch: info.epoch }), signShare(2, 'ps-ed', { message, commitments: list, version: info.version, epoch: info.epoch })]);
    for (const x of used) expect(x.status).toBe(200);
    // Stop, put the old data dir back, start.
    await tc.dev.kill(2);
    await rm(nodeDir, { recursive: true, force: true });
    await cp(backup, nodeDir, { recursive: true });
    await tc.restart(2);
    // Nothing offered before is accepted: not the used entry, not the unused ones, from either batch.
    for (const [b, k] of [[before, 0], [before, 2], [during, 0], [during, 1]] as const) {
      const r = await signShare(2, 'ps-ed', { message: toHex(message32(`restored ${k}`)), commitments: [entry(b1, 1), entry(b, k)], version: info.version, epoch: info.epoch });
      expect(r.status, JSON.stringify(r.json)).toBe(409);
      expect(r.json.code).toBe('PRESIGNATURE_UNAVAILABLE');
    }
    // Nothing offered before is offered again (presign() checks every commitment against all ever offered).
    const fresh = await presign(2, 'ps-ed', 8);
    expect([before.poolId, during.poolId]).not.toContain(fresh.poolId);
    await signOnce('ps-ed', [1, 2], 'after restore');
  });
});
