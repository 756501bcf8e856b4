/**
 * The node's administration: tenants, API keys, policy rules, emergency fail-open and the audit log.
 * Admin API keys only (node/governance/tenants.ts requireAdmin), each change through the same gate as every other
 * operation (node/governance/gate.ts: authorise, audit 'started', do, audit 'ok' / 'failed'). Each node answers
 * only to its own operator, so a tenant or API key made here exists on this node only: the SDK and CLI
 * (Cluster.createTenant / createApiKeys, `tessera tenant create`, `tessera apikey create`) make it on
 * every node of the cluster, giving one API key per node.
 */
import type { Logger } from 'pino';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import type { ApiKeyInfoJson, AuditLogResponse, TenantListResponse, CreateApiKeyRequest, CreateApiKeyResponse, FailOpenJson, KekRotatePrepareRequest, KekRotatePrepareResponse, KekRotateResponse, PolicyResponse, TenantResponse } from '../../contract/http.js';
import type { AuditLog } from './audit.js';
import type { OperationGate } from './gate.js';
import type { PolicyEngine, PolicyRule } from './policy.js';
import { requireAdmin, type ApiKeyInfo, type Principal, type TenantStore } from './tenants.js';

export interface NodeAdminOptions {
  readonly tenants: TenantStore;
  readonly policy: PolicyEngine;
  readonly audit: AuditLog;
  readonly gate: OperationGate;
  /** Fail-open window when none is given, and the longest accepted (node/config.ts failOpen). */
  readonly failOpen: { readonly defaultMs: number; readonly maxMs: number };
  readonly logger: Logger;
  /** Rotate the node's KEK (node/store/kek-rotation.ts rotateKek over the node's store and provider). */
  readonly rotateKek?: () => Promise<KekRotateResponse>;
  /** A shamir-unseal node's rotation, phase 1: new operator shares (node/sealed.ts prepareKekRotation). */
  readonly prepareKekRotation?: (body: KekRotatePrepareRequest) => Promise<KekRotatePrepareResponse>;
}

const nothing = async () => ({});

function apiKeyJson(i: ApiKeyInfo): ApiKeyInfoJson {
  return {
    id: i.id,
    tenant: i.tenant,
    role: i.role,
    source: i.source,
    ...(i.createdAt !== undefined ? { createdAt: i.createdAt } : {}),
    ...(i.revokedAt !== undefined ? { revokedAt: i.revokedAt } : {}),
  };
}

export class NodeAdmin {
  constructor(private readonly o: NodeAdminOptions) {}

  createTenant(p: Principal, name: string): Promise<TenantResponse> {
    return this.o.gate.run({ principal: p, operation: 'tenant.create', authorize: 'admin' }, nothing, async () => {
      const t = await this.o.tenants.createTenant(name);
      this.o.logger.info({ op: 'tenant.create', tenant: t.name, actor: p.apiKeyId }, 'tenant created');
      return { name: t.name, ...(t.createdAt !== undefined ? { createdAt: t.createdAt } : {}) };
    });
  }

  /** A new API key of a tenant of this node: returned here once, stored only as its SHA-256. */
  createApiKey(p: Principal, req: CreateApiKeyRequest): Promise<CreateApiKeyResponse> {
    return this.o.gate.run({ principal: p, operation: 'apikey.create', authorize: 'admin' }, nothing, async () => {
      const { apiKey, info } = await this.o.tenants.createApiKey(req.tenant, req.role ? { role: req.role } : {});
      this.o.logger.info({ op: 'apikey.create', tenant: info.tenant, id: info.id, role: info.role, actor: p.apiKeyId }, 'API key created');
      return { ...apiKeyJson(info), apiKey };
    });
  }

  /** Every tenant of this node: a read, not audited. */
  async listTenants(p: Principal): Promise<TenantListResponse> {
    requireAdmin(p);
    const all = await this.o.tenants.listTenants();
    return { tenants: all.map((t) => ({ name: t.name, ...(t.createdAt !== undefined ? { createdAt: t.createdAt } : {}) })) };
  }

  /** Whether this node has the tenant (the acting-tenant header of node/http/api.ts). */
  async hasTenant(name: string): Promise<boolean> {
    return (await this.o.tenants.getTenant(name)) !== undefined;
  }

  /** API keys (never their hashes): a read, not audited. */
  listApiKeys(p: Principal, tenant?: string): { apiKeys: ApiKeyInfoJson[] } {
    requireAdmin(p);
    return { apiKeys: this.o.tenants.listApiKeys(tenant).map(apiKeyJson) };
  }

  revokeApiKey(p: Principal, id: string): Promise<ApiKeyInfoJson> {
    return this.o.gate.run({ principal: p, operation: 'apikey.revoke', authorize: 'admin' }, nothing, async () => {
      const info = await this.o.tenants.revokeApiKey(id);
      this.o.logger.info({ op: 'apikey.revoke', id, actor: p.apiKeyId }, 'API key revoked');
      return apiKeyJson(info);
    });
  }

  /** The rules and the fail-open status. UNAVAILABLE (503) when the rule store cannot be read. */
  async getPolicy(p: Principal): Promise<PolicyResponse> {
    requireAdmin(p);
    return this.policyResponse(await this.o.policy.getRules());
  }

  /** Replace the rules (validated first; node/governance/policy.ts also audits the change as 'policy.update'). */
  setPolicy(p: Principal, rules: unknown[]): Promise<PolicyResponse> {
    return this.o.gate.run({ principal: p, operation: 'policy.update', authorize: 'admin' }, nothing, async () => {
      const doc = await this.o.policy.setRules(rules as PolicyRule[], p.apiKeyId);
      this.o.logger.warn({ op: 'policy.update', version: doc.version, rules: doc.rules.length, actor: p.apiKeyId }, 'policy rules replaced');
      return this.policyResponse(doc);
    });
  }

  /** Emergency fail-open for `durationMs` (default from the config), reverting by itself; critical audit entries. */
  enableFailOpen(p: Principal, durationMs?: number): Promise<FailOpenJson> {
    return this.o.gate.run({ principal: p, operation: 'policy.fail-open.enable', authorize: 'admin' }, nothing, async () => {
      const ms = durationMs ?? this.o.failOpen.defaultMs;
      if (ms > this.o.failOpen.maxMs) throw new TesseraError(ErrorCode.BadInput, `fail-open can last at most ${this.o.failOpen.maxMs} ms on this node`);
      const status = await this.o.policy.enableFailOpen({ actor: p.apiKeyId, durationMs: ms });
      this.o.logger.error({ op: 'policy.fail-open.enable', durationMs: ms, until: status.until, actor: p.apiKeyId }, 'EMERGENCY FAIL-OPEN switched on');
      return failOpenJson(status);
    });
  }

  /**
   * Re-wrap every record under a new KEK and destroy the old one (or finish a rotation a crash
   * interrupted). One at a time per node: a second request while one runs is BAD_STATE.
   */
  rotateKek(p: Principal): Promise<KekRotateResponse> {
    return this.o.gate.run({ principal: p, operation: 'kek.rotate', authorize: 'admin' }, nothing, async () => {
      ensure(this.o.rotateKek !== undefined, ErrorCode.BadState, 'this node cannot rotate its KEK');
      ensure(!this.kekRotating, ErrorCode.BadState, 'a KEK rotation is already running on this node');
      this.kekRotating = true;
      try {
        const r = await this.o.rotateKek!();
        this.o.logger.warn({ op: 'kek.rotate', from: r.from, to: r.to, records: r.records, moved: r.moved, resumed: r.resumed, actor: p.apiKeyId }, 'KEK rotated; the old KEK is destroyed');
        return r;
      } finally {
        this.kekRotating = false;
      }
    });
  }

  /**
   * Phase 1 of a shamir-unseal node's KEK rotation: the next KEK split into new operator shares, answered
   * once. Never while a rotation runs (its next KEK is the one being split), so it shares that lock.
   */
  prepareKekRotation(p: Principal, body: KekRotatePrepareRequest): Promise<KekRotatePrepareResponse> {
    return this.o.gate.run({ principal: p, operation: 'kek.rotate-prepare', authorize: 'admin' }, nothing, async () => {
      ensure(this.o.prepareKekRotation !== undefined, ErrorCode.BadState, 'this node has no operator shares to prepare: its KEK provider is not shamir-unseal');
      ensure(!this.kekRotating, ErrorCode.BadState, 'a KEK rotation is already running on this node');
      this.kekRotating = true;
      try {
        const r = await this.o.prepareKekRotation!(body);
        this.o.logger.warn({ op: 'kek.rotate-prepare', from: r.from, to: r.keyCheckValue, threshold: r.threshold, operators: r.operators, resplit: r.resplit, actor: p.apiKeyId }, 'KEK rotation prepared: new operator shares handed out');
        return r;
      } finally {
        this.kekRotating = false;
      }
    });
  }

  private kekRotating = false;

  disableFailOpen(p: Principal): Promise<FailOpenJson> {
    return this.o.gate.run({ principal: p, operation: 'policy.fail-open.disable', authorize: 'admin' }, nothing, async () => {
      const status = await this.o.policy.disableFailOpen(p.apiKeyId);
      this.o.logger.warn({ op: 'policy.fail-open.disable', actor: p.apiKeyId }, 'fail-open switched off');
      return failOpenJson(status);
    });
  }

  /**
   * The whole audit log with its checkpoints (the head is signed first), each entry as the JSON of what
   * is stored. The one operation that goes on when the log refuses appends (a head that does not check
   * out): exporting changes nothing, and it is how such a log is investigated. The export itself is
   * audited whenever the log can take the entry.
   */
  async exportAudit(p: Principal): Promise<AuditLogResponse> {
    requireAdmin(p);
    await this.o.audit
      .append({ tenant: p.tenant, actor: p.apiKeyId, operation: 'audit.export', outcome: 'ok' })
      .catch((e: Error) => this.o.logger.error({ err: { message: e.message } }, 'audit log refuses appends; exporting it for investigation'));
    const log = await this.o.audit.exportLog();
    return { format: log.format, entries: log.entries.map((e) => JSON.stringify(e)), checkpoints: log.checkpoints.map((c) => JSON.stringify(c)) };
  }

  private policyResponse(doc: { version: number; rules: readonly PolicyRule[]; updatedAt: number; updatedBy?: string }): PolicyResponse {
    return {
      version: doc.version,
      rules: [...doc.rules],
      updatedAt: doc.updatedAt,
      ...(doc.updatedBy !== undefined ? { updatedBy: doc.updatedBy } : {}),
      failOpen: failOpenJson(this.o.policy.failOpenStatus()),
    };
  }
}

function failOpenJson(s: { active: boolean; until?: number; enabledBy?: string }): FailOpenJson {
  return { active: s.active, ...(s.until !== undefined ? { until: s.until } : {}), ...(s.enabledBy !== undefined ? { enabledBy: s.enabledBy } : {}) };
}
