/**
 * Tenants and API keys, kept in the node's LevelDB (ShareStore.namespace('tenants')).
 *
 * - Every API key belongs to exactly one tenant; authenticate() returns that tenant, and it is the only
 *   place a request's tenant may come from.
 * - A new API key is shown once (createApiKey's return value): `tsk_` + 32 random bytes, base64url.
 *   Only SHA-256 of its UTF-8 bytes is stored (the same hash as node/config.ts apiKeyHash), with its id,
 *   tenant and role. Listings never include hashes.
 * - authenticate() hashes the presented key and compares it with every live key's hash in constant time
 *   per comparison and without stopping at a match, so timing does not tell which key or how many.
 * - API keys from the node's config file (node/config.ts `apiKeys`) are honoured as they are, from
 *   memory: they are not copied into the database, cannot be revoked here (edit the config), and their
 *   tenants count as existing tenants.
 *
 * Roles (the admin model):
 *   tenant  the default: key operations within its own tenant.
 *   admin   additionally may create tenants, create / list / revoke API keys of any tenant, manage
 *           policy and fail-open, and export the audit log. An admin key still belongs to one tenant and
 *           still reaches keys only in that tenant: administration never crosses into key material.
 * The first admin key comes from the config file (an apiKeys entry with role 'admin'); admins can then
 * create more (createApiKey(tenant, { role: 'admin' })). Tenant keys cannot create keys at all.
 *
 * Layout under x/tenants/:  t/<tenant> -> {name, createdAt};  k/<apiKeyId> -> {id, tenant, role, hash,
 * createdAt, revokedAt?} (the hash is removed on revocation).
 */
import { MEMBERSHIP_TENANT } from '../../core/membership.js';
import { Packr } from 'msgpackr';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { equalBytes, toHex, utf8ToBytes } from '../../core/bytes.js';
import { ErrorCode, ensure } from '../../core/errors.js';
import type { RecordNamespace } from '../store/storage.js';

export const TENANTS_NAMESPACE = 'tenants';
export const API_KEY_PREFIX = 'tsk_';
export const API_KEY_ROLES = ['tenant', 'admin'] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

/** Tenant names and API key ids: the id alphabet of core/session.ts. */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** What an Authorization: Bearer value may be (node/http/api.ts accepts the same). */
export const PRESENTED_KEY_PATTERN = /^[\x21-\x7e]{8,256}$/;

export interface TenantInfo {
  readonly name: string;
  /** Milliseconds since the Unix epoch; absent for tenants that exist only through the config file. */
  readonly createdAt?: number;
  readonly source: 'store' | 'config';
}

/** An API key as listed: never its hash. */
export interface ApiKeyInfo {
  readonly id: string;
  readonly tenant: string;
  readonly role: ApiKeyRole;
  readonly source: 'store' | 'config';
  readonly createdAt?: number;
  readonly revokedAt?: number;
}

/** Who is asking: what authenticate() returns. */
export interface Principal {
  readonly tenant: string;
  readonly apiKeyId: string;
  readonly role: ApiKeyRole;
}

/** A config-file API key (node/config.ts ApiKeyConfig, plus an optional role; default 'tenant'). */
export interface ConfigApiKey {
  readonly id: string;
  readonly tenant: string;
  /** SHA-256 of the key's UTF-8 bytes, 32 bytes. */
  readonly keyHash: Uint8Array;
  readonly role?: ApiKeyRole;
}

export interface TenantStoreOptions {
  /** `store.namespace(TENANTS_NAMESPACE)`. */
  readonly records: RecordNamespace;
  readonly configKeys?: readonly ConfigApiKey[];
  readonly now?: () => number;
}

interface KeyEntry {
  info: ApiKeyInfo;
  /** Absent once revoked. */
  hash?: Uint8Array;
}

const packr = new Packr({ useRecords: false });
const FORMAT = 1;

/** SHA-256 of an API key's UTF-8 bytes (equal to node/config.ts apiKeyHash). */
export function hashApiKey(apiKey: string): Uint8Array {
  return sha256(utf8ToBytes(apiKey));
}

/** A fresh API key: 'tsk_' + base64url of 32 random bytes (256 bits). */
export function generateApiKey(): string {
  return API_KEY_PREFIX + Buffer.from(randomBytes(32)).toString('base64url');
}

/** Throw unless `p` is an admin: UNAUTHORIZED without a principal, POLICY_DENIED (403) for a tenant key. */
export function requireAdmin(p: Principal | undefined): asserts p is Principal & { role: 'admin' } {
  ensure(p !== undefined, ErrorCode.Unauthorized, 'missing or unknown API key');
  ensure(p.role === 'admin', ErrorCode.PolicyDenied, 'this operation needs an admin API key');
}

export class TenantStore {
  private readonly records: RecordNamespace;
  private readonly now: () => number;
  private readonly keys = new Map<string, KeyEntry>();
  private readonly configTenants = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(o: TenantStoreOptions) {
    this.records = o.records;
    this.now = o.now ?? Date.now;
  }

  /** Load the API keys into memory and add the config keys. UNAVAILABLE if a stored record is corrupt. */
  static async open(o: TenantStoreOptions): Promise<TenantStore> {
    ensure(typeof o?.records?.iterate === 'function', ErrorCode.BadInput, 'tenants: records namespace required');
    const ts = new TenantStore(o);
    for (const c of o.configKeys ?? []) {
      ensure(typeof c.id === 'string' && TENANT_ID_PATTERN.test(c.id), ErrorCode.BadInput, 'tenants: config API key id is not an id');
      ensure(typeof c.tenant === 'string' && TENANT_ID_PATTERN.test(c.tenant), ErrorCode.BadInput, `tenants: config API key ${c.id} has a bad tenant`);
      ensure(c.tenant !== MEMBERSHIP_TENANT, ErrorCode.BadInput, `tenants: config API key ${c.id} names the reserved tenant ${MEMBERSHIP_TENANT}`);
      ensure(c.keyHash instanceof Uint8Array && c.keyHash.length === 32, ErrorCode.BadInput, `tenants: config API key ${c.id} needs a 32-byte keyHash`);
      const role = c.role ?? 'tenant';
      ensure((API_KEY_ROLES as readonly string[]).includes(role), ErrorCode.BadInput, `tenants: config API key ${c.id} has an unknown role`);
      ensure(!ts.keys.has(c.id), ErrorCode.BadInput, `tenants: config API key id ${c.id} appears twice`);
      ts.keys.set(c.id, { info: { id: c.id, tenant: c.tenant, role, source: 'config' }, hash: Uint8Array.from(c.keyHash) });
      ts.configTenants.add(c.tenant);
    }
    for await (const [key, raw] of o.records.iterate({ gte: 'k/', lt: 'k/~' })) {
      const entry = decodeKey(raw, key);
      ensure(!ts.keys.has(entry.info.id), ErrorCode.Unavailable, `tenants: API key id ${entry.info.id} is both in the config and the store`);
      ts.keys.set(entry.info.id, entry);
    }
    return ts;
  }

  // -------------------------------------------------------------------------------------------
  // Tenants

  /** Create a tenant. ALREADY_EXISTS if it exists (in the store or through the config file). */
  createTenant(name: string): Promise<TenantInfo> {
    checkId(name, 'tenant name');
    // The cluster's own namespace: a membership change's commit names it (core/membership.ts).
    ensure(name !== MEMBERSHIP_TENANT, ErrorCode.BadInput, `tenant name ${name} is reserved for the cluster's membership`);
    return this.serialize(async () => {
      const exists = this.configTenants.has(name) || (await this.records.get(`t/${name}`)) !== undefined;
      ensure(!exists, ErrorCode.AlreadyExists, `tenant ${name} already exists`);
      const createdAt = this.now();
      await this.records.put(`t/${name}`, encode({ v: FORMAT, name, createdAt }), { sync: true });
      return { name, createdAt, source: 'store' as const };
    });
  }

  async getTenant(name: string): Promise<TenantInfo | undefined> {
    if (typeof name !== 'string' || !TENANT_ID_PATTERN.test(name)) return undefined;
    const raw = await this.records.get(`t/${name}`);
    if (raw !== undefined) return decodeTenant(raw, `t/${name}`);
    return this.configTenants.has(name) ? { name, source: 'config' } : undefined;
  }

  /** Every tenant, by name. */
  async listTenants(): Promise<TenantInfo[]> {
    const out = new Map<string, TenantInfo>();
    for (const name of this.configTenants) out.set(name, { name, source: 'config' });
    for await (const [key, raw] of this.records.iterate({ gte: 't/', lt: 't/~' })) {
      const t = decodeTenant(raw, key);
      out.set(t.name, t);
    }
    return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // -------------------------------------------------------------------------------------------
  // API keys

  /**
   * Make a new API key for an existing tenant (NOT_FOUND otherwise). Returns the key itself — the only
   * time it exists outside the caller — and its listing. Only the hash is stored.
   */
  createApiKey(tenant: string, opts: { role?: ApiKeyRole } = {}): Promise<{ apiKey: string; info: ApiKeyInfo }> {
    checkId(tenant, 'tenant');
    const role = opts.role ?? 'tenant';
    ensure((API_KEY_ROLES as readonly string[]).includes(role), ErrorCode.BadInput, `tenants: role must be one of ${API_KEY_ROLES.join(', ')}`);
    return this.serialize(async () => {
      ensure((await this.getTenant(tenant)) !== undefined, ErrorCode.NotFound, `tenant ${tenant} not found`);
      let id: string;
      do {
        id = `ak_${toHex(randomBytes(8))}`;
      } while (this.keys.has(id));
      const apiKey = generateApiKey();
      const hash = hashApiKey(apiKey);
      const createdAt = this.now();
      await this.records.put(`k/${id}`, encode({ v: FORMAT, id, tenant, role, hash, createdAt }), { sync: true });
      const info: ApiKeyInfo = { id, tenant, role, source: 'store', createdAt };
      this.keys.set(id, { info, hash });
      return { apiKey, info };
    });
  }

  /** API keys (all, or one tenant's), by id; revoked ones included with revokedAt. Never hashes. */
  listApiKeys(tenant?: string): ApiKeyInfo[] {
    return [...this.keys.values()]
      .map((e) => e.info)
      .filter((i) => tenant === undefined || i.tenant === tenant)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  getApiKey(id: string): ApiKeyInfo | undefined {
    return this.keys.get(id)?.info;
  }

  /**
   * Revoke a stored API key: its hash is deleted, so it never authenticates again. NOT_FOUND for an
   * unknown id; BAD_STATE for a config-file key (remove it from the config instead). Idempotent.
   */
  revokeApiKey(id: string): Promise<ApiKeyInfo> {
    checkId(id, 'API key id');
    return this.serialize(async () => {
      const entry = this.keys.get(id);
      ensure(entry !== undefined, ErrorCode.NotFound, `API key ${id} not found`);
      ensure(entry.info.source === 'store', ErrorCode.BadState, `API key ${id} comes from the config file; remove it there`);
      if (entry.info.revokedAt !== undefined) return entry.info;
      const revokedAt = this.now();
      const { id: _i, tenant, role, createdAt } = entry.info;
      await this.records.put(`k/${id}`, encode({ v: FORMAT, id, tenant, role, createdAt, revokedAt }), { sync: true });
      const info: ApiKeyInfo = { ...entry.info, revokedAt };
      this.keys.set(id, { info }); // hash dropped from memory too
      return info;
    });
  }

  /**
   * Who holds `presentedKey`, or undefined. Compares the key's SHA-256 with every live key's hash,
   * each comparison constant-time, never stopping early.
   */
  authenticate(presentedKey: unknown): Principal | undefined {
    if (typeof presentedKey !== 'string' || !PRESENTED_KEY_PATTERN.test(presentedKey)) return undefined;
    const digest = hashApiKey(presentedKey);
    let found: KeyEntry | undefined;
    for (const entry of this.keys.values()) {
      if (entry.hash !== undefined && equalBytes(entry.hash, digest) && found === undefined) found = entry;
    }
    return found && { tenant: found.info.tenant, apiKeyId: found.info.id, role: found.info.role };
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function checkId(s: unknown, what: string): asserts s is string {
  ensure(typeof s === 'string' && TENANT_ID_PATTERN.test(s), ErrorCode.BadInput, `${what} must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric`);
}

function encode(v: unknown): Uint8Array {
  return Uint8Array.from(packr.pack(v));
}

function decode(raw: Uint8Array, key: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = packr.unpack(raw);
  } catch {
    v = undefined;
  }
  ensure(typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype, ErrorCode.Unavailable, `tenants: record ${key} is corrupt`);
  const m = v as Record<string, unknown>;
  ensure(m.v === FORMAT, ErrorCode.Unavailable, `tenants: record ${key} has an unknown format`);
  return m;
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function decodeTenant(raw: Uint8Array, key: string): TenantInfo {
  const m = decode(raw, key);
  ensure(typeof m.name === 'string' && `t/${m.name}` === key && isTime(m.createdAt), ErrorCode.Unavailable, `tenants: record ${key} is corrupt`);
  return { name: m.name, createdAt: m.createdAt, source: 'store' };
}

function decodeKey(raw: Uint8Array, key: string): KeyEntry {
  const m = decode(raw, key);
  const bad = `tenants: record ${key} is corrupt`;
  ensure(typeof m.id === 'string' && `k/${m.id}` === key && TENANT_ID_PATTERN.test(m.id), ErrorCode.Unavailable, bad);
  ensure(typeof m.tenant === 'string' && TENANT_ID_PATTERN.test(m.tenant), ErrorCode.Unavailable, bad);
  ensure((API_KEY_ROLES as readonly unknown[]).includes(m.role) && isTime(m.createdAt), ErrorCode.Unavailable, bad);
  ensure(m.revokedAt === undefined || isTime(m.revokedAt), ErrorCode.Unavailable, bad);
  // A live key has its 32-byte hash; a revoked one has none.
  const live = m.revokedAt === undefined;
  ensure(live ? m.hash instanceof Uint8Array && m.hash.length === 32 : m.hash === undefined, ErrorCode.Unavailable, bad);
  const info: ApiKeyInfo = {
    id: m.id,
    tenant: m.tenant,
    role: m.role as ApiKeyRole,
    source: 'store',
    createdAt: m.createdAt,
    ...(live ? {} : { revokedAt: m.revokedAt as number }),
  };
  return live ? { info, hash: Uint8Array.from(m.hash as Uint8Array) } : { info };
}
