/**
 * Issue 15, "PKCS#11": a 3-node cluster (real processes) whose nodes keep their KEKs in SoftHSM2 tokens, one
 * token per node, each node with its own SOFTHSM2_CONF and token directory, runs keygen, sign, refresh,
 * export and import, keeps working across a node restart, and rotates node 1's KEK inside its token
 * (`tessera kek rotate`'s route: node/store/kek-rotation.ts with kek-pkcs11.ts pkcs11RotationSteps). Then,
 * with every process stopped, a scan of the cluster's directory (data dirs, logs, configs) looks for
 * anything that unwraps a share without the token.
 *
 * How the cluster gets there: startTestCluster starts a dev cluster with file KEKs (that is what sdk/dev.ts
 * makes); before any key exists the nodes are stopped and each is moved to its token: the node's identity
 * (the only secret a fresh node holds) is read from its file-KEK store and written into a new, empty data
 * dir sealed under the token KEK, the node's config gets kekProvider {kind: 'pkcs11', module, tokenLabel,
 * pinFile} instead of kekFile, its KEK file is deleted, and `tessera kek init-pkcs11 --config` (the CLI an
 * operator runs) creates the token key. The nodes then start on the token and everything after that is
 * sealed under it.
 *
 * What the scan can show, and what it cannot:
 *  - The token's AES key: the token refuses to hand out its value (C_GetAttributeValue CKA_VALUE) and to
 *    wrap it out (C_WrapKey). Its bytes are unknown to the test, so the files cannot be grepped for them;
 *    instead every 32-byte window of every file (and of every decoded LevelDB value, as LevelDB may compress
 *    its tables) is tried as that AES key against one wrapped data key per node: none is it. This finds the
 *    KEK only if it was written as 32 contiguous raw bytes (or 64 hex characters, or 32 comma-separated
 *    decimal numbers as a Buffer in a JSON log, also tried); not in an encoding the scan does not decode.
 *  - Data keys (random per record): every wrapped data key in the data dirs is unwrapped through the token,
 *    and none of them appears in any file, in either byte order, raw, hex, base64 or as JSON decimals.
 *  - Shares: every share the nodes hold (read through their stores, opened with the token) appears in no
 *    file or log in those forms. Nor does any token PIN.
 *  - It says nothing about the token directory itself: SoftHSM2 is software, and its token files hold the
 *    KEK encrypted under a key derived from the user PIN, so whoever has the token directory and the PIN has
 *    the KEK. A hardware token is what keeps it out of reach; this test shows only that the node's own
 *    files and logs do not carry it.
 *
 * This file changes process.env.SOFTHSM2_CONF only while it opens one node's token in this process (SoftHSM
 * reads it at C_Initialize; the provider finalises the library when its last session closes) and puts it
 * back after, so that the files run after it in the same worker see no change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { framed, i2osp, utf8ToBytes } from '../../core/bytes.js';
import { IDENTITY_SECRET_NAME } from '../../node/store/identity-store.js';
import { readKekFile } from '../../node/store/kek.js';
import { openPkcs11Keks, pkcs11ModuleRefs, type Pkcs11KekSource } from '../../node/store/kek-pkcs11.js';
import type { Kek } from '../../node/store/kek.js';
import { ShareStore, storageLocation } from '../../node/store/storage.js';
import { generateWrappingKeyPair, splitAndWrap, unwrapAndCombine } from '../../sdk/client.js';
import { startTestCluster, verifySignature, waitFor, type TestCluster } from '../helpers/cluster.js';
import { jsonOf, tessera } from '../helpers/cli.js';
import { SOFTHSM_MODULE, initToken, keyObjectFacts, makeSoftHsmConf, pkcs11Source, requireSoftHsm, writePinFile } from '../helpers/softhsm.js';

requireSoftHsm();

const N = 3;
const NODES = [1, 2, 3] as const;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
/** The AAD every data key of node i is wrapped with (node/store/envelope.ts AAD_DATA_KEY, bound to the node). */
const dataKeyAad = (i: number) => framed(utf8ToBytes('tessera/storage/data-key/v1'), i2osp(i, 1));

interface NodeToken {
  readonly conf: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly pinFile: string;
  readonly source: Pkcs11KekSource;
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

/** Run `fn` with node i's SoftHSM config in force in this process; the library is finalised again after. */
async function withToken<T>(t: NodeToken, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.SOFTHSM2_CONF;
  expect(pkcs11ModuleRefs(SOFTHSM_MODULE), 'no token session left open from before').toBe(0);
  process.env.SOFTHSM2_CONF = t.conf;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = saved;
  }
}

/** Every raw value of a (closed) store's LevelDB, decoded by LevelDB (its table files may be compressed). */
async function rawValues(dataDir: string): Promise<Uint8Array[]> {
  const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    const out: Uint8Array[] = [];
    for await (const v of db.values()) out.push(Uint8Array.from(v));
    return out;
  } finally {
    await db.close();
  }
}

/** The wrapped data keys (node/store/envelope.ts: 0x01 || len(kid) || kid || u16 len || wrapped) under `kid` in `value`. */
function wrappedKeysIn(value: Uint8Array, kid: string): Uint8Array[] {
  const marker = Buffer.concat([Buffer.of(0x01, kid.length), Buffer.from(kid, 'latin1')]);
  const buf = Buffer.from(value);
  const out: Uint8Array[] = [];
  for (let at = buf.indexOf(marker); at >= 0; at = buf.indexOf(marker, at + 1)) {
    const lenAt = at + marker.length;
    const len = buf.readUInt16BE(lenAt);
    out.push(Uint8Array.from(buf.subarray(lenAt + 2, lenAt + 2 + len)));
  }
  return out;
}

/** The forms a secret could be written in: raw, reversed (the other byte order), hex, base64 and base64url. */
function formsOf(secret: Uint8Array): Buffer[] {
  const raw = Buffer.from(secret);
  const rev = Buffer.from(secret).reverse();
  // A Buffer or Uint8Array that reached a JSON log is written as its bytes in decimal ("data":[1,2,...] or {"0":1,...}).
  return [raw, rev, ...[raw, rev].flatMap((b) => [b.toString('hex'), b.toString('hex').toUpperCase(), b.toString('base64'), b.toString('base64url'), Array.from(b).join(','), Array.from(b, (x, k) => `"${k}":${x}`).join(',')].map((s) => Buffer.from(s, 'latin1')))];
}

describe('a 3-node cluster with its KEKs in SoftHSM2 tokens', () => {
  let tc: TestCluster;
  let hsmRoot: string;
  const tokens = new Map<number, NodeToken>();
  const keyIds: string[] = [];
  /** Node 1's KEK ids before and after its rotation. */
  let rotated: { from: string; to: string } | undefined;

  beforeAll(async () => {
    hsmRoot = await mkdtemp(join(tmpdir(), 'tessera-it-hsm-'));
    for (const i of NODES) {
      const dir = join(hsmRoot, `node-${i}`);
      await mkdir(dir, { mode: 0o700 });
      const conf = await makeSoftHsmConf(dir);
      const tokenLabel = `tessera-node-${i}`;
      const pin = `pin-${i}-${randomBytes(6).toString('hex')}`;
      initToken(conf, tokenLabel, pin);
      const pinFile = join(dir, 'user.pin');
      await writePinFile(pinFile, pin);
      tokens.set(i, { conf, tokenLabel, pin, pinFile, source: pkcs11Source(tokenLabel, `tessera-kek-node-${i}`, pin) });
    }
    tc = await startTestCluster({ nodes: N, threshold: 2, envFor: (i) => (i >= 1 ? { SOFTHSM2_CONF: tokens.get(i)!.conf } : undefined) });

    // Move every node to its token before any key exists (see the file comment).
    for (const i of NODES) await tc.dev.kill(i);
    await Promise.all(
      NODES.map(async (i) => {
        const t = tokens.get(i)!;
        const cfgPath = join(tc.dir, `node-${i}.json`);
        const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as Record<string, unknown>;
        delete cfg.kekFile;
        cfg.kekProvider = { kind: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: t.tokenLabel, pinFile: t.pinFile };
        await writeFile(cfgPath, JSON.stringify(cfg, null, 2), { mode: 0o600 });
        const r = await tessera(['kek', 'init-pkcs11', '--config', cfgPath, '--json'], { SOFTHSM2_CONF: t.conf });
        expect(r.code, r.stderr).toBe(0);
        expect(jsonOf(r)).toMatchObject({ node: i, token: t.tokenLabel, keyLabel: `tessera-kek-node-${i}`, kekId: expect.stringMatching(/^p11-[0-9a-f]{16}$/) });
        expect(r.stdout + r.stderr).not.toContain(t.pin);
      }),
    );
    for (const i of NODES) {
      const t = tokens.get(i)!;
      const dataDir = join(tc.dir, `node-${i}`);
      const kekFile = join(tc.dir, `node-${i}.kek`);
      const kekBytes = await readKekFile(kekFile);
      const old = await ShareStore.open({ dataDir, kek: kekBytes, nodeIndex: i });
      kekBytes.fill(0);
      const identity = (await old.getSecret(IDENTITY_SECRET_NAME))!;
      await old.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(kekFile);
      await withToken(t, async () => {
        const keks = await openPkcs11Keks(t.source, i);
        try {
          const fresh = await ShareStore.open({ dataDir, kek: keks.current, nodeIndex: i });
          await fresh.putSecret(IDENTITY_SECRET_NAME, identity);
          await fresh.close();
        } finally {
          keks.current.close();
        }
      });
      identity.fill(0);
    }
    tc.dev.start(1);
    tc.dev.start(2);
    await tc.restart(3); // starts node 3 and waits until all three are ready and see each other
  }, 150_000);

  afterAll(async () => {
    await tc?.close();
    if (hsmRoot) await rm(hsmRoot, { recursive: true, force: true });
  });

  it('every node reports its KEK as pkcs11 (GET /v1/node atRest)', async () => {
    for (const i of NODES) expect((await tc.client(i).info()).atRest).toMatchObject({ provider: 'pkcs11', keyBits: 256 });
  });

  it('keygen, sign (two player sets), refresh, sign again; a restarted node opens its shares through the token', async () => {
    const key = await tc.cluster.keygen({ suite: 'ed25519', keyId: 'p11-ed', exportable: true });
    keyIds.push('p11-ed');
    const pk = unhex(key.publicKey);
    for (const players of [
      [1, 2],
      [2, 3],
    ]) {
      const message = randomBytes(40);
      const { signature } = await tc.cluster.sign({ keyId: 'p11-ed', message, players });
      expect(verifySignature('ed25519', unhex(signature), message, pk)).toBe(true);
    }
    const refreshed = await tc.cluster.refresh({ keyId: 'p11-ed' });
    expect(refreshed.epoch).toBe(key.epoch + 1);
    await tc.restartWith(3);
    const message = randomBytes(40);
    const { signature } = await tc.cluster.sign({ keyId: 'p11-ed', message, players: [1, 3] });
    expect(verifySignature('ed25519', unhex(signature), message, pk)).toBe(true);
  }, 120_000);

  it('export to an outside wrapping key combines to the key; an imported key signs', async () => {
    const external = await generateWrappingKeyPair('ml-kem-768');
    const bundle = await tc.cluster.exportKey({ keyId: 'p11-ed', wrappingKeys: [external.publicKey] });
    const combined = await unwrapAndCombine(bundle, [external]);
    expect(hex(combined.publicKey)).toBe((await tc.cluster.getKey('p11-ed')).publicKey);

    const importKeys = (await tc.cluster.importKeys()).map((k) => unhex(k.publicKey));
    const imported = await splitAndWrap(randomBytes(32), 'ed25519', 2, 3, importKeys, { keyId: 'p11-imported' });
    const key = await tc.cluster.importKey({ bundle: imported });
    keyIds.push('p11-imported');
    const message = randomBytes(40);
    const { signature } = await tc.cluster.sign({ keyId: 'p11-imported', message, players: [1, 3] });
    expect(verifySignature('ed25519', unhex(signature), message, unhex(key.publicKey))).toBe(true);
  }, 90_000);

  it('tessera kek rotate on a token KEK: node 1 moves every record to a new token key, destroys the old one, and signs', async () => {
    const before = await tc.client(1).rotateKek();
    expect(before.from).toMatch(/^p11-[0-9a-f]{16}$/);
    expect(before.to).toMatch(/^p11-[0-9a-f]{16}$/);
    expect(before.to).not.toBe(before.from);
    expect(before.moved).toBeGreaterThanOrEqual(4);
    const message = randomBytes(40);
    const { signature } = await tc.cluster.sign({ keyId: 'p11-ed', message, players: [1, 2] });
    expect(verifySignature('ed25519', unhex(signature), message, unhex((await tc.cluster.getKey('p11-ed')).publicKey))).toBe(true);
    rotated = { from: before.from, to: before.to };
  }, 60_000);

  it('stopped: nothing in the data dirs or logs unwraps a share without the token', async () => {
    expect(keyIds).toEqual(['p11-ed', 'p11-imported']);
    await tc.dev.stop();

    const shares: Uint8Array[] = [];
    const dataKeys: Uint8Array[] = [];
    /** One wrapped data key per node with its plaintext: the target of the KEK trial below. */
    const probes: { node: number; wrapped: Uint8Array; dataKey: Uint8Array }[] = [];
    const decodedValues: Uint8Array[] = [];
    for (const i of NODES) {
      const t = tokens.get(i)!;
      const dataDir = join(tc.dir, `node-${i}`);
      const values = await rawValues(dataDir);
      decodedValues.push(...values);
      await withToken(t, async () => {
        // (a) The token keeps its key: the value cannot be read or wrapped out.
        const facts = keyObjectFacts(t.tokenLabel, `tessera-kek-node-${i}`, t.pin);
        expect(facts).toMatchObject({ sensitive: true, extractable: false, neverExtractable: true, valueRead: 'CKR_ATTRIBUTE_SENSITIVE', wrapRead: 'CKR_KEY_UNEXTRACTABLE' });
        const keks = await openPkcs11Keks(t.source, i);
        const kek: Kek = keks.current;
        try {
          expect(keks.others).toEqual([]);
          if (i === 1) expect(kek.id).toBe(rotated?.to); // the old token key is gone: only the new one is there
          // (b) Every wrapped data key of the data dir, unwrapped through the token.
          const wrapped = values.flatMap((v) => wrappedKeysIn(v, kek.id));
          // At least the record-MAC key, the node identity and the two keys' shares.
          expect(wrapped.length, `node ${i}: sealed records found`).toBeGreaterThanOrEqual(4);
          for (const w of wrapped) dataKeys.push(kek.unwrapKey(w, dataKeyAad(i)));
          probes.push({ node: i, wrapped: wrapped[0]!, dataKey: dataKeys[dataKeys.length - wrapped.length]! });
          // (c) The shares this node holds, read through its store.
          const store = await ShareStore.open({ dataDir, kek, nodeIndex: i });
          try {
            const records = await store.listAll();
            expect(records.map((r) => r.keyId).sort()).toEqual(['p11-ed', 'p11-imported']);
            for (const r of records) shares.push((await store.getShare(r.tenant, r.keyId, r.version))!.secret.value);
          } finally {
            await store.close();
          }
        } finally {
          kek.close();
        }
      });
    }
    expect(pkcs11ModuleRefs(SOFTHSM_MODULE)).toBe(0);
    expect(shares.length).toBe(6);
    expect(new Set(dataKeys.map(hex)).size).toBe(dataKeys.length); // random per record

    const files = await allFiles(tc.dir);
    expect(files.some((f) => f.includes('leveldb'))).toBe(true);
    expect(files.filter((f) => f.endsWith('.log') && f.includes('logs')).length).toBe(N + 1);
    expect(files.some((f) => f.endsWith('.kek'))).toBe(false);
    const haystacks = [...(await Promise.all(files.map((f) => readFile(f)))), ...decodedValues.map((v) => Buffer.from(v))];

    const pins = NODES.map((i) => tokens.get(i)!.pin);
    const found = (secrets: readonly Uint8Array[]) => secrets.filter((s) => formsOf(s).some((form) => haystacks.some((h) => h.includes(form)))).length;
    expect(found(dataKeys), 'data keys found in a file').toBe(0);
    expect(found(shares), 'shares found in a file').toBe(0);
    expect(pins.filter((pin) => haystacks.some((h) => h.includes(Buffer.from(pin, 'latin1')))).length, 'PINs found in a file').toBe(0);

    // (d) No 32 bytes in the files, taken as an AES-256 key, are any node's token key: with a 96-bit IV the
    // first keystream block is AES_K(IV || 00000002) (SP 800-38D §7.1), and it must equal the first ciphertext
    // block XOR the first 16 bytes of the data key we unwrapped through the token.
    const counterBlocks = Buffer.concat(probes.map((p) => Buffer.concat([Buffer.from(p.wrapped.subarray(0, 12)), Buffer.of(0, 0, 0, 2)])));
    const keystreams = Buffer.concat(probes.map((p) => Buffer.from(p.wrapped.subarray(12, 28)).map((b, k) => b ^ p.dataKey[k]!)));
    /** Whether `candidate` is one of the nodes' token keys: one AES-ECB pass over every node's counter block. */
    const isTokenKey = (candidate: Uint8Array): boolean => {
      const out = createCipheriv('aes-256-ecb', candidate, null).setAutoPadding(false).update(counterBlocks);
      for (let k = 0; k < out.length; k += 16) if (out.subarray(k, k + 16).equals(keystreams.subarray(k, k + 16))) return true;
      return false;
    };
    // The check itself works: the right key is found (a key made here, used as the token would).
    const known = randomBytes(32);
    const iv = randomBytes(12);
    const dk = randomBytes(32);
    const gcm = createCipheriv('aes-256-gcm', known, iv);
    const ct = Buffer.concat([gcm.update(dk), gcm.final()]);
    const selfCheck = { counterBlock: Buffer.concat([iv, Buffer.of(0, 0, 0, 2)]), keystream: ct.subarray(0, 16).map((b, k) => b ^ dk[k]!) };
    expect(createCipheriv('aes-256-ecb', known, null).setAutoPadding(false).update(selfCheck.counterBlock).equals(selfCheck.keystream)).toBe(true);

    let windows = 0;
    let hits = 0;
    for (const h of haystacks) {
      for (let at = 0; at + 32 <= h.length; at++, windows++) if (isTokenKey(h.subarray(at, at + 32))) hits++;
      // 64 hex characters anywhere: tried as the key they spell.
      const text = h.toString('latin1');
      for (const m of text.matchAll(/(?=([0-9a-fA-F]{64}))/g)) if (isTokenKey(Buffer.from(m[1]!, 'hex'))) hits++;
      // 32 bytes written as decimal numbers (a Buffer in a JSON log).
      for (const m of text.matchAll(/(?=((?:\d{1,3},){31}\d{1,3}))/g)) {
        const bytes = m[1]!.split(',').map(Number);
        if (bytes.every((b) => b <= 255) && isTokenKey(Uint8Array.from(bytes))) hits++;
      }
    }
    expect(windows).toBeGreaterThan(10_000);
    expect(hits, 'windows of the files that are a token key').toBe(0);
  }, 120_000);

  it('a node whose token refuses its PIN does not start, and says so without the PIN', async () => {
    const t = tokens.get(2)!;
    const wrongPin = `wrong-${randomBytes(6).toString('hex')}`;
    await writePinFile(t.pinFile, wrongPin);
    const logFile = tc.dev.logFile(2);
    const before = (await readFile(logFile)).length;
    let exited = false;
    const previous = tc.dev.onUnexpectedExit;
    tc.dev.onUnexpectedExit = (index, code, signal) => {
      if (index === 2) exited = true;
      else previous?.(index, code, signal);
    };
    try {
      tc.dev.start(2);
      await waitFor('node 2 to exit', () => exited, 30_000, 100);
    } finally {
      tc.dev.onUnexpectedExit = previous;
    }
    const log = (await readFile(logFile)).subarray(before).toString('utf8');
    expect(log).toMatch(/tessera-node: config: kekProvider token "tessera-node-2" refused the PIN/);
    expect(log).not.toContain(wrongPin);
    expect(log).not.toContain(t.pin);
  }, 60_000);
});
