/**
 * The last hour of a few of this node's metrics, in memory, for the operator console's graphs
 * (GET /v1/admin/console/metrics-history; contract/console.ts METRIC_SERIES).
 *
 * One source of numbers: the node's own Prometheus registry (node/metrics.ts), read metric by metric
 * on a timer, so the graphs and a Prometheus scrape never disagree about what a metric means. The
 * operation counters become counts per interval (the difference from the previous sample). Only
 * closed-list totals are kept, never a label value: no key id, tenant or session id can be in here.
 *
 * Bounded: a ring of windowMs / intervalMs samples (360 by default, a few tens of kilobytes). Nothing
 * survives a restart (a new process starts a new hour). start() begins the timer (unref'd, so it never
 * keeps the process alive); stop() ends it and is called on shutdown (node/main.ts).
 */
import type { Registry } from 'prom-client';
import type { MetricsSample } from '../contract/console.js';

export const DEFAULT_SAMPLE_INTERVAL_MS = 10_000;
export const HISTORY_WINDOW_MS = 3_600_000;

export interface MetricsHistoryOptions {
  /** The node's registry (NodeMetrics.registry). */
  readonly registry: Registry;
  /** Time between samples; default 10 s. */
  readonly intervalMs?: number;
  /** How far back samples are kept; default one hour. */
  readonly windowMs?: number;
  readonly now?: () => number;
  /** A sample that could not be read (the registry threw): logged by the caller, the timer goes on. */
  readonly onError?: (e: Error) => void;
}

type Outcome = 'ok' | 'failed' | 'denied';

export class MetricsHistory {
  readonly intervalMs: number;
  readonly windowMs: number;
  private readonly capacity: number;
  private readonly ring: MetricsSample[] = [];
  private timer?: NodeJS.Timeout;
  /** The operation counters at the previous stored sample, to turn totals into counts per interval. */
  private previous: Record<Outcome, number> | undefined;
  private sampling?: Promise<void>;
  private readonly now: () => number;

  constructor(private readonly o: MetricsHistoryOptions) {
    const intervalMs = o.intervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS;
    const windowMs = o.windowMs ?? HISTORY_WINDOW_MS;
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 100 || intervalMs > windowMs) throw new RangeError('metrics history: intervalMs must be an integer from 100 to windowMs');
    if (!Number.isSafeInteger(windowMs) || windowMs > 24 * HISTORY_WINDOW_MS) throw new RangeError('metrics history: windowMs must be an integer of at most 24 hours');
    this.intervalMs = intervalMs;
    this.windowMs = windowMs;
    this.capacity = Math.ceil(windowMs / intervalMs);
    this.now = o.now ?? Date.now;
  }

  /** Take a first sample now, then one every intervalMs until stop(). Idempotent. */
  start(): void {
    if (this.timer) return;
    void this.sampleNow();
    this.timer = setInterval(() => void this.sampleNow(), this.intervalMs);
    this.timer.unref();
  }

  /** Stop sampling and wait for a sample in progress (shutdown). The samples taken stay readable. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sampling;
  }

  /** Read the registry once and store the sample (a sample already being read is not started twice). */
  sampleNow(): Promise<void> {
    this.sampling ??= (async () => {
      try {
        const { sample, totals } = await this.read(this.previous);
        this.previous = totals;
        this.ring.push(sample);
        if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
      } catch (e) {
        this.o.onError?.(e instanceof Error ? e : new Error(String(e)));
      } finally {
        this.sampling = undefined;
      }
    })();
    return this.sampling;
  }

  /**
   * The stored samples within the window, oldest first, plus one read now (not stored: its operation
   * counts are since the last stored sample, a partial interval).
   */
  async history(): Promise<{ intervalMs: number; windowMs: number; samples: MetricsSample[] }> {
    const cutoff = this.now() - this.windowMs;
    const samples = this.ring.filter((s) => s.time >= cutoff).map((s) => ({ ...s }));
    try {
      samples.push((await this.read(this.previous)).sample);
    } catch (e) {
      this.o.onError?.(e instanceof Error ? e : new Error(String(e)));
    }
    return { intervalMs: this.intervalMs, windowMs: this.windowMs, samples };
  }

  private async read(previous: Record<Outcome, number> | undefined): Promise<{ sample: MetricsSample; totals: Record<Outcome, number> }> {
    const totals: Record<Outcome, number> = { ok: 0, failed: 0, denied: 0 };
    for (const v of await this.values('tessera_operations_total')) {
      const outcome = v.labels.outcome;
      if (outcome === 'ok' || outcome === 'failed' || outcome === 'denied') totals[outcome] += v.value;
    }
    // Counters only grow within a process; a first sample counts everything since start.
    const delta = (k: Outcome) => Math.max(0, Math.round(totals[k] - (previous?.[k] ?? 0)));
    const connected = (await this.gauge('tessera_coordinator_connected')) === 1;
    const sample: MetricsSample = {
      time: this.now(),
      operationsOk: delta('ok'),
      operationsFailed: delta('failed'),
      operationsDenied: delta('denied'),
      sessionsInFlight: await this.gauge('tessera_channels_open'),
      nodesOnline: connected ? Math.min(255, await this.gauge('tessera_coordinator_nodes_online')) : 0,
      auditEntries: await this.gauge('tessera_audit_entries'),
      residentMemoryBytes: await this.gauge('process_resident_memory_bytes'),
    };
    return { sample, totals };
  }

  /** Every value of one metric (its collect callback runs), or none if the registry has no such metric. */
  private async values(name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
    const metric = this.o.registry.getSingleMetric(name);
    if (!metric) return [];
    const got = await metric.get();
    return got.values.map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
  }

  /** An unlabelled gauge as a non-negative integer (0 when absent or not a number). */
  private async gauge(name: string): Promise<number> {
    const v = (await this.values(name))[0]?.value;
    return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0;
  }
}
