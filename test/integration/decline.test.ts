/**
 * Separate operators: each NodeClient runs its own policy hook. When one refuses, its node never joins,
 * and the others get a clear DECLINED abort naming that node at once — not a hang until the deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, NodeClient, newSessionId, type SessionRequest } from '../../sdk/client.js';
import { startDevCluster, type DevCluster } from '../../sdk/dev.js';

describe('an operator that declines', () => {
  let dir: string;
  let dev: DevCluster;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-decline-'));
    dev = await startDevCluster({ nodes: 3, threshold: 2, dataDir: dir, port: 0, logLevel: 'warn' });
    await dev.ready();
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('makes the other operators fail fast with DECLINED naming its node, and no key is made', async () => {
    const clients = dev.cluster.nodes.map(
      (n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, approve: () => n.index !== 2 }),
    );
    const request: SessionRequest = {
      operation: 'keygen',
      sessionId: newSessionId(),
      keyId: 'declined-key',
      suite: 'ed25519',
      threshold: 2,
      exportable: false,
    };
    const started = Date.now();
    // Three independent operators, each asking its own node (node 2's operator asks last, after the others joined).
    const others = [clients[0]!, clients[2]!].map((c) => c.join(request).then(() => 'joined', (e: { code: string; message: string }) => e));
    await new Promise((r) => setTimeout(r, 300));
    const refused = await clients[1]!.join(request).then(() => 'joined', (e: { code: string }) => e);
    const results = await Promise.all(others);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((refused as { code: string }).code).toBe('POLICY_DENIED');
    for (const r of results) {
      expect((r as { code: string }).code).toBe('SESSION_ABORTED');
      expect((r as { message: string }).message).toMatch(/DECLINED.*node 2/);
    }
    const cluster = new Cluster(clients);
    for (const i of [1, 2, 3]) await expect(cluster.getKey('declined-key', undefined, i)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  }, 60_000);

  it('also when the refusing operator answers first, before the others joined', async () => {
    const clients = dev.cluster.nodes.map(
      (n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, approve: () => n.index !== 3 }),
    );
    const request: SessionRequest = { operation: 'keygen', sessionId: newSessionId(), keyId: 'declined-2', suite: 'secp256k1', threshold: 2, exportable: false };
    await expect(clients[2]!.join(request)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    const started = Date.now();
    const results = await Promise.all([clients[0]!, clients[1]!].map((c) => c.join(request).then(() => 'joined', (e: { code: string; message: string }) => e)));
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const r of results) expect((r as { message: string }).message).toMatch(/DECLINED.*node 3/);
  }, 60_000);
});
