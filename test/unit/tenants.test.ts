/**
 * Tenants and API keys (node/governance/tenants.ts): keys shown once and stored only as SHA-256, authentication
 * to exactly one tenant, revocation, config-file keys, the admin role, and tenant isolation when the
 * tenant comes from the API key.
 */
import { describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { split } from '../../core/shamir.js';
import { ED25519 } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { apiKeyHash } from '../../node/config.js';
import { ShareStore, storageLocation } from '../../node/store/storage.js';
import { API_KEY_PREFIX, TENANTS_NAMESPACE, TenantStore, hashApiKey, requireAdmin, type ConfigApiKey } from '../../node/governance/tenants.js';
import { useTempStores } from '../helpers/temp-store.js';

const { dir, open: openStore } = useTempStores('tessera-tenants-');
const packr = new Packr({ useRecords: false });

const ADMIN_KEY = 'admin-key-from-config-0123456789';
const CONFIG_KEY = 'tenant-key-from-config-abcdefghij';
const configKeys: ConfigApiKey[] = [
  { id: 'ops-admin', tenant: 'ops', keyHash: apiKeyHash(ADMIN_KEY), role: 'admin' },
  { id: 'legacy', tenant: 'legacy-tenant', keyHash: apiKeyHash(CONFIG_KEY) },
];

async function openTenants(store: ShareStore, now?: () => number): Promise<TenantStore> {
  return TenantStore.open({ records: store.namespace(TENANTS_NAMESPACE), configKeys, ...(now ? { now } : {}) });
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return (e as TesseraError).code;
  }
  throw new Error('expected a TesseraError');
}

async function allFileContents(d: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await readdir(d, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(join(e.parentPath, e.name)));
  }
  return out;
}

describe('tenants', () => {
  it('create, get, list (config tenants included); duplicates and bad names refused', async () => {
    const store = await openStore();
    const ts = await openTenants(store, () => 1234);
    expect(await ts.createTenant('acme')).toEqual({ name: 'acme', createdAt: 1234, source: 'store' });
    expect(await codeOf(ts.createTenant('acme'))).toBe(ErrorCode.AlreadyExists);
    expect(await codeOf(ts.createTenant('ops'))).toBe(ErrorCode.AlreadyExists); // a config tenant
    for (const bad of ['', 'a/b', '.x', 'x'.repeat(129), 'with space', 5]) expect(await codeOf(() => ts.createTenant(bad as string))).toBe(ErrorCode.BadInput);
    const race = await Promise.allSettled([ts.createTenant('race'), ts.createTenant('race')]);
    expect(race.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(await ts.getTenant('acme')).toMatchObject({ name: 'acme', source: 'store' });
    expect(await ts.getTenant('legacy-tenant')).toEqual({ name: 'legacy-tenant', source: 'config' });
    expect(await ts.getTenant('nobody')).toBeUndefined();
    expect(await ts.getTenant('a/b')).toBeUndefined();
    expect((await ts.listTenants()).map((t) => `${t.name}:${t.source}`)).toEqual(['acme:store', 'legacy-tenant:config', 'ops:config', 'race:store']);
  });
});

describe('API keys', () => {
  it('are shown once, stored only as SHA-256, authenticate to exactly their tenant, survive a restart', async () => {
    const dataDir = join(dir(), 'data');
    let store = await openStore();
    let ts = await openTenants(store, () => 99);
    await ts.createTenant('acme');
    await ts.createTenant('globex');
    const a = await ts.createApiKey('acme');
    const g = await ts.createApiKey('globex');
    expect(a.apiKey).toMatch(new RegExp(`^${API_KEY_PREFIX}[A-Za-z0-9_-]{43}$`));
    expect(a.apiKey).not.toBe(g.apiKey);
    expect(a.info).toEqual({ id: expect.stringMatching(/^ak_[0-9a-f]{16}$/), tenant: 'acme', role: 'tenant', source: 'store', createdAt: 99 });
    expect(ts.authenticate(a.apiKey)).toEqual({ tenant: 'acme', apiKeyId: a.info.id, role: 'tenant' });
    expect(ts.authenticate(g.apiKey)).toEqual({ tenant: 'globex', apiKeyId: g.info.id, role: 'tenant' });
    // Listings: no hashes anywhere.
    const listed = JSON.stringify(ts.listApiKeys());
    expect(listed).not.toMatch(/hash/i);
    expect(listed).not.toContain(Buffer.from(hashApiKey(a.apiKey)).toString('hex'));
    expect(ts.listApiKeys('acme').map((k) => k.id)).toEqual([a.info.id]);
    expect(ts.listApiKeys().map((k) => k.id).sort()).toEqual([a.info.id, g.info.id, 'legacy', 'ops-admin'].sort());

    await store.close();
    // On disk: the hash is there, the key itself is not (in any file).
    const contents = await allFileContents(dataDir);
    expect(contents.some((c) => c.includes(Buffer.from(hashApiKey(a.apiKey))))).toBe(true);
    for (const key of [a.apiKey, g.apiKey]) {
      for (const c of contents) expect(c.includes(Buffer.from(key))).toBe(false);
      expect(contents.some((c) => c.includes(Buffer.from(key.slice(API_KEY_PREFIX.length, 24))))).toBe(false);
    }

    store = await openStore();
    ts = await openTenants(store);
    expect(ts.authenticate(a.apiKey)).toEqual({ tenant: 'acme', apiKeyId: a.info.id, role: 'tenant' });
  });

  it('refuse unknown tenants, bad roles; unknown, malformed or altered keys do not authenticate', async () => {
    const store = await openStore();
    const ts = await openTenants(store);
    expect(await codeOf(ts.createApiKey('nobody'))).toBe(ErrorCode.NotFound);
    expect(await codeOf(() => ts.createApiKey('a/b'))).toBe(ErrorCode.BadInput);
    await ts.createTenant('acme');
    expect(await codeOf(() => ts.createApiKey('acme', { role: 'root' as never }))).toBe(ErrorCode.BadInput);
    const { apiKey } = await ts.createApiKey('acme');
    const flipped = apiKey.slice(0, -1) + (apiKey.endsWith('A') ? 'B' : 'A');
    for (const bad of [flipped, apiKey + 'x', apiKey.slice(0, -1), '', 'short', 'has space in it ok', 'é'.repeat(10), 'x'.repeat(257), undefined, null, 42, Buffer.from(apiKey)]) {
      expect(ts.authenticate(bad)).toBeUndefined();
    }
  });

  it('revocation: the key stops working at once and after a restart; config keys cannot be revoked here', async () => {
    let store = await openStore();
    let ts = await openTenants(store, () => 500);
    await ts.createTenant('acme');
    const k1 = await ts.createApiKey('acme');
    const k2 = await ts.createApiKey('acme');
    expect(await ts.revokeApiKey(k1.info.id)).toMatchObject({ id: k1.info.id, revokedAt: 500 });
    expect(ts.authenticate(k1.apiKey)).toBeUndefined();
    expect(ts.authenticate(k2.apiKey)).toMatchObject({ apiKeyId: k2.info.id });
    expect(await ts.revokeApiKey(k1.info.id)).toMatchObject({ revokedAt: 500 }); // idempotent
    expect(await codeOf(ts.revokeApiKey('ak_0000000000000000'))).toBe(ErrorCode.NotFound);
    expect(await codeOf(ts.revokeApiKey('legacy'))).toBe(ErrorCode.BadState);
    expect(ts.getApiKey(k1.info.id)).toMatchObject({ revokedAt: 500 });
    await store.close();
    store = await openStore();
    ts = await openTenants(store);
    expect(ts.authenticate(k1.apiKey)).toBeUndefined();
    expect(ts.authenticate(k2.apiKey)).toMatchObject({ tenant: 'acme' });
    expect(ts.getApiKey(k1.info.id)).toMatchObject({ revokedAt: 500 });
  });

  it('config-file keys are honoured (from memory, with their role); a clash with a stored id is refused', async () => {
    const store = await openStore();
    const ts = await openTenants(store);
    expect(ts.authenticate(ADMIN_KEY)).toEqual({ tenant: 'ops', apiKeyId: 'ops-admin', role: 'admin' });
    expect(ts.authenticate(CONFIG_KEY)).toEqual({ tenant: 'legacy-tenant', apiKeyId: 'legacy', role: 'tenant' });
    expect(ts.getApiKey('ops-admin')).toEqual({ id: 'ops-admin', tenant: 'ops', role: 'admin', source: 'config' });
    // A config tenant can get store keys too.
    const extra = await ts.createApiKey('legacy-tenant');
    expect(ts.authenticate(extra.apiKey)).toMatchObject({ tenant: 'legacy-tenant' });
    const ns = store.namespace(TENANTS_NAMESPACE);
    expect(await codeOf(TenantStore.open({ records: ns, configKeys: [...configKeys, configKeys[0]!] }))).toBe(ErrorCode.BadInput);
    expect(await codeOf(TenantStore.open({ records: ns, configKeys: [{ ...configKeys[0]!, keyHash: new Uint8Array(5) }] }))).toBe(ErrorCode.BadInput);
    expect(await codeOf(TenantStore.open({ records: ns, configKeys: [{ ...configKeys[0]!, id: extra.info.id }] }))).toBe(ErrorCode.Unavailable);
  });

  it('a corrupt stored record makes open fail with UNAVAILABLE', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore();
    const ts = await openTenants(store);
    await ts.createTenant('acme');
    const { info } = await ts.createApiKey('acme');
    await store.close();
    const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    await db.put(`x/${TENANTS_NAMESPACE}/k/${info.id}`, Uint8Array.of(1, 2, 3));
    await db.close();
    const again = await openStore();
    expect(await codeOf(openTenants(again))).toBe(ErrorCode.Unavailable);
  });
});

describe('records authenticated at rest (node/store/record-auth.ts)', () => {
  it('an API key record edited without the KEK (its hash replaced, role raised to admin): refused, naming the record, and the key never authenticates', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore();
    const ts = await openTenants(store);
    await ts.createTenant('acme');
    const { info } = await ts.createApiKey('acme');
    await store.close();
    const mine = 'tsk_intruder-chosen-key-0123456789';
    const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    const key = `x/${TENANTS_NAMESPACE}/k/${info.id}`;
    const stored = (await db.get(key))!;
    const m = packr.unpack(stored.subarray(0, stored.length - 32)) as Record<string, unknown>;
    expect(m.id).toBe(info.id); // the payload is the plain record; the MAC trails it
    await db.put(key, Uint8Array.from(packr.pack({ ...m, role: 'admin', hash: hashApiKey(mine) })));
    await db.close();

    const again = await openStore();
    const err = await openTenants(again).catch((e: TesseraError) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe(ErrorCode.Unavailable);
    expect((err as TesseraError).message).toMatch(new RegExp(`^storage: tenants record k/${info.id} fails its integrity check`));
    expect((err as TesseraError).message).not.toMatch(/[0-9a-f]{32}/); // no values in the message
  });

  it('a tenant record copied to another key is refused (the MAC binds the LevelDB key)', async () => {
    const dataDir = join(dir(), 'data');
    const store = await openStore();
    const ts = await openTenants(store);
    await ts.createTenant('acme');
    await store.close();
    const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    await db.put(`x/${TENANTS_NAMESPACE}/t/evil`, (await db.get(`x/${TENANTS_NAMESPACE}/t/acme`))!);
    await db.close();
    const again = await openStore();
    const ts2 = await openTenants(again);
    expect((await ts2.getTenant('acme'))?.name).toBe('acme');
    expect(await codeOf(ts2.getTenant('evil'))).toBe(ErrorCode.Unavailable);
    expect((await again.checkIntegrity()).unauthentic.map((r) => r.name)).toEqual([`${TENANTS_NAMESPACE} record t/evil`]);
  });
});

describe('the admin role', () => {
  it('requireAdmin: no principal -> UNAUTHORIZED, tenant key -> POLICY_DENIED, admin passes; admins can mint admin keys', async () => {
    const store = await openStore();
    const ts = await openTenants(store);
    expect(await codeOf(() => requireAdmin(undefined))).toBe(ErrorCode.Unauthorized);
    expect(await codeOf(() => requireAdmin(ts.authenticate(CONFIG_KEY)))).toBe(ErrorCode.PolicyDenied);
    const admin = ts.authenticate(ADMIN_KEY);
    expect(() => requireAdmin(admin)).not.toThrow();
    const second = await ts.createApiKey('ops', { role: 'admin' });
    expect(ts.authenticate(second.apiKey)).toEqual({ tenant: 'ops', apiKeyId: second.info.id, role: 'admin' });
  });
});

describe('tenant isolation end to end at the storage level', () => {
  it("the tenant comes from the API key: B's key sees A's key id exactly like a missing one", async () => {
    const store = await openStore();
    const ts = await openTenants(store);
    await ts.createTenant('A');
    await ts.createTenant('B');
    const keyA = await ts.createApiKey('A');
    const keyB = await ts.createApiKey('B');
    const group = ED25519.group;
    const { shares, commitments } = split(group, group.randomScalar(), 2, 3);
    const share: KeyShare = {
      publicKey: {
        suite: 'ed25519',
        threshold: 2,
        parties: 3,
        epoch: 0,
        commitments: commitments.map((c) => group.pointToBytes(c)),
        verifyingShares: shares.map((s) => group.pointToBytes(group.mulBase(s))),
      },
      secret: { suite: 'ed25519', index: 1, epoch: 0, value: group.scalarToBytes(shares[0]!) },
    };
    const a = ts.authenticate(keyA.apiKey)!;
    await store.put({ tenant: a.tenant, keyId: 'payments', version: 1, share, exportable: false });

    const b = ts.authenticate(keyB.apiKey)!;
    expect(b.tenant).toBe('B');
    const view = async (keyId: string) => ({
      get: await store.get(b.tenant, keyId),
      share: await store.getShare(b.tenant, keyId),
      latest: await store.latestActive(b.tenant, keyId),
      destroy: await codeOf(store.destroy(b.tenant, keyId, 1)),
    });
    expect(await view('payments')).toEqual(await view('no-such-key'));
    expect((await view('payments')).get).toBeUndefined();
    expect((await store.get(a.tenant, 'payments'))!.tenant).toBe('A');
  });
});
