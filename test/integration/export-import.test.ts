/**
 * Wrapped export and import with real node processes: two clusters, A and B, each with its own data
 * dirs and ports (sdk/dev.ts, port 0).
 *
 * - Failover: an exportable key of A is exported to B's import keys and imported on B under the same
 *   key id; B's signatures verify under A's public key, and A still signs.
 * - External ed25519: a seed goes in through splitAndWrap; signatures verify with node:crypto under the
 *   public key node:crypto derives from the seed; exporting and combining gives back the RFC 8032 scalar.
 * - Rejections with a clear error and nothing stored on any node: a tampered wrapped share, a wrong
 *   public key, shares of two keys, a wrapping key off a node's allowlist, a non-exportable key, t/n
 *   mismatches; a refusing SDK blocks export and import.
 * - The CLI commands for all of this, run in-process against cluster B's cluster file.
 * - No plaintext on disk: no file under either cluster's data dir holds an imported scalar or any
 *   plaintext share (stored or imported), in either byte order, raw or as hex.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { toHex } from '../../core/bytes.js';
import { parseBundle, unwrapBundleShare, type KeyBundleJson } from '../../core/bundle.js';
import { getSigningSuite } from '../../core/suites.js';
import { loadOrCreateIdentity } from '../../node/store/identity-store.js';
import { readKekFile } from '../../node/store/kek.js';
import { ShareStore } from '../../node/store/storage.js';
import {
  Cluster,
  NodeClient,
  generateWrappingKeyPair,
  newSessionId,
  splitAndWrap,
  unwrapAndCombine,
  wrappingKeyFingerprint,
  type ApproveHook,
  type SessionRequest,
} from '../../sdk/client.js';
import { main } from '../../sdk/cli.js';
import { startDevCluster, type DevCluster } from '../../sdk/dev.js';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
const reversed = (b: Uint8Array) => Uint8Array.from(b).reverse();
const clone = (b: KeyBundleJson): KeyBundleJson => JSON.parse(JSON.stringify(b)) as KeyBundleJson;

function clusterOf(dev: DevCluster, hooks: Partial<Record<number, ApproveHook>> = {}): Cluster {
  const nodes = dev.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, ...(hooks[n.index] ? { approve: hooks[n.index] } : {}) }));
  return new Cluster(nodes, { threshold: dev.cluster.threshold });
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: { code: string; message: string }) => e,
  );
}

/** The key is on no node of the cluster. */
async function expectNothingStored(cluster: Cluster, keyId: string): Promise<void> {
  for (let i = 1; i <= cluster.size; i++) await expect(cluster.getKey(keyId, undefined, i)).rejects.toMatchObject({ code: 'NOT_FOUND' });
}

/** Ask every node directly (no SDK-side checks) to import `bundle`; returns each node's error. */
async function importAtNodes(dev: DevCluster, bundle: unknown, threshold?: number): Promise<{ code: string; message: string }[]> {
  const request = {
    operation: 'import',
    sessionId: newSessionId(),
    keyId: (bundle as KeyBundleJson).keyId,
    bundle,
    bundleDigest: '',
    exportable: false,
    ...(threshold ? { threshold } : {}),
  } as SessionRequest;
  const clients = dev.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index }));
  return Promise.all(clients.map((c) => failure(c.join(request, true))));
}

/** RFC 8032 §5.1.5 with node:crypto's SHA-512: the clamped first half of SHA-512(seed) mod L, little-endian. */
function ed25519ScalarOfSeed(seed: Uint8Array): Uint8Array {
  const h = createHash('sha512').update(seed).digest().subarray(0, 32);
  h[0]! &= 248;
  h[31]! &= 127;
  h[31]! |= 64;
  const s = BigInt('0x' + Buffer.from(h).reverse().toString('hex')) % ed25519.Point.Fn.ORDER;
  return reversed(unhex(s.toString(16).padStart(64, '0')));
}

/** Every regular file under `dir`, recursively. */
async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('wrapped export and import between two clusters', () => {
  let dirA: string;
  let dirB: string;
  let A: DevCluster;
  let B: DevCluster;
  let clusterA: Cluster;
  let clusterB: Cluster;
  let importKeysB: Uint8Array[];
  const seed = randomBytes(32);
  let failoverBundle: KeyBundleJson;
  let externalBundle: KeyBundleJson;

  beforeAll(async () => {
    [dirA, dirB] = await Promise.all([mkdtemp(join(tmpdir(), 'tessera-export-a-')), mkdtemp(join(tmpdir(), 'tessera-export-b-'))]);
    [A, B] = await Promise.all([
      startDevCluster({ nodes: 3, threshold: 2, dataDir: dirA, port: 0, logLevel: 'warn', out: () => {} }),
      startDevCluster({ nodes: 3, threshold: 2, dataDir: dirB, port: 0, logLevel: 'warn', out: () => {} }),
    ]);
    await Promise.all([A.ready(), B.ready()]);
    clusterA = clusterOf(A);
    clusterB = clusterOf(B);
    importKeysB = (await clusterB.importKeys()).map((k) => unhex(k.publicKey));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([A?.stop(), B?.stop()]);
    await Promise.all([dirA, dirB].map((d) => d && rm(d, { recursive: true, force: true })));
  });

  it('failover: a key of A, exported to B and imported under the same id, signs on B under A public key, and A still signs', async () => {
    const keyA = await clusterA.keygen({ suite: 'ed25519', keyId: 'failover-key', exportable: true });
    expect(keyA.exportable).toBe(true);
    expect(new Set(importKeysB.map(hex)).size).toBe(3);

    failoverBundle = await clusterA.exportKey({ keyId: 'failover-key', wrappingKeys: importKeysB });
    expect(failoverBundle).toMatchObject({ format: 'tessera-key-bundle', version: 1, keyId: 'failover-key', keyVersion: 1, suite: 'ed25519', threshold: 2, parties: 3 });
    expect(failoverBundle.publicKey).toBe(keyA.publicKey);
    // The exported shares are re-randomised (one epoch up); A keeps its own shares at its epoch.
    expect(failoverBundle.epoch).toBe(keyA.epoch + 1);
    expect((await clusterA.getKey('failover-key')).epoch).toBe(keyA.epoch);
    expect(failoverBundle.wrappedShares.map((w) => w.wrappingKeyFingerprint)).toEqual(importKeysB.map((k) => hex(wrappingKeyFingerprint(k))));

    const keyB = await clusterB.importKey({ bundle: failoverBundle });
    expect(keyB).toMatchObject({ keyId: 'failover-key', version: 1, suite: 'ed25519', publicKey: keyA.publicKey, exportable: false, epoch: failoverBundle.epoch + 1 });
    for (const i of [2, 3]) expect((await clusterB.getKey('failover-key', undefined, i)).publicKey).toBe(keyA.publicKey);

    const spki = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, unhex(keyA.publicKey)]), format: 'der', type: 'spki' });
    for (const [cluster, players] of [[clusterB, [1, 3]], [clusterA, [2, 3]]] as const) {
      const message = randomBytes(48);
      const { signature } = await cluster.sign({ keyId: 'failover-key', message, players: [...players] });
      expect(nodeVerify(null, message, spki, unhex(signature))).toBe(true);
    }
    // Imported keys are non-exportable unless asked: B refuses to export it further.
    const e = await failure(clusterB.exportKey({ keyId: 'failover-key', wrappingKeys: [importKeysB[0]!] }));
    expect(e.code).toBe('POLICY_DENIED');
  }, 60_000);

  it('external ed25519: a seed imported with splitAndWrap signs under the node:crypto public key; export + combine gives its scalar', async () => {
    externalBundle = await splitAndWrap(seed, 'ed25519', 2, 3, importKeysB, { keyId: 'external-ed' });
    const key = await clusterB.importKey({ bundle: externalBundle, exportable: true });

    const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    const publicKey = createPublicKey(privateKey);
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
    expect(key.publicKey).toBe(hex(raw));
    expect(key.exportable).toBe(true);

    const message = randomBytes(64);
    const { signature } = await clusterB.sign({ keyId: 'external-ed', message, players: [2, 3] });
    expect(nodeVerify(null, message, publicKey, unhex(signature))).toBe(true);
    // Same public key, so node:crypto's own signature and ours verify alike.
    expect(getSigningSuite('ed25519').verify(nodeSign(null, message, privateKey), message, raw)).toBe(true);

    // Out to an external store: one X-Wing wrapping key for every share, then combine.
    const external = await generateWrappingKeyPair('x-wing');
    const exported = await clusterB.exportKey({ keyId: 'external-ed', wrappingKeys: [external.publicKey] });
    expect(exported.wrappedShares.every((w) => w.kem === 'x-wing')).toBe(true);
    const combined = await unwrapAndCombine(exported, [external]);
    expect(hex(combined.scalar)).toBe(hex(ed25519ScalarOfSeed(seed)));
    expect(hex(combined.publicKey)).toBe(hex(raw));
  }, 60_000);

  it('rejects a bundle with one tampered wrapped share; nothing is stored', async () => {
    const bundle = await splitAndWrap(randomBytes(32), 'ed25519', 2, 3, importKeysB, { keyId: 'tampered' });
    const ct = bundle.wrappedShares[1]!.ciphertext;
    bundle.wrappedShares[1]!.ciphertext = ct.slice(0, 20) + (ct[20] === 'a' ? 'b' : 'a') + ct.slice(21);
    const e = await failure(clusterB.importKey({ bundle }));
    expect(e.code).toBe('DECRYPTION_FAILED');
    expect(e.message).toMatch(/wrapped share of party 2 does not open/);
    await expectNothingStored(clusterB, 'tampered');
  }, 30_000);

  it('rejects a wrong public key, at the SDK and at every node; nothing is stored', async () => {
    const bundle = await splitAndWrap(randomBytes(32), 'secp256k1', 2, 3, importKeysB, { keyId: 'wrong-pk' });
    const other = await splitAndWrap(randomBytes(32), 'secp256k1', 2, 3, importKeysB, { keyId: 'wrong-pk' });
    const wrong = { ...clone(bundle), publicKey: other.publicKey };
    const e = await failure(clusterB.importKey({ bundle: wrong }));
    expect(e.code).toBe('BAD_INPUT');
    expect(e.message).toMatch(/publicKey is not the group key/);
    for (const err of await importAtNodes(B, wrong)) {
      expect(err.code).toBe('BAD_INPUT');
      expect(err.message).toMatch(/publicKey is not the group key/);
    }
    // Another key's whole public part: its wrapped shares are bound to the real key, so none opens.
    const swapped = { ...clone(bundle), publicKey: other.publicKey, commitments: other.commitments, verifyingShares: other.verifyingShares };
    expect((await failure(clusterB.importKey({ bundle: swapped }))).code).toBe('DECRYPTION_FAILED');
    await expectNothingStored(clusterB, 'wrong-pk');
  }, 30_000);

  it('rejects shares of two different keys (and of two splits of one key); nothing is stored', async () => {
    const secret = randomBytes(32);
    const one = await splitAndWrap(secret, 'ed25519', 2, 3, importKeysB, { keyId: 'mixed' });
    const two = await splitAndWrap(randomBytes(32), 'ed25519', 2, 3, importKeysB, { keyId: 'mixed' });
    const mixed = clone(one);
    mixed.wrappedShares[2] = two.wrappedShares[2]!;
    const e = await failure(clusterB.importKey({ bundle: mixed }));
    expect(e.code).toBe('DECRYPTION_FAILED');
    expect(e.message).toMatch(/party 3 does not open/);

    const resplit = await splitAndWrap(secret, 'ed25519', 2, 3, importKeysB, { keyId: 'mixed' });
    const mixedSplits = clone(one);
    mixedSplits.wrappedShares[0] = resplit.wrappedShares[0]!;
    const e2 = await failure(clusterB.importKey({ bundle: mixedSplits }));
    expect(e2.code).toBe('BAD_SHARE');
    expect(e2.message).toMatch(/party 1 does not match its verifying share/);
    await expectNothingStored(clusterB, 'mixed');
  }, 30_000);

  it('rejects a t/n mismatch, at the SDK and at every node; nothing is stored', async () => {
    const threeOfThree = await splitAndWrap(randomBytes(32), 'p256', 3, 3, importKeysB, { keyId: 'tn-mismatch' });
    expect((await failure(clusterB.importKey({ bundle: threeOfThree }))).message).toMatch(/threshold is 3 but this cluster's is 2/);
    for (const err of await importAtNodes(B, threeOfThree, 2)) {
      expect(err.code).toBe('BAD_PARAMETERS');
      expect(err.message).toMatch(/threshold is 3 but the destination's is 2/);
    }
    const extra = await generateWrappingKeyPair();
    const fourParties = await splitAndWrap(randomBytes(32), 'p256', 2, 4, [...importKeysB, extra.publicKey], { keyId: 'tn-mismatch' });
    expect((await failure(clusterB.importKey({ bundle: fourParties }))).code).toBe('BAD_PARAMETERS');
    for (const err of await importAtNodes(B, fourParties)) {
      expect(err.code).toBe('BAD_PARAMETERS');
      expect(err.message).toMatch(/shared among 4 parties but this cluster has 3 nodes/);
    }
    await expectNothingStored(clusterB, 'tn-mismatch');
  }, 30_000);

  it('refuses to export a non-exportable key, at every node', async () => {
    await clusterA.keygen({ suite: 'secp256k1', keyId: 'locked' });
    const sink = await generateWrappingKeyPair();
    const started = Date.now();
    const e = await failure(clusterA.exportKey({ keyId: 'locked', wrappingKeys: [sink.publicKey] }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.message).toMatch(/key locked is not exportable/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await clusterA.getKey('locked')).epoch).toBe(0);
  }, 30_000);

  it('a refusing SDK blocks the export and the import; every hook sees the wrapping keys or the bundle digest', async () => {
    const seen: SessionRequest[] = [];
    const sink = await generateWrappingKeyPair();
    const refusing = clusterOf(A, { 1: (r) => (seen.push(r), true), 2: (r) => (seen.push(r), false) });
    const e = await failure(refusing.exportKey({ keyId: 'failover-key', wrappingKeys: [sink.publicKey] }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(seen.map((r) => r.operation)).toEqual(['export', 'export']);
    for (const r of seen) {
      expect(r).toMatchObject({ keyId: 'failover-key', wrappingKeys: [hex(sink.publicKey)], wrappingKeyFingerprints: [hex(wrappingKeyFingerprint(sink.publicKey))] });
    }
    expect((await clusterA.getKey('failover-key')).epoch).toBe(0);

    seen.length = 0;
    const bundle = await splitAndWrap(randomBytes(32), 'ed25519', 2, 3, importKeysB, { keyId: 'refused-import' });
    const refusingB = clusterOf(B, { 2: (r) => (seen.push(r), true), 3: (r) => (seen.push(r), false) });
    expect((await failure(refusingB.importKey({ bundle }))).code).toBe('POLICY_DENIED');
    expect(seen).toHaveLength(2);
    for (const r of seen) {
      expect(r.operation).toBe('import');
      expect((r as Extract<SessionRequest, { operation: 'import' }>).bundleDigest).toMatch(/^[0-9a-f]{64}$/);
      expect((r as Extract<SessionRequest, { operation: 'import' }>).bundle.publicKey).toBe(bundle.publicKey);
    }
    await expectNothingStored(clusterB, 'refused-import');
  }, 30_000);

  it("refuses a wrapping key that is not on a node's allowlist, and allows one that is", async () => {
    const allowed = await generateWrappingKeyPair();
    const other = await generateWrappingKeyPair();
    await A.kill(3);
    A.start(3, { TESSERA_WRAPPING_KEY_ALLOWLIST: hex(wrappingKeyFingerprint(allowed.publicKey)) });
    await A.ready();
    const e = await failure(clusterA.exportKey({ keyId: 'failover-key', wrappingKeys: [other.publicKey] }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.message).toMatch(/is not on node 3's wrapping-key allowlist/);
    // One key per share: node 3's allowlist covers every key given, not just its own.
    const perShare = await failure(clusterA.exportKey({ keyId: 'failover-key', wrappingKeys: [other.publicKey, other.publicKey, allowed.publicKey] }));
    expect(perShare.code).toBe('POLICY_DENIED');
    expect((await clusterA.getKey('failover-key')).epoch).toBe(0);

    const bundle = await clusterA.exportKey({ keyId: 'failover-key', wrappingKeys: [allowed.publicKey] });
    const combined = await unwrapAndCombine(bundle, [allowed]);
    const { group } = getSigningSuite('ed25519');
    expect(hex(group.pointToBytes(group.mulBase(group.scalarFromBytes(combined.scalar, 'scalar'))))).toBe(bundle.publicKey);
  }, 60_000);

  it('the CLI: import-key --json, split-and-wrap, import, wrapping-key generate, export, combine', async () => {
    const work = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
    const cli = async (...args: string[]): Promise<Record<string, any>> => {
      const printed: string[] = [];
      const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (printed.push(String(chunk)), true));
      try {
        // The offline commands (no cluster) take no --cluster: an unknown option is a usage error.
        const offline = ['split-and-wrap', 'wrapping-key', 'combine'].includes(args[0]!);
        expect(await main([...args, '--json', ...(offline ? [] : ['--cluster', join(B.dataDir, 'cluster.json')])])).toBe(0);
      } finally {
        write.mockRestore();
      }
      return JSON.parse(printed.join('')) as Record<string, any>;
    };
    try {
      const cliSeed = randomBytes(32);
      const ikFile = join(work, 'import-keys.json');
      await writeFile(ikFile, JSON.stringify(await cli('import-key')));
      await writeFile(join(work, 'seed.hex'), hex(cliSeed) + '\n');
      const split = await cli('split-and-wrap', '--suite', 'ed25519', '--private-key-file', join(work, 'seed.hex'), '--import-keys', ikFile, '--out', join(work, 'in.json'), '--key-id', 'cli-ed');
      expect(split.publicKey).toBe(hex(ed25519.getPublicKey(cliSeed)));
      const imported = await cli('import', '--in', join(work, 'in.json'), '--exportable');
      expect(imported).toMatchObject({ keyId: 'cli-ed', publicKey: split.publicKey, exportable: true });
      await expect(main(['import', '--in', join(work, 'in.json'), '--cluster', join(B.dataDir, 'cluster.json')])).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });

      const generated = await cli('wrapping-key', 'generate', '--out', join(work, 'wrap'), '--kem', 'x-wing');
      expect((await stat(join(work, 'wrap'))).mode & 0o777).toBe(0o600);
      await cli('export', '--key-id', 'cli-ed', '--wrapping-key', generated.publicKeyFile, '--out', join(work, 'out.json'));
      const combined = await cli('combine', '--in', join(work, 'out.json'), '--wrapping-private-key', join(work, 'wrap'));
      // An ed25519 scalar has no standard private-key encoding: the scalar, and a note saying why (sdk/formats.ts).
      expect(combined).toEqual({ scalar: hex(ed25519ScalarOfSeed(cliSeed)), note: expect.stringContaining('seed'), publicKey: split.publicKey });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);

  it('no plaintext on disk: no file holds an imported scalar or any plaintext share; exported shares differ from retained ones', async () => {
    await Promise.all([A.stop(), B.stop()]);
    const needles: Uint8Array[] = [ed25519ScalarOfSeed(seed)];
    const retainedA: string[] = [];

    for (const n of A.cluster.nodes) {
      const kek = await readKekFile(join(A.dataDir, `node-${n.index}.kek`));
      const store = await ShareStore.open({ dataDir: join(A.dataDir, `node-${n.index}`), kek, nodeIndex: n.index });
      try {
        const share = (await store.getShare('default', 'failover-key'))!;
        retainedA.push(hex(share.secret.value));
      } finally {
        await store.close();
      }
    }
    const bundles = [failoverBundle, externalBundle].map(parseBundle);
    for (const n of B.cluster.nodes) {
      const kek = await readKekFile(join(B.dataDir, `node-${n.index}.kek`));
      const store = await ShareStore.open({ dataDir: join(B.dataDir, `node-${n.index}`), kek, nodeIndex: n.index });
      try {
        const { kem } = await loadOrCreateIdentity(store);
        const stored: Uint8Array[] = [];
        for (const keyId of ['failover-key', 'external-ed']) stored.push((await store.getShare('default', keyId))!.secret.value);
        needles.push(...stored);
        for (const [k, b] of bundles.entries()) {
          const imported = await unwrapBundleShare(b, kem, n.index);
          needles.push(imported.value);
          // The stored share is re-randomised: it is not the share that came in.
          expect(hex(imported.value)).not.toBe(hex(stored[k]!));
        }
        // The exported share is not a share A kept.
        const exported = await unwrapBundleShare(bundles[0]!, kem, n.index);
        expect(retainedA).not.toContain(hex(exported.value));
      } finally {
        await store.close();
      }
    }
    expect(needles.length).toBe(1 + 3 * 4);
    const patterns = needles.flatMap((b) => [b, reversed(b)]).flatMap((b) => [Buffer.from(b), Buffer.from(hex(b)), Buffer.from(hex(b).toUpperCase())]);
    // Control: the scan does see what the stores hold in the clear (the group key, commitments[0]).
    const control = Buffer.from(unhex(failoverBundle.commitments[0]!));
    let controlSeen = false;
    for (const dir of [A.dataDir, B.dataDir]) {
      const files = await allFiles(dir);
      expect(files.length).toBeGreaterThan(10);
      for (const f of files) {
        const content = await readFile(f);
        controlSeen ||= content.includes(control);
        for (const p of patterns) expect(content.includes(p), `${f} holds a plaintext secret`).toBe(false);
      }
    }
    expect(controlSeen).toBe(true);
  }, 60_000);
});
