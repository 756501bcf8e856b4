/**
 * Crashes and restarts of real processes: keys survive a full restart; a node SIGKILLed in the
 * middle of a session makes the SDK call fail promptly with a code (no hang), the remaining t nodes
 * keep working, and the restarted node takes part again; keygen with a node down fails fast and
 * names it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../contract/http.js';
import {
  bytesToHex,
  hexToBytes,
  hpkeOpenWithSecret,
  hpkeSeal,
  logEntries,
  message32,
  rejectionOf,
  startTestCluster,
  verifySignature,
  waitFor,
  type TestCluster,
} from '../helpers/cluster.js';

/** The nodes' session timeout is 30 s; "fast" means far below it. */
const FAST_MS = 10_000;

describe('restarts and crashes', () => {
  let tc: TestCluster;
  let ed: KeyInfo;
  let kem: KeyInfo;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    ed = await tc.cluster.keygen({ suite: 'ed25519', keyId: 'restart-ed25519' });
    kem = await tc.cluster.keygen({ suite: 'hpke-x25519', keyId: 'restart-hpke' });
  }, 120_000);
  afterAll(async () => {
    await tc?.close();
  });

  async function signs(players: number[], label: string): Promise<void> {
    const message = message32(label);
    const { signature } = await tc.cluster.sign({ keyId: ed.keyId, message, players });
    expect(verifySignature('ed25519', hexToBytes(signature), message, hexToBytes(ed.publicKey)), `signed by ${players}`).toBe(true);
  }

  async function decapsulates(players: number[]): Promise<void> {
    const plaintext = new TextEncoder().encode(`for ${players}`);
    const sealed = await hpkeSeal(kem.suite, hexToBytes(kem.publicKey), plaintext);
    const { sharedSecret } = await tc.cluster.decapsulate({ keyId: kem.keyId, enc: sealed.enc, players });
    expect(bytesToHex(hpkeOpenWithSecret(kem.suite, hexToBytes(sharedSecret), sealed))).toBe(bytesToHex(plaintext));
  }

  it('after every process restarts, the old keys still sign and decapsulate', async () => {
    await tc.restartAll();
    for (const i of [1, 2, 3]) {
      const k = await tc.cluster.getKey(ed.keyId, undefined, i);
      expect(k.publicKey).toBe(ed.publicKey);
      expect(k.publicPackage).toEqual(ed.publicPackage);
    }
    await signs([2, 3], 'after full restart');
    await signs([1, 3], 'after full restart, other pair');
    await decapsulates([1, 2]);
  }, 120_000);

  it('a node SIGKILLed mid-session: the call rejects with a code (no hang), t nodes still work, and the node rejoins after a restart', async () => {
    const startedBefore = (await logEntries(tc.dir, 'coordinator', (e) => e.msg === 'session started')).length;
    const t0 = Date.now();
    // A 3-party DKG (~1 s of rounds) so the kill lands while the session runs.
    const keygen = tc.cluster.keygen({ suite: 'ed25519', keyId: 'killed-mid-dkg' });
    keygen.catch(() => undefined);
    await waitFor(
      'the coordinator to start the DKG session',
      async () => (await logEntries(tc.dir, 'coordinator', (e) => e.msg === 'session started')).length > startedBefore,
      FAST_MS,
      5,
    );
    await tc.dev.kill(3, 'SIGKILL');
    const e = await rejectionOf(keygen);
    const elapsed = Date.now() - t0;
    expect(elapsed, 'the SDK call must fail promptly, not wait for a timeout').toBeLessThan(FAST_MS);
    expect(e.code, `error ${e.code}: ${e.message}`).toMatch(/^(UNAVAILABLE|SESSION_ABORTED)$/);
    // The error points at node 3: its own connection failed, or the coordinator names it offline.
    const namesNode3 = e.node === 3 || e.culprits?.includes(3) || /\bnodes? 3\b/.test(e.message);
    expect(namesNode3, `error should name node 3: ${e.code} ${e.message}`).toBe(true);
    // Nothing is committed by a DKG that did not finish.
    for (const i of [1, 2]) await expect(tc.cluster.getKey('killed-mid-dkg', undefined, i)).rejects.toMatchObject({ code: 'NOT_FOUND' });

    // The remaining t = 2 nodes carry on.
    await signs([1, 2], 'while node 3 is down');

    await tc.restart(3);
    await signs([2, 3], 'after node 3 restarted');
    await decapsulates([3, 1]);
  }, 120_000);

  it('keygen with one node down fails fast and names the missing node', async () => {
    await tc.dev.kill(2);
    const t0 = Date.now();
    const e = await rejectionOf(tc.cluster.keygen({ suite: 'secp256k1', keyId: 'node-2-down' }));
    expect(Date.now() - t0, 'far below the 30 s session timeout').toBeLessThan(FAST_MS);
    expect(e.code, `error ${e.code}: ${e.message}`).toMatch(/^(UNAVAILABLE|SESSION_ABORTED)$/);
    expect(e.node === 2 || /\bnodes? 2\b/.test(e.message), `error should name node 2: ${e.message}`).toBe(true);
    for (const i of [1, 3]) await expect(tc.cluster.getKey('node-2-down', undefined, i)).rejects.toMatchObject({ code: 'NOT_FOUND' });

    // Asking only the running nodes gives the coordinator's view: node 2 is not connected.
    const viaNode1 = await rejectionOf(
      tc.client(1).join({ operation: 'keygen', sessionId: 'ab'.repeat(16), keyId: 'node-2-down', suite: 'secp256k1', threshold: 2, exportable: false }),
    );
    expect(viaNode1.code).toBe('SESSION_ABORTED');
    expect(viaNode1.message).toMatch(/NODE_OFFLINE.*\bnodes? 2\b/);
    expect(Date.now() - t0).toBeLessThan(2 * FAST_MS);
  }, 60_000);
});
