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

describe('reshare and its handoff (issue 13): strict bodies', () => {
  const reshare = (body: Record<string, unknown>) =>
    call('POST', '/v1/keys/k/reshare', { sessionId: sid(), suite: 'ed25519', version: 1, threshold: 2, nodes: [1, 2, 3], dealers: [1, 2], oldPackageDigest: 'ab'.repeat(32), ...body });
  const without = (field: string) => {
    const body: Record<string, unknown> = { sessionId: sid(), suite: 'ed25519', version: 1, threshold: 2, nodes: [1, 2, 3], dealers: [1, 2], oldPackageDigest: 'ab'.repeat(32) };
    delete body[field];
    return call('POST', '/v1/keys/k/reshare', body);
  };

  it('a node listed twice in nodes or dealers is a 400 naming the list', async () => {
    const twice = await reshare({ nodes: [1, 2, 2] });
    expectBadField(twice, 'nodes');
    expect(twice.json.message).toBe('nodes: expected the new committee: a list of 2 to 255 distinct node indexes (got a duplicate)');
    expectBadField(await reshare({ dealers: [3, 3] }), 'dealers');
  });

  it('indices outside 1..255, fewer than 2 nodes or dealers, thresholds outside 2..255, versions outside 1..2^32-1', async () => {
    expectBadField(await reshare({ nodes: [0, 1] }), 'nodes[0]');
    expectBadField(await reshare({ nodes: [1, 256] }), 'nodes[1]');
    expectBadField(await reshare({ dealers: [1, -2] }), 'dealers[1]');
    expectBadField(await reshare({ nodes: [1, 2.5] }), 'nodes[1]');
    const one = await reshare({ nodes: [4] });
    expectBadField(one, 'nodes');
    expect(one.json.message).toBe('nodes: expected the new committee: a list of 2 to 255 distinct node indexes (got 1)');
    expectBadField(await reshare({ dealers: [1] }), 'dealers');
    expectBadField(await reshare({ nodes: [] }), 'nodes');
    for (const threshold of [1, 0, 256, 2.5]) expectBadField(await reshare({ threshold }), 'threshold');
    for (const version of [0, 2 ** 32]) expectBadField(await reshare({ version }), 'version');
  });

  it('nothing is coerced: numbers as strings, a digest that is not 32 bytes of hex, an unknown suite', async () => {
    expectBadField(await reshare({ threshold: '2' }), 'threshold');
    expectBadField(await reshare({ nodes: ['1', '2'] }), 'nodes[0]');
    expectBadField(await reshare({ nodes: '1,2,3' }), 'nodes');
    for (const oldPackageDigest of ['zz'.repeat(32), 'ab'.repeat(31), 'ab'.repeat(33), null, 1234]) {
      expectBadField(await reshare({ oldPackageDigest }), 'oldPackageDigest');
    }
    expectBadField(await reshare({ suite: 'rsa' }), 'suite');
  });

  it('unknown and missing fields are named', async () => {
    const unknown = await reshare({ committee: [1, 2] });
    expectBadField(unknown, 'committee');
    expect(unknown.json.message).toMatch(/^committee: unknown field \(known: .*nodes.*dealers/);
    const missing = await without('oldPackageDigest');
    expectBadField(missing, 'oldPackageDigest');
    expect(missing.json.message).toBe('oldPackageDigest: missing; expected 32 bytes as hex');
    for (const field of ['sessionId', 'suite', 'version', 'threshold', 'nodes', 'dealers']) expectBadField(await without(field), field);
  });

  it('a threshold above the new committee\'s size is refused by the node, naming the threshold', async () => {
    const r = await reshare({ threshold: 4, nodes: [1, 2, 3] });
    expect(r.status, JSON.stringify(r.json)).toBe(400);
    expect(r.json.code).toBe('BAD_PARAMETERS');
    expect(r.json.message).toMatch(/threshold 4/);
  });

  it('handoff: the certificate is hex, the public package is bounded and closed', async () => {
    const pkg = { suite: 'ed25519', threshold: 2, parties: 3, epoch: 1, commitments: ['ab'.repeat(32), 'cd'.repeat(32)], verifyingShares: ['ab'.repeat(32), 'ab'.repeat(32), 'ab'.repeat(32)] };
    const handoff = (body: Record<string, unknown>) => call('POST', '/v1/keys/k/reshare/handoff', { certificate: 'ab', publicPackage: pkg, ...body });
    expectBadField(await handoff({ certificate: 'xyz' }), 'certificate');
    expectBadField(await handoff({ certificate: 42 }), 'certificate');
    expectBadField(await handoff({ publicPackage: { ...pkg, threshold: 1 } }), 'publicPackage.threshold');
    expectBadField(await handoff({ publicPackage: { ...pkg, parties: 256 } }), 'publicPackage.parties');
    expectBadField(await handoff({ publicPackage: { ...pkg, epoch: 2 ** 32 } }), 'publicPackage.epoch');
    expectBadField(await handoff({ publicPackage: { ...pkg, indices: [1, 1, 4] } }), 'publicPackage.indices');
    expectBadField(await handoff({ publicPackage: { ...pkg, indices: [1, 2, 256] } }), 'publicPackage.indices[2]');
    expectBadField(await handoff({ publicPackage: { ...pkg, commitments: ['zz'] } }), 'publicPackage.commitments[0]');
    expectBadField(await handoff({ publicPackage: { ...pkg, secret: 'ab' } }), 'publicPackage.secret');
    const { verifyingShares: _omitted, ...noShares } = pkg;
    expectBadField(await handoff({ publicPackage: noShares }), 'publicPackage.verifyingShares');
    expectBadField(await handoff({ extra: true }), 'extra');
  });
});
