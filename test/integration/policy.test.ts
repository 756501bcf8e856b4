/**
 * Operator policy hooks (sdk/client.ts NodeClient `approve`) against a real cluster: a refusal, or a
 * hook that throws, stops the session before any node is asked; no key is created and no signature
 * produced. Every involved hook sees the exact session request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../contract/http.js';
import type { SessionRequest } from '../../sdk/client.js';
import { bytesToHex, hexToBytes, hpkeSeal, logEntries, message32, rejectionOf, sleep, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

describe('policy hooks', () => {
  let tc: TestCluster;
  let key: KeyInfo;
  let kem: KeyInfo;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    key = await tc.cluster.keygen({ suite: 'bip340', keyId: 'policy-bip340' });
    kem = await tc.cluster.keygen({ suite: 'hpke-p256', keyId: 'policy-hpke' });
  }, 120_000);
  afterAll(async () => {
    await tc?.close();
  });

  /** How many sessions of `op` for `keyId` the nodes logged as done (node/service.ts logs one per node). */
  async function completed(op: string, keyId: string): Promise<number> {
    let n = 0;
    for (const i of [1, 2, 3]) n += (await logEntries(tc.dir, `node-${i}`, (e) => e.op === op && e.keyId === keyId && e.level === 30)).length;
    return n;
  }
  /** Sessions the coordinator saw created, in total. */
  async function sessionsCreated(): Promise<number> {
    return (await logEntries(tc.dir, 'coordinator', (e) => e.msg === 'session created')).length;
  }

  it('a refused keygen does not run: POLICY_DENIED, and no node created the key', async () => {
    const seen: SessionRequest[] = [];
    const cluster = tc.withHooks({
      1: (r) => (seen.push(r), true),
      2: (r) => (seen.push(r), false),
      3: (r) => (seen.push(r), true),
    });
    const before = await sessionsCreated();
    const e = await rejectionOf(cluster.keygen({ suite: 'ed25519', keyId: 'refused-key' }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.message).toMatch(/node 2/);
    for (const i of [1, 2, 3]) await expect(tc.client(i).getKey('refused-key')).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
    // The hooks all saw the same request; none of the nodes was asked, so no session was created.
    expect(seen).toHaveLength(3);
    await sleep(300);
    expect(await sessionsCreated()).toBe(before);
    // The same keygen, approved, works: the refusal left nothing behind (no half-joined session).
    const made = await tc.withHooks({ 2: () => true }).keygen({ suite: 'ed25519', keyId: 'refused-key' });
    expect(made.keyId).toBe('refused-key');
  });

  it('a refused sign produces no signature; a hook that throws counts as a refusal', async () => {
    const message = message32('refused');
    const signedBefore = await completed('sign', key.keyId);
    const createdBefore = await sessionsCreated();
    const refuse = await rejectionOf(tc.withHooks({ 3: async () => false }).sign({ keyId: key.keyId, message, players: [1, 3] }));
    expect(refuse.code).toBe('POLICY_DENIED');
    const thrower = await rejectionOf(
      tc.withHooks({
        1: () => {
          throw new Error('policy backend unreachable');
        },
      }).sign({ keyId: key.keyId, message, players: [1, 2] }),
    );
    expect(thrower.code).toBe('POLICY_DENIED');
    expect(thrower.message).not.toMatch(/policy backend unreachable/);
    const rejectedPromise = await rejectionOf(
      tc.withHooks({ 2: () => Promise.reject(new Error('no')) }).sign({ keyId: key.keyId, message, players: [2, 3] }),
    );
    expect(rejectedPromise.code).toBe('POLICY_DENIED');
    // Only `true` approves.
    const truthy = await rejectionOf(tc.withHooks({ 2: (() => 'yes') as never }).sign({ keyId: key.keyId, message, players: [1, 2] }));
    expect(truthy.code).toBe('POLICY_DENIED');

    await sleep(300);
    expect(await sessionsCreated(), 'no session reached the coordinator').toBe(createdBefore);
    expect(await completed('sign', key.keyId), 'no node signed').toBe(signedBefore);

    // Control: an approved sign is visible the same way (2 nodes log it), so the checks above can see one.
    const { signature } = await tc.withHooks({ 3: () => true }).sign({ keyId: key.keyId, message, players: [1, 3] });
    expect(verifySignature('bip340', hexToBytes(signature), message, hexToBytes(key.publicKey))).toBe(true);
    await sleep(300);
    expect(await completed('sign', key.keyId)).toBe(signedBefore + 2);
  });

  it('the hook sees the exact request: operation, key id, message hex, players (and the same session id at every node)', async () => {
    const seen = new Map<number, SessionRequest[]>([
      [1, []],
      [2, []],
      [3, []],
    ]);
    const record = (i: number) => (r: SessionRequest) => (seen.get(i)!.push(structuredClone(r)), true);
    const cluster = tc.withHooks({ 1: record(1), 2: record(2), 3: record(3) });

    const message = message32('exact request');
    await cluster.sign({ keyId: key.keyId, message, players: [1, 3] });
    expect(seen.get(2)).toEqual([]); // not a player, not asked
    const signReq = seen.get(1)![0]!;
    expect(signReq).toEqual({ operation: 'sign', sessionId: expect.stringMatching(/^[0-9a-f]{32}$/), keyId: key.keyId, message: bytesToHex(message), players: [1, 3] });
    expect(seen.get(3)).toEqual([signReq]);

    const sealed = await hpkeSeal(kem.suite, hexToBytes(kem.publicKey), new TextEncoder().encode('x'));
    await cluster.decapsulate({ keyId: kem.keyId, enc: sealed.enc, players: [2, 3] });
    const decapReq = seen.get(2)![0]!;
    expect(decapReq).toEqual({
      operation: 'decapsulate',
      sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
      keyId: kem.keyId,
      enc: bytesToHex(sealed.enc),
      players: [2, 3],
      receiverPublicKey: expect.stringMatching(/^[0-9a-f]{2368}$/), // ML-KEM-768 encapsulation key
    });
    expect(seen.get(3)![1]).toEqual(decapReq);

    await cluster.keygen({ suite: 'p256', keyId: 'policy-seen-keygen', threshold: 2 });
    const keygenReq = seen.get(1)![1]!;
    expect(keygenReq).toEqual({
      operation: 'keygen',
      sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
      keyId: 'policy-seen-keygen',
      suite: 'p256',
      threshold: 2,
      exportable: false,
    });
    expect(seen.get(2)![1]).toEqual(keygenReq);
    expect(seen.get(3)![2]).toEqual(keygenReq);

    await cluster.refresh({ keyId: 'policy-seen-keygen' });
    const refreshReq = seen.get(1)![2]!;
    expect(refreshReq).toEqual({ operation: 'refresh', sessionId: expect.stringMatching(/^[0-9a-f]{32}$/), keyId: 'policy-seen-keygen' });
    expect(seen.get(2)![2]).toEqual(refreshReq);
    expect(seen.get(3)![3]).toEqual(refreshReq);
    // Each operation ran under its own session id.
    expect(new Set([signReq, decapReq, keygenReq, refreshReq].map((r) => r.sessionId)).size).toBe(4);
  }, 60_000);
});
