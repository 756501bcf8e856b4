/**
 * The one path every operation of a node takes (sessions, local key operations, lifecycle changes and
 * administration), so that authorisation, local checks and auditing cannot differ between operations:
 *
 *   1. authorise: an admin API key for administration (node/governance/tenants.ts requireAdmin); otherwise the
 *      node's policy engine (node/governance/policy.ts), first deny wins. A policy that cannot be evaluated is
 *      UNAVAILABLE (the API answers 503): the node fails closed.
 *   2. prepare: the operation's local checks (the key exists for this tenant, its state allows the
 *      operation, parameters), resolving the version the operation will use.
 *   3. audit 'started' (node/governance/audit.ts). If it cannot be written the operation does not run.
 *      (Skipped for one-shot local operations, GateRequest.local: their one entry is step 5.)
 *   4. work (for a session: join, channel, protocol, persist).
 *   5. audit 'ok' or 'failed'. If the final entry cannot be written the caller gets UNAVAILABLE, not the
 *      result: no operation completes unaudited.
 *
 * 0. Before all of it: if the node's storage failed (a LevelDB write was refused: ENOSPC, EIO, read-only;
 *    node/store/record-auth.ts latches it), every operation is refused with UNAVAILABLE (503) "node storage
 *    failed: restart the node", and a session is declined at once so its peers do not wait. Nothing is
 *    audited then: the audit log is in the store that failed.
 *
 * A refusal in 1-3 is audited ('denied' for policy / admin / state refusals, 'failed' otherwise) and,
 * for a session, declines it at the coordinator so the other nodes abort at once instead of waiting.
 * If even that audit entry cannot be written, the caller gets UNAVAILABLE.
 */
import type { Logger } from 'pino';
import type { AuditOperation, AuditOutcome, AuditSeverity } from '../../core/audit-verify.js';
import { toHex } from '../../core/bytes.js';
import { ErrorCode, TesseraError, isTesseraError } from '../../core/errors.js';
import { sessionScope } from '../../contract/relay.js';
import { operationMode, type NodeMetrics } from '../metrics.js';
import type { AuditLog } from './audit.js';
import { POLICY_OPERATIONS, type PolicyEngine, type PolicyOperation } from './policy.js';
import { requireAdmin, type Principal } from './tenants.js';

export interface GateRequest {
  readonly principal: Principal;
  readonly operation: AuditOperation;
  /** 'policy': the policy engine decides (operations on keys); 'admin': an admin API key is required. */
  readonly authorize: 'policy' | 'admin';
  readonly keyId?: string;
  /** The version asked for, if any (prepare() may resolve the default). */
  readonly version?: number;
  /** For sessions: audited with every entry, and declined at the coordinator when the node refuses before joining. */
  readonly session?: Uint8Array;
  /**
   * Default true. False for the decline operation itself: a refused decline (policy, unknown key) must
   * not end up declining the session anyway.
   */
  readonly declineOnRefusal?: boolean;
  /**
   * A one-shot local operation whose only effect is its response (a presigned signature share, a
   * sign-batch, a partial decapsulation): audited with ONE entry, its outcome, written (synced) before
   * the result leaves the node. A 'started' entry would cost a second synced write on the critical
   * path and record nothing more: nothing of the operation is visible before its entry is on disk, and
   * a crash before that leaves no result anywhere. Refusals are audited as for every operation.
   */
  readonly local?: boolean;
}

export interface GateOptions {
  readonly audit: AuditLog;
  readonly policy: PolicyEngine;
  /**
   * Tell the coordinator this node will not join `session` (CoordinatorSessions.fail with the decline
   * code), with the session's scope (contract/relay.ts sessionScope) when the gate knows its key.
   */
  readonly decline: (session: Uint8Array, reason: string, scope?: Uint8Array) => void;
  readonly logger: Logger;
  /** The store's failed-write latch (ShareStore.failure): set, every operation is refused with it. */
  readonly storageFailure?: () => TesseraError | undefined;
  /** Counts every operation that passes here, with its outcome and latency (node/metrics.ts). */
  readonly metrics?: NodeMetrics;
}

/** The authorisation's verdict for the audit entries: a warning (with its note) when admitted under fail-open. */
interface Verdict {
  readonly severity: AuditSeverity;
  readonly note?: string;
}

/** Errors that say the audit log could not be written (not retried when auditing the failure). */
const auditFailures = new WeakSet<TesseraError>();

/** Refusals, as opposed to failures: the request was understood and not allowed. */
const DENIED_CODES = new Set<string>([ErrorCode.PolicyDenied, ErrorCode.Unauthorized, ErrorCode.BadState]);

/** A long run of hex / base64 characters (never allowed in an audit reason: it could be encoded bytes). */
const BLOB_RUN = /[A-Za-z0-9+/=]{32,}/g;

/** An error message fit for an audit entry's reason: printable ASCII, no long encoded runs, at most 200 characters. */
export function auditReason(message: string): string {
  const printable = message.replace(/[^\x20-\x7e]/g, '?').replace(BLOB_RUN, '[..]');
  const short = printable.length > 200 ? `${printable.slice(0, 197)}...` : printable;
  return short === '' ? 'no reason given' : short;
}

export function asTesseraError(e: unknown): TesseraError {
  if (isTesseraError(e)) return e;
  return new TesseraError(ErrorCode.SessionAborted, `session failed: ${(e as Error)?.message ?? String(e)}`);
}

export class OperationGate {
  constructor(private readonly o: GateOptions) {}

  /**
   * Run one operation through the gate (see the file comment). `prepare` returns what `work` needs,
   * with the version the operation uses, if it concerns a key version.
   */
  async run<P extends { version?: number }, R>(req: GateRequest, prepare: () => Promise<P>, work: (prepared: P) => Promise<R>): Promise<R> {
    const failed = this.o.storageFailure?.();
    if (failed) {
      this.declineRefused(req, failed.message);
      throw failed;
    }
    const authorize = async (): Promise<Verdict> => {
      if (req.authorize !== 'admin') return this.decide(req);
      requireAdmin(req.principal);
      return { severity: 'info' };
    };
    return this.pass(req, [req], authorize, (err) => this.declineRefused(req, err.message), prepare, work);
  }

  /**
   * One request that is several operations of one kind on one key (sign-batch: one signature per
   * message), through the same steps as run(): the policy decides EVERY item (quotas and rates count
   * each one), prepare runs once, and every item gets its own audit entries ('started', then 'ok' or
   * 'failed'; a refusal 'denied' or 'failed') under its own reference `sessions[i]` (for sign-batch, the
   * presignature the item uses). All or nothing: a refusal of any item refuses the whole request, and
   * every item is audited with it. The entries are appended together (the audit log group-commits
   * them). Nothing is declined at the coordinator: the items are not coordinator sessions.
   */
  async runBatch<P extends { version?: number }, R>(
    req: GateRequest,
    sessions: readonly (Uint8Array | undefined)[],
    prepare: () => Promise<P>,
    work: (prepared: P) => Promise<R>,
  ): Promise<R> {
    const failed = this.o.storageFailure?.();
    if (failed) throw failed;
    if (req.authorize !== 'policy' || req.keyId === undefined || sessions.length === 0) {
      throw new TesseraError(ErrorCode.BadState, `gate: a batch of ${req.operation} needs a key id, the policy and at least one item`);
    }
    const { session: _none, ...base } = req;
    const items: GateRequest[] = sessions.map((s) => ({ ...base, ...(s ? { session: s } : {}), declineOnRefusal: false }));
    const authorize = async (): Promise<Verdict> => {
      let verdict: Verdict = { severity: 'info' };
      for (let i = 0; i < items.length; i++) {
        const d = await this.decide(req, ` (item ${i} of ${items.length}; nothing of the batch was done)`);
        if (d.severity === 'warning') verdict = d;
      }
      return verdict;
    };
    return this.pass(req, items, authorize, () => undefined, prepare, work);
  }

  /**
   * Steps 1-5 of the file comment for the audit entries `items` (one per operation the request is):
   * authorise, prepare, 'started' (unless `req.local`), work, then 'ok'; a refusal or failure is
   * audited for every item ('denied' for refusals), after `onRefusal` for one before the work.
   */
  private async pass<P extends { version?: number }, R>(
    req: GateRequest,
    items: readonly GateRequest[],
    authorize: () => Promise<Verdict>,
    onRefusal: (err: TesseraError) => void,
    prepare: () => Promise<P>,
    work: (prepared: P) => Promise<R>,
  ): Promise<R> {
    const each = (entry: (item: GateRequest) => Promise<void>) => Promise.all(items.map(entry));
    // Metrics (node/metrics.ts): counted here, once per request, as it ends (before its last audit write).
    const mode = operationMode(req);
    const startedAt = this.o.metrics?.operationStarted(req.operation, mode) ?? 0;
    const ended = (outcome: 'ok' | 'failed' | 'denied', prepared?: P, err?: TesseraError) =>
      this.o.metrics?.operationEnded({
        operation: req.operation,
        mode,
        startedAt,
        outcome,
        items: items.length,
        prepared,
        policyDenied: req.authorize === 'policy' && err?.code === ErrorCode.PolicyDenied,
      });
    let prepared: P;
    let verdict: Verdict;
    try {
      verdict = await authorize();
      prepared = await prepare();
      if (req.local !== true) await each((it) => this.append(it, 'started', prepared.version, verdict.severity, verdict.note));
    } catch (e) {
      const err = asTesseraError(e);
      const outcome = DENIED_CODES.has(err.code) ? 'denied' : 'failed';
      ended(outcome, undefined, err);
      onRefusal(err);
      await each((it) => this.record(it, outcome, req.version, err));
      throw err;
    }
    let result: R;
    try {
      result = await work(prepared);
    } catch (e) {
      const err = asTesseraError(e);
      ended('failed', prepared, err);
      await each((it) => this.record(it, 'failed', prepared.version ?? req.version, err));
      throw err;
    }
    try {
      await each((it) => this.append(it, 'ok', prepared.version ?? req.version, verdict.severity, verdict.note));
    } catch (e) {
      ended('failed', prepared, asTesseraError(e));
      throw e;
    }
    ended('ok', prepared);
    return result;
  }

  /**
   * The policy engine's decision on one operation (first deny wins): PolicyDenied (with `context`
   * appended to the reason) when it refuses; a warning and its note when admitted under emergency
   * fail-open.
   */
  private async decide(req: GateRequest, context = ''): Promise<Verdict> {
    if (req.keyId === undefined) throw new TesseraError(ErrorCode.BadState, `gate: ${req.operation} needs a key id for the policy`);
    const decision = await this.o.policy.evaluate({
      tenant: req.principal.tenant,
      apiKeyId: req.principal.apiKeyId,
      operation: policyOperation(req.operation),
      keyId: req.keyId,
      ...(req.version !== undefined ? { version: req.version } : {}),
    });
    if (!decision.allow) throw new TesseraError(ErrorCode.PolicyDenied, `policy: ${decision.reason}${context}`);
    // Admitted on the operator's standing approval (policy.ts preapprove-rotation), not a request of its
    // own at this moment: every entry of the operation says which rule, as a warning an auditor sees.
    const preapproved = decision.preapprovedBy !== undefined ? `pre-approved emergency rotation (policy rule ${decision.preapprovedBy})` : undefined;
    if (decision.failOpen) return { severity: 'warning', note: ['admitted under emergency fail-open (policy not evaluable)', preapproved].filter(Boolean).join('; ') };
    return preapproved ? { severity: 'warning', note: preapproved } : { severity: 'info' };
  }

  /**
   * Tell the coordinator this node will not join `session`, a session on key `keyId` of the
   * principal's tenant. The decline carries that scope, so the coordinator applies it only to a
   * session whose nodes joined about the same tenant and key: an API key declines (or, by a refused
   * request, makes the node decline) only sessions on its own tenant's keys.
   */
  declineSession(principal: Principal, keyId: string, session: Uint8Array, reason: string): void {
    this.o.decline(session, reason, sessionScope(session, principal.tenant, keyId));
  }

  /** A session this node refused before joining is declined, in its scope (unless it is the decline itself). */
  private declineRefused(req: GateRequest, reason: string): void {
    if (!req.session || req.declineOnRefusal === false) return;
    if (req.keyId !== undefined) this.declineSession(req.principal, req.keyId, req.session, reason);
    else this.o.decline(req.session, reason);
  }

  /** Audit a refusal or failure; if that cannot be written, the caller gets UNAVAILABLE instead. */
  private async record(req: GateRequest, outcome: AuditOutcome, version: number | undefined, err: TesseraError): Promise<void> {
    if (auditFailures.has(err)) throw err; // the log itself failed: do not try it again
    await this.append(req, outcome, version, outcome === 'denied' ? 'warning' : 'info', `${err.code}: ${err.message}`);
  }

  private async append(req: GateRequest, outcome: AuditOutcome, version: number | undefined, severity: AuditSeverity, reason?: string): Promise<void> {
    try {
      await this.o.audit.append({
        tenant: req.principal.tenant,
        actor: req.principal.apiKeyId,
        operation: req.operation,
        ...(req.keyId !== undefined ? { keyId: req.keyId } : {}),
        ...(version !== undefined ? { version } : {}),
        ...(req.session ? { sessionId: toHex(req.session) } : {}),
        outcome,
        severity,
        ...(reason !== undefined ? { reason: auditReason(reason) } : {}),
      });
    } catch (e) {
      const failed = this.o.storageFailure?.();
      if (failed) throw failed; // the store latched failed: say that, not a mere audit failure
      const err = asTesseraError(e);
      this.o.logger.error({ op: req.operation, keyId: req.keyId, code: err.code }, 'audit entry could not be written; operation refused');
      const failure = new TesseraError(ErrorCode.Unavailable, `audit: the audit entry could not be written, so the ${req.operation} was not done (${err.message})`);
      auditFailures.add(failure);
      throw failure;
    }
  }
}

function policyOperation(op: AuditOperation): PolicyOperation {
  if (!(POLICY_OPERATIONS as readonly string[]).includes(op)) {
    throw new TesseraError(ErrorCode.BadState, `gate: ${op} is not an operation the policy decides`);
  }
  return op as PolicyOperation;
}
