/**
 * The node's HTTP API surface: every route of contract/http.ts ROUTES is what the server serves; no
 * response schema has a field named like secret material; every route answers unauthenticated
 * callers with 401 and a JSON error; and after calling every route on a live cluster (valid and
 * invalid inputs), no response body — nor any log line — contains a node's stored share, KEK or
 * identity secret (read from the stopped nodes' stores afterwards).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { toHex } from '../../core/bytes.js';
import { generateWrappingKeyPair } from '../../core/wrap.js';
import { ROUTES } from '../../contract/http.js';
import { CONSOLE_ROUTES, CONSOLE_STATIC_URLS } from '../../contract/console.js';
import { OPENAPI_PATH } from '../../runtime/openapi.js';
import { buildApi } from '../../node/http/api.js';
import { loadOrCreateIdentity } from '../../node/store/identity-store.js';
import { readKekFile } from '../../node/store/kek.js';
import { ShareStore } from '../../node/store/storage.js';
import { assembleBundle } from '../../core/bundle.js';
import { newSessionId, packageFromJson } from '../../sdk/client.js';
import { bytesToHex, hexToBytes, hpkeSeal, message32, startTestCluster, type TestCluster } from '../helpers/cluster.js';

type RouteName = keyof typeof ROUTES;
const ROUTE_NAMES = Object.keys(ROUTES) as RouteName[];
/** Routes anyone may call (liveness and readiness probes). */
const PUBLIC_ROUTES = new Set<RouteName>(['health', 'ready'] as RouteName[]);

/** Field names that would suggest secret material in a response. */
const SECRET_NAME = /share|secret|private|nonce|kek|seed|coefficient|polynomial|password|apikey|token/i;
/**
 * Public fields that match the pattern, each with why it is public:
 * - verifyingShares: share_i·G for each party (RFC 9591 §5 "verifying shares"), public by design;
 * - wrappedShare: a share HPKE-sealed to a wrapping key the caller named (export); ciphertext only.
 */
const PUBLIC_FIELDS_MATCHING = new Set(['verifyingShares', 'wrappedShare', 'wrappedShares', 'apiKeyId', 'apiKeys', 'apiKey', 'share', 'shares']);
/*
 * - share / shares (sign-share, sign-batch): FROST signature shares z_i (RFC 9591 §5.2), what every
 *   signer sends in round 2 and the aggregator publishes to check (§5.4); public-safe: each is
 *   computed with a fresh nonce used once (node/presign/), so it reveals nothing about the key share;
 * - apiKeyId: an API key's id (ak_..., the audit actor and policy scope), not the key;
 * - apiKeys: the admin listing of API keys: ids, tenants, roles, times (never keys or hashes);
 * - apiKey: the new API key in the answer to the admin who created it (createApiKey), the only time it
 *   exists outside its holder (the node keeps its SHA-256).
 */

interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: boolean | SchemaNode;
  [k: string]: unknown;
}

/** Every property name of a response schema, with its path; fails on schemas that allow arbitrary fields. */
function walkResponseSchema(node: SchemaNode, path: string, out: { name: string; path: string }[]): void {
  expect(node.type, `${path}: every response schema node has a type`).toBeDefined();
  if (node.type === 'object') {
    // fast-json-stringify serialises only listed properties; an open object would let anything through.
    expect(node.additionalProperties, `${path}: response objects must not allow extra properties`).not.toBe(true);
    expect(typeof node.additionalProperties, `${path}: additionalProperties`).not.toBe('object');
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      out.push({ name, path: `${path}.${name}` });
      walkResponseSchema(child, `${path}.${name}`, out);
    }
  }
  if (node.type === 'array' && node.items) walkResponseSchema(node.items, `${path}[]`, out);
}

describe('API schemas (static)', () => {
  it('no response schema has a field named like secret material, and no response object is open', () => {
    const fields: { name: string; path: string }[] = [];
    for (const name of ROUTE_NAMES) {
      const responses = (ROUTES[name].schema as unknown as { response?: Record<string, SchemaNode> }).response;
      expect(responses, `${name} declares its response schemas`).toBeDefined();
      expect(Object.keys(responses!).some((s) => s === '200'), `${name} has a 200 schema`).toBe(true);
      for (const [status, schema] of Object.entries(responses!)) walkResponseSchema(schema, `${name}[${status}]`, fields);
    }
    const suspicious = fields.filter((f) => SECRET_NAME.test(f.name) && !PUBLIC_FIELDS_MATCHING.has(f.name));
    expect(suspicious).toEqual([]);
    // The decapsulated secret never comes from a node: only its wrapped partial does.
    expect(fields.map((f) => f.name)).not.toContain('sharedSecret');
    // Sanity: the walk does see the fields the allowlist is about.
    expect(fields.map((f) => f.name)).toContain('verifyingShares');
    expect(fields.map((f) => f.name)).toContain('publicKey');
  });

  it('the server serves exactly the routes of ROUTES', async () => {
    const app = await buildApi({ service: {} as never, admin: {} as never, authenticate: () => undefined, logger: pino({ level: 'silent' }) });
    try {
      await app.ready();
      for (const name of ROUTE_NAMES) {
        const r = ROUTES[name];
        expect(app.hasRoute({ method: r.method, url: r.url }), `${r.method} ${r.url}`).toBe(true);
      }
      // printRoutes lists each path once with its methods; count (path, method) pairs, HEAD aside.
      const tree = app.printRoutes({ commonPrefix: false });
      const served = [...tree.matchAll(/\(([A-Z, ]+)\)/g)].flatMap((m) => m[1]!.split(', ').filter((x) => x !== 'HEAD'));
      // Besides ROUTES: GET /openapi.json (runtime/openapi.ts, the document of these routes), and the
      // operator console's JSON routes (contract/console.ts CONSOLE_ROUTES) and static files.
      const others = [OPENAPI_PATH, ...Object.values(CONSOLE_ROUTES).map((r) => r.url), ...CONSOLE_STATIC_URLS];
      for (const url of others) expect(app.hasRoute({ method: 'GET', url }), `GET ${url}`).toBe(true);
      expect(served.length).toBe(ROUTE_NAMES.length + others.length);
    } finally {
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

interface Recorded {
  route: string;
  status: number;
  body: string;
}

describe('API surface on a live cluster', () => {
  let tc: TestCluster;
  const recorded: Recorded[] = [];
  const validlyCalled = new Set<string>();
  let url: (i: number) => string;
  let apiKey: (i: number) => string;

  /** One HTTP call, recorded; the body must be JSON (every answer of this API is). */
  async function call(
    route: RouteName | 'unknown',
    node: number,
    method: string,
    path: string,
    o: { body?: unknown; rawBody?: string; auth?: string | null } = {},
  ): Promise<{ status: number; json: any }> {
    const headers: Record<string, string> = {};
    const auth = o.auth === undefined ? `Bearer ${apiKey(node)}` : o.auth;
    if (auth !== null) headers.authorization = auth;
    let body: string | undefined;
    if (o.rawBody !== undefined) body = o.rawBody;
    else if (o.body !== undefined) body = JSON.stringify(o.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url(node)}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    recorded.push({ route, status: res.status, body: text });
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${method} ${path} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    expect(res.headers.get('content-type') ?? '', `${method} ${path} content type`).toMatch(/^application\/json/);
    if (res.status >= 400 && route !== 'unknown') {
      expect(json, `${method} ${path} -> ${res.status}: error body`).toMatchObject({ code: expect.stringMatching(/^[A-Z_]+$/), message: expect.any(String) });
    } else if (route !== 'unknown') validlyCalled.add(route);
    return { status: res.status, json };
  }

  /** The same session request to several nodes at once (what the SDK does), recorded. */
  function session(route: RouteName, players: number[], path: string, body: (node: number) => unknown) {
    return Promise.all(players.map((i) => call(route, i, 'POST', path, { body: body(i) })));
  }

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    url = (i) => tc.dev.cluster.nodes[i - 1]!.url;
    apiKey = (i) => tc.dev.cluster.nodes[i - 1]!.apiKey;
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('every authenticated route answers 401 with a JSON error to a missing, malformed, unknown or other node\'s API key', async () => {
    const path = (name: RouteName) => ROUTES[name].url.replace(':keyId', 'some-key');
    for (const name of ROUTE_NAMES) {
      const { method } = ROUTES[name];
      if (PUBLIC_ROUTES.has(name)) continue;
      // Valid-looking body, or none at all, or garbage: authentication comes first either way.
      const bodies: ({ body?: unknown; rawBody?: string })[] =
        method === 'POST' ? [{ body: { sessionId: newSessionId() } }, { rawBody: '{not json' }, {}] : [{}];
      for (const b of bodies) {
        for (const auth of [null, 'Bearer', 'Basic dXNlcjpwYXNz', `Bearer tsk_dev_1_${'0'.repeat(48)}`, `Bearer ${apiKey(2)}`]) {
          const r = await call(name, 1, method, path(name), { ...b, auth });
          expect(r.status, `${method} ${path(name)} auth=${auth?.slice(0, 12)} body=${JSON.stringify(b).slice(0, 30)}`).toBe(401);
          expect(r.json).toEqual({ code: 'UNAUTHORIZED', message: expect.any(String) });
        }
      }
    }
    // The probes need no key.
    expect((await call('health', 1, 'GET', '/health', { auth: null })).json).toEqual({ status: 'ok' });
    expect((await call('ready', 1, 'GET', '/ready', { auth: null })).json).toEqual({ ready: true });
  });

  it('every route, called with valid and invalid input, then no response body or log line holds a share, the KEK or an identity secret', async () => {
    const sid = () => newSessionId();
    const all = [1, 2, 3];

    // --- node info and probes on every node
    for (const i of all) {
      expect((await call('node', i, 'GET', '/v1/node')).json).toMatchObject({ index: i, parties: 3, ready: true });
      await call('health', i, 'GET', '/health');
      await call('ready', i, 'GET', '/ready');
    }

    // --- keygen (valid for three suites, then invalid)
    const made: Record<string, any> = {};
    for (const [keyId, suite] of [
      ['surface-ed', 'ed25519'],
      ['surface-kem', 'hpke-x25519'],
      ['surface-refresh', 'secp256k1'],
    ] as const) {
      const s = sid();
      const rs = await session('keygen', all, '/v1/keys', () => ({ sessionId: s, keyId, suite, threshold: 2 }));
      for (const r of rs) expect(r.status, `keygen ${suite}: ${JSON.stringify(r.json)}`).toBe(200);
      made[keyId] = rs[0]!.json;
    }
    const badKeygens: [unknown, number, RegExp?][] = [
      [{}, 400],
      [{ sessionId: sid(), keyId: 'x', suite: 'rsa', threshold: 2 }, 400],
      [{ sessionId: sid(), keyId: 'x', suite: 'ed25519', threshold: 1 }, 400],
      [{ sessionId: sid(), keyId: 'x', suite: 'ed25519', threshold: 4 }, 400, /BAD_PARAMETERS/],
      [{ sessionId: 'zz', keyId: 'x', suite: 'ed25519', threshold: 2 }, 400],
      [{ sessionId: sid(), keyId: '../etc', suite: 'ed25519', threshold: 2 }, 400],
      [{ sessionId: sid(), keyId: 'surface-ed', suite: 'ed25519', threshold: 2 }, 409, /ALREADY_EXISTS/],
    ];
    for (const [body, status, code] of badKeygens) {
      const r = await call('keygen', 1, 'POST', '/v1/keys', { body });
      expect(r.status, JSON.stringify(body)).toBe(status);
      if (code) expect(r.json.code).toMatch(code);
    }
    expect((await call('keygen', 1, 'POST', '/v1/keys', { rawBody: '{"sessionId":' })).status).toBe(400);

    // --- getKey
    for (const i of all) expect((await call('getKey', i, 'GET', '/v1/keys/surface-ed')).json.publicKey).toBe(made['surface-ed'].publicKey);
    await call('getKey', 1, 'GET', '/v1/keys/surface-kem?version=1');
    // GET /v1/keys: every version of every key of the tenant, public records only, by key id.
    const listed = (await call('listKeys', 1, 'GET', '/v1/keys')).json.keys as { keyId: string; version: number; state: string }[];
    expect(listed.map((k) => k.keyId)).toEqual([...listed.map((k) => k.keyId)].sort());
    expect(listed.map((k) => k.keyId)).toEqual(expect.arrayContaining(['surface-ed', 'surface-kem']));
    expect(((await call('listKeys', 1, 'GET', '/v1/keys?state=destroyed')).json.keys as unknown[]).every((k) => (k as { state: string }).state === 'destroyed')).toBe(true);
    expect((await call('listKeys', 1, 'GET', '/v1/keys?state=bogus')).status).toBe(400);
    expect((await call('listKeys', 1, 'GET', '/v1/keys?limit=1')).status).toBe(400);
    expect((await call('getKey', 1, 'GET', '/v1/keys/no-such-key')).status).toBe(404);
    expect((await call('getKey', 1, 'GET', '/v1/keys/surface-ed?version=9')).status).toBe(404);
    expect((await call('getKey', 1, 'GET', '/v1/keys/surface-ed?version=0')).status).toBe(400);
    expect((await call('getKey', 1, 'GET', '/v1/keys/bad%20id')).status).toBe(400);
    expect((await call('getKey', 1, 'GET', `/v1/keys/${'x'.repeat(200)}`)).status).toBe(414); // fastify maxParamLength

    // --- sign (valid with two pairs; invalid inputs; parameters that differ between nodes)
    for (const players of [
      [1, 2],
      [2, 3],
    ]) {
      const s = sid();
      const message = bytesToHex(message32(`surface ${players}`));
      const rs = await session('sign', players, '/v1/keys/surface-ed/sign', () => ({ sessionId: s, message, players }));
      for (const r of rs) expect(r.status, JSON.stringify(r.json)).toBe(200);
    }
    const signPath = '/v1/keys/surface-ed/sign';
    const badSigns: [string, unknown, number][] = [
      [signPath, { sessionId: sid(), message: 'zz', players: [1, 2] }, 400],
      [signPath, { sessionId: sid(), message: '00', players: [1] }, 400],
      [signPath, { sessionId: sid(), message: '00', players: [2, 3] }, 400], // node 1 not a player
      [signPath, { sessionId: sid(), message: '00', players: [1, 1] }, 400],
      [signPath, { sessionId: sid(), message: '00', players: [1, 9] }, 400],
      ['/v1/keys/no-such-key/sign', { sessionId: sid(), message: '00', players: [1, 2] }, 404],
      ['/v1/keys/surface-kem/sign', { sessionId: sid(), message: '00', players: [1, 2] }, 400],
    ];
    for (const [path, body, status] of badSigns) expect((await call('sign', 1, 'POST', path, { body })).status, `${path} ${JSON.stringify(body)}`).toBe(status);
    {
      // Nodes asked to sign different messages under one session id: the coordinator refuses to start it.
      const s = sid();
      const rs = await session('sign', [1, 2], signPath, (i) => ({ sessionId: s, message: i === 1 ? 'aa' : 'bb', players: [1, 2] }));
      for (const r of rs) expect(r.status).toBeGreaterThanOrEqual(400);
      expect(rs.map((r) => r.json.message).join(' ')).toMatch(/DIGEST_MISMATCH/);
    }

    // --- one-round signing from presignatures (node/presign/): batches, a share from each player,
    //     a batch of messages; invalid ones
    {
      const key = (await call('getKey', 1, 'GET', '/v1/keys/surface-ed')).json;
      const batches = await Promise.all([1, 2].map((i) => call('presignatures', i, 'POST', '/v1/keys/surface-ed/presignatures', { body: { count: 3 } })));
      for (const b of batches) expect(b.status, JSON.stringify(b.json)).toBe(200);
      const entry = (i: number, k: number) => {
        const b = batches[i - 1]!.json;
        return { node: i, poolId: b.poolId, index: b.commitments[k].index, hiding: b.commitments[k].hiding, binding: b.commitments[k].binding };
      };
      const list = [entry(1, 0), entry(2, 0)];
      const message = bytesToHex(message32('surface presigned'));
      const shares = await session('signShare', [1, 2], '/v1/keys/surface-ed/sign-share', () => ({ message, commitments: list, version: key.version, epoch: key.epoch }));
      for (const r of shares) expect(Object.keys(r.json).sort(), JSON.stringify(r.json)).toEqual(['commitment', 'epoch', 'keyId', 'node', 'share', 'version']);
      const items = [1, 2].map((k) => ({ message: bytesToHex(message32(`surface batch ${k}`)), commitments: [entry(1, k), entry(2, k)] }));
      const batch = await session('signBatch', [1, 2], '/v1/sign-batch', () => ({ keyId: 'surface-ed', version: key.version, epoch: key.epoch, items }));
      for (const r of batch) {
        expect(r.json.shares, JSON.stringify(r.json)).toHaveLength(2);
        expect(r.json.commitments, JSON.stringify(r.json)).toHaveLength(2);
      }
      // Both players report the same group commitment R for the same list and message.
      expect(shares[0]!.json.commitment).toBe(shares[1]!.json.commitment);
      // Used once: refused again; bad inputs.
      expect((await call('signShare', 1, 'POST', '/v1/keys/surface-ed/sign-share', { body: { message, commitments: list, version: key.version, epoch: key.epoch } })).status).toBe(409);
      expect((await call('signShare', 1, 'POST', '/v1/keys/surface-ed/sign-share', { body: { message, commitments: [list[0]], version: key.version, epoch: key.epoch } })).status).toBe(400);
      expect((await call('signShare', 1, 'POST', '/v1/keys/surface-kem/sign-share', { body: { message, commitments: list, version: 1, epoch: 0 } })).status).toBe(400);
      expect((await call('presignatures', 1, 'POST', '/v1/keys/surface-ed/presignatures', { body: { count: 100000 } })).status).toBe(400);
      expect((await call('presignatures', 1, 'POST', '/v1/keys/no-such-key/presignatures', { body: { count: 1 } })).status).toBe(404);
      expect((await call('signBatch', 1, 'POST', '/v1/sign-batch', { body: { keyId: 'surface-ed', version: key.version, epoch: key.epoch, items: [] } })).status).toBe(400);
    }

    // --- decapsulate (valid; invalid)
    const receiver = await generateWrappingKeyPair('ml-kem-768');
    const sealed = await hpkeSeal('hpke-x25519', hexToBytes(made['surface-kem'].publicKey), new TextEncoder().encode('surface'));
    const decapBody = (s: string, extra: Record<string, unknown> = {}) => ({
      sessionId: s,
      enc: bytesToHex(sealed.enc),
      players: [1, 3],
      receiverPublicKey: toHex(receiver.publicKey),
      ...extra,
    });
    {
      const s = sid();
      const rs = await session('decapsulate', [1, 3], '/v1/keys/surface-kem/decapsulate', () => decapBody(s));
      for (const r of rs) {
        expect(r.status, JSON.stringify(r.json)).toBe(200);
        expect(Object.keys(r.json).sort()).toEqual(['index', 'keyId', 'publicPackage', 'version', 'wrappedPartial']);
      }
    }
    const decapPath = '/v1/keys/surface-kem/decapsulate';
    const badDecaps: [string, unknown, number][] = [
      [decapPath, decapBody(sid(), { enc: '00'.repeat(31) }), 400],
      [decapPath, decapBody(sid(), { enc: '00'.repeat(32) }), 400], // the all-zero (low-order) X25519 point
      [decapPath, decapBody(sid(), { receiverPublicKey: '00'.repeat(32) }), 400],
      [decapPath, decapBody(sid(), { players: [1] }), 400],
      ['/v1/keys/surface-ed/decapsulate', decapBody(sid()), 400],
      ['/v1/keys/no-such-key/decapsulate', decapBody(sid()), 404],
    ];
    for (const [path, body, status] of badDecaps) expect((await call('decapsulate', 1, 'POST', path, { body })).status, `${path}`).toBe(status);

    // --- refresh (valid; invalid)
    {
      const s = sid();
      const rs = await session('refresh', all, '/v1/keys/surface-refresh/refresh', () => ({ sessionId: s }));
      for (const r of rs) expect(r.json).toEqual({ keyId: 'surface-refresh', version: 1, epoch: 1 });
    }
    expect((await call('refresh', 1, 'POST', '/v1/keys/no-such-key/refresh', { body: { sessionId: sid() } })).status).toBe(404);
    expect((await call('refresh', 1, 'POST', '/v1/keys/surface-ed/refresh', { body: { sessionId: sid(), version: 7 } })).status).toBe(404);
    expect((await call('refresh', 1, 'POST', '/v1/keys/surface-ed/refresh', { body: {} })).status).toBe(400);

    // --- decline (valid; invalid), when the node serves it
    if ('decline' in ROUTES) {
      const s = sid();
      expect((await call('decline' as RouteName, 2, 'POST', '/v1/sessions/decline', { body: { sessionId: s, keyId: 'surface-ed', operation: 'sign' } })).json).toEqual({ sessionId: s, declined: true });
      expect((await call('decline' as RouteName, 2, 'POST', '/v1/sessions/decline', { body: { sessionId: 'nope', keyId: 'surface-ed', operation: 'sign' } })).status).toBe(400);
    }

    // --- export (valid: an exportable key, its shares wrapped to the nodes' own import keys; invalid)
    //     and import (valid: that bundle, under a new key id; invalid)
    if ('exportKey' in ROUTES && 'importKey' in ROUTES) {
      const exportable = sid();
      const rs = await session('keygen', all, '/v1/keys', () => ({ sessionId: exportable, keyId: 'surface-export', suite: 'ed25519', threshold: 2, exportable: true }));
      made['surface-export'] = rs[0]!.json;
      const importKeys = await Promise.all(all.map(async (i) => (await call('node', i, 'GET', '/v1/node')).json.importPublicKey as string));
      const s = sid();
      const exported = await session('exportKey' as RouteName, all, '/v1/keys/surface-export/export', () => ({ sessionId: s, wrappingKeys: importKeys }));
      for (const r of exported) expect(r.status, JSON.stringify(r.json)).toBe(200);
      const bundle = assembleBundle({
        keyId: 'surface-export',
        keyVersion: 1,
        package: packageFromJson(exported[0]!.json.publicPackage),
        wrappedShares: exported.map((r) => r.json.wrappedShare),
      });
      expect(bundle.publicKey).toBe(made['surface-export'].publicKey);
      const t = sid();
      const imported = await session('importKey' as RouteName, all, '/v1/import', () => ({ sessionId: t, keyId: 'surface-imported', bundle, threshold: 2 }));
      for (const r of imported) expect(r.json, JSON.stringify(r.json)).toMatchObject({ keyId: 'surface-imported', publicKey: bundle.publicKey });
      made['surface-imported'] = imported[0]!.json;

      const exportPath = '/v1/keys/surface-ed/export'; // not exportable
      expect((await call('exportKey' as RouteName, 1, 'POST', exportPath, { body: { sessionId: sid(), wrappingKeys: importKeys } })).status).toBeGreaterThanOrEqual(400);
      expect((await call('exportKey' as RouteName, 1, 'POST', '/v1/keys/surface-export/export', { body: { sessionId: sid(), wrappingKeys: ['00'] } })).status).toBe(400);
      expect((await call('exportKey' as RouteName, 1, 'POST', '/v1/keys/no-such-key/export', { body: { sessionId: sid(), wrappingKeys: importKeys } })).status).toBe(404);
      expect((await call('importKey' as RouteName, 1, 'POST', '/v1/import', { body: { sessionId: sid(), bundle: { ...bundle, format: 'other' } } })).status).toBe(400);
      expect((await call('importKey' as RouteName, 1, 'POST', '/v1/import', { body: { sessionId: sid(), keyId: 'surface-ed', bundle } })).status).toBe(409);
    }

    // --- verify, rotate and lifecycle transitions (on a key of their own, so the share scan below still
    //     finds every made key), then administration with the dev admin key
    {
      const k = sid();
      const made1 = await session('keygen', all, '/v1/keys', () => ({ sessionId: k, keyId: 'surface-life', suite: 'ed25519', threshold: 2 }));
      for (const r of made1) expect(r.status, JSON.stringify(r.json)).toBe(200);
      const s = sid();
      const message = bytesToHex(message32('surface life'));
      const signed = await session('sign', [1, 2], '/v1/keys/surface-life/sign', () => ({ sessionId: s, message, players: [1, 2] }));
      const signature = signed[0]!.json.signature as string;
      expect((await call('verify', 1, 'POST', '/v1/keys/surface-life/verify', { body: { message, signature } })).json).toEqual({ keyId: 'surface-life', version: 1, valid: true });
      expect((await call('verify', 1, 'POST', '/v1/keys/surface-life/verify', { body: { message: '00', signature } })).json.valid).toBe(false);
      expect((await call('verify', 1, 'POST', '/v1/keys/surface-kem/verify', { body: { message, signature } })).status).toBe(400);
      const r = sid();
      const rotated = await session('rotate', all, '/v1/keys/surface-life/rotate', () => ({ sessionId: r }));
      for (const x of rotated) expect(x.json, JSON.stringify(x.json)).toMatchObject({ keyId: 'surface-life', version: 2, previousVersion: 1 });
      const a = sid();
      const archived = await session('setState', all, '/v1/keys/surface-life/state', () => ({ sessionId: a, version: 1, state: 'archived' }));
      for (const x of archived) expect(x.json, JSON.stringify(x.json)).toMatchObject({ version: 1, state: 'archived' });
      expect((await call('setState', 1, 'POST', '/v1/keys/surface-life/state', { body: { sessionId: sid(), version: 1, state: 'gone' } })).status).toBe(400);
      expect((await call('setState', 1, 'POST', '/v1/keys/surface-life/state', { body: { sessionId: sid(), version: 9, state: 'retired' } })).status).toBe(404);
      expect((await call('rotate', 1, 'POST', '/v1/keys/no-such-key/rotate', { body: { sessionId: sid() } })).status).toBe(404);

      const tenant = (await call('createTenant', 1, 'POST', '/v1/admin/tenants', { body: { name: 'surface-tenant' } })).json;
      expect(tenant).toMatchObject({ name: 'surface-tenant' });
      expect((await call('createTenant', 1, 'POST', '/v1/admin/tenants', { body: { name: 'surface-tenant' } })).status).toBe(409);
      expect((await call('createTenant', 1, 'POST', '/v1/admin/tenants', { body: { name: '../x' } })).status).toBe(400);
      const created = (await call('createApiKey', 1, 'POST', '/v1/admin/api-keys', { body: { tenant: 'surface-tenant' } })).json;
      expect(created).toMatchObject({ tenant: 'surface-tenant', role: 'tenant', source: 'store', apiKey: expect.stringMatching(/^tsk_/) });
      expect((await call('createApiKey', 1, 'POST', '/v1/admin/api-keys', { body: { tenant: 'no-such-tenant' } })).status).toBe(404);
      // A tenant key is not an admin key.
      expect((await call('listApiKeys', 1, 'GET', '/v1/admin/api-keys', { auth: `Bearer ${created.apiKey}` })).status).toBe(403);
      expect((await call('getMembership', 1, 'GET', '/v1/admin/membership', { auth: `Bearer ${created.apiKey}` })).status).toBe(403);
      const tenantActing = await fetch(`${url(1)}/v1/keys`, { headers: { authorization: `Bearer ${created.apiKey}`, 'x-tessera-tenant': 'default' } });
      expect(tenantActing.status).toBe(403);
      const listed = (await call('listApiKeys', 1, 'GET', '/v1/admin/api-keys?tenant=surface-tenant')).json;
      expect(listed.apiKeys.map((x: { id: string }) => x.id)).toEqual([created.id]);
      expect((await call('revokeApiKey', 1, 'POST', `/v1/admin/api-keys/${created.id}/revoke`, { body: {} })).json).toMatchObject({ id: created.id, revokedAt: expect.any(Number) });
      expect((await call('revokeApiKey', 1, 'POST', '/v1/admin/api-keys/ak_none/revoke', { body: {} })).status).toBe(404);
      expect((await call('getPolicy', 1, 'GET', '/v1/admin/policy')).json).toMatchObject({ version: 0, rules: [], failOpen: { active: false } });
      const rules = [{ id: 'no-export', type: 'deny', operations: ['export'], scope: { keyId: 'surface-life' } }];
      expect((await call('setPolicy', 1, 'POST', '/v1/admin/policy', { body: { rules } })).json).toMatchObject({ version: 1, rules });
      expect((await call('setPolicy', 1, 'POST', '/v1/admin/policy', { body: { rules: [{ id: 'x', type: 'nope' }] } })).status).toBe(400);
      expect((await call('enableFailOpen', 1, 'POST', '/v1/admin/policy/fail-open', { body: { durationMs: 60_000 } })).json).toMatchObject({ active: true, until: expect.any(Number) });
      expect((await call('enableFailOpen', 1, 'POST', '/v1/admin/policy/fail-open', { body: { durationMs: 0 } })).status).toBe(400);
      expect((await call('disableFailOpen', 1, 'POST', '/v1/admin/policy/fail-open/disable', { body: {} })).json).toEqual({ active: false });
      // KEK rotation (node/store/kek-rotation.ts): KEK ids only; the store scan below reads the new KEK file.
      const kekRotated = (await call('rotateKek', 1, 'POST', '/v1/admin/kek/rotate', { body: {} })).json as { from: string; to: string; records: number; moved: number };
      expect(kekRotated).toMatchObject({ from: expect.stringMatching(/^k-[0-9a-f]{16}$/), to: expect.stringMatching(/^k-[0-9a-f]{16}$/), resumed: false });
      expect(kekRotated.moved).toBe(kekRotated.records);
      expect((await call('rotateKek', 1, 'POST', '/v1/admin/kek/rotate', { body: { unexpected: true } })).status).toBe(400);
      // Tenants and the cluster membership (issue 13): admin reads; an admin key may act for a tenant, a tenant key may not.
      expect((await call('listTenants', 1, 'GET', '/v1/admin/tenants')).json.tenants.map((t: { name: string }) => t.name)).toContain('surface-tenant');
      const membership = (await call('getMembership', 1, 'GET', '/v1/admin/membership')).json;
      expect(membership).toMatchObject({ epoch: 0, digest: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(membership.members.map((m: { index: number }) => m.index)).toEqual(all);
      expect((await call('membershipHistory', 1, 'GET', '/v1/admin/membership/history')).json).toEqual({ changes: [] });
      const actAs = await fetch(`${url(1)}/v1/keys`, { headers: { authorization: `Bearer ${apiKey(1)}`, 'x-tessera-tenant': 'surface-tenant' } });
      expect(actAs.status).toBe(200);
      expect(((await actAs.json()) as { keys: unknown[] }).keys).toEqual([]);
      const noSuchTenant = await fetch(`${url(1)}/v1/keys`, { headers: { authorization: `Bearer ${apiKey(1)}`, 'x-tessera-tenant': 'no-such-tenant' } });
      expect(noSuchTenant.status).toBe(404);
      const log = (await call('auditLog', 1, 'GET', '/v1/admin/audit')).json;
      expect(log.entries.length).toBeGreaterThan(10);
      expect(log.checkpoints.length).toBeGreaterThan(0);
    }

    // --- commit status and repair (node/sessions/commit.ts): public data only; a forged certificate is refused
    {
      const st = (await call('commitStatus', 1, 'GET', '/v1/keys/surface-ed/commits')).json;
      expect(st.keyId).toBe('surface-ed');
      expect(st.certificates.length).toBeGreaterThan(0);
      expect((await call('commitStatus', 1, 'GET', '/v1/keys/no-such-key/commits')).status).toBe(404);
      // A certificate another node holds: verified, already committed here.
      const repaired = (await call('repair', 2, 'POST', '/v1/keys/surface-ed/repair', { body: { certificate: st.certificates[0].certificate } })).json;
      expect(repaired).toMatchObject({ keyId: 'surface-ed', outcome: 'already-committed' });
      expect((await call('repair', 1, 'POST', '/v1/keys/surface-ed/repair', { body: { certificate: 'ab' } })).status).toBeGreaterThanOrEqual(400);
      expect((await call('repair', 1, 'POST', '/v1/keys/surface-ed/repair', { body: { certificate: 7 } })).status).toBe(400);
    }

    // --- /metrics (node/metrics.ts): Prometheus text, not JSON, so fetched here; its body goes through
    // the same leak scan as every response
    for (const i of all) {
      const res = await fetch(`${url(i)}/metrics`, { headers: { authorization: `Bearer ${apiKey(i)}` } });
      const text = await res.text();
      recorded.push({ route: 'metrics', status: res.status, body: text });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type') ?? '').toMatch(/^text\/plain/);
      expect(text).toContain('tessera_operations_total{');
      validlyCalled.add('metrics');
    }

    // --- the seal state: every node of this cluster keeps its KEK in a file, so it has no seal
    for (const i of all) {
      expect((await call('unsealStatus', i, 'GET', '/v1/unseal')).json).toMatchObject({ node: i, provider: 'file', state: 'unsealed', sealed: false });
    }
    expect((await call('seal', 1, 'POST', '/v1/seal', { body: {} })).json).toMatchObject({ code: 'BAD_STATE' });

    // --- every other route (added later) at least gets a bad body
    for (const name of ROUTE_NAMES) {
      if (validlyCalled.has(name)) continue;
      const r = ROUTES[name];
      const res = await call(name, 1, r.method, r.url.replace(':keyId', 'surface-ed'), r.method === 'POST' ? { body: { sessionId: sid(), unexpected: true } } : {});
      expect(res.status, `${r.method} ${r.url} with a bad body`).toBeGreaterThanOrEqual(400);
    }
    // --- unknown routes and methods
    expect((await call('unknown', 1, 'GET', '/v1/keys/surface-ed/share')).status).toBe(404);
    expect((await call('unknown', 1, 'DELETE', '/v1/keys/surface-ed')).status).toBe(404);

    // Every route of ROUTES got at least one successful call above, except those listed here with why.
    const NO_VALID_CALL_HERE: Partial<Record<string, string>> = {
      attestStaged: 'needs a change staged on every node: test/integration/accountable.test.ts and crash-campaign.test.ts call it through Cluster.repair',
      releaseVote: 'needs every node\'s attestation of a staged change: accountable.test.ts and crash-campaign.test.ts',
      dropStaged: 'needs a change some node never staged: faults.test.ts (refresh-before-stage) and crash-campaign.test.ts',
      ecdsaPresignatures: 'needs a threshold ECDSA key (a DKLs23 pairwise setup per key): test/integration/ecdsa-presign.test.ts',
      ecdsaSignShare: 'needs ECDSA presignatures made in a session: test/integration/ecdsa-presign.test.ts',
      reshare: 'moves a key off some nodes, and this test reads every key from every node: test/integration/reshare.test.ts and cli-reshare.test.ts',
      reshareHandoff: 'needs a reshare certificate: test/integration/reshare.test.ts and cli-reshare.test.ts',
      changeMembership: 'changes the cluster: test/integration/membership.test.ts',
      applyMembership: 'needs a membership change\'s certificate: test/integration/membership.test.ts',
      // Sealed nodes (shamir-unseal KEK provider): this cluster's KEKs are files. The init answer's plain
      // `share` fields are operator unseal shares, returned once by design (like createApiKey's apiKey).
      unsealInit: 'needs a shamir-unseal node without a data dir: test/integration/unseal.test.ts',
      unseal: 'needs a sealed shamir-unseal node: test/integration/unseal.test.ts',
      seal: 'needs an unsealed shamir-unseal node: test/integration/unseal.test.ts',
      kekRotatePrepare: 'needs an unsealed shamir-unseal node (its new operator shares are returned once by design): test/integration/unseal.test.ts',
    };
    expect(ROUTE_NAMES.filter((n) => !validlyCalled.has(n) && !(n in NO_VALID_CALL_HERE))).toEqual([]);

    // --- now read what must never leave a node: stop the cluster, open each store with its KEK.
    await tc.dev.stop();
    const secrets: { what: string; hex: string }[] = [];
    for (const i of all) {
      const kek = await readKekFile(join(tc.dir, `node-${i}.kek`));
      secrets.push({ what: `node ${i} KEK`, hex: toHex(kek) });
      const store = await ShareStore.open({ dataDir: join(tc.dir, `node-${i}`), kek, nodeIndex: i });
      kek.fill(0);
      try {
        for (const keyId of Object.keys(made)) {
          const share = await store.getShare('default', keyId);
          expect(share, `node ${i} holds ${keyId}`).toBeDefined();
          secrets.push({ what: `node ${i} share of ${keyId}`, hex: toHex(share!.secret.value) });
        }
        const ids = await loadOrCreateIdentity(store);
        // ML-DSA-65 sk = rho || K || tr || ...: rho is public (it starts the public key); K is secret.
        secrets.push({ what: `node ${i} identity key K`, hex: toHex(ids.identity.secretKey.subarray(32, 64)) });
        secrets.push({ what: `node ${i} import KEM seed`, hex: toHex(ids.kem.privateKey) });
      } finally {
        await store.close();
      }
    }
    for (const n of tc.dev.cluster.nodes) secrets.push({ what: `node ${n.index} API key`, hex: Buffer.from(n.apiKey).toString('hex') });

    const reversed = (hex: string) => Buffer.from(hex, 'hex').reverse().toString('hex');
    const haystacks = [
      ...recorded.map((r) => ({ where: `${r.route} response (${r.status})`, text: r.body.toLowerCase() })),
      ...readdirSync(join(tc.dir, 'logs')).map((f) => ({ where: `log ${f}`, text: readFileSync(join(tc.dir, 'logs', f), 'utf8').toLowerCase() })),
    ];
    expect(recorded.length).toBeGreaterThan(100);
    const leaks: string[] = [];
    for (const s of secrets) {
      const needles = s.what.endsWith('API key') ? [s.hex, Buffer.from(s.hex, 'hex').toString('utf8').toLowerCase()] : [s.hex, reversed(s.hex)];
      for (const h of haystacks) if (needles.some((n) => h.text.includes(n))) leaks.push(`${s.what} in ${h.where}`);
    }
    expect(leaks).toEqual([]);
    // Control: the scan does find public values that are in the responses (group key, a verifying share).
    const publicNeedles = [made['surface-ed'].publicKey, made['surface-kem'].publicPackage.verifyingShares[0]] as string[];
    for (const n of publicNeedles) expect(haystacks.some((h) => h.text.includes(n))).toBe(true);
  }, 150_000);
});
