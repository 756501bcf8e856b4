/**
 * The coordinator's Prometheus metrics (GET /metrics on its HTTP port, coordinator/server.ts), with
 * prom-client; the node's side is node/metrics.ts.
 *
 * - One Registry per coordinator object, never prom-client's global default registry (several
 *   coordinators in one test process keep their own numbers).
 * - Session durations are observed inline when a session ends; everything else is read from the
 *   coordinator's own counters (Coordinator.stats) only when Prometheus scrapes.
 * - Labels are closed lists only: a session's outcome ("completed" or its abort code, contract/relay.ts
 *   AbortCode) and a session's state. Never a session id or a node's anything else: the coordinator
 *   knows no keys or tenants, and its session ids stay out of the labels too.
 * - Read with the coordinator's metrics token only (config `metricsToken` or env
 *   TESSERA_COORDINATOR_METRICS_TOKEN): the coordinator has no API keys. Without one configured,
 *   /metrics refuses every request.
 *
 * Metric names (plus prom-client's default process_* and nodejs_* metrics):
 *   tessera_coordinator_connections                          open node connections (authenticated or not)
 *   tessera_coordinator_nodes_online                         authenticated nodes
 *   tessera_coordinator_sessions{state}                      live sessions: waiting (for joins) or started
 *   tessera_coordinator_session_duration_seconds{outcome}    from the first join to the end (histogram)
 *   tessera_coordinator_relayed_messages_total               node-to-node messages relayed
 *   tessera_coordinator_rejected_connections_total           connections that failed authentication
 *   tessera_coordinator_membership_epoch                     the epoch of the membership in use
 *   tessera_coordinator_membership_changes_total             certified membership changes adopted
 */
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { scrapedCounter } from '../runtime/metrics.js';
import type { AbortCode } from '../contract/relay.js';

/** What the scrape reads (Coordinator.stats, coordinator/server.ts). */
export interface CoordinatorMetricsSource {
  connections: number;
  online: readonly number[];
  sessions: number;
  started: number;
  relayed: number;
  rejectedConnections: number;
  membershipEpoch: number;
  membershipChanges: number;
}

/** Session latency buckets (seconds): a signing session takes milliseconds, a deadline tens of seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly durations: Histogram<'outcome'>;

  constructor(stats: () => CoordinatorMetricsSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // One stats() call per scrape feeds every metric below: the first gauge's collect runs first (registration order).
    let last: CoordinatorMetricsSource = { connections: 0, online: [], sessions: 0, started: 0, relayed: 0, rejectedConnections: 0, membershipEpoch: 0, membershipChanges: 0 };
    new Gauge({
      name: 'tessera_coordinator_connections',
      help: 'Open node connections (authenticated or not)',
      registers,
      collect() {
        last = stats();
        this.set(last.connections);
      },
    });
    new Gauge({
      name: 'tessera_coordinator_nodes_online',
      help: 'Authenticated nodes',
      registers,
      collect() {
        this.set(last.online.length);
      },
    });
    new Gauge({
      name: 'tessera_coordinator_sessions',
      help: 'Live sessions: waiting for joins, or started',
      labelNames: ['state'],
      registers,
      collect() {
        this.set({ state: 'waiting' }, last.sessions - last.started);
        this.set({ state: 'started' }, last.started);
      },
    });
    const total = (name: string, help: string, read: () => number) => scrapedCounter(registers, name, help, read);
    total('tessera_coordinator_relayed_messages_total', 'Node-to-node messages relayed', () => last.relayed);
    total('tessera_coordinator_rejected_connections_total', 'Connections that failed authentication', () => last.rejectedConnections);
    total('tessera_coordinator_membership_changes_total', 'Certified membership changes adopted (coordinator/membership-state.ts)', () => last.membershipChanges);
    new Gauge({
      name: 'tessera_coordinator_membership_epoch',
      help: 'The epoch of the cluster membership in use',
      registers,
      collect() {
        this.set(last.membershipEpoch);
      },
    });
    this.durations = new Histogram({
      name: 'tessera_coordinator_session_duration_seconds',
      help: 'Sessions from the first join to their end, by outcome (completed or the abort code)',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
  }

  /** A session ended (inline: one histogram observation). */
  sessionEnded(outcome: 'completed' | AbortCode, durationMs: number): void {
    this.durations.observe({ outcome }, Math.max(0, durationMs) / 1000);
  }

  /** The text exposition format (Content-Type: this.contentType). */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
