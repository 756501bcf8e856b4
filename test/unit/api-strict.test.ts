/**
 * Strict inputs (issue 9, item 9) on the real API (node/http/api.ts over a real NodeService, store, audit
 * log, policy engine and tenant store; fastify inject): nothing is coerced, every integer is bounded,
 * and a request that does not fit is a 400 in the common error shape whose message names the field
 * in words, never in the validator's wording.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { toHex } from '../../core/bytes.js';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { CoordinatorLink } from '../../node/sessions/link.js';
import { startApiNode, type ApiNode } from '../helpers/api-node.js';
import { dealerKeys } from '../helpers/run-sign.js';

let identity: IdentityKeyPair;
beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
});

let dir: string;
let node: ApiNode;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-api-strict-'));
  // A link that never connects: every request here is answered before a session would start.
  node = await startApiNode({ dataDir: join(dir, 'data'), index: 1, parties: 3, identity, membership: new Map([[1, identity.publicKey]]), link: new CoordinatorLink() });
  await node.store.put({ tenant: 'acme', keyId: 'k', version: 1, share: dealerKeys('ed25519', 2, 3)[0]!, exportable: false });
});
afterEach(async () => {
  await node.close();
  await rm(dir, { recursive: true, force: true });
});

const sid = () => toHex(randomBytes(16));
const MAX_VERSION = 2 ** 32 - 1;

async function call(method: 'GET' | 'POST', url: string, body?: unknown, key: 'acme' | 'admin' = 'acme') {
  const res = await node.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${node.apiKeys[key]}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, json: res.json() as Record<string, unknown> };
}

/** A 400 in the common error shape whose message starts with the field's name and reads as words. */
function expectBadField(r: { status: number; json: Record<string, unknown> }, field: string): void {
  expect(r.status, JSON.stringify(r.json)).toBe(400);
  expect(Object.keys(r.json).sort()).toEqual(['code', 'message']);
  expect(r.json.code).toBe('BAD_INPUT');
  const message = r.json.message as string;
  expect(message.startsWith(`${field}: `), message).toBe(true);
  // Not the validator's wording ("body/players must NOT have fewer than 2 items") nor its paths.
  expect(message).not.toMatch(/\bmust\b|body\/|querystring\/|NOT|#\//);
}

const sign = (body: Record<string, unknown>) => call('POST', '/v1/keys/k/sign', { sessionId: sid(), message: '00', players: [1, 2], ...body });

describe('no type coercion: a null, number or list where hex is expected is a 400 naming the field', () => {
  it.each([
    ['null', null],
    ['a number', 123456],
    ['a list', ['ab']],
    ['a boolean', true],
  ])('message as %s', async (_what, message) => {
    const r = await sign({ message });
    expectBadField(r, 'message');
    expect(r.json.message).toMatch(/expected hex/);
  });

  it('the same for every hex field (enc, receiverPublicKey, sessionId)', async () => {
    expectBadField(await call('POST', '/v1/keys/k/decapsulate', { sessionId: sid(), enc: 1234, players: [1, 2], receiverPublicKey: 'ab'.repeat(1184) }), 'enc');
    expectBadField(await call('POST', '/v1/keys/k/decapsulate', { sessionId: sid(), enc: 'ab'.repeat(32), players: [1, 2], receiverPublicKey: null }), 'receiverPublicKey');
    expectBadField(await sign({ sessionId: 12345678901234567890 }), 'sessionId');
    expectBadField(await call('POST', '/v1/keys/k/verify', { message: ['00'], signature: '00' }), 'message');
  });

  it('"exportable": "true" is not a boolean', async () => {
    const r = await call('POST', '/v1/keys', { sessionId: sid(), keyId: 'new', suite: 'ed25519', threshold: 2, exportable: 'true' });
    expectBadField(r, 'exportable');
    expect(r.json.message).toMatch(/got a string/);
  });

  it('a number as a string is not a number: threshold "2", players ["1", "2"], version "1"', async () => {
    expectBadField(await call('POST', '/v1/keys', { sessionId: sid(), keyId: 'new', suite: 'ed25519', threshold: '2' }), 'threshold');
    expectBadField(await sign({ players: ['1', '2'] }), 'players[0]');
    expectBadField(await sign({ version: '1' }), 'version');
  });

  it('a body that is not a JSON object', async () => {
    expectBadField(await call('POST', '/v1/keys/k/sign', null), 'body');
    expectBadField(await call('POST', '/v1/keys/k/sign', [{ sessionId: sid(), message: '00', players: [1, 2] }]), 'body');
  });

  it('nested fields are named by their path', async () => {
    const r = await call('POST', '/v1/import', {
      sessionId: sid(),
      bundle: {
        format: 'tessera-key-bundle',
        version: 1,
        keyId: 'b',
        keyVersion: 1,
        suite: 'ed25519',
        threshold: 2,
        parties: 3,
        epoch: 0,
        publicKey: 'ab'.repeat(32),
        commitments: ['ab'.repeat(32)],
        verifyingShares: ['ab'.repeat(32)],
        wrappedShares: [{ index: '1', kem: 'ml-kem-768', wrappingKeyFingerprint: 'ab'.repeat(32), enc: 'ab', ciphertext: 'ab' }],
      },
    });
    expectBadField(r, 'bundle.wrappedShares[0].index');
    expect(r.json.message).toMatch(/node index/);
  });
});

describe('integers outside their range are 400s', () => {
  it('version 2^32 (and above, and 0) is a 400 naming version, not a 503 from the audit log', async () => {
    for (const version of [2 ** 32, 2 ** 53, 1e300, 0, -1, 1.5]) expectBadField(await sign({ version }), 'version');
    expectBadField(await call('POST', '/v1/keys/k/refresh', { sessionId: sid(), version: 2 ** 32 }), 'version');
    expectBadField(await call('POST', '/v1/keys/k/state', { sessionId: sid(), version: 2 ** 32, state: 'retired' }), 'version');
    expectBadField(await call('POST', '/v1/sessions/decline', { sessionId: sid(), keyId: 'k', operation: 'sign', version: 2 ** 32 }), 'version');
    // The largest version is in range: the key simply has no such version.
    expect((await sign({ version: MAX_VERSION })).status).toBe(404);
  });

  it('players: at least 2 distinct node indexes from 1 to 255', async () => {
    const few = await sign({ players: [1] });
    expectBadField(few, 'players');
    expect(few.json.message).toBe('players: expected a list of 2 to 255 distinct node indexes (got 1)');
    expectBadField(await sign({ players: [1, 1] }), 'players');
    expectBadField(await sign({ players: [0, 1] }), 'players[0]');
    expectBadField(await sign({ players: [1, 256] }), 'players[1]');
  });

  it('thresholds, rotation periods and fail-open durations', async () => {
    const keygen = (extra: Record<string, unknown>) => call('POST', '/v1/keys', { sessionId: sid(), keyId: 'new', suite: 'ed25519', threshold: 2, ...extra });
    expectBadField(await keygen({ threshold: 1 }), 'threshold');
    expectBadField(await keygen({ threshold: 256 }), 'threshold');
    expectBadField(await keygen({ rotationPeriodMs: 0 }), 'rotationPeriodMs');
    expectBadField(await keygen({ rotationPeriodMs: 2 ** 60 }), 'rotationPeriodMs');
    expectBadField(await call('POST', '/v1/admin/policy/fail-open', { durationMs: '60000' }, 'admin'), 'durationMs');
    expectBadField(await call('POST', '/v1/admin/policy/fail-open', { durationMs: 2 ** 60 }, 'admin'), 'durationMs');
  });
});

describe('query strings are parsed strictly', () => {
  it.each(['1e3', '01', '-1', '+1', '1.0', '0x1', ' 1', '', '0', String(2 ** 32), '99999999999999999999'])('?version=%s is a 400 naming version', async (text) => {
    expectBadField(await call('GET', `/v1/keys/k?version=${encodeURIComponent(text)}`), 'version');
  });

  it('a repeated version is a 400; a plain one is used', async () => {
    expectBadField(await call('GET', '/v1/keys/k?version=1&version=1'), 'version');
    expect(await call('GET', '/v1/keys/k?version=1')).toMatchObject({ status: 200, json: { keyId: 'k', version: 1 } });
    expect((await call('GET', `/v1/keys/k?version=${MAX_VERSION}`)).status).toBe(404);
  });
});

describe('messages name the field in words', () => {
  it('unknown and missing fields', async () => {
    const unknown = await call('POST', '/v1/keys', { sessionId: sid(), keyId: 'new', suite: 'ed25519', threshold: 2, exportible: true });
    expectBadField(unknown, 'exportible');
    expect(unknown.json.message).toMatch(/^exportible: unknown field \(known: .*exportable/);
    const missing = await call('POST', '/v1/keys/k/sign', { message: '00', players: [1, 2] });
    expectBadField(missing, 'sessionId');
    expect(missing.json.message).toBe('sessionId: missing; expected 16 bytes as hex');
  });

  it('never echoes the value sent', async () => {
    const secretish = 'zz'.repeat(40);
    const r = await sign({ message: secretish });
    expectBadField(r, 'message');
    expect(JSON.stringify(r.json)).not.toContain(secretish);
  });
});
