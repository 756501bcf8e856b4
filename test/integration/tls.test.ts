/**
 * TLS on every listener, with a real cluster: `startDevCluster({ tls: true })` runs a coordinator and
 * three node processes that serve https / wss with certificates from a development CA. Clients pin
 * that CA (cluster.json `ca`); plain HTTP and unpinned clients are refused. Also the transport rules
 * that keep API keys and node identities off plain connections (SDK and node config).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { fromHex } from '../../core/bytes.js';
import { ConfigError, loadNodeConfig } from '../../node/config.js';
import { Cluster, NodeClient, TesseraClientError } from '../../sdk/client.js';
import type { ClusterFile } from '../../sdk/cli.js';
import { startDevCluster, type DevCluster } from '../../sdk/dev.js';
import { ensureCa } from '../../sdk/dev-certs.js';
import { assertSafeTransport } from '../../sdk/http.js';

let dataDir: string;
let dev: DevCluster | undefined;
let cluster: ClusterFile;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tessera-tls-'));
  try {
    dev = await startDevCluster({ nodes: 3, threshold: 2, dataDir, port: 0, tls: true, logLevel: 'warn' });
    cluster = dev.cluster;
    await dev.ready(90_000);
  } catch (e) {
    await dev?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
}, 120_000);

afterAll(async () => {
  await dev?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 30_000);

function clientFor(n: ClusterFile['nodes'][number], extra: Partial<ConstructorParameters<typeof NodeClient>[0]> = {}): NodeClient {
  return new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, timeoutMs: 10_000, ...(n.ca ? { ca: n.ca } : {}), ...extra });
}

/** A raw GET; resolves with the status code or rejects with the transport error. */
function rawGet(url: string, opts: https.RequestOptions = {}): Promise<number> {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((res, rej) => {
    const req = lib.get(u, { timeout: 5000, ...opts }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
  });
}

describe('dev cluster with TLS', () => {
  it('writes https endpoints and the CA for pinning into cluster.json, and TLS into every config', () => {
    const onDisk = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as ClusterFile;
    expect(onDisk).toEqual(cluster);
    expect(cluster.coordinator).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    for (const n of cluster.nodes) {
      expect(n.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(n.ca).toContain('-----BEGIN CERTIFICATE-----');
      const cfg = JSON.parse(readFileSync(join(dataDir, `node-${n.index}.json`), 'utf8'));
      expect(cfg.api.tls.certFile).toBe(join(dataDir, 'tls', `node-${n.index}.pem`));
      expect(cfg.coordinatorUrl).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/nodes$/);
      expect(cfg.coordinatorCaFile).toBe(join(dataDir, 'tls', 'ca.pem'));
    }
    const coordinatorCfg = JSON.parse(readFileSync(join(dataDir, 'coordinator.json'), 'utf8'));
    expect(coordinatorCfg.tls.certFile).toBe(join(dataDir, 'tls', 'coordinator.pem'));
  });

  it('keygen and sign over HTTPS with the pinned CA (nodes reached the coordinator over wss)', async () => {
    const sdk = new Cluster(cluster.nodes.map((n) => clientFor(n)), { threshold: cluster.threshold });
    const key = await sdk.keygen({ suite: 'ed25519', keyId: 'tls-key' });
    const message = new TextEncoder().encode('signed over TLS');
    const sig = await sdk.sign({ keyId: key.keyId, message, players: [1, 3] });
    // Independent check besides the SDK's own verification.
    expect(ed25519.verify(fromHex(sig.signature, 'sig'), message, fromHex(key.publicKey, 'pk'))).toBe(true);
  }, 60_000);

  it('a plain http:// request to a node port gets no API answer', async () => {
    const n = cluster.nodes[0]!;
    const plainUrl = n.url.replace(/^https:/, 'http:');
    // Through the SDK (127.0.0.1 is loopback, so the SDK itself allows http and the server must refuse).
    const err = await clientFor(n, { url: plainUrl }).info().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TesseraClientError);
    const e = err as TesseraClientError;
    expect(e.code === 'UNAVAILABLE' || e.code === 'BAD_RESPONSE' || (e.status ?? 0) >= 400).toBe(true);
    // Raw: either the connection is dropped or the answer is an HTTP error, never 200.
    const raw = await rawGet(`${plainUrl}/health`).catch(() => 'refused' as const);
    expect(raw === 'refused' || raw >= 400).toBe(true);
  });

  it('a plain http:// request to the coordinator port gets no answer either', async () => {
    const raw = await rawGet(`${cluster.coordinator.replace(/^https:/, 'http:')}/health`).catch(() => 'refused' as const);
    expect(raw === 'refused' || raw >= 400).toBe(true);
    // With the CA it answers, so the port is the coordinator's.
    expect(await rawGet(`${cluster.coordinator}/health`, { ca: cluster.nodes[0]!.ca })).toBe(200);
  });

  it('a client without the CA, or pinning another CA, fails with a TLS error', async () => {
    const n = cluster.nodes[1]!;
    const unpinned = new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, timeoutMs: 10_000 });
    await expect(unpinned.info()).rejects.toThrow(/certificate/i);
    const otherCa = ensureCa(join(dataDir, 'other-ca'), { commonName: 'Some other CA' });
    const wrongPin = clientFor(n, { ca: readFileSync(otherCa.certFile, 'utf8') });
    await expect(wrongPin.info()).rejects.toThrow(/certificate/i);
    // The pinned client works on the same node.
    expect((await clientFor(n).info()).index).toBe(n.index);
  });
});

describe('transport rules', () => {
  it('the SDK refuses to send an API key over plain HTTP to a non-loopback host', async () => {
    for (const url of ['http://10.0.0.5:7701', 'http://node1:7701', 'http://[2001:db8::1]:7701', 'http://0.0.0.0:7701']) {
      expect(() => assertSafeTransport(url), url).toThrow(/plain HTTP/);
    }
    for (const url of ['https://10.0.0.5:7701', 'https://node1:7701', 'http://127.0.0.1:7701', 'http://localhost:7701', 'http://[::1]:7701']) {
      expect(() => assertSafeTransport(url), url).not.toThrow();
    }
    // And the request is never made: the client fails before any connection.
    const c = new NodeClient({ url: 'http://192.0.2.1:7701', apiKey: 'tsk_never_sent_0123456789' });
    await expect(c.info()).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });

  it('node config refuses a non-loopback plain-HTTP API host and ws:// to a non-loopback coordinator', () => {
    const base = { TESSERA_NODE_INDEX: '1', TESSERA_DATA_DIR: join(dataDir, 'x'), TESSERA_API_PORT: '7701' };
    const refused = (env: NodeJS.ProcessEnv, file?: string): ConfigError => {
      try {
        loadNodeConfig({ env, ...(file ? { file } : {}) });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return e as ConfigError;
      }
      throw new Error('config was accepted');
    };
    expect(refused({ ...base, TESSERA_API_HOST: '0.0.0.0' }).field).toBe('api.host');
    expect(refused({ ...base, TESSERA_API_HOST: '10.1.2.3' }).field).toBe('api.host');
    // The dev node config has TLS: then a non-loopback host is accepted ...
    const file = join(dataDir, 'node-1.json');
    const ok = loadNodeConfig({ file, env: { TESSERA_API_HOST: '0.0.0.0' } });
    expect(ok.api.host).toBe('0.0.0.0');
    expect(ok.api.tls?.certFile).toBe(join(dataDir, 'tls', 'node-1.pem'));
    // ... but ws:// to a non-loopback coordinator never is.
    expect(refused({ TESSERA_COORDINATOR_URL: 'ws://coordinator:7400/nodes' }, file).field).toBe('coordinatorUrl');
    expect(loadNodeConfig({ file, env: { TESSERA_COORDINATOR_URL: 'wss://coordinator:7400/nodes' } }).coordinatorUrl).toBe(
      'wss://coordinator:7400/nodes',
    );
  });
});
