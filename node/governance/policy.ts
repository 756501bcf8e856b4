/**
 * The node's policy engine: evaluated before the node joins any session. Rules live in the node's
 * LevelDB (ShareStore.namespace('policy')), are ordered, and the first rule that denies decides.
 *
 * Rule types (each has an id and a scope {tenant?, apiKeyId?, keyId?}; a rule applies to a request when
 * every field its scope names is equal; an empty scope applies to every request):
 *   allow-operations  {operations}            in scope, an operation not listed is denied
 *                                             (allowed operations per API key, per tenant, per key)
 *   deny              {operations?}           in scope, the listed operations (all if omitted) are denied
 *   quota             {operations, per, limit, periodMs}
 *                                             at most `limit` admitted requests per bucket (per tenant,
 *                                             API key or key) in each fixed window of `periodMs` aligned
 *                                             to the Unix epoch. Counted only when the whole evaluation
 *                                             admits the request, persisted (synced) in LevelDB so a
 *                                             restart does not reset it.
 *   rate              {operations?, per, limit, intervalMs}
 *                                             token bucket per API key (or tenant): `limit` burst,
 *                                             refilled at `limit` per `intervalMs`. In memory: a restart
 *                                             refills the buckets (rates are about bursts, quotas about
 *                                             totals).
 *   preapprove-rotation {until?}              emergency rotation pre-approved by this node's operator
 *                                             (issue 15, item 3) for ONE API key (scope.apiKeyId is
 *                                             required): a key the operator made and handed to whoever
 *                                             runs an emergency `tessera rotate --all` (the other
 *                                             operators), so this node takes part without its operator
 *                                             present. In scope, only rotate and repair (which finishes
 *                                             or drops a change every node already voted on) pass this
 *                                             rule; every other operation is denied, and after `until`
 *                                             (ms since the Unix epoch, this node's clock) everything is.
 *                                             Later rules still apply (a deny after it still denies). An
 *                                             operation it admits is audited naming the rule
 *                                             (PolicyDecision.preapprovedBy; node/governance/gate.ts).
 *                                             The node acts only on its own operator's authority: the
 *                                             rule is that authority, set by an admin API key of this
 *                                             node and audited as every rule change ('policy.update').
 * No rules: every request is allowed.
 *
 * Fail closed: if the engine cannot evaluate (the rule document is missing, unreadable or invalid, a
 * quota counter cannot be read, or the counters cannot be written) evaluate() throws UNAVAILABLE, which
 * the API answers with 503.
 *
 * Emergency fail-open (enableFailOpen): for a bounded time (default 5 minutes, at most `maxFailOpenMs`)
 * a rule the engine cannot evaluate is treated as passing instead of failing the request. It never
 * ignores a deny the engine CAN evaluate: with a readable rule document, deny / allow-operations rules
 * still deny, and only the unreadable quota counter (or the counter write) is skipped; with an unreadable
 * document there is nothing to evaluate and every request is admitted. Decisions made that way carry
 * `failOpen: true`. It reverts automatically: a timer owned by the engine (unref'd, cleared on close)
 * and, independently, a check against the injected clock on every evaluation, so a delayed timer cannot
 * extend it. Switching it on, off, and the automatic revert each write a critical audit entry; if the
 * "on" entry cannot be written, fail-open is not enabled. Fail-open is in memory only: a restart ends it.
 */
import { Packr } from 'msgpackr';
import type { AuditOperation } from '../../core/audit-verify.js';
import { ErrorCode, TesseraError, ensure, isTesseraError } from '../../core/errors.js';
import type { AuditLog } from './audit.js';
import type { RecordNamespace } from '../store/storage.js';

export const POLICY_NAMESPACE = 'policy';

import { POLICY_OPERATIONS, type PolicyOperation } from '../../contract/http.js';
export { POLICY_OPERATIONS, type PolicyOperation };


export const DEFAULT_FAIL_OPEN_MS = 5 * 60_000;
export const DEFAULT_MAX_FAIL_OPEN_MS = 60 * 60_000;
export const MAX_RULES = 1000;

export interface PolicyScope {
  readonly tenant?: string;
  readonly apiKeyId?: string;
  readonly keyId?: string;
}

export type PolicyRule =
  | { readonly id: string; readonly type: 'allow-operations'; readonly scope?: PolicyScope; readonly operations: readonly PolicyOperation[] }
  | { readonly id: string; readonly type: 'deny'; readonly scope?: PolicyScope; readonly operations?: readonly PolicyOperation[] }
  | {
      readonly id: string;
      readonly type: 'quota';
      readonly scope?: PolicyScope;
      readonly operations: readonly PolicyOperation[];
      readonly per: 'tenant' | 'apiKey' | 'key';
      readonly limit: number;
      readonly periodMs: number;
    }
  | {
      readonly id: string;
      readonly type: 'rate';
      readonly scope?: PolicyScope;
      readonly operations?: readonly PolicyOperation[];
      readonly per: 'tenant' | 'apiKey';
      readonly limit: number;
      readonly intervalMs: number;
    }
  | { readonly id: string; readonly type: 'preapprove-rotation'; readonly scope: PolicyScope & { readonly apiKeyId: string }; readonly until?: number };

/** What a preapprove-rotation rule lets its API key do: rotate, and repair a rotation the nodes already voted on. */
export const PREAPPROVED_OPERATIONS: readonly PolicyOperation[] = ['rotate', 'repair'];

export interface PolicyDocument {
  /** Increases by one with every setRules. */
  readonly version: number;
  readonly rules: readonly PolicyRule[];
  readonly updatedAt: number;
  readonly updatedBy?: string;
}

export interface PolicyRequest {
  readonly tenant: string;
  readonly apiKeyId: string;
  readonly operation: PolicyOperation;
  readonly keyId: string;
  readonly version?: number;
}

export type PolicyDecision =
  | {
      readonly allow: true;
      readonly failOpen?: true;
      /** Rules skipped because they could not be evaluated (fail-open). */
      readonly skipped?: readonly string[];
      /** The preapprove-rotation rule that admitted the request (its operator's standing approval): audited. */
      readonly preapprovedBy?: string;
    }
  | { readonly allow: false; readonly rule: string; readonly reason: string };

export interface PolicyEngineOptions {
  /** `store.namespace(POLICY_NAMESPACE)`. */
  readonly records: RecordNamespace;
  /** Where fail-open and rule changes are recorded. */
  readonly audit: AuditLog;
  /** Milliseconds since the Unix epoch. Default Date.now. */
  readonly now?: () => number;
  /** The longest fail-open window enableFailOpen accepts. Default one hour. */
  readonly maxFailOpenMs?: number;
  /** Told about failures nobody awaits (the audit entry of an automatic revert). */
  readonly onError?: (err: TesseraError) => void;
}

export interface FailOpenStatus {
  readonly active: boolean;
  readonly until?: number;
  readonly enabledBy?: string;
}

const packr = new Packr({ useRecords: false });
const FORMAT = 1;
const RULES_KEY = 'rules';
const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const SYSTEM_ACTOR = 'system';

/** A revert whose audit entry is still to be written. */
interface PendingRevert {
  readonly why: 'expired' | 'disabled' | 'closing';
  readonly actor: string;
  readonly reason: string;
}

/** Thrown inside evaluation when a rule or counter cannot be evaluated. */
class CannotEvaluate extends Error {}

export class PolicyEngine {
  private readonly records: RecordNamespace;
  private readonly audit: AuditLog;
  private readonly now: () => number;
  private readonly maxFailOpenMs: number;
  private readonly onError: (err: TesseraError) => void;
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * The last rule document read, its bytes, and the namespace's write count when it was read
   * (RecordNamespace.generation). While that count is unchanged nothing under the namespace was written
   * (setRules, or anything else), so evaluation uses the document without reading LevelDB again. Every
   * evaluation still asks for the count, which throws while the store is closed or latched failed, so
   * that still fails closed; a read that fails leaves nothing cached.
   */
  private cache: { raw: Uint8Array; doc: PolicyDocument; generation: number | undefined } | undefined;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private failOpen: { until: number; by: string; durationMs: number } | undefined;
  private failOpenTimer: ReturnType<typeof setTimeout> | undefined;
  private pendingRevertAudit: PendingRevert | undefined;
  private closed = false;

  private constructor(o: PolicyEngineOptions) {
    this.records = o.records;
    this.audit = o.audit;
    this.now = o.now ?? Date.now;
    this.maxFailOpenMs = o.maxFailOpenMs ?? DEFAULT_MAX_FAIL_OPEN_MS;
    this.onError = o.onError ?? (() => undefined);
  }

  /**
   * Open the engine. On a fresh node (no rule document yet) an empty document (version 0, no rules) is
   * written. An existing document is NOT read here: a corrupt one must not stop the node from starting,
   * it makes evaluate() answer UNAVAILABLE until an admin sets valid rules.
   */
  static async open(o: PolicyEngineOptions): Promise<PolicyEngine> {
    ensure(typeof o?.records?.get === 'function', ErrorCode.BadInput, 'policy: records namespace required');
    ensure(typeof o.audit?.append === 'function', ErrorCode.BadInput, 'policy: audit log required');
    const max = o.maxFailOpenMs ?? DEFAULT_MAX_FAIL_OPEN_MS;
    ensure(Number.isSafeInteger(max) && max >= 1, ErrorCode.BadInput, 'policy: maxFailOpenMs must be a positive integer');
    const engine = new PolicyEngine(o);
    let stored = true;
    try {
      stored = (await o.records.get(RULES_KEY)) !== undefined;
    } catch (e) {
      // A rule record that cannot be read, or fails its record MAC (node/store/record-auth.ts), is not
      // replaced here: evaluate() answers UNAVAILABLE until an admin sets valid rules.
      if (!isUnavailable(e)) throw e;
    }
    if (!stored) await o.records.put(RULES_KEY, encode({ v: FORMAT, version: 0, rules: [], updatedAt: engine.clock() }), { sync: true });
    return engine;
  }

  // -------------------------------------------------------------------------------------------
  // Evaluation

  /**
   * Decide on a request. Resolves {allow: true} or {allow: false, rule, reason}; throws UNAVAILABLE when
   * the engine cannot evaluate and fail-open is off, BAD_INPUT for a malformed request.
   * Serialized, so quota checks and increments of concurrent requests do not interleave.
   */
  evaluate(req: PolicyRequest): Promise<PolicyDecision> {
    try {
      checkRequest(req);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(() => this.evaluateNow(req));
  }

  /** evaluate(), throwing POLICY_DENIED (naming the rule) instead of returning a denial. */
  async enforce(req: PolicyRequest): Promise<PolicyDecision & { allow: true }> {
    const d = await this.evaluate(req);
    if (!d.allow) throw new TesseraError(ErrorCode.PolicyDenied, d.reason);
    return d;
  }

  private async evaluateNow(req: PolicyRequest): Promise<PolicyDecision> {
    ensure(!this.closed, ErrorCode.Unavailable, 'policy: the engine is closed');
    await this.expireFailOpen();
    const now = this.clock();
    const skipped: string[] = [];
    const cannot = (rule: string | undefined): void => {
      if (!this.failOpenActive(now)) {
        throw new TesseraError(ErrorCode.Unavailable, 'policy: the policy cannot be evaluated (rule store unreadable); refusing');
      }
      skipped.push(rule ?? '*');
    };

    let doc: PolicyDocument | undefined;
    try {
      doc = await this.readDocument();
    } catch (e) {
      if (!(e instanceof CannotEvaluate) && !isUnavailable(e)) throw e;
      cannot(undefined);
    }

    const quotaWrites: { key: string; windowStart: number; count: number }[] = [];
    const rateTakes: string[] = [];
    let preapprovedBy: string | undefined;
    for (const rule of doc?.rules ?? []) {
      if (!inScope(rule.scope, req)) continue;
      if (rule.type === 'preapprove-rotation') {
        if (!PREAPPROVED_OPERATIONS.includes(req.operation)) {
          return deny(rule.id, `rule ${rule.id}: this API key holds only a pre-approval of emergency rotation (${PREAPPROVED_OPERATIONS.join(', ')}), not ${req.operation}`);
        }
        if (rule.until !== undefined && now >= rule.until) return deny(rule.id, `rule ${rule.id}: the emergency rotation pre-approval ended at ${new Date(rule.until).toISOString()}`);
        preapprovedBy ??= rule.id;
        continue;
      }
      const listed = rule.operations === undefined || rule.operations.includes(req.operation);
      switch (rule.type) {
        case 'deny':
          if (listed) return deny(rule.id, `rule ${rule.id}: ${req.operation} is denied`);
          break;
        case 'allow-operations':
          if (!listed) return deny(rule.id, `rule ${rule.id}: ${req.operation} is not among the allowed operations`);
          break;
        case 'quota': {
          if (!listed) break;
          const key = quotaKey(rule, req);
          const windowStart = now - (now % rule.periodMs);
          let count: number;
          try {
            count = await this.readQuota(key, windowStart);
          } catch (e) {
            if (!(e instanceof CannotEvaluate) && !isUnavailable(e)) throw e;
            cannot(rule.id);
            break;
          }
          if (count >= rule.limit) return deny(rule.id, `rule ${rule.id}: quota of ${rule.limit} per ${rule.periodMs} ms reached`);
          quotaWrites.push({ key, windowStart, count: count + 1 });
          break;
        }
        case 'rate': {
          if (!listed) break;
          const key = `${rule.id}\u0000${rule.per === 'tenant' ? req.tenant : req.apiKeyId}`;
          if (this.tokens(key, rule, now) < 1) return deny(rule.id, `rule ${rule.id}: rate limit of ${rule.limit} per ${rule.intervalMs} ms exceeded`);
          rateTakes.push(key);
          break;
        }
      }
    }

    // Admitted: count it against every quota and rate it passed.
    if (quotaWrites.length) {
      try {
        await this.records.batch(
          quotaWrites.map((q) => ({ type: 'put' as const, key: q.key, value: encode({ v: FORMAT, windowStart: q.windowStart, count: q.count }) })),
          { sync: true },
        );
      } catch (e) {
        if (!isUnavailable(e)) throw e;
        cannot('quota-counters');
      }
    }
    for (const key of rateTakes) this.buckets.get(key)!.tokens -= 1;
    const preapproved = preapprovedBy !== undefined ? { preapprovedBy } : {};
    return skipped.length ? { allow: true, failOpen: true, skipped, ...preapproved } : { allow: true, ...preapproved };
  }

  /** Token-bucket level for `key` now (refilled, capped at the burst), creating a full bucket if new. */
  private tokens(key: string, rule: { limit: number; intervalMs: number }, now: number): number {
    const b = this.buckets.get(key) ?? { tokens: rule.limit, at: now };
    const elapsed = Math.max(0, now - b.at);
    b.tokens = Math.min(rule.limit, b.tokens + (elapsed * rule.limit) / rule.intervalMs);
    b.at = Math.max(b.at, now);
    this.buckets.set(key, b);
    return b.tokens;
  }

  private async readQuota(key: string, windowStart: number): Promise<number> {
    const raw = await this.records.get(key);
    if (raw === undefined) return 0;
    const m = decode(raw);
    if (!m || m.v !== FORMAT || !isUint(m.windowStart) || !isUint(m.count)) throw new CannotEvaluate();
    return m.windowStart === windowStart ? m.count : 0;
  }

  // -------------------------------------------------------------------------------------------
  // Rules

  /** The current rule document. UNAVAILABLE if it is missing, unreadable or invalid. */
  getRules(): Promise<PolicyDocument> {
    return this.serialize(async () => {
      try {
        return await this.readDocument();
      } catch (e) {
        if (e instanceof CannotEvaluate) throw new TesseraError(ErrorCode.Unavailable, `policy: the rule store is unreadable (${e.message})`);
        throw e;
      }
    });
  }

  /**
   * Replace the rules (validated first: BAD_INPUT naming the rule and field). Audited as
   * 'policy.update' before the write, so an unauditable change does not happen. Works even when the
   * stored document is corrupt, which is how an admin repairs it.
   */
  setRules(rules: readonly PolicyRule[], actor: string): Promise<PolicyDocument> {
    let valid: PolicyRule[];
    try {
      valid = validateRules(rules);
      ensure(typeof actor === 'string' && ID.test(actor), ErrorCode.BadInput, 'policy: actor must be an id');
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(async () => {
      ensure(!this.closed, ErrorCode.Unavailable, 'policy: the engine is closed');
      let previous = 0;
      try {
        previous = (await this.readDocument()).version;
      } catch {
        previous = 0; // repairing a corrupt store
      }
      const doc: PolicyDocument = { version: previous + 1, rules: valid, updatedAt: this.clock(), updatedBy: actor };
      await this.audit.append({ operation: 'policy.update', actor, outcome: 'ok', severity: 'warning', reason: `policy version ${doc.version}: ${valid.length} rules` });
      await this.records.put(RULES_KEY, encode({ v: FORMAT, ...doc }), { sync: true });
      this.cache = undefined;
      return doc;
    });
  }

  private async readDocument(): Promise<PolicyDocument> {
    let raw: Uint8Array | undefined;
    let generation: number | undefined;
    try {
      generation = this.records.generation?.();
      if (generation !== undefined && this.cache?.generation === generation) return this.cache.doc;
      raw = await this.records.get(RULES_KEY);
    } catch (e) {
      if (isUnavailable(e)) throw new CannotEvaluate('read failed');
      throw e;
    }
    if (raw === undefined) throw new CannotEvaluate('the rule document is missing');
    if (this.cache && equalRaw(this.cache.raw, raw)) {
      this.cache = { ...this.cache, generation };
      return this.cache.doc;
    }
    const m = decode(raw);
    if (!m || m.v !== FORMAT || !isUint(m.version) || !isUint(m.updatedAt)) throw new CannotEvaluate('the rule document is corrupt');
    let rules: PolicyRule[];
    try {
      rules = validateRules(m.rules);
    } catch {
      throw new CannotEvaluate('the stored rules are invalid');
    }
    const doc: PolicyDocument = {
      version: m.version,
      rules,
      updatedAt: m.updatedAt,
      ...(typeof m.updatedBy === 'string' ? { updatedBy: m.updatedBy } : {}),
    };
    this.cache = { raw, doc, generation };
    return doc;
  }

  // -------------------------------------------------------------------------------------------
  // Emergency fail-open

  /**
   * Switch fail-open on for `durationMs` (default 5 minutes; 1 ms .. maxFailOpenMs). Writes a critical
   * audit entry first; if that fails, fail-open stays off and this rejects (UNAVAILABLE). Calling it
   * again while on restarts the window (and is audited again).
   */
  enableFailOpen(opts: { actor: string; durationMs?: number }): Promise<FailOpenStatus> {
    const durationMs = opts?.durationMs ?? DEFAULT_FAIL_OPEN_MS;
    try {
      ensure(typeof opts?.actor === 'string' && ID.test(opts.actor), ErrorCode.BadInput, 'policy: actor must be an id');
      ensure(
        Number.isSafeInteger(durationMs) && durationMs >= 1 && durationMs <= this.maxFailOpenMs,
        ErrorCode.BadInput,
        `policy: fail-open duration must be 1..${this.maxFailOpenMs} ms`,
      );
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(async () => {
      ensure(!this.closed, ErrorCode.Unavailable, 'policy: the engine is closed');
      await this.audit.append({
        operation: 'policy.fail-open.enable',
        actor: opts.actor,
        outcome: 'ok',
        severity: 'critical',
        reason: `emergency fail-open for ${durationMs} ms`,
      });
      const until = this.clock() + durationMs;
      this.failOpen = { until, by: opts.actor, durationMs };
      if (this.failOpenTimer) clearTimeout(this.failOpenTimer);
      this.failOpenTimer = setTimeout(() => {
        this.serialize(() => this.revertFailOpen('expired')).catch(() => undefined);
      }, durationMs);
      this.failOpenTimer.unref();
      return this.failOpenStatus();
    });
  }

  /** Switch fail-open off now (audited, critical). A no-op when it is off. */
  disableFailOpen(actor: string): Promise<FailOpenStatus> {
    try {
      ensure(typeof actor === 'string' && ID.test(actor), ErrorCode.BadInput, 'policy: actor must be an id');
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(async () => {
      await this.revertFailOpen('disabled', actor);
      return this.failOpenStatus();
    });
  }

  /** Whether fail-open is on now (by the clock, even before the revert has run). */
  failOpenStatus(): FailOpenStatus {
    const f = this.failOpen;
    return f && this.clock() < f.until ? { active: true, until: f.until, enabledBy: f.by } : { active: false };
  }

  private failOpenActive(now: number): boolean {
    return this.failOpen !== undefined && now < this.failOpen.until;
  }

  /** Lazy revert, checked against the clock on every evaluation. */
  private async expireFailOpen(): Promise<void> {
    if (this.failOpen && this.clock() >= this.failOpen.until) await this.revertFailOpen('expired');
    else if (this.pendingRevertAudit) await this.writeRevertAudit(this.pendingRevertAudit);
  }

  /** Turn fail-open off first (the safe direction never waits on the audit log), then audit it. */
  private async revertFailOpen(why: 'expired' | 'disabled' | 'closing', actor?: string): Promise<void> {
    const f = this.failOpen;
    if (this.failOpenTimer) clearTimeout(this.failOpenTimer);
    this.failOpenTimer = undefined;
    if (!f) return;
    this.failOpen = undefined;
    // Ids stay in the actor field, not in the reason (the audit log screens reasons for blobs).
    const reason =
      why === 'expired'
        ? `automatic revert after ${f.durationMs} ms`
        : why === 'closing'
          ? 'reverted: node shutting down'
          : `switched off after ${Math.max(0, this.clock() - (f.until - f.durationMs))} of ${f.durationMs} ms`;
    this.pendingRevertAudit = { why, actor: actor ?? SYSTEM_ACTOR, reason };
    await this.writeRevertAudit(this.pendingRevertAudit);
  }

  private async writeRevertAudit(p: PendingRevert): Promise<void> {
    try {
      await this.audit.append({
        operation: p.why === 'disabled' ? 'policy.fail-open.disable' : 'policy.fail-open.revert',
        actor: p.actor,
        outcome: 'ok',
        severity: 'critical',
        reason: p.reason,
      });
      if (this.pendingRevertAudit === p) this.pendingRevertAudit = undefined;
    } catch (e) {
      // Fail-open is already off; the entry is retried on the next evaluation.
      this.onError(isTesseraError(e) ? e : new TesseraError(ErrorCode.Unavailable, 'policy: cannot audit the fail-open revert'));
    }
  }

  /** Clear the timer, end fail-open (audited, best effort) and wait for queued work. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.serialize(async () => {
      await this.revertFailOpen('closing');
    }).catch(() => undefined);
    this.closed = true;
    if (this.failOpenTimer) clearTimeout(this.failOpenTimer);
    this.failOpenTimer = undefined;
    await this.queue.catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------

  private clock(): number {
    const t = this.now();
    ensure(Number.isFinite(t), ErrorCode.BadState, 'policy: the clock returned a bad time');
    return Math.floor(t);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

function checkRequest(req: PolicyRequest): void {
  ensure(isRecord(req), ErrorCode.BadInput, 'policy: expected a request');
  for (const f of ['tenant', 'apiKeyId', 'keyId'] as const) {
    ensure(typeof req[f] === 'string' && ID.test(req[f]), ErrorCode.BadInput, `policy: request ${f} must be an id`);
  }
  ensure((POLICY_OPERATIONS as readonly unknown[]).includes(req.operation), ErrorCode.BadInput, 'policy: unknown operation');
  ensure(req.version === undefined || (isUint(req.version) && req.version >= 1), ErrorCode.BadInput, 'policy: version must be a positive integer');
}

const COMMON_FIELDS = ['id', 'type', 'scope'];
const RULE_FIELDS: Record<PolicyRule['type'], string[]> = {
  'allow-operations': [...COMMON_FIELDS, 'operations'],
  deny: [...COMMON_FIELDS, 'operations'],
  quota: [...COMMON_FIELDS, 'operations', 'per', 'limit', 'periodMs'],
  rate: [...COMMON_FIELDS, 'operations', 'per', 'limit', 'intervalMs'],
  'preapprove-rotation': [...COMMON_FIELDS, 'until'],
};

/**
 * Check a rule list and return a normalized copy (plain objects, exactly the known fields).
 * BAD_INPUT naming the rule (by position and id) and the field.
 */
export function validateRules(input: unknown): PolicyRule[] {
  ensure(Array.isArray(input), ErrorCode.BadInput, 'policy: rules must be a list');
  ensure(input.length <= MAX_RULES, ErrorCode.BadInput, `policy: at most ${MAX_RULES} rules`);
  const ids = new Set<string>();
  return input.map((r, i): PolicyRule => {
    const at = `policy: rule ${i}`;
    ensure(isRecord(r), ErrorCode.BadInput, `${at} must be an object`);
    ensure(typeof r.id === 'string' && RULE_ID.test(r.id), ErrorCode.BadInput, `${at}: id must be 1-64 of [A-Za-z0-9._:-], starting alphanumeric`);
    const where = `policy: rule ${i} (${r.id})`;
    ensure(!ids.has(r.id), ErrorCode.BadInput, `${where}: duplicate id`);
    ids.add(r.id);
    ensure(typeof r.type === 'string' && r.type in RULE_FIELDS, ErrorCode.BadInput, `${where}: type must be one of ${Object.keys(RULE_FIELDS).join(', ')}`);
    const type = r.type as PolicyRule['type'];
    for (const k of Object.keys(r)) ensure(RULE_FIELDS[type].includes(k), ErrorCode.BadInput, `${where}: unknown field ${JSON.stringify(k.slice(0, 32))}`);
    const scope = checkScope(r.scope, where);
    const ops = (required: boolean): PolicyOperation[] | undefined => {
      if (r.operations === undefined) {
        ensure(!required, ErrorCode.BadInput, `${where}: operations is required`);
        return undefined;
      }
      ensure(Array.isArray(r.operations), ErrorCode.BadInput, `${where}: operations must be a list`);
      for (const op of r.operations) ensure((POLICY_OPERATIONS as readonly unknown[]).includes(op), ErrorCode.BadInput, `${where}: unknown operation`);
      ensure(new Set(r.operations).size === r.operations.length, ErrorCode.BadInput, `${where}: operations has duplicates`);
      return [...(r.operations as PolicyOperation[])];
    };
    const int = (name: string, min: number, max: number): number => {
      const v = r[name];
      ensure(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max, ErrorCode.BadInput, `${where}: ${name} must be an integer ${min}..${max}`);
      return v;
    };
    const per = <P extends string>(allowed: readonly P[]): P => {
      ensure(typeof r.per === 'string' && (allowed as readonly string[]).includes(r.per), ErrorCode.BadInput, `${where}: per must be one of ${allowed.join(', ')}`);
      return r.per as P;
    };
    const base = { id: r.id, ...(scope ? { scope } : {}) };
    switch (type) {
      case 'allow-operations':
        return { ...base, type, operations: ops(true)! };
      case 'deny': {
        const o = ops(false);
        return { ...base, type, ...(o ? { operations: o } : {}) };
      }
      case 'quota': {
        const o = ops(true)!;
        ensure(o.length > 0, ErrorCode.BadInput, `${where}: operations must not be empty`);
        return { ...base, type, operations: o, per: per(['tenant', 'apiKey', 'key'] as const), limit: int('limit', 0, 1e9), periodMs: int('periodMs', 1000, 366 * 24 * 3600_000) };
      }
      case 'rate': {
        const o = ops(false);
        return { ...base, type, ...(o ? { operations: o } : {}), per: per(['tenant', 'apiKey'] as const), limit: int('limit', 1, 1e6), intervalMs: int('intervalMs', 1, 24 * 3600_000) };
      }
      case 'preapprove-rotation': {
        // One named API key: a rule for every key would restrict the operator's own keys to rotate too.
        ensure(scope?.apiKeyId !== undefined, ErrorCode.BadInput, `${where}: scope.apiKeyId is required (the API key the pre-approval is for)`);
        const until = r.until === undefined ? {} : { until: int('until', 0, Number.MAX_SAFE_INTEGER) };
        return { id: r.id, type, scope: { ...scope, apiKeyId: scope.apiKeyId }, ...until };
      }
    }
  });
}

function checkScope(v: unknown, where: string): PolicyScope | undefined {
  if (v === undefined) return undefined;
  ensure(isRecord(v), ErrorCode.BadInput, `${where}: scope must be an object`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    ensure(k === 'tenant' || k === 'apiKeyId' || k === 'keyId', ErrorCode.BadInput, `${where}: scope fields are tenant, apiKeyId, keyId`);
    ensure(typeof val === 'string' && ID.test(val), ErrorCode.BadInput, `${where}: scope.${k} must be an id`);
    out[k] = val;
  }
  return out;
}

function inScope(scope: PolicyScope | undefined, req: PolicyRequest): boolean {
  if (!scope) return true;
  return (
    (scope.tenant === undefined || scope.tenant === req.tenant) &&
    (scope.apiKeyId === undefined || scope.apiKeyId === req.apiKeyId) &&
    (scope.keyId === undefined || scope.keyId === req.keyId)
  );
}

/** Quota counter record key: one per rule and bucket (the window start lives in the value). */
function quotaKey(rule: { id: string; per: 'tenant' | 'apiKey' | 'key' }, req: PolicyRequest): string {
  const bucket = rule.per === 'tenant' ? `t/${req.tenant}` : rule.per === 'apiKey' ? `a/${req.apiKeyId}` : `k/${req.tenant}/${req.keyId}`;
  return `q/${rule.id}/${bucket}`;
}

function deny(rule: string, reason: string): PolicyDecision {
  return { allow: false, rule, reason };
}

function isUnavailable(e: unknown): boolean {
  return isTesseraError(e) && (e.code === ErrorCode.Unavailable || e.code === ErrorCode.BadState);
}

function encode(v: unknown): Uint8Array {
  return Uint8Array.from(packr.pack(v));
}

function decode(raw: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = packr.unpack(raw) as unknown;
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function equalRaw(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
