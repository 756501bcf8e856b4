/**
 * Shared helpers for the integration tests: a real local cluster (coordinator + node processes on
 * random free ports, data in a fresh temp dir) that is always torn down, SDK clusters over it, and
 * independent checks of what it returns (signature verifiers, an @hpke/core sender).
 */
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { verifySchnorr } from 'tiny-secp256k1';
import { nodePublicKey } from './ecdsa.js';
import { AeadId, KdfId, createContext, type HpkeSuiteParams } from '../../core/hpke.js';
import { getKemSuite, getSigningSuite } from '../../core/suites.js';
import { Cluster, NodeClient, type ApproveHook } from '../../sdk/client.js';
import type { CommitStatusResponse } from '../../contract/http.js';
import { prepareDevNode, startDevCluster, type DevCluster, type DevNode } from '../../sdk/dev.js';

export const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export const hexToBytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
export const bytesToHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
/** The request deadline of the test clusters' SDK clients (see startTestCluster). */
export const TEST_REQUEST_TIMEOUT_MS = 60_000;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface TestCluster {
  readonly dev: DevCluster;
  /** The temp data dir (removed by close()). */
  readonly dir: string;
  /** <dir>/cluster.json, the file the CLI reads. */
  readonly clusterFile: string;
  readonly nodes: number;
  readonly threshold: number;
  /** A Cluster of NodeClients without policy hooks. */
  readonly cluster: Cluster;
  /** A Cluster whose NodeClient i runs hooks[i] (nodes without a hook approve everything). */
  withHooks(hooks: Partial<Record<number, ApproveHook>>): Cluster;
  /** One node's client (1-based), without a hook. */
  client(index: number): NodeClient;
  /** Stop every process, start every process again on the same ports and data, wait until ready. */
  restartAll(): Promise<void>;
  /**
   * Start one stopped node (or the coordinator, 0) again, with extra environment if given, and wait
   * until every node is ready and sees every other online.
   */
  restart(index: number, env?: Record<string, string>): Promise<void>;
  /**
   * Stop one running node (SIGTERM; or the coordinator, 0) and start it again with `env` (e.g. a
   * TESSERA_FAULT_POINTS or TESSERA_TEST_DEVIATIONS for the tests that arm a node), then wait as restart does.
   */
  restartWith(index: number, env?: Record<string, string>): Promise<void>;
  /** Every node's commit status of a key, by node (index i at [i - 1]); null where the node holds nothing of it. */
  commitStatuses(keyId: string): Promise<(CommitStatusResponse | null)[]>;
  /** Last lines of every process log, for failure messages. */
  logs(lines?: number): string;
  /** Stop every process and remove the data dir. Idempotent; safe after a failed start. */
  close(): Promise<void>;
  /**
   * Prepare node `index` to join (issue 13): new data dir, identity and config with the cluster's
   * committed membership plus itself at the next epoch (sdk/dev.ts prepareDevNode). Not started: start()
   * it before the change or once it is committed (e.g. Cluster.addNode's onCommitted). client(index) reaches it.
   */
  addNode(index: number): Promise<DevNode>;
  /** Node `index` lost its data dir: stopped, its data dir and KEK deleted, prepared again with a new identity (same port and API key); start it as addNode's. */
  recreateNode(index: number): Promise<DevNode>;
}

/** Tail of every log file of a dev data dir (for diagnosing a failed start or session). */
export function readLogs(dir: string, lines = 15): string {
  const logDir = join(dir, 'logs');
  const names = ['coordinator', ...Array.from({ length: 64 }, (_, i) => `node-${i + 1}`)];
  const out: string[] = [];
  for (const name of names) {
    const p = join(logDir, `${name}.log`);
    if (!existsSync(p)) continue;
    const text = readFileSync(p, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    out.push(`--- ${name}.log\n${text}`);
  }
  return out.join('\n');
}

/**
 * Start a dev cluster (`nodes` node processes and a coordinator, ports picked by the OS) in a new
 * temp dir and wait until every node is ready. If anything fails, everything started is stopped
 * and the dir removed before the error is rethrown (with the logs' tails in its message).
 */
export async function startTestCluster(o: {
  nodes: number;
  threshold: number;
  logLevel?: string;
  env?: Record<string, string>;
  /** Extra environment for one process (0 = coordinator, i = node i), e.g. a group backend per node. */
  envFor?: (index: number) => Record<string, string> | undefined;
  /** How long the first start may take until every node answers /ready (default 50 s; a longer beforeAll timeout must cover it). */
  readyTimeoutMs?: number;
}): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-it-'));
  let dev: DevCluster | undefined;
  let closed = false;
  // If the test worker exits without running afterAll (crash, timeout kill), still signal the children.
  const onExit = () => void dev?.stop();
  process.once('exit', onExit);
  const close = async () => {
    if (closed) return;
    closed = true;
    process.removeListener('exit', onExit);
    try {
      await dev?.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    dev = await startDevCluster({
      nodes: o.nodes,
      threshold: o.threshold,
      dataDir: dir,
      port: 0,
      logLevel: o.logLevel ?? 'info',
      out: () => {},
      ...(o.env ? { env: o.env } : {}),
      ...(o.envFor ? { envFor: o.envFor } : {}),
    });
    await readyOrExplain(dev, dir, o.readyTimeoutMs);
  } catch (e) {
    await close();
    throw e;
  }
  const d = dev;
  // A request deadline above the SDK's 15 s default: the full suite runs many clusters at once on 2
  // cores, and a session's requests wait for every player. Tests of the deadline itself set their own.
  const timeoutMs = TEST_REQUEST_TIMEOUT_MS;
  const plainClients = d.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, timeoutMs }));
  const withHooks = (hooks: Partial<Record<number, ApproveHook>>) =>
    new Cluster(
      d.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, timeoutMs, ...(hooks[n.index] ? { approve: hooks[n.index] } : {}) })),
      { threshold: o.threshold },
    );
  return {
    dev: d,
    dir,
    clusterFile: join(dir, 'cluster.json'),
    nodes: o.nodes,
    threshold: o.threshold,
    cluster: new Cluster(plainClients, { threshold: o.threshold }),
    withHooks,
    client: (i) => plainClients[i - 1]!,
    async restartAll() {
      await d.stop();
      for (let i = 0; i <= o.nodes; i++) d.start(i);
      await readyOrExplain(d, dir);
    },
    async restart(index, env) {
      d.start(index, env);
      await readyOrExplain(d, dir);
    },
    async restartWith(index, env) {
      await d.kill(index);
      d.start(index, env);
      await readyOrExplain(d, dir);
    },
    commitStatuses: (keyId) =>
      Promise.all(
        plainClients.map((c) =>
          c.commitStatus(keyId).catch((e: { code?: string }) => {
            if (e.code === 'NOT_FOUND') return null;
            throw e;
          }),
        ),
      ),
    logs: (lines) => readLogs(dir, lines),
    close,
    addNode: (index) => prepareNode(index, false),
    recreateNode: (index) => prepareNode(index, true),
  };

  async function prepareNode(index: number, fresh: boolean): Promise<DevNode> {
    const report = await new Cluster(plainClients.filter(Boolean), { threshold: o.threshold }).membership();
    if (!report.membership) throw new Error(`no node answered with its membership: ${JSON.stringify(report.nodes)}`);
    const current = { epoch: report.membership.epoch, members: report.membership.members.map((m) => ({ index: m.index, identityPublicKey: bytesToHex(m.identityPublicKey) })) };
    const node = await prepareDevNode(d, { index, current, fresh });
    plainClients[index - 1] = new NodeClient({ url: node.url, apiKey: node.apiKey, index, timeoutMs });
    return node;
  }
}

async function readyOrExplain(dev: DevCluster, dir: string, readyTimeoutMs = 50_000): Promise<void> {
  try {
    // Deadlines sum to 70 s, below the 90 s beforeAll timeouts, so a failed start still cleans up.
    await dev.ready(readyTimeoutMs);
    // /ready only says a node is connected; wait until every node also sees all the others online,
    // so the first session does not race a peer's (re)connection.
    const deadline = Date.now() + 20_000;
    const all = dev.cluster.nodes.map((n) => n.index);
    for (const n of dev.cluster.nodes) {
      const c = new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index });
      for (;;) {
        const info = await c.info();
        if (all.every((i) => info.online.includes(i))) break;
        if (Date.now() > deadline) throw new Error(`node ${n.index} sees only ${info.online.join(',')} online`);
        await sleep(100);
      }
    }
  } catch (e) {
    throw new Error(`cluster did not become ready: ${(e as Error).message}\n${readLogs(dir)}`);
  }
}

/**
 * Verify a final signature with a verifier independent of Tessera where one exists: node:crypto
 * (RFC 8032) for ed25519, tiny-secp256k1 (libsecp256k1, BIP-340) for bip340 with 32-byte messages;
 * secp256k1 and p256 FROST signatures (RFC 9591 §6.4/§6.5) have no other verifier, so the suite's
 * RFC 9591 verify is used.
 */
export function verifySignature(suite: string, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  switch (suite) {
    case 'ed25519': {
      const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
      return nodeVerify(null, message, key, signature);
    }
    case 'bip340':
      if (message.length !== 32) throw new Error('tiny-secp256k1 verifySchnorr takes 32-byte messages only');
      return verifySchnorr(message, publicKey, signature);
    case 'secp256k1':
    case 'p256':
      return getSigningSuite(suite).verify(signature, message, publicKey);
    case 'ecdsa-secp256k1':
    case 'ecdsa-p256': {
      // OpenSSL (node:crypto) over SHA-256 of the message, the compact (IEEE P1363) form.
      return nodeVerify('sha256', message, { key: nodePublicKey(suite, publicKey), dsaEncoding: 'ieee-p1363' }, signature);
    }
    default:
      throw new Error(`not a signing suite: ${suite}`);
  }
}

/** An independent HPKE sender (@hpke/core, RFC 9180 base mode, HKDF-SHA256, AES-128-GCM). */
export async function hpkeSeal(
  suite: string,
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  info = new TextEncoder().encode('tessera integration'),
  aad = new TextEncoder().encode('aad'),
): Promise<{ enc: Uint8Array; ciphertext: Uint8Array; info: Uint8Array; aad: Uint8Array }> {
  const kem = suite === 'hpke-x25519' ? new DhkemX25519HkdfSha256() : suite === 'hpke-p256' ? new DhkemP256HkdfSha256() : undefined;
  if (!kem) throw new Error(`not a KEM suite: ${suite}`);
  const hpke = new CipherSuite({ kem, kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  const pk = await hpke.kem.deserializePublicKey(recipientPublicKey.slice().buffer as ArrayBuffer);
  // @hpke/core's seal takes (plaintext, aad).
  const sender = await hpke.createSenderContext({ recipientPublicKey: pk, info });
  const ciphertext = new Uint8Array(await sender.seal(plaintext.slice().buffer as ArrayBuffer, aad.slice().buffer as ArrayBuffer));
  return { enc: new Uint8Array(sender.enc), ciphertext, info, aad };
}

/** Open a sender's message with a (threshold-decapsulated) shared secret through core/hpke.ts. */
export function hpkeOpenWithSecret(suite: string, sharedSecret: Uint8Array, sealed: { ciphertext: Uint8Array; info: Uint8Array; aad: Uint8Array }): Uint8Array {
  const params: HpkeSuiteParams = { kemId: getKemSuite(suite).kemId, kdfId: KdfId.HkdfSha256, aeadId: AeadId.Aes128Gcm };
  const ctx = createContext(params, sharedSecret, sealed.info);
  try {
    return ctx.open(sealed.aad, sealed.ciphertext);
  } finally {
    ctx.destroy();
  }
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<Error & { code?: string; culprits?: readonly number[]; node?: number; status?: number }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected the call to reject, but it resolved');
}

/** Lines of a process log that parse as pino JSON and satisfy `pred`. */
export async function logEntries(dir: string, name: string, pred: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await readFile(join(dir, 'logs', `${name}.log`), 'utf8');
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as Record<string, unknown>;
      if (pred(e)) out.push(e);
    } catch {
      /* a partly written line */
    }
  }
  return out;
}

/** Poll until `cond` holds (or throw after timeoutMs). */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** A 32-byte message (BIP-340 verifiers take 32 bytes), distinct per label. */
export function message32(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(label).digest());
}
