/**
 * Threshold decapsulation in one round (issue 10 item 4), on a real 2-of-3 cluster: each player, asked
 * by its operator's SDK, returns its DLEQ-proved partial HPKE-wrapped to the SDK's receiver key, with no
 * coordinator session and no relay; the SDK asks the t players in parallel and combines.
 *
 * - one SDK round trip: one POST per player and no other request (the key record is cached by the SDK);
 * - works with the coordinator stopped (nothing is relayed);
 * - a node checks the request: it must be among the players, the key must allow decapsulation;
 * - what a node releases alone is useless: one wrapped partial opens only with the receiver's key and
 *   binding, and one partial does not combine; partials made for different requests (session ids)
 *   do not combine either, and a bad partial is named (BAD_PROOF, culprits);
 * - each node audits the operation (one entry: its outcome, a one-shot local operation) under the SDK's session id;
 * - a player that missed a refresh commit is handed the certificate by the SDK and the call succeeds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecapsulateResponse, KeyInfo } from '../../contract/http.js';
import { toHex } from '../../core/bytes.js';
import { encodeCertificate } from '../../core/commit.js';
import { decapCombine } from '../../core/decap.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { Operation } from '../../core/session.js';
import { decapPartialBinding } from '../../core/session.js';
import { getKemSuite } from '../../core/suites.js';
import { decodeMessage } from '../../core/wire.js';
import { generateWrappingKeyPair, openFromSender, type WrappingKeyPair } from '../../core/wrap.js';
import { Cluster, NodeClient, newSessionId, packageFromJson, type SessionRequest } from '../../sdk/client.js';
import { bytesToHex, hexToBytes, hpkeOpenWithSecret, hpkeSeal, rejectionOf, sleep, startTestCluster, waitFor, type TestCluster } from '../helpers/cluster.js';

describe('decapsulation in one round (2-of-3)', () => {
  let tc: TestCluster;
  let key: KeyInfo;
  const requests: { node: number; method: string; path: string }[] = [];
  let counted: Cluster;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    key = await tc.cluster.keygen({ suite: 'hpke-x25519', keyId: 'one-round', threshold: 2 });
    counted = new Cluster(
      tc.dev.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, onRequest: (r) => requests.push({ node: n.index, method: r.method, path: r.path }) })),
      { threshold: 2 },
    );
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
  });

  async function allOnline(): Promise<void> {
    await tc.dev.ready(60_000);
    await waitFor(
      'every node to see every other online',
      async () => {
        for (const i of [1, 2, 3]) {
          const info = await tc.client(i).info().catch(() => undefined);
          if (!info || ![1, 2, 3].every((j) => info.online.includes(j))) return false;
        }
        return true;
      },
      30_000,
      50,
    );
  }

  async function decapsulatesWith(cluster: Cluster, players: number[], label: string): Promise<void> {
    const plaintext = new TextEncoder().encode(label);
    const sealed = await hpkeSeal(key.suite, hexToBytes(key.publicKey), plaintext);
    const { sharedSecret, version } = await cluster.decapsulate({ keyId: key.keyId, enc: sealed.enc, players });
    expect(version).toBe(1);
    expect(bytesToHex(hpkeOpenWithSecret(key.suite, hexToBytes(sharedSecret), sealed))).toBe(bytesToHex(plaintext));
  }

  /** One node asked directly, as its operator's SDK would, for a partial wrapped to `receiver`. */
  function askNode(node: number, o: { sessionId: string; enc: Uint8Array; players: number[]; receiver: WrappingKeyPair }): Promise<DecapsulateResponse> {
    const request: SessionRequest = {
      operation: 'decapsulate',
      sessionId: o.sessionId,
      keyId: key.keyId,
      enc: toHex(o.enc),
      players: o.players,
      receiverPublicKey: toHex(o.receiver.publicKey),
    };
    return tc.client(node).join<DecapsulateResponse>(request);
  }

  async function unwrap(r: DecapsulateResponse, receiver: WrappingKeyPair, sessionId: string, index = r.index) {
    const plaintext = await openFromSender(
      receiver,
      { kem: r.wrappedPartial.kem, enc: hexToBytes(r.wrappedPartial.enc), ciphertext: hexToBytes(r.wrappedPartial.ciphertext) },
      decapPartialBinding(hexToBytes(sessionId), key.keyId, r.version, index),
    );
    return decodeMessage(plaintext, 'decap/partial', getKemSuite(key.suite).id);
  }

  it('is one SDK round trip: one request per player, nothing else, and every pair opens what an @hpke/core sender sealed', async () => {
    await decapsulatesWith(counted, [1, 2], 'warm-up'); // looks the key record up once
    for (const players of [
      [1, 2],
      [2, 3],
      [3, 1],
    ]) {
      requests.length = 0;
      await decapsulatesWith(counted, players, `pair ${players.join(',')}`);
      expect(requests.map((r) => `${r.node} ${r.method} ${r.path}`).sort()).toEqual(players.map((i) => `${i} POST /v1/keys/one-round/decapsulate`).sort());
    }
  });

  it('needs no coordinator: with the coordinator stopped, decapsulation still works', async () => {
    await tc.dev.kill(0);
    try {
      await decapsulatesWith(tc.cluster, [1, 3], 'no relay');
      await decapsulatesWith(tc.cluster, [2, 3], 'no relay either');
    } finally {
      await tc.restart(0);
    }
  });

  it('a node checks the request: it must be among the players; what it releases alone is useless; each node audits it', async () => {
    const sealed = await hpkeSeal(key.suite, hexToBytes(key.publicKey), new TextEncoder().encode('alone'));
    const receiver = await generateWrappingKeyPair('ml-kem-768');
    const other = await generateWrappingKeyPair('ml-kem-768');
    const sessionId = newSessionId();
    // Not among the players: refused before any share is read.
    expect(await rejectionOf(askNode(3, { sessionId, enc: sealed.enc, players: [1, 2], receiver }))).toMatchObject({ code: 'BAD_PARAMETERS', status: 400 });

    const r1 = await askNode(1, { sessionId, enc: sealed.enc, players: [1, 2], receiver });
    expect(r1).toMatchObject({ keyId: key.keyId, version: 1, index: 1, publicPackage: key.publicPackage });
    // Wrapped to the receiver named in the request, bound to the session id, version and sender index.
    await expect(unwrap(r1, other, sessionId)).rejects.toThrow();
    await expect(unwrap(r1, receiver, newSessionId())).rejects.toThrow();
    await expect(unwrap(r1, receiver, sessionId, 2)).rejects.toThrow();
    const p1 = await unwrap(r1, receiver, sessionId);
    // One partial (t = 2) does not combine.
    const suite = getKemSuite(key.suite);
    const pkg = packageFromJson(key.publicPackage);
    expect(() => decapCombine(suite, pkg, sealed.enc, new Map([[1, p1]]), hexToBytes(sessionId))).toThrow(/need at least 2/);

    // The second player, asked for the same request: the two combine.
    const r2 = await askNode(2, { sessionId, enc: sealed.enc, players: [1, 2], receiver });
    const p2 = await unwrap(r2, receiver, sessionId);
    const secret = decapCombine(suite, pkg, sealed.enc, new Map([[1, p1], [2, p2]]), hexToBytes(sessionId));
    expect(new TextDecoder().decode(hpkeOpenWithSecret(key.suite, secret, sealed))).toBe('alone');

    // Each asked node audited the operation under the SDK's session id; the node not asked holds no entry for it.
    for (const node of [1, 2, 3]) {
      const entries = (await tc.client(node).auditLog()).entries.filter((e) => e.sessionId === sessionId);
      const outcomes = entries.map((e) => `${e.operation}:${e.outcome}`);
      if (node === 3) expect(outcomes).toEqual(['decapsulate:failed']); // its refusal above
      else expect(outcomes).toEqual(['decapsulate:ok']);
    }
  });

  it('partials made for different requests do not combine, and a bad partial is named', async () => {
    const sealed = await hpkeSeal(key.suite, hexToBytes(key.publicKey), new TextEncoder().encode('mixed'));
    const receiver = await generateWrappingKeyPair('ml-kem-768');
    const [a, b] = [newSessionId(), newSessionId()];
    const pa = await unwrap(await askNode(1, { sessionId: a, enc: sealed.enc, players: [1, 2], receiver }), receiver, a);
    const pb = await unwrap(await askNode(2, { sessionId: b, enc: sealed.enc, players: [1, 2], receiver }), receiver, b);
    const suite = getKemSuite(key.suite);
    const pkg = packageFromJson(key.publicPackage);
    const culpritsOf = (f: () => unknown): readonly number[] => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(TesseraError);
        expect((e as TesseraError).code).toBe(ErrorCode.BadProof);
        return (e as TesseraError).culprits;
      }
      throw new Error('expected BAD_PROOF');
    };
    // Under request a's session id, node 2's partial (proved for request b) fails its proof, and vice versa.
    expect(culpritsOf(() => decapCombine(suite, pkg, sealed.enc, new Map([[1, pa], [2, pb]]), hexToBytes(a)))).toEqual([2]);
    expect(culpritsOf(() => decapCombine(suite, pkg, sealed.enc, new Map([[1, pa], [2, pb]]), hexToBytes(b)))).toEqual([1]);
    // A partial changed on the way (or computed wrongly) is named by its proof.
    const bad = { ...pa, partial: Uint8Array.from(pb.partial) };
    const pa2 = await unwrap(await askNode(2, { sessionId: a, enc: sealed.enc, players: [1, 2], receiver }), receiver, a);
    expect(culpritsOf(() => decapCombine(suite, pkg, sealed.enc, new Map([[1, bad], [2, pa2]]), hexToBytes(a)))).toEqual([1]);
  });

  it('a player that missed a refresh commit is handed its certificate by the SDK, and the decapsulation succeeds', async () => {
    const kem = await tc.cluster.keygen({ suite: 'hpke-p256', keyId: 'behind', threshold: 2 });
    // Node 2 stages the refresh, releases its vote and dies before sending it: nobody can commit yet.
    await tc.dev.kill(2);
    tc.dev.start(2, { TESSERA_FAULT_POINTS: 'commit-after-release' });
    await allOnline();
    await rejectionOf(tc.cluster.refresh({ keyId: 'behind' }));
    await waitFor('node 2 to crash at its fault point', () => tc.dev.pid(2) === undefined, 10_000);
    tc.dev.start(2, {});
    await allOnline();
    // The certificate from every node's stored vote (as repair assembles it), handed to nodes 1 and 3 only.
    let staged: { sessionId: string; operation: string; tenant: string; version: number; resultDigest: string } | undefined;
    for (let i = 0; i < 200 && !staged; i++) {
      const st = await Promise.all([1, 2, 3].map((n) => tc.client(n).commitStatus('behind')));
      if (st.every((s) => s.staged?.released && s.staged.sessionId === st[0]!.staged!.sessionId)) staged = st[0]!.staged!;
      else await sleep(50);
    }
    expect(staged).toBeDefined();
    const attestations = await Promise.all([1, 2, 3].map((n) => tc.client(n).attestStaged('behind', staged!.sessionId)));
    const list = attestations.map((a) => ({ node: a.node, attestation: a.attestation }));
    const votes = await Promise.all([1, 2, 3].map((n) => tc.client(n).releaseVote('behind', staged!.sessionId, list)));
    const certificate = encodeCertificate({
      session: hexToBytes(staged!.sessionId),
      operation: staged!.operation as Operation,
      tenant: staged!.tenant,
      keyId: 'behind',
      version: staged!.version,
      resultDigest: hexToBytes(staged!.resultDigest),
      votes: new Map(votes.map((v) => [v.node, hexToBytes(v.vote)] as const)),
    });
    for (const n of [1, 3]) await tc.client(n).repair('behind', toHex(certificate));
    const epochs = await Promise.all([1, 2, 3].map(async (n) => (await tc.client(n).getKey('behind')).epoch));
    expect(epochs).toEqual([1, 0, 1]);

    const plaintext = new TextEncoder().encode('caught up');
    const sealed = await hpkeSeal(kem.suite, hexToBytes(kem.publicKey), plaintext);
    requests.length = 0;
    const { sharedSecret } = await counted.decapsulate({ keyId: 'behind', enc: sealed.enc, players: [1, 2] });
    expect(bytesToHex(hpkeOpenWithSecret(kem.suite, hexToBytes(sharedSecret), sealed))).toBe(bytesToHex(plaintext));
    // The SDK handed node 2 the certificate (from node 1's commit status) and asked again.
    expect(requests.filter((r) => r.method === 'POST' && r.path === '/v1/keys/behind/repair').map((r) => r.node)).toEqual([2]);
    expect((await tc.client(2).getKey('behind')).epoch).toBe(1);
  });
});
