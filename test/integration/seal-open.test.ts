/**
 * The complete HPKE flow through the SDK (issue 11 item 2), on a real 2-of-3 dev cluster:
 * - any RFC 9180 sender works with Cluster.open: @hpke/core (base mode, the key's DHKEM, HKDF-SHA256,
 *   AES-128-GCM) seals with info and aad, the cluster opens by threshold decapsulation + key schedule;
 * - Cluster.seal → encodeSealedMessage → decodeSealedMessage → Cluster.open round trip with aad;
 * - a wrong aad or info fails with DECRYPTION_FAILED and a clear message;
 * - Cluster.encapsulate's secret is what decapsulate returns; hex input takes 0x;
 * - loadCluster reads the dev cluster's file (its identity keys verify presignature batches); listKeys lists the tenant's keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../contract/http.js';
import { loadCluster } from '../../sdk/cluster-file.js';
import { decodeSealedMessage, encodeSealedMessage } from '../../sdk/seal.js';
import { bytesToHex, hexToBytes, hpkeSeal, rejectionOf, startTestCluster, type TestCluster } from '../helpers/cluster.js';

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('seal / open / encapsulate through the SDK (2-of-3)', () => {
  let tc: TestCluster;
  const keys = new Map<string, KeyInfo>();

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    for (const suite of ['hpke-x25519', 'hpke-p256']) keys.set(suite, await tc.cluster.keygen({ suite, keyId: `seal-${suite}` }));
    keys.set('ed25519', await tc.cluster.keygen({ suite: 'ed25519', keyId: 'seal-signing' }));
  }, 120_000);
  afterAll(async () => {
    await tc?.close();
  });

  for (const suite of ['hpke-x25519', 'hpke-p256']) {
    it(`${suite}: Cluster.open opens what an independent RFC 9180 sender (@hpke/core) sealed, enc as bytes or 0x hex`, async () => {
      const key = keys.get(suite)!;
      const info = utf8('app context');
      const aad = utf8('header v1');
      const sealed = await hpkeSeal(suite, hexToBytes(key.publicKey), utf8(`to ${suite}`), info, aad);
      expect(text(await tc.cluster.open(key.keyId, sealed.enc, sealed.ciphertext, aad, { info }))).toBe(`to ${suite}`);
      expect(text(await tc.cluster.open(key.keyId, `0x${bytesToHex(sealed.enc).toUpperCase()}`, sealed.ciphertext, aad, { info, players: [3, 2] }))).toBe(`to ${suite}`);
    });

    it(`${suite}: seal → sealed form → open round trip with aad; a wrong aad or info is DECRYPTION_FAILED`, async () => {
      const key = keys.get(suite)!;
      const aad = utf8('bound to this');
      const { enc, ciphertext, version } = await tc.cluster.seal(key.keyId, utf8('round trip'), aad);
      expect(version).toBe(1);
      const back = decodeSealedMessage(encodeSealedMessage({ enc, ciphertext }));
      expect(text(await tc.cluster.open(key.keyId, back.enc, back.ciphertext, aad))).toBe('round trip');

      const wrongAad = await rejectionOf(tc.cluster.open(key.keyId, enc, ciphertext, utf8('bound to that')));
      expect(wrongAad).toMatchObject({ code: 'DECRYPTION_FAILED', message: expect.stringMatching(/does not authenticate.*aad/) });
      expect(await rejectionOf(tc.cluster.open(key.keyId, enc, ciphertext))).toMatchObject({ code: 'DECRYPTION_FAILED' });
      expect(await rejectionOf(tc.cluster.open(key.keyId, enc, ciphertext, aad, { info: utf8('other info') }))).toMatchObject({ code: 'DECRYPTION_FAILED' });
    });

    it(`${suite}: encapsulate gives the secret that decapsulate of its enc returns (enc passed as 0X hex)`, async () => {
      const key = keys.get(suite)!;
      const { enc, sharedSecret, version } = await tc.cluster.encapsulate(key.keyId);
      expect(version).toBe(1);
      const d = await tc.cluster.decapsulate({ keyId: key.keyId, enc: `0X${bytesToHex(enc)}` });
      expect(d.sharedSecret).toBe(bytesToHex(sharedSecret));
      sharedSecret.fill(0);
    });
  }

  it('seal and open refuse a signing key and bad input with clear codes', async () => {
    expect(await rejectionOf(tc.cluster.seal('seal-signing', utf8('x')))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('signing suite') });
    expect(await rejectionOf(tc.cluster.encapsulate('seal-signing'))).toMatchObject({ code: 'BAD_INPUT' });
    expect(await rejectionOf(tc.cluster.seal('seal-hpke-x25519', 'text' as never))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('plaintext') });
    expect(await rejectionOf(tc.cluster.open('seal-hpke-x25519', 'not hex', new Uint8Array(16)))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('enc') });
    expect(await rejectionOf(tc.cluster.seal('no-such-key', utf8('x')))).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('loadCluster reads the dev cluster file: it lists the keys and opens a message', async () => {
    const c = loadCluster(tc.clusterFile, { timeoutMs: 20_000 });
    expect(c.size).toBe(3);
    const listed = await c.listKeys();
    expect(listed.map((k) => k.keyId)).toEqual(['seal-hpke-p256', 'seal-hpke-x25519', 'seal-signing']);
    expect((await c.listKeys({ state: 'retired' })).length).toBe(0);
    expect(await tc.client(2).listKeys({ state: 'active' })).toHaveLength(3);
    const key = keys.get('hpke-x25519')!;
    const sealed = await hpkeSeal('hpke-x25519', hexToBytes(key.publicKey), utf8('via loadCluster'));
    expect(text(await c.open(key.keyId, sealed.enc, sealed.ciphertext, sealed.aad, { info: sealed.info }))).toBe('via loadCluster');
    // The file's identity keys are the nodes' own: presignature batches verify under them.
    expect(await c.warmPresignatures('seal-signing', 2)).toBeGreaterThanOrEqual(2);
    expect(c.presignStats.fetchErrors).toBe(0);
    expect((await c.sign({ keyId: 'seal-signing', message: utf8('presigned via loadCluster') })).path).toBe('presigned');
  });
});
