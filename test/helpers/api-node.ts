/**
 * One node's real HTTP API (node/http/api.ts) over real components, for tests that call it with fastify's
 * `inject`: a ShareStore in `dataDir`, its audit log, policy engine and tenant store, the operation
 * gate, NodeService and NodeAdmin, wired as node/main.ts wires them. The coordinator link is the
 * caller's (a CoordinatorLink, connected or not). Two tenants, each with one API key: `acme` (whose
 * keys the tests use) and `mallory`.
 */
import { LiveMembership } from '../../node/governance/membership.js';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { IdentityKeyPair } from '../../core/identity.js';
import { generateWrappingKeyPair } from '../../core/wrap.js';
import { NodeAdmin } from '../../node/governance/admin.js';
import { buildApi } from '../../node/http/api.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/governance/audit.js';
import { OperationGate } from '../../node/governance/gate.js';
import { POLICY_NAMESPACE, PolicyEngine } from '../../node/governance/policy.js';
import type { CoordinatorLink } from '../../node/sessions/link.js';
import { NodeService } from '../../node/service.js';
import { ShareStore } from '../../node/store/storage.js';
import { TENANTS_NAMESPACE, TenantStore } from '../../node/governance/tenants.js';

export interface ApiNode {
  app: FastifyInstance;
  store: ShareStore;
  audit: AuditLog;
  policy: PolicyEngine;
  /** API keys by tenant: acme, mallory; and an admin key of acme. */
  apiKeys: { acme: string; mallory: string; admin: string };
  /** The audit log's entries, oldest first. */
  entries(): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function startApiNode(o: {
  dataDir: string;
  index: number;
  parties: number;
  identity: IdentityKeyPair;
  membership: ReadonlyMap<number, Uint8Array>;
  link: CoordinatorLink;
}): Promise<ApiNode> {
  const logger = pino({ level: 'silent' });
  const store = await ShareStore.open({ dataDir: o.dataDir, kek: Uint8Array.from(randomBytes(32)), nodeIndex: o.index });
  const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity: o.identity, checkpointIntervalMs: 0 });
  const policy = await PolicyEngine.open({ records: store.namespace(POLICY_NAMESPACE), audit });
  const tenants = await TenantStore.open({ records: store.namespace(TENANTS_NAMESPACE) });
  const apiKeys = {
    acme: '',
    mallory: '',
    admin: '',
  };
  await tenants.createTenant('acme');
  await tenants.createTenant('mallory');
  apiKeys.acme = (await tenants.createApiKey('acme')).apiKey;
  apiKeys.mallory = (await tenants.createApiKey('mallory')).apiKey;
  apiKeys.admin = (await tenants.createApiKey('acme', { role: 'admin' })).apiKey;
  const gate = new OperationGate({
    audit,
    policy,
    decline: (session, reason, scope) => {
      if (o.link.connected) o.link.fail(session, 'POLICY_DENIED', reason, [], scope);
    },
    logger,
  });
  const service = new NodeService({
    index: o.index,
    identity: o.identity,
    importKey: await generateWrappingKeyPair('ml-kem-768'),
    live: new LiveMembership({ epoch: 0, members: [...o.membership].map(([index, identityPublicKey]) => ({ index, identityPublicKey })) }),
    store,
    link: o.link,
    logger,
    gate,
  });
  const admin = new NodeAdmin({ tenants, policy, audit, gate, failOpen: { defaultMs: 300_000, maxMs: 3_600_000 }, logger });
  const app = await buildApi({ service, admin, authenticate: (k) => tenants.authenticate(k), logger });
  await app.ready();
  return {
    app,
    store,
    audit,
    policy,
    apiKeys,
    entries: async () => (await audit.exportLog({ checkpoint: false })).entries as unknown as Record<string, unknown>[],
    async close() {
      await app.close();
      await policy.close();
      await audit.close();
      await store.close();
    },
  };
}
