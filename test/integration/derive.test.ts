/**
 * Child keys on a live cluster (core/derive.ts, issue 12 item 2) and the suite labels (item 3).
 *
 * - key info carries `scheme` (secp256k1 and p256: "FROST Schnorr (RFC 9591), not ECDSA"), and for
 *   secp256k1 / bip340 / ed25519 keys a chain code (and an xpub for the secp256k1-based ones);
 * - the child public key for a path equals what @scure/bip32 derives from the key's xpub;
 * - `sign` with a path makes signatures that verify under the child key (bip340 in tiny-secp256k1,
 *   ed25519 in node:crypto), on any 2 of the 3 nodes; the path survives a refresh;
 * - hardened and malformed paths are refused with a clear error; signers asked for different paths do
 *   not sign together (the path is in the session digest); presigned signing with a path signs under the child;
 * - the CLI: public-key --path, sign --path, a hardened path as one clean error line, help with labels.
 */
import { randomBytes } from 'node:crypto';
import { HDKey } from '@scure/bip32';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { newSessionId, splitAndWrap, type KeyInfo } from '../../sdk/client.js';
import { tessera, type CliResult } from '../helpers/cli.js';
import { bytesToHex, hexToBytes, message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

const NOT_ECDSA = 'FROST Schnorr (RFC 9591), not ECDSA';

function oneJsonObject(r: CliResult): Record<string, unknown> {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('child keys and suite labels on a cluster', () => {
  let tc: TestCluster;
  const keys: Record<string, KeyInfo> = {};

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    for (const suite of ['bip340', 'secp256k1', 'ed25519', 'p256']) keys[suite] = await tc.cluster.keygen({ suite, keyId: `d-${suite}` });
  }, 120_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('key info labels secp256k1 and p256 as FROST Schnorr, not ECDSA, and carries the chain code and xpub', async () => {
    expect(keys.secp256k1!.scheme).toBe(NOT_ECDSA);
    expect(keys.p256!.scheme).toBe(NOT_ECDSA);
    expect(keys.bip340!.scheme).toMatch(/BIP-340/);
    expect(keys.ed25519!.scheme).toMatch(/RFC 8032/);
    // Every node returns the same chain code: made from the DKG transcript, not by one node.
    const infos = await Promise.all([1, 2, 3].map((i) => tc.client(i).getKey('d-bip340')));
    expect(new Set(infos.map((k) => k.chainCode)).size).toBe(1);
    expect(keys.bip340!.chainCode).toMatch(/^[0-9a-f]{64}$/);
    expect(keys.bip340!.xpub).toMatch(/^xpub/);
    expect(keys.secp256k1!.xpub).toMatch(/^xpub/);
    expect(keys.ed25519!.chainCode).toMatch(/^[0-9a-f]{64}$/);
    expect(keys.ed25519!.xpub).toBeUndefined();
    expect(keys.p256!.chainCode).toBeUndefined();
    // The xpub is the key itself: @scure/bip32 reads the group key back out of it.
    const root = HDKey.fromExtendedKey(keys.secp256k1!.xpub!);
    expect(bytesToHex(root.publicKey!)).toBe(keys.secp256k1!.publicKey);
  });

  it('child public keys equal what @scure/bip32 derives from the xpub, and bip340 signatures under them verify on every 2 nodes', async () => {
    const reference = HDKey.fromExtendedKey(keys.bip340!.xpub!);
    for (const [path, players] of [
      ['m/0/5', [1, 2]],
      ['m/1', [1, 3]],
      ['m/7/2147483647', [2, 3]],
    ] as const) {
      const child = await tc.cluster.childKey('d-bip340', { path });
      const theirs = reference.derive(path);
      expect(child.publicKey).toBe(bytesToHex(theirs.publicKey!.subarray(1)));
      expect(child.xpub).toBe(theirs.publicExtendedKey);
      const message = message32(`child ${path}`);
      const r = await tc.cluster.sign({ keyId: 'd-bip340', message, players: [...players], path });
      expect(r.derivationPath).toBe(path);
      expect(verifySignature('bip340', hexToBytes(r.signature), message, hexToBytes(child.publicKey))).toBe(true);
      expect(verifySignature('bip340', hexToBytes(r.signature), message, hexToBytes(keys.bip340!.publicKey))).toBe(false);
    }
  }, 60_000);

  it('secp256k1 (FROST) and ed25519 child keys sign; ed25519 verifies in node:crypto; the path survives a refresh', async () => {
    const secpChild = await tc.cluster.childKey('d-secp256k1', { path: 'm/3/4' });
    expect(secpChild.publicKey).toBe(bytesToHex(HDKey.fromExtendedKey(keys.secp256k1!.xpub!).derive('m/3/4').publicKey!));
    const message = message32('secp child');
    const s = await tc.cluster.sign({ keyId: 'd-secp256k1', message, path: 'm/3/4' });
    expect(verifySignature('secp256k1', hexToBytes(s.signature), message, hexToBytes(secpChild.publicKey))).toBe(true);

    const edChild = await tc.cluster.childKey('d-ed25519', { path: 'm/0/5' });
    const edMessage = new TextEncoder().encode('ed25519 child, additive on the raw scalar');
    const e = await tc.cluster.sign({ keyId: 'd-ed25519', message: edMessage, players: [2, 3], path: 'm/0/5' });
    expect(verifySignature('ed25519', hexToBytes(e.signature), edMessage, hexToBytes(edChild.publicKey))).toBe(true);

    await tc.cluster.refresh({ keyId: 'd-ed25519' });
    const after = await tc.cluster.getKey('d-ed25519');
    expect(after.epoch).toBe(1);
    expect(after.chainCode).toBe(keys.ed25519!.chainCode);
    const again = await tc.cluster.sign({ keyId: 'd-ed25519', message: edMessage, players: [1, 3], path: 'm/0/5' });
    expect(verifySignature('ed25519', hexToBytes(again.signature), edMessage, hexToBytes(edChild.publicKey))).toBe(true);
  }, 60_000);

  it('an imported external secp256k1 private key (as a bip340 key) gets a chain code from the import session, and its child keys sign', async () => {
    const privateKey = secp256k1.utils.randomSecretKey();
    const bundle = await splitAndWrap(privateKey, 'bip340', 2, 3, (await tc.cluster.importKeys()).map((k) => hexToBytes(k.publicKey)), { keyId: 'd-imported' });
    privateKey.fill(0);
    const key = await tc.cluster.importKey({ bundle });
    expect(key.chainCode).toMatch(/^[0-9a-f]{64}$/);
    const theirs = HDKey.fromExtendedKey(key.xpub!).derive('m/2/9');
    const child = await tc.cluster.childKey('d-imported', { path: 'm/2/9' });
    expect(child.publicKey).toBe(bytesToHex(theirs.publicKey!.subarray(1)));
    const message = message32('imported child');
    const r = await tc.cluster.sign({ keyId: 'd-imported', message, path: 'm/2/9' });
    expect(verifySignature('bip340', hexToBytes(r.signature), message, hexToBytes(child.publicKey))).toBe(true);
  }, 60_000);

  it('hardened and malformed paths and paths on a p256 key are refused with clear errors', async () => {
    const message = message32('refused');
    for (const [path, pattern] of [
      ["m/0'/5", /hardened/],
      ['m/0h', /hardened/],
      ['m/2147483648', /hardened/],
      ['0/5', /expected m followed by/],
      ['m/x', /not a decimal index/],
    ] as const) {
      const e = await rejectionOf(tc.cluster.sign({ keyId: 'd-bip340', message, path }));
      expect(e.code).toBe('BAD_INPUT');
      expect(e.message).toMatch(pattern);
    }
    const p256 = await rejectionOf(tc.cluster.sign({ keyId: 'd-p256', message, path: 'm/1' }));
    expect(p256.message).toMatch(/has no chain code: child keys exist for secp256k1, bip340 and ed25519 keys/);
    const p256Node = await rejectionOf(tc.client(1).join({ operation: 'sign', sessionId: newSessionId(), keyId: 'd-p256', message: bytesToHex(message), players: [1, 2], path: 'm/1' }, true));
    expect(p256Node.message).toMatch(/p256 key: derivation paths are offered for secp256k1, bip340 and ed25519/);
    // The node checks too (a caller that is not this SDK): a hardened step over HTTP.
    const node = await rejectionOf(tc.client(1).join({ operation: 'sign', sessionId: newSessionId(), keyId: 'd-bip340', message: bytesToHex(message), players: [1, 2], path: "m/1'" }, true));
    expect(node.message).toMatch(/hardened step 1' is not supported/);
  }, 60_000);

  it('presigned (one-round) signing with a path signs under the child key', async () => {
    await tc.cluster.warmPresignatures('d-bip340', 4, { players: [1, 3] });
    const child = await tc.cluster.childKey('d-bip340', { path: 'm/4/4' });
    const message = message32('presigned child');
    const r = await tc.cluster.sign({ keyId: 'd-bip340', message, players: [1, 3], path: 'm/4/4', presigned: true });
    expect(r.path).toBe('presigned');
    expect(r.derivationPath).toBe('m/4/4');
    expect(verifySignature('bip340', hexToBytes(r.signature), message, hexToBytes(child.publicKey))).toBe(true);
    // The same presignature pool signs the key itself too.
    const own = await tc.cluster.sign({ keyId: 'd-bip340', message, players: [1, 3], presigned: true });
    expect(own.path).toBe('presigned');
    expect(verifySignature('bip340', hexToBytes(own.signature), message, hexToBytes(keys.bip340!.publicKey))).toBe(true);
  }, 60_000);

  it('signers asked for different paths do not sign together (the path is in the session digest)', async () => {
    const sessionId = newSessionId();
    const message = bytesToHex(message32('disagree'));
    const results = await Promise.allSettled(
      [1, 2].map((i) =>
        tc.client(i).join({ operation: 'sign', sessionId, keyId: 'd-bip340', message, players: [1, 2], ...(i === 1 ? { path: 'm/0/5' } : { path: 'm/0/6' }) }, true),
      ),
    );
    for (const r of results) expect(r.status).toBe('rejected');
    expect(results.map((r) => String((r as PromiseRejectedResult).reason?.message)).join(' ')).toMatch(/DIGEST_MISMATCH/);
    // A path against no path: refused the same way.
    const s2 = newSessionId();
    const mixed = await Promise.allSettled(
      [1, 2].map((i) => tc.client(i).join({ operation: 'sign', sessionId: s2, keyId: 'd-bip340', message, players: [1, 2], ...(i === 1 ? { path: 'm/0/5' } : {}) }, true)),
    );
    for (const r of mixed) expect(r.status).toBe('rejected');
  }, 60_000);

  it('CLI: public-key --path, sign --path and verify --path; a hardened path is one clean error line; help carries the labels', async () => {
    const env = { TESSERA_CLUSTER: tc.clusterFile };
    const pub = oneJsonObject(await tessera(['public-key', '--key-id', 'd-bip340', '--path', 'm/0/5', '--json'], env));
    const theirs = HDKey.fromExtendedKey(keys.bip340!.xpub!).derive('m/0/5');
    expect(pub).toMatchObject({ keyId: 'd-bip340', suite: 'bip340', path: 'm/0/5', publicKey: bytesToHex(theirs.publicKey!.subarray(1)), xpub: theirs.publicExtendedKey });
    const message = randomBytes(32);
    const signed = oneJsonObject(await tessera(['sign', '--key-id', 'd-bip340', '--message', message.toString('hex'), '--path', 'm/0/5', '--json'], env));
    expect(signed.path).toBe('m/0/5');
    expect(verifySignature('bip340', hexToBytes(signed.signature as string), message, hexToBytes(pub.publicKey as string))).toBe(true);
    const verifyArgs = ['verify', '--key-id', 'd-bip340', '--message', message.toString('hex'), '--signature', signed.signature as string, '--json'];
    const [underChild, underKey] = await Promise.all([tessera([...verifyArgs, '--path', 'm/0/5'], env), tessera(verifyArgs, env)]);
    expect(oneJsonObject(underChild)).toMatchObject({ keyId: 'd-bip340', path: 'm/0/5', valid: true });
    expect(underKey.code).toBe(1);
    expect(JSON.parse(underKey.stdout)).toMatchObject({ valid: false });

    const secpKey = oneJsonObject(await tessera(['public-key', '--key-id', 'd-secp256k1', '--json'], env));
    expect(secpKey.scheme).toBe(NOT_ECDSA);

    const hardened = await tessera(['sign', '--key-id', 'd-bip340', '--message', '00', '--path', "m/0'/5", '--json'], env);
    expect(hardened.code).toBe(1);
    expect(hardened.stderr.trim().split('\n')).toHaveLength(1);
    expect(hardened.stderr).toMatch(/hardened step 0' is not supported/);
    expect(hardened.stderr).not.toMatch(/\n\s+at /);

    for (const command of ['keygen', 'sign', 'public-key', 'split-and-wrap']) {
      const help = await tessera([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout.replace(/\s+/g, ' ')).toMatch(/secp256k1 and p256 keys make FROST Schnorr signatures \(RFC 9591\), NOT ECDSA/);
    }
    const keygenHelp = (await tessera(['keygen', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(keygenHelp).toContain(`secp256k1: ${NOT_ECDSA}`);
    expect(keygenHelp).toContain(`p256: ${NOT_ECDSA}`);
  }, 120_000);
});
