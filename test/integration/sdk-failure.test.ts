/**
 * The SDK under failure (issue 11 item 5), on a real 2-of-3 dev cluster:
 * - with node 1 stopped, default sign / decapsulate / open (no players given) pick live players and
 *   succeed, both from a fresh SDK (it probes /ready) and from one that last saw node 1 alive (its
 *   first pick fails to connect, and it picks again);
 * - with fewer than t nodes up, the error names the nodes that do not answer;
 * - a hung node (SIGSTOP, resumed in cleanup) fails the call with NODE_TIMEOUT naming it when it is a
 *   given player, and is routed around when players are chosen by the SDK.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../contract/http.js';
import { loadCluster } from '../../sdk/cluster-file.js';
import { hexToBytes, hpkeSeal, message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

describe('SDK under failure (2-of-3)', () => {
  let tc: TestCluster;
  let signing: KeyInfo;
  let kem: KeyInfo;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    signing = await tc.cluster.keygen({ suite: 'ed25519', keyId: 'failure-sign' });
    kem = await tc.cluster.keygen({ suite: 'hpke-x25519', keyId: 'failure-kem' });
  }, 120_000);
  afterAll(async () => {
    await tc?.close();
  });

  async function signsAndOpens(c: ReturnType<typeof loadCluster>, label: string): Promise<void> {
    const message = message32(label);
    const r = await c.sign({ keyId: signing.keyId, message, presigned: false });
    expect(verifySignature('ed25519', hexToBytes(r.signature), message, hexToBytes(signing.publicKey))).toBe(true);
    const sealed = await hpkeSeal('hpke-x25519', hexToBytes(kem.publicKey), new TextEncoder().encode(label));
    const d = await c.decapsulate({ keyId: kem.keyId, enc: sealed.enc });
    expect(d.version).toBe(1);
    expect(new TextDecoder().decode(await c.open(kem.keyId, sealed.enc, sealed.ciphertext, sealed.aad, { info: sealed.info }))).toBe(label);
  }

  it('node 1 stopped: default calls pick live players, from a fresh SDK and from one that saw node 1 alive', async () => {
    const sawNode1 = loadCluster(tc.clusterFile, { presign: { auto: false } });
    await sawNode1.listKeys(); // node 1 answered just now
    await tc.dev.kill(1);
    try {
      await signsAndOpens(sawNode1, 'SDK that saw node 1, node 1 down');
      await signsAndOpens(loadCluster(tc.clusterFile, { presign: { auto: false } }), 'fresh SDK, node 1 down');
      expect(await sawNode1.publicKey(signing.keyId)).toBe(signing.publicKey); // from a live node
      // Explicit players are used as given: node 1's absence is the answer.
      const e = await rejectionOf(sawNode1.decapsulate({ keyId: kem.keyId, enc: (await sawNode1.encapsulate(kem.keyId)).enc, players: [1, 2] }));
      expect(e).toMatchObject({ code: 'UNAVAILABLE', node: 1 });
      expect(e.message).toContain('node 1');
    } finally {
      await tc.restart(1);
    }
  }, 120_000);

  it('fewer than t nodes up: UNAVAILABLE naming each node that does not answer', async () => {
    await tc.dev.kill(1);
    await tc.dev.kill(2);
    try {
      const c = loadCluster(tc.clusterFile, { presign: { auto: false } });
      const e = await rejectionOf(c.sign({ keyId: signing.keyId, message: message32('too few') }));
      expect(e.code).toBe('UNAVAILABLE');
      expect(e.message).toMatch(/1 of 3 nodes answer, 2 needed/);
      expect(e.message).toMatch(/node 1 \(http[^)]*\) did not answer/);
      expect(e.message).toMatch(/node 2 \(http[^)]*\) did not answer/);
    } finally {
      tc.dev.start(1);
      await tc.restart(2);
    }
  }, 120_000);

  it('a hung node (SIGSTOP) fails a call with it as a player with NODE_TIMEOUT naming it; default players route around it', async () => {
    const pid = tc.dev.pid(3)!;
    const c = loadCluster(tc.clusterFile, { timeoutMs: 1500, presign: { auto: false } });
    const sealed = await hpkeSeal('hpke-x25519', hexToBytes(kem.publicKey), new TextEncoder().encode('hung'));
    await c.listKeys(); // the key record is looked up while every node answers
    process.kill(pid, 'SIGSTOP');
    try {
      const e = await rejectionOf(c.decapsulate({ keyId: kem.keyId, enc: sealed.enc, players: [1, 3] }));
      expect(e).toMatchObject({ code: 'NODE_TIMEOUT', node: 3 });
      expect(e.message).toMatch(/^node 3 \(http[^)]*\) did not answer within 1500 ms/);
      // Players chosen by the SDK: node 3 is known not to answer, so nodes 1 and 2 are asked.
      expect(new TextDecoder().decode(await c.open(kem.keyId, sealed.enc, sealed.ciphertext, sealed.aad, { info: sealed.info }))).toBe('hung');
      // A session (two-round sign) with it: the other player waits for it and times out too; the SDK
      // names the node that answers nothing (or the session's own abort names it).
      const s = await rejectionOf(c.sign({ keyId: signing.keyId, message: message32('hung session'), players: [1, 3], presigned: false }));
      expect(s.node === 3 || /\bnode 3\b/.test(s.message), `${s.code}: ${s.message}`).toBe(true);
      expect(s.code).toMatch(/^(NODE_TIMEOUT|SESSION_ABORTED|UNAVAILABLE)$/);
      // A fresh SDK learns it from its /ready probe.
      const fresh = loadCluster(tc.clusterFile, { timeoutMs: 1500, presign: { auto: false } });
      expect((await fresh.decapsulate({ keyId: kem.keyId, enc: sealed.enc })).version).toBe(1);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 120_000);

  it('a timeout outside 1..2^31-1 ms is refused up front', () => {
    expect(() => loadCluster(tc.clusterFile, { timeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining('timeoutMs') }));
  });
});
