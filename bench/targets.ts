/**
 * Issue 10's targets beside the measured figures, with a met / NOT MET column. A target is "met" only
 * when the figure meets it and no call of that row failed; a figure that was not measured says so.
 */
import type { ClusterFigures, LoadResult, SignFigures } from './cluster.js';
import { ECDSA_COMPUTE_ROW, ECDSA_COMPUTE_TARGET_MS } from './ecdsa-core.js';
import { fmtMs, fmtOps, type Section, type Stats } from './stats.js';

export interface TargetResult {
  readonly target: string;
  readonly required: string;
  readonly measured: string;
  readonly status: 'met' | 'NOT MET' | 'not measured';
  readonly detail?: string;
}

function judge(target: string, required: string, value: number | undefined, ok: (v: number) => boolean, show: (v: number) => string, failed: number, detail?: string): TargetResult {
  if (value === undefined || !Number.isFinite(value)) return { target, required, measured: '-', status: 'not measured', ...(detail ? { detail } : {}) };
  const measured = show(value) + (failed ? ` (${failed} calls FAILED)` : '');
  return { target, required, measured, status: ok(value) && failed === 0 ? 'met' : 'NOT MET', ...(detail ? { detail } : {}) };
}

/** The path the SDK takes by default: presigned when that row exists, else the two-round one. */
function defaultPath(signing: readonly SignFigures[], suite: string): SignFigures | undefined {
  const rows = signing.filter((f) => f.suite === suite && f.tn === '2-of-3' && f.backend === 'default');
  return rows.find((f) => f.path === 'presigned') ?? rows.find((f) => f.path === 'two-round');
}

/**
 * The compute figures of bench/core.ts "compute per 2-of-3 signature" (rows named by their path): the
 * ratio noble FROST / the fastest Tessera path per suite, when both rows are there.
 */
function computeRatio(core: readonly Section[], suite: string): { ratio?: number; detail?: string } {
  const rows: Stats[] = core.filter((s) => /compute per 2-of-3 signature/i.test(s.title)).flatMap((s) => s.rows);
  const ofSuite = rows.filter((r) => r.name.toLowerCase().startsWith(suite + ' ') || r.name.toLowerCase().includes(` ${suite} `));
  const noble = ofSuite.find((r) => /noble/i.test(r.name) && /frost/i.test(r.name));
  const ours = ofSuite.filter((r) => r !== noble && Number.isFinite(r.medianMs));
  if (!noble || ours.length === 0) return {};
  const best = ours.reduce((a, r) => (r.medianMs < a.medianMs ? r : a));
  return { ratio: noble.medianMs / best.medianMs, detail: `${fmtMs(noble.medianMs)} ms (noble's FROST) / ${fmtMs(best.medianMs)} ms (${best.name.replace(/^\S+ 2-of-3\s+/, '')}), medians` };
}

const failedOf = (...r: (LoadResult | undefined)[]) => r.reduce((s, x) => s + (x?.failed ?? 0), 0);

export function issueTargets(core: readonly Section[], f: ClusterFigures | undefined): TargetResult[] {
  const out: TargetResult[] = [];
  for (const [suite, times] of [
    ['ed25519', 50],
    ['secp256k1', 20],
  ] as const) {
    const c = computeRatio(core, suite);
    out.push(judge(`compute per 2-of-3 signature, ${suite}, vs noble's FROST`, `>= ${times}x less`, c.ratio, (v) => v >= times, (v) => `${v.toFixed(1)}x less`, 0, c.detail));
  }
  // Issue 12: DKLs23 ECDSA compute per 2-of-3 signature (bench/ecdsa-core.ts), median.
  for (const suite of ['ecdsa-secp256k1', 'ecdsa-p256']) {
    const row = core.flatMap((s) => s.rows).find((r) => r.name.startsWith(`${suite} 2-of-3  ${ECDSA_COMPUTE_ROW}`));
    out.push(judge(`issue 12: compute per 2-of-3 signature, ${suite} (rounds 1-2 + presign + online)`, `<= ${ECDSA_COMPUTE_TARGET_MS} ms`, row?.medianMs, (v) => v <= ECDSA_COMPUTE_TARGET_MS, (v) => `${fmtMs(v)} ms (median, n=${row!.n})`, 0));
  }
  for (const suite of ['ed25519', 'secp256k1']) {
    const p = f ? defaultPath(f.signing, suite) : undefined;
    const label = p ? ` (${p.path})` : '';
    out.push(judge(`${suite} 2-of-3 end to end, c=1 p50${label}`, '<= 5 ms', p?.c1?.stats.medianMs, (v) => v <= 5, (v) => `${fmtMs(v)} ms`, failedOf(p?.c1)));
    out.push(judge(`${suite} 2-of-3 end to end, c=16 throughput${label}`, '>= 300 sig/s', p?.c16?.stats.opsPerSec, (v) => v >= 300, (v) => `${fmtOps(v)} sig/s`, failedOf(p?.c16)));
  }
  // Issue 12: threshold ECDSA end to end (presigned when that row exists: one round online).
  for (const suite of ['ecdsa-secp256k1', 'ecdsa-p256']) {
    const p = f ? defaultPath(f.signing, suite) : undefined;
    const label = p ? ` (${p.path})` : '';
    out.push(judge(`issue 12: ${suite} 2-of-3 end to end, c=1 p50${label}`, '<= 10 ms', p?.c1?.stats.medianMs, (v) => v <= 10, (v) => `${fmtMs(v)} ms`, failedOf(p?.c1)));
    out.push(judge(`issue 12: ${suite} 2-of-3 end to end, c=16 throughput${label}`, '>= 100 sig/s', p?.c16?.stats.opsPerSec, (v) => v >= 100, (v) => `${fmtOps(v)} sig/s`, failedOf(p?.c16)));
  }
  const many = f?.signMany ?? [];
  if (many.length === 0) out.push(judge('signMany, 64 messages per request', '>= 1,000 sig/s', undefined, () => false, String, 0));
  for (const m of many) {
    out.push(judge(`signMany ${m.suite} 2-of-3, 64 messages per request, c=${m.result.concurrency}`, '>= 1,000 sig/s', m.result.stats.opsPerSec, (v) => v >= 1000, (v) => `${fmtOps(v)} sig/s`, m.result.failed));
  }
  out.push(judge('decapsulate hpke-x25519 2-of-3, p50', '<= 10 ms', f?.decapsulate?.stats.medianMs, (v) => v <= 10, (v) => `${fmtMs(v)} ms`, f?.decapsulate?.failed ?? 0));
  for (const suite of ['ed25519', 'secp256k1']) {
    const k = f?.keygen.find((x) => x.suite === suite);
    out.push(judge(`keygen ${suite} 2-of-3, p50`, '<= 100 ms', k?.stats.medianMs, (v) => v <= 100, (v) => `${fmtMs(v)} ms (n=${k!.stats.n})`, k?.failed ?? 0));
  }
  return out;
}

export function targetsSection(t: readonly TargetResult[], quick: boolean): Section {
  const met = t.filter((x) => x.status === 'met').length;
  return {
    title: `Issue 10 targets: ${met} of ${t.length} met${quick ? ' (--quick: rough figures, few samples)' : ''}`,
    note: 'met = the figure meets the target and no call of its row failed. All processes share this one machine.',
    rows: [],
    table: {
      header: ['target', 'required', 'measured', 'status', 'detail'],
      rows: t.map((x) => [x.target, x.required, x.measured, x.status, x.detail ?? '']),
      leftColumns: [3, 4],
    },
  };
}
