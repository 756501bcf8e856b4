/**
 * Timing and reporting for `npm run bench`: sample collection with performance.now(), warm-up,
 * order statistics (median, p99), ops/s, and plain-text tables.
 *
 * Figures are per call of the measured function, in milliseconds. p99 is the nearest-rank
 * percentile, so with fewer than 100 samples it is the largest or one of the largest samples:
 * every table shows n so that a reader can tell.
 */
import { performance } from 'node:perf_hooks';

export interface Stats {
  readonly name: string;
  /** Number of samples. */
  readonly n: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Sequential: 1000 / mean. Under concurrency: completed operations / wall-clock seconds. */
  readonly opsPerSec: number;
  /** Free-form remark shown in the table (e.g. the concurrency, or an error count). */
  readonly note?: string;
}

export interface Section {
  readonly title: string;
  /** What the figures mean (one or two lines, printed under the title). */
  readonly note?: string;
  readonly rows: Stats[];
  /** A table of other columns (summaries, CPU per operation, targets), printed after `rows` if both are given. */
  readonly table?: TextTable;
}

/** A free-form table: the first column is left-aligned, the others right-aligned unless `leftColumns` says otherwise. */
export interface TextTable {
  readonly header: string[];
  readonly rows: string[][];
  /** Indexes of further left-aligned columns. */
  readonly leftColumns?: number[];
}

/** Nearest-rank percentile of ascending-sorted samples, p in (0, 1]. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

/** Summarise samples (ms). `opsPerSec` overrides the sequential 1000 / mean (for concurrent runs). */
export function summarize(name: string, samples: readonly number[], extra: { opsPerSec?: number; note?: string } = {}): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length);
  return {
    name,
    n: sorted.length,
    medianMs: median(sorted),
    p99Ms: percentile(sorted, 0.99),
    meanMs: sorted.length ? mean : NaN,
    minMs: sorted.length ? sorted[0]! : NaN,
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    opsPerSec: extra.opsPerSec ?? (sorted.length ? 1000 / mean : NaN),
    ...(extra.note !== undefined ? { note: extra.note } : {}),
  };
}

/**
 * How many times to run a measured function: `warmup` untimed calls, then timed calls until both
 * `minIterations` are done and `targetMs` of timed work has passed, never more than `maxIterations`.
 */
export interface Budget {
  warmup: number;
  minIterations: number;
  maxIterations: number;
  targetMs: number;
}

function enough(b: Budget, count: number, spentMs: number): boolean {
  return count >= b.maxIterations || (count >= b.minIterations && spentMs >= b.targetMs);
}

/** Time a synchronous function. */
export function measure(name: string, fn: () => unknown, b: Budget): Stats {
  for (let i = 0; i < b.warmup; i++) fn();
  const samples: number[] = [];
  let spent = 0;
  while (!enough(b, samples.length, spent)) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    samples.push(dt);
    spent += dt;
  }
  return summarize(name, samples);
}

/** Time an asynchronous function, one call at a time. */
export async function measureAsync(name: string, fn: () => Promise<unknown>, b: Budget): Promise<Stats> {
  for (let i = 0; i < b.warmup; i++) await fn();
  const samples: number[] = [];
  let spent = 0;
  while (!enough(b, samples.length, spent)) {
    const t0 = performance.now();
    await fn();
    const dt = performance.now() - t0;
    samples.push(dt);
    spent += dt;
  }
  return summarize(name, samples);
}

/**
 * Sample sink for measurements taken inside a larger procedure (one protocol run yields one sample
 * per party per round): `time(label, fn)` runs fn, records its duration under label, returns its result.
 */
export class Recorder {
  private readonly samples = new Map<string, number[]>();
  private readonly order: string[] = [];
  /** While false, time() runs fn without recording (warm-up runs). */
  recording = true;

  time<T>(label: string, fn: () => T): T {
    const t0 = performance.now();
    const r = fn();
    this.add(label, performance.now() - t0);
    return r;
  }

  async timeAsync<T>(label: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const r = await fn();
    this.add(label, performance.now() - t0);
    return r;
  }

  add(label: string, ms: number): void {
    if (!this.recording) return;
    let s = this.samples.get(label);
    if (!s) {
      s = [];
      this.samples.set(label, s);
      this.order.push(label);
    }
    s.push(ms);
  }

  /** Total recorded time under labels starting with `prefix`. */
  spent(prefix = ''): number {
    let t = 0;
    for (const [k, v] of this.samples) if (k.startsWith(prefix)) for (const x of v) t += x;
    return t;
  }

  count(label: string): number {
    return this.samples.get(label)?.length ?? 0;
  }

  /** One Stats row per label, in first-recorded order. */
  stats(rename: (label: string) => string = (l) => l): Stats[] {
    return this.order.map((l) => summarize(rename(l), this.samples.get(l)!));
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1) return ms.toFixed(3);
  if (ms < 100) return ms.toFixed(2);
  return ms.toFixed(1);
}

export function fmtOps(ops: number): string {
  if (!Number.isFinite(ops)) return '-';
  if (ops < 10) return ops.toFixed(2);
  if (ops < 1000) return ops.toFixed(1);
  return Math.round(ops).toString();
}

/** Aligned lines of a table: header, rule, body. `left(c)` says which columns are left-aligned. */
function alignTable(header: string[], body: string[][], left: (c: number) => boolean): string[] {
  const rows = [header, ...body];
  const width = header.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) =>
    header
      .map((_, c) => (left(c) ? (r[c] ?? '').padEnd(width[c]!) : (r[c] ?? '').padStart(width[c]!)))
      .join('  ')
      .trimEnd();
  const rule = '-'.repeat(width.reduce((a, w) => a + w + 2, -2));
  return [line(header), rule, ...body.map(line)];
}

/** A plain aligned table: operation | n | median ms | p99 ms | ops/s | note (and then `table`, if any). */
export function formatSection(s: Section): string {
  const out = [s.title, ...(s.note ? s.note.split('\n').map((l) => `  ${l}`) : [])];
  if (s.rows.length || !s.table) {
    const header = ['operation', 'n', 'median ms', 'p99 ms', 'ops/s', ''];
    const body = s.rows.map((r) => [r.name, String(r.n), fmtMs(r.medianMs), fmtMs(r.p99Ms), fmtOps(r.opsPerSec), r.note ?? '']);
    out.push(...alignTable(header, body, (c) => c === 0 || c === header.length - 1));
  }
  if (s.table) {
    const t = s.table;
    if (s.rows.length) out.push('');
    out.push(...alignTable(t.header, t.rows, (c) => c === 0 || (t.leftColumns ?? []).includes(c)));
  }
  return out.join('\n');
}
