/**
 * A node's Prometheus metrics (GET /metrics, node/http/api.ts), with prom-client.
 *
 * - One Registry per NodeMetrics object, never prom-client's global default registry: several nodes
 *   in one process (tests) keep their own numbers.
 * - Hot paths stay cheap: the operation counters and the latency histogram are updated inline by the
 *   one place every operation passes (node/governance/gate.ts); everything else (pool levels, audit
 *   queue, connections, key counts) is read from its owner only when Prometheus scrapes (collect).
 * - Labels are closed lists only: operations (core/audit-verify.ts AUDIT_OPERATIONS), suites
 *   (core/suites.ts SUITE_IDS, else "none"), outcomes, states and modes. Never a key id, tenant, API
 *   key id or session id: a scrape says how much and how fast, not about whom.
 *
 * Metric names (all prefixed tessera_; plus prom-client's default process_* and nodejs_* metrics):
 *   operations_total{operation,mode,outcome}              operations by final outcome (ok, failed, denied);
 *                                                          a sign-batch counts each of its messages
 *   operation_duration_seconds{operation,mode,suite,outcome} latency histogram, one per request
 *   operations_in_flight{operation,mode}                  operations that entered the gate and have not ended
 *   policy_denials_total{operation}                       refusals by the policy engine (POLICY_DENIED)
 *   presign_pools, presign_entries{state}                  presignature pools and their entries (ready, issued)
 *   presign_entries_{made,used,dropped}_total             presignature entries since start
 *   audit_queue_depth                                     audit appends waiting for their group write
 *   audit_entries                                         the audit log's head seq (entries written)
 *   audit_last_checkpoint_age_seconds                     since the newest signed checkpoint (NaN: none yet)
 *   coordinator_connected                                 1 while authenticated to the coordinator
 *   coordinator_nodes_online                              nodes the coordinator reports online
 *   channels_open                                         sessions joined at the coordinator and not ended
 *                                                         (each has its end-to-end channel, node/sessions/)
 *   key_versions{state}                                   stored key versions by state (active, retired, ...)
 *   storage_failed                                        1 once the store latched failed (node restarts to clear)
 *
 * mode (operationMode): "session" for an operation on a coordinator session (keygen, two-round sign,
 * refresh, rotate, export, import, lifecycle changes, decline), "local" for one this node answers
 * alone (a presigned signature share, a sign-batch, a partial decapsulation, verify, administration).
 */
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AUDIT_OUTCOMES, type AuditOperation } from '../core/audit-verify.js';
import { KEY_STATES } from '../core/lifecycle.js';
import { isSuiteId } from '../core/suites.js';
import { scrapedCounter } from '../runtime/metrics.js';

/** What the collect callbacks read at scrape time; each part is optional (a missing part exports nothing). */
export interface NodeMetricsSources {
  /** PresignPools.stats(). */
  readonly presign?: () => { pools: number; ready: number; issued: number; made: number; used: number; dropped: number };
  /** The audit log's queue, head and newest checkpoint time (ms since the epoch; 0: none yet). */
  readonly audit?: () => { queueDepth: number; headSeq: number; lastCheckpointTime: number };
  /** The coordinator link: connected, and the nodes it reports online. */
  readonly link?: () => { connected: boolean; online: number; sessions?: number };
  /** Every stored key version's state (ShareStore.listAll). */
  readonly keyStates?: () => Promise<readonly string[]>;
  /** The store's failed-write latch (ShareStore.failure). */
  readonly storageFailed?: () => boolean;
  /** Milliseconds since the epoch. Default Date.now. */
  readonly now?: () => number;
}

/** A final outcome of an operation (the gate's last audit entry). */
export type OperationOutcome = Exclude<(typeof AUDIT_OUTCOMES)[number], 'started'>;
export type OperationMode = 'session' | 'local';

/** The mode label of a gate request (node/governance/gate.ts GateRequest): see the file comment. */
export function operationMode(req: { readonly session?: Uint8Array; readonly local?: boolean }): OperationMode {
  return req.session !== undefined && req.local !== true ? 'session' : 'local';
}

/** Latency buckets (seconds): from a local one-shot operation (ms) to a slow keygen (tens of seconds). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The suite an operation uses, from what the gate's prepare step returned (node/service.ts): its
 * `suite` (an id or a suite object), its key record's, its presign scope's or its session parameters'.
 * Only a known suite id is ever a label value; anything else is "none" (e.g. refused before prepare).
 */
export function suiteLabel(prepared: unknown): string {
  if (typeof prepared !== 'object' || prepared === null) return 'none';
  const p = prepared as { suite?: unknown; rec?: { suite?: unknown }; scope?: { suite?: unknown }; params?: { suite?: unknown } };
  for (const s of [p.suite, p.rec?.suite, p.scope?.suite, p.params?.suite]) {
    const id = typeof s === 'object' && s !== null ? (s as { id?: unknown }).id : s;
    if (isSuiteId(id)) return id;
  }
  return 'none';
}

export class NodeMetrics {
  /** This node's registry (GET /metrics serialises it). */
  readonly registry = new Registry();
  private readonly operations: Counter<'operation' | 'mode' | 'outcome'>;
  private readonly durations: Histogram<'operation' | 'mode' | 'suite' | 'outcome'>;
  private readonly inFlight: Gauge<'operation' | 'mode'>;
  private readonly denials: Counter<'operation'>;

  constructor(sources: NodeMetricsSources = {}) {
    const registers = [this.registry];
    const now = sources.now ?? Date.now;
    collectDefaultMetrics({ register: this.registry });
    this.operations = new Counter({
      name: 'tessera_operations_total',
      help: 'Operations by final outcome (ok, failed, denied); a sign-batch counts each message',
      labelNames: ['operation', 'mode', 'outcome'],
      registers,
    });
    this.durations = new Histogram({
      name: 'tessera_operation_duration_seconds',
      help: 'Time from entering the node (policy, checks, audit) to the final outcome, per request',
      labelNames: ['operation', 'mode', 'suite', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.inFlight = new Gauge({ name: 'tessera_operations_in_flight', help: 'Operations in progress on this node', labelNames: ['operation', 'mode'], registers });
    this.denials = new Counter({ name: 'tessera_policy_denials_total', help: 'Operations the policy engine refused (POLICY_DENIED)', labelNames: ['operation'], registers });

    const presign = sources.presign;
    if (presign) {
      // One stats() call per scrape feeds all five metrics: the first gauge's collect runs first
      // (registration order). Nothing is read before the first scrape.
      let last = { pools: 0, ready: 0, issued: 0, made: 0, used: 0, dropped: 0 };
      new Gauge({
        name: 'tessera_presign_pools',
        help: 'Presignature pools in memory (one per key version asked for presignatures)',
        registers,
        collect() {
          last = presign();
          this.set(last.pools);
        },
      });
      new Gauge({
        name: 'tessera_presign_entries',
        help: 'Presignature entries in memory: ready (made, not handed out) and issued (handed out, not used)',
        labelNames: ['state'],
        registers,
        collect() {
          this.set({ state: 'ready' }, last.ready);
          this.set({ state: 'issued' }, last.issued);
        },
      });
      const total = (name: string, help: string, read: () => number) => scrapedCounter(registers, name, help, read);
      total('tessera_presign_entries_made_total', 'Presignature entries made since start', () => last.made);
      total('tessera_presign_entries_used_total', 'Presignature entries used to sign since start', () => last.used);
      total('tessera_presign_entries_dropped_total', 'Presignature entries dropped unused (invalidation, eviction) since start', () => last.dropped);
    }

    const audit = sources.audit;
    if (audit) {
      new Gauge({
        name: 'tessera_audit_queue_depth',
        help: 'Audit appends waiting for their group write',
        registers,
        collect() {
          this.set(audit().queueDepth);
        },
      });
      new Gauge({
        name: 'tessera_audit_entries',
        help: "The audit log's head seq (entries written)",
        registers,
        collect() {
          this.set(audit().headSeq);
        },
      });
      new Gauge({
        name: 'tessera_audit_last_checkpoint_age_seconds',
        help: 'Seconds since the newest signed audit checkpoint (NaN: none yet)',
        registers,
        collect() {
          const t = audit().lastCheckpointTime;
          this.set(t > 0 ? Math.max(0, (now() - t) / 1000) : NaN);
        },
      });
    }

    const link = sources.link;
    if (link) {
      new Gauge({
        name: 'tessera_coordinator_connected',
        help: '1 while the node is authenticated to the coordinator',
        registers,
        collect() {
          this.set(link().connected ? 1 : 0);
        },
      });
      new Gauge({
        name: 'tessera_coordinator_nodes_online',
        help: 'Nodes the coordinator reports online (this one included)',
        registers,
        collect() {
          this.set(link().online);
        },
      });
      new Gauge({
        name: 'tessera_channels_open',
        help: 'Sessions this node joined at the coordinator that have not ended (one end-to-end channel each)',
        registers,
        collect() {
          this.set(link().sessions ?? 0);
        },
      });
    }

    const keyStates = sources.keyStates;
    if (keyStates) {
      new Gauge({
        name: 'tessera_key_versions',
        help: 'Stored key versions by state',
        labelNames: ['state'],
        registers,
        async collect() {
          const counts = new Map<string, number>(KEY_STATES.map((s) => [s, 0]));
          let states: readonly string[];
          try {
            states = await keyStates();
          } catch {
            // A failed or closed store: no numbers rather than a failed scrape (storage_failed says why).
            this.reset();
            return;
          }
          for (const s of states) if (counts.has(s)) counts.set(s, counts.get(s)! + 1);
          for (const [state, n] of counts) this.set({ state }, n);
        },
      });
    }

    const storageFailed = sources.storageFailed;
    if (storageFailed) {
      new Gauge({
        name: 'tessera_storage_failed',
        help: '1 once a storage write failed (every operation is refused until the node restarts)',
        registers,
        collect() {
          this.set(storageFailed() ? 1 : 0);
        },
      });
    }
  }

  /** An operation entered the gate: returns its start time, for operationEnded. */
  operationStarted(operation: AuditOperation, mode: OperationMode): number {
    this.inFlight.inc({ operation, mode });
    return performance.now();
  }

  /**
   * An operation ended (called exactly once per operationStarted): `items` operations of the kind
   * (a sign-batch's messages), `prepared` what its prepare step returned (for the suite).
   */
  operationEnded(o: {
    readonly operation: AuditOperation;
    readonly mode: OperationMode;
    readonly startedAt: number;
    readonly outcome: OperationOutcome;
    readonly items: number;
    readonly prepared?: unknown;
    /** The policy engine refused it (not an admin-role or state refusal). */
    readonly policyDenied?: boolean;
  }): void {
    const { operation, mode } = o;
    this.inFlight.dec({ operation, mode });
    this.operations.inc({ operation, mode, outcome: o.outcome }, o.items);
    this.durations.observe({ operation, mode, suite: suiteLabel(o.prepared), outcome: o.outcome }, (performance.now() - o.startedAt) / 1000);
    if (o.policyDenied) this.denials.inc({ operation }, o.items);
  }

  /** The text exposition format (Content-Type: this.contentType). */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
