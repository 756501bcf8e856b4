/**
 * The operator console's two in-memory sources, in process (the console's end-to-end test is
 * test/integration/console.test.ts):
 * - node/metrics-history.ts: samples read from a real NodeMetrics registry, operation totals turned into
 *   counts per interval, the ring bounded to its window, stop() ends the timer, bad settings refused;
 * - node/sessions-in-flight.ts: a session is listed while it runs and gone however it ends, through
 *   instrument() on an engine's run.
 */
import { describe, expect, it } from 'vitest';
import { METRIC_SERIES } from '../../contract/console.js';
import { MetricsHistory } from '../../node/metrics-history.js';
import { NodeMetrics } from '../../node/metrics.js';
import { SessionsInFlight } from '../../node/sessions-in-flight.js';
import type { SessionParams } from '../../core/session.js';

describe('MetricsHistory', () => {
  it('samples the registry, counts operations per interval and keeps only its window', async () => {
    let t = 1_000_000;
    const metrics = new NodeMetrics({
      link: () => ({ connected: true, online: 3, sessions: 2 }),
      audit: () => ({ queueDepth: 0, headSeq: 41, lastCheckpointTime: 0 }),
      now: () => t,
    });
    const history = new MetricsHistory({ registry: metrics.registry, intervalMs: 1000, windowMs: 3000, now: () => t });
    const ended = (outcome: 'ok' | 'failed' | 'denied', items = 1) =>
      metrics.operationEnded({ operation: 'sign', mode: 'session', startedAt: metrics.operationStarted('sign', 'session'), outcome, items });
    ended('ok', 3);
    ended('failed');
    await history.sampleNow();
    ended('ok');
    ended('denied', 2);
    t += 1000;
    await history.sampleNow();
    const h = await history.history();
    expect(h.intervalMs).toBe(1000);
    expect(h.windowMs).toBe(3000);
    expect(h.samples.map((s) => [s.operationsOk, s.operationsFailed, s.operationsDenied])).toEqual([
      [3, 1, 0],
      [1, 0, 2],
      [0, 0, 0], // the one read now: nothing since the last stored sample
    ]);
    const last = h.samples[1]!;
    expect(last).toMatchObject({ time: t, sessionsInFlight: 2, nodesOnline: 3, auditEntries: 41 });
    expect(last.residentMemoryBytes).toBeGreaterThan(0);
    expect(Object.keys(last).sort()).toEqual(['time', ...METRIC_SERIES].sort());

    // Bounded: 3 s / 1 s = 3 stored samples at most, and none older than the window.
    for (let i = 0; i < 10; i++) {
      t += 1000;
      await history.sampleNow();
    }
    const later = await history.history();
    expect(later.samples).toHaveLength(4); // 3 stored + the one read now
    expect(later.samples[0]!.time).toBe(t - 2000);
  });

  it('start() samples on a timer that stop() ends; settings out of range are refused', async () => {
    const metrics = new NodeMetrics();
    const history = new MetricsHistory({ registry: metrics.registry, intervalMs: 100 });
    history.start();
    // The first sample at start, the next from the timer (polled for: no assumption on how late it fires).
    const stored = async () => (await history.history()).samples.length - 1;
    for (let i = 0; i < 200 && (await stored()) < 2; i++) await new Promise((r) => setTimeout(r, 50));
    await history.stop();
    const n = (await history.history()).samples.length;
    expect(n).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 250));
    expect((await history.history()).samples.length).toBe(n);
    expect(() => new MetricsHistory({ registry: metrics.registry, intervalMs: 10 })).toThrow(RangeError);
    expect(() => new MetricsHistory({ registry: metrics.registry, intervalMs: 1.5 })).toThrow(RangeError);
    expect(() => new MetricsHistory({ registry: metrics.registry, intervalMs: 1000, windowMs: 500 })).toThrow(RangeError);
  });
});

describe('SessionsInFlight', () => {
  const params = (keyId: string): SessionParams => ({
    operation: 'sign',
    tenant: 'acme',
    keyId,
    version: 2,
    suite: 'ed25519',
    threshold: 2,
    parties: 3,
    players: [3, 1],
    payloadDigest: new Uint8Array(32),
  });

  it('lists a session while it runs, oldest first, and drops it however it ends', async () => {
    let t = 10;
    const inFlight = new SessionsInFlight(() => t++);
    const engine = { run: async <T>(_spec: { session: Uint8Array; params: SessionParams }, body: () => Promise<T>) => body() };
    inFlight.instrument(engine as never);
    let release!: () => void;
    let fail!: (e: Error) => void;
    const a = engine.run({ session: new Uint8Array(16).fill(0xaa), params: params('k1') }, () => new Promise<string>((r) => (release = () => r('done'))));
    const b = engine.run({ session: new Uint8Array(16).fill(0xbb), params: params('k2') }, () => new Promise<string>((_, j) => (fail = j)));
    expect(inFlight.list()).toEqual([
      { sessionId: 'aa'.repeat(16), operation: 'sign', tenant: 'acme', keyId: 'k1', version: 2, suite: 'ed25519', players: [1, 3], startedAt: 10 },
      { sessionId: 'bb'.repeat(16), operation: 'sign', tenant: 'acme', keyId: 'k2', version: 2, suite: 'ed25519', players: [1, 3], startedAt: 11 },
    ]);
    release();
    expect(await a).toBe('done');
    expect(inFlight.list().map((s) => s.keyId)).toEqual(['k2']);
    fail(new Error('aborted'));
    await expect(b).rejects.toThrow('aborted');
    expect(inFlight.list()).toEqual([]);
    expect(inFlight.size).toBe(0);
  });
});
