/**
 * The operator console (issue 14 item 5): the script of GET /console (node/http/console.ts), bundled by
 * scripts/build-console.mjs into dist/console/console.js. Read-only: it only ever sends GET requests,
 * to this node's own origin (the page's Content-Security-Policy allows nothing else).
 *
 * The admin API key the operator pastes lives in one variable of this module and nowhere else: the
 * input field is cleared as soon as it is read, and nothing is written to localStorage,
 * sessionStorage, cookies, the URL or any DOM attribute (test/integration/console.test.ts checks each).
 * "Forget key" drops it and clears every section. A tenant key is refused with a message saying so.
 *
 * Sections: cluster health (this node, the coordinator link, the members online, versions, group
 * backends), every tenant's keys with versions, states and rotation status (admin acting-tenant header),
 * the sessions in flight, metrics graphs over the last hour (inline SVG drawn here) and the audit log
 * as a timeline, verified here with core/audit-verify.ts (the same verifier as the SDK and CLI; its
 * ML-DSA-65 checks use @noble/post-quantum in the browser: identity-browser.ts). Each entry that fails
 * verification, or that a failing checkpoint covers, is marked red.
 *
 * Everything shown is set as text (textContent), never parsed as HTML: audit reasons and ids cannot inject.
 */
import { verifyAuditLog, type AuditVerification } from '../../core/audit-verify.js';
import { fromHex } from '../../core/bytes.js';
// Types only from the node-side contract (erased from the bundle); values from the import-free module.
import type { AuditLogResponse, KeyInfo, MembershipResponse, NodeInfo, TenantListResponse } from '../../contract/http.js';
import type { ConsoleSessionsResponse, ConsoleStatusResponse, MetricsHistoryResponse, MetricsSample } from '../../contract/console.js';
import { ACT_AS_TENANT_HEADER_FOR_CONSOLE as ACT_AS_TENANT_HEADER, CONSOLE_PATHS } from '../../contract/console-paths.js';

/** The pasted admin API key: here only. */
let apiKey: string | undefined;
/** Bumped by every load and by forget: answers of an older load are dropped. */
let generation = 0;
let liveTimer: ReturnType<typeof setInterval> | undefined;
/** The sessions, metrics and health refresh on their own this often (keys and audit on Refresh only: every audit export is itself audited). */
const LIVE_REFRESH_MS = 10_000;
/** The timeline shows at most this many of the newest entries (every entry is verified; failing ones are always shown). */
const TIMELINE_LIMIT = 1000;

const $ = <T extends HTMLElement>(selector: string): T => {
  const found = document.querySelector<T>(selector);
  if (!found) throw new Error(`console: ${selector} missing from the page`);
  return found;
};

type Child = Node | string | number | undefined | null | false;
function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  for (const c of children) if (c !== undefined && c !== null && c !== false) e.append(typeof c === 'number' ? String(c) : c);
  return e;
}
function badge(text: string, kind: 'ok' | 'bad' | 'warn' | 'muted'): HTMLElement {
  return el('span', `badge ${kind}`, text);
}
function table(headers: string[], rows: Child[][], className?: string): HTMLTableElement {
  const t = el('table', className);
  t.append(el('thead', undefined, el('tr', undefined, ...headers.map((h) => el('th', undefined, h)))));
  const body = el('tbody');
  for (const r of rows) body.append(el('tr', undefined, ...r.map((c) => el('td', undefined, c))));
  t.append(body);
  return t;
}
function body(section: string): HTMLElement {
  return $(`#${section} .body`);
}
function fill(section: string, ...children: Child[]): void {
  body(section).replaceChildren(...(children.filter((c) => c !== undefined && c !== null && c !== false) as (Node | string)[]));
}
const time = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 19);

function message(text: string, kind: 'error' | 'info' = 'info'): void {
  const m = $('#message');
  m.textContent = text;
  m.className = text ? kind : '';
}

/** A failed call: the node's error code and message (never the key), with the HTTP status. */
class CallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(path: string, tenant?: string): Promise<T> {
  const key = apiKey;
  if (key === undefined) throw new CallError(0, 'NO_KEY', 'no API key');
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, accept: 'application/json' };
  if (tenant !== undefined) headers[ACT_AS_TENANT_HEADER] = tenant;
  let r: Response;
  try {
    r = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer', redirect: 'error' });
  } catch {
    throw new CallError(0, 'UNREACHABLE', 'the node did not answer');
  }
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CallError(r.status, 'BAD_ANSWER', `the node answered ${r.status} without JSON`);
  }
  if (!r.ok) {
    const e = json as { code?: unknown; message?: unknown };
    throw new CallError(r.status, typeof e.code === 'string' ? e.code : 'ERROR', typeof e.message === 'string' ? e.message : `HTTP ${r.status}`);
  }
  return json as T;
}

function failure(e: unknown): HTMLElement {
  const text = e instanceof CallError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
  return el('p', 'error-text', text);
}

// ---------------------------------------------------------------------------------------------
// Key handling

function forget(text = 'Key forgotten: nothing is kept by this page.'): void {
  apiKey = undefined;
  generation++;
  if (liveTimer !== undefined) clearInterval(liveTimer);
  liveTimer = undefined;
  for (const s of ['health', 'keys', 'sessions', 'metrics', 'audit']) fill(s);
  $('#node-name').textContent = '';
  $<HTMLButtonElement>('#refresh').disabled = true;
  $<HTMLButtonElement>('#forget').disabled = true;
  message(text);
}

async function connect(): Promise<void> {
  const input = $<HTMLInputElement>('#api-key');
  const pasted = input.value.trim();
  // The key is read once and the field emptied: from here on it is only in `apiKey`.
  input.value = '';
  if (!/^[\x21-\x7e]{8,256}$/.test(pasted)) {
    message('Paste an API key first (8 to 256 printable characters, no spaces).', 'error');
    return;
  }
  forget('');
  apiKey = pasted;
  const mine = generation;
  message('Checking the key...');
  try {
    await call<ConsoleStatusResponse>(CONSOLE_PATHS.status);
  } catch (e) {
    if (mine !== generation) return;
    if (e instanceof CallError && e.status === 403) return forget('This is a tenant API key: the console needs an admin API key of this node. The key was not kept.');
    if (e instanceof CallError && e.status === 401) return forget('This node does not know that API key. The key was not kept.');
    return forget(`The node refused the console: ${e instanceof Error ? e.message : String(e)}. The key was not kept.`);
  }
  $<HTMLButtonElement>('#refresh').disabled = false;
  $<HTMLButtonElement>('#forget').disabled = false;
  await loadAll(mine);
  liveTimer = setInterval(() => void loadLive(generation), LIVE_REFRESH_MS);
}

async function loadAll(mine: number): Promise<void> {
  message('Loading...');
  await Promise.all([loadHealth(mine), loadKeys(mine), loadSessions(mine), loadMetrics(mine), loadAudit(mine)]);
  if (mine === generation) message(`Loaded at ${time(Date.now())}. Sessions, metrics and health refresh every ${LIVE_REFRESH_MS / 1000} s; keys and the audit log on Refresh.`);
}

async function loadLive(mine: number): Promise<void> {
  if (mine !== generation || apiKey === undefined) return;
  await Promise.all([loadHealth(mine), loadSessions(mine), loadMetrics(mine)]);
}

// ---------------------------------------------------------------------------------------------
// Cluster health

async function loadHealth(mine: number): Promise<void> {
  let status: ConsoleStatusResponse, info: NodeInfo, membership: MembershipResponse | undefined;
  try {
    [status, info, membership] = await Promise.all([
      call<ConsoleStatusResponse>(CONSOLE_PATHS.status),
      call<NodeInfo>('/v1/node'),
      call<MembershipResponse>('/v1/admin/membership').catch(() => undefined),
    ]);
  } catch (e) {
    if (mine === generation) fill('health', failure(e));
    return;
  }
  if (mine !== generation) return;
  $('#node-name').textContent = `— node ${info.index}`;
  const members = membership ? membership.members.map((m) => m.index) : Array.from({ length: info.parties }, (_, i) => i + 1);
  const online = new Set(info.online);
  const nodes = el('div', 'nodes');
  for (const m of members) {
    const up = online.has(m);
    const n = el('span', `node ${up ? 'online' : 'offline'}`, `node ${m}${m === info.index ? ' (this)' : ''}: ${up ? 'online' : 'offline'}`);
    n.dataset.node = String(m);
    nodes.append(n);
  }
  const upCount = members.filter((m) => online.has(m)).length;
  const facts = el('dl', 'facts');
  const fact = (k: string, v: Child) => facts.append(el('dt', undefined, k), el('dd', undefined, v));
  fact('Coordinator', info.ready ? badge('connected', 'ok') : badge('not connected', 'bad'));
  fact('Nodes online', `${upCount} of ${members.length}`);
  if (membership) fact('Membership epoch', `${membership.epoch}${membership.committed ? '' : ' (from the config file)'}`);
  fact('Tessera version', `${status.tesseraVersion} (this node)`);
  fact('Node.js', status.nodeVersion);
  fact('Up since', `${time(status.startedAt)} (${Math.round((status.now - status.startedAt) / 1000)} s)`);
  const backends = table(
    ['Group', 'Backend'],
    Object.entries(info.groupBackends).map(([g, b]) => [g, el('code', undefined, b)]),
    'backends',
  );
  fill('health', facts, nodes, el('h3', undefined, 'Group backends'), backends);
}

// ---------------------------------------------------------------------------------------------
// Keys

function rotationCell(k: KeyInfo): Child {
  const r = k.rotation;
  if (!r) return badge('no period', 'muted');
  const kind = r.status === 'ok' ? 'ok' : r.status === 'none' ? 'muted' : r.status === 'warning' || r.status === 'due' ? 'warn' : 'bad';
  const days = (r.periodMs / 86_400_000).toFixed(r.periodMs % 86_400_000 === 0 ? 0 : 2);
  return el(
    'span',
    undefined,
    badge(r.status, kind),
    ` every ${days} d`,
    r.dueAt !== undefined ? `, due ${time(r.dueAt)}` : '',
    r.status === 'overdue' && r.lastError ? el('span', 'error-text', ` (${r.attempts ?? 0} attempts: ${r.lastError})`) : '',
  );
}

async function loadKeys(mine: number): Promise<void> {
  let tenants: string[];
  try {
    tenants = (await call<TenantListResponse>('/v1/admin/tenants')).tenants.map((t) => t.name);
  } catch (e) {
    if (mine === generation) fill('keys', failure(e));
    return;
  }
  const perTenant = await Promise.all(
    tenants.map(async (tenant) => {
      try {
        return { tenant, keys: (await call<{ keys: KeyInfo[] }>('/v1/keys', tenant)).keys };
      } catch (e) {
        return { tenant, error: e };
      }
    }),
  );
  if (mine !== generation) return;
  const rows: Child[][] = [];
  const errors: HTMLElement[] = [];
  let count = 0;
  for (const t of perTenant) {
    if ('error' in t) {
      errors.push(failure(new Error(`tenant ${t.tenant}: ${t.error instanceof Error ? t.error.message : String(t.error)}`)));
      continue;
    }
    for (const k of t.keys) {
      count++;
      const stateKind = k.state === 'active' ? 'ok' : k.state === 'destroyed' ? 'bad' : 'muted';
      rows.push([t.tenant, el('code', undefined, k.keyId), k.version, k.suite, badge(k.state, stateKind), `${k.threshold} of ${k.parties}`, k.epoch, rotationCell(k), time(k.createdAt)]);
    }
  }
  const keyIds = new Set(perTenant.flatMap((t) => ('keys' in t && t.keys ? t.keys.map((k) => `${t.tenant}/${k.keyId}`) : [])));
  fill(
    'keys',
    el('p', undefined, `${keyIds.size} keys, ${count} versions, ${tenants.length} tenants.`),
    rows.length ? table(['Tenant', 'Key', 'Version', 'Suite', 'State', 'Threshold', 'Epoch', 'Rotation', 'Created'], rows, 'key-table') : el('p', 'empty', 'No keys yet.'),
    ...errors,
  );
}

// ---------------------------------------------------------------------------------------------
// Sessions in flight

async function loadSessions(mine: number): Promise<void> {
  let r: ConsoleSessionsResponse;
  try {
    r = await call<ConsoleSessionsResponse>(CONSOLE_PATHS.sessions);
  } catch (e) {
    if (mine === generation) fill('sessions', failure(e));
    return;
  }
  if (mine !== generation) return;
  if (r.sessions.length === 0) return fill('sessions', el('p', 'empty', `No session in flight at ${clock(r.now)}.`));
  fill(
    'sessions',
    el('p', undefined, `${r.sessions.length} in flight at ${clock(r.now)}.`),
    table(
      ['Session', 'Operation', 'Tenant', 'Key', 'Version', 'Suite', 'Players', 'Running for'],
      r.sessions.map((s) => [
        el('code', undefined, `${s.sessionId.slice(0, 12)}…`),
        s.operation,
        s.tenant,
        el('code', undefined, s.keyId),
        s.version,
        s.suite,
        s.players.join(', '),
        `${Math.max(0, Math.round((r.now - s.startedAt) / 1000))} s`,
      ]),
      'session-table',
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Metrics graphs (inline SVG)

const SVG = 'http://www.w3.org/2000/svg';
function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

interface Series {
  readonly name: string;
  readonly values: readonly number[];
}

/** One line chart over [from, to]: x is time, y from 0 to the largest value (at least 1). */
function chart(title: string, times: readonly number[], series: readonly Series[], from: number, to: number, unit = ''): HTMLElement {
  const W = 320;
  const H = 140;
  const L = 52;
  const R = 8;
  const T = 8;
  const B = 20;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (t: number) => L + ((t - from) / Math.max(1, to - from)) * (W - L - R);
  const y = (v: number) => T + (1 - v / max) * (H - T - B);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  root.append(svg('path', { class: 'axis', d: `M${L},${T} V${H - B} H${W - R}` }));
  const fmt = (v: number) => (v >= 10_000 ? v.toExponential(1) : v >= 100 ? String(Math.round(v)) : String(Math.round(v * 100) / 100));
  root.append(svg('text', { class: 'label', x: L - 4, y: T + 8, 'text-anchor': 'end' }, `${fmt(max)}${unit}`));
  root.append(svg('text', { class: 'label', x: L - 4, y: H - B, 'text-anchor': 'end' }, `0${unit}`));
  root.append(svg('text', { class: 'label', x: L, y: H - 6 }, clock(from)));
  root.append(svg('text', { class: 'label', x: W - R, y: H - 6, 'text-anchor': 'end' }, clock(to)));
  series.forEach((s, i) => {
    const pts = s.values.map((v, k) => [x(times[k]!), y(v)] as const);
    if (pts.length > 1) root.append(svg('polyline', { class: `series s${i}`, points: pts.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ') }));
    const last = pts[pts.length - 1];
    if (last) root.append(svg('circle', { class: `dot s${i}`, cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: 2.5 }));
  });
  const fig = el('figure', 'chart');
  fig.dataset.chart = title;
  fig.dataset.points = String(times.length);
  const legend = el('div', 'legend');
  series.forEach((s, i) => legend.append(el('span', `s${i}`, `■ ${s.name}: ${fmt(s.values[s.values.length - 1] ?? 0)}${unit}  `)));
  fig.append(el('figcaption', undefined, title), root, legend);
  return fig;
}

async function loadMetrics(mine: number): Promise<void> {
  let h: MetricsHistoryResponse;
  try {
    h = await call<MetricsHistoryResponse>(CONSOLE_PATHS.metricsHistory);
  } catch (e) {
    if (mine === generation) fill('metrics', failure(e));
    return;
  }
  if (mine !== generation) return;
  const samples = h.samples;
  const to = samples.length ? samples[samples.length - 1]!.time : Date.now();
  // The x axis spans the samples there are (at most the hour kept), so a young node's graphs are not a sliver.
  const from = Math.max(to - h.windowMs, Math.min(samples[0]?.time ?? to, to - h.intervalMs));
  const times = samples.map((s) => s.time);
  const col = (k: keyof MetricsSample) => samples.map((s) => s[k]);
  fill(
    'metrics',
    el('p', undefined, `${samples.length} samples, one every ${h.intervalMs / 1000} s (kept in this node's memory for an hour; a restart starts over).`),
    el(
      'div',
      'charts',
      chart('Operations per interval', times, [
        { name: 'ok', values: col('operationsOk') },
        { name: 'failed', values: col('operationsFailed') },
        { name: 'denied', values: col('operationsDenied') },
      ], from, to),
      chart('Sessions in flight', times, [{ name: 'sessions', values: col('sessionsInFlight') }], from, to),
      chart('Nodes online', times, [{ name: 'online', values: col('nodesOnline') }], from, to),
      chart('Audit entries', times, [{ name: 'head seq', values: col('auditEntries') }], from, to),
      chart('Resident memory', times, [{ name: 'RSS', values: samples.map((s) => s.residentMemoryBytes / 1_048_576) }], from, to, ' MiB'),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Audit log

/** Entry kinds of problem: the entry at that seq is itself bad. */
const ENTRY_PROBLEMS = new Set(['malformed-entry', 'edited', 'chain-break', 'reordered', 'duplicate']);
/** Checkpoint kinds that void what the checkpoint covers: the entries after the previous checkpoint up to it. */
const COVERING_PROBLEMS = new Set(['bad-checkpoint-signature', 'checkpoint-mismatch']);

interface ParsedEntry {
  readonly position: number;
  readonly raw: unknown;
  readonly seq?: number;
}

const record = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const parseJson = (text: unknown): unknown => {
  try {
    return typeof text === 'string' ? (JSON.parse(text) as unknown) : text;
  } catch {
    return text; // the verifier reports it as malformed
  }
};

/** Which entries are red and why: the seqs a problem names, and the ranges a failing checkpoint covers. */
export function badEntries(v: AuditVerification, checkpointSeqs: readonly number[]): { entries: Map<number, string[]>; checkpoints: Map<number, string[]>; gaps: { from: number; to: number; why: string }[] } {
  const entries = new Map<number, string[]>();
  const checkpoints = new Map<number, string[]>();
  const gaps: { from: number; to: number; why: string }[] = [];
  const add = (m: Map<number, string[]>, seq: number, why: string) => m.set(seq, [...(m.get(seq) ?? []), why]);
  const sorted = [...new Set(checkpointSeqs)].sort((a, b) => a - b);
  for (const p of v.problems) {
    if (ENTRY_PROBLEMS.has(p.kind)) {
      add(entries, p.seq, `${p.kind}: ${p.message}`);
    } else if (p.kind === 'dropped') {
      const m = /entries (\d+)\.\.(\d+)/.exec(p.message);
      gaps.push({ from: p.seq, to: m ? Number(m[2]) : p.seq, why: `${p.kind}: ${p.message}` });
    } else if (COVERING_PROBLEMS.has(p.kind)) {
      add(checkpoints, p.seq, `${p.kind}: ${p.message}`);
      const previous = sorted.filter((s) => s < p.seq).pop() ?? 0;
      for (let s = previous + 1; s <= p.seq; s++) add(entries, s, `covered by the failing checkpoint at seq ${p.seq} (${p.kind})`);
    } else {
      add(checkpoints, p.seq, `${p.kind}: ${p.message}`);
    }
  }
  return { entries, checkpoints, gaps };
}

function describeEntry(e: Record<string, unknown>): string {
  const parts = [String(e.operation ?? '?'), String(e.outcome ?? '?')];
  if (e.severity !== undefined && e.severity !== 'info') parts.push(String(e.severity));
  if (e.tenant !== undefined) parts.push(`tenant ${String(e.tenant)}`);
  if (e.keyId !== undefined) parts.push(`key ${String(e.keyId)}${e.version !== undefined ? ` v${String(e.version)}` : ''}`);
  if (e.actor !== undefined) parts.push(`by ${String(e.actor)}`);
  if (typeof e.sessionId === 'string') parts.push(`session ${e.sessionId.slice(0, 12)}…`);
  if (e.reason !== undefined) parts.push(`(${String(e.reason)})`);
  return parts.join(' · ');
}

async function loadAudit(mine: number): Promise<void> {
  let log: AuditLogResponse, info: NodeInfo, membership: MembershipResponse | undefined;
  try {
    [log, info, membership] = await Promise.all([
      call<AuditLogResponse>('/v1/admin/audit'),
      call<NodeInfo>('/v1/node'),
      call<MembershipResponse>('/v1/admin/membership').catch(() => undefined),
    ]);
  } catch (e) {
    if (mine === generation) fill('audit', failure(e));
    return;
  }
  if (mine !== generation) return;
  // The key checkpoints are checked against: the node's identity as its committed membership lists it
  // (the cluster's record), which must be the key the node reports for itself.
  const listed = membership?.members.find((m) => m.index === info.index)?.identityPublicKey;
  const keyNote = listed === undefined ? "the node's own identity key (no membership entry to compare with)" : listed === info.identityPublicKey ? "this node's identity key as the cluster membership lists it" : undefined;
  if (keyNote === undefined) {
    return fill('audit', el('p', 'error-text', `The identity key node ${info.index} reports is not the one its membership lists: the audit log cannot be checked against it.`));
  }
  const entries: ParsedEntry[] = (Array.isArray(log.entries) ? log.entries : []).map((text, position) => {
    const raw = parseJson(text);
    const seq = record(raw)?.seq;
    return { position, raw, ...(typeof seq === 'number' && Number.isSafeInteger(seq) ? { seq } : {}) };
  });
  const checkpoints = (Array.isArray(log.checkpoints) ? log.checkpoints : []).map(parseJson);
  const started = performance.now();
  const v = verifyAuditLog({ entries: entries.map((e) => e.raw), checkpoints }, fromHex(listed ?? info.identityPublicKey, 'identityPublicKey'));
  const took = Math.round(performance.now() - started);
  const checkpointSeqs = checkpoints.map((c) => record(c)?.seq).filter((s): s is number => typeof s === 'number' && Number.isSafeInteger(s));
  const bad = badEntries(v, checkpointSeqs);

  const summary = el('p', v.ok ? 'ok' : 'bad');
  summary.id = 'audit-summary';
  summary.textContent = v.ok
    ? `Verified in this browser (${took} ms): ${v.entries} entries, hash chain intact, ${checkpoints.length} checkpoints signed with ${keyNote}; signed through seq ${v.signedThrough}${v.unsigned ? `, seqs ${v.unsigned.fromSeq}..${v.unsigned.toSeq} not yet under a checkpoint` : ''}.`
    : `Verification FAILED (${v.problems.length} problem${v.problems.length === 1 ? '' : 's'}; checked in this browser against ${keyNote}): ${v.problems
        .slice(0, 5)
        .map((p) => `${p.kind} at seq ${p.seq}`)
        .join('; ')}${v.problems.length > 5 ? '; ...' : ''}. Entries in red fail.`;

  // Newest first: entries by seq (unparseable ones by position at the end), checkpoints after the entry they sign.
  const items: { seq: number; order: number; node: HTMLElement }[] = [];
  const signedSeqs = new Set<number>();
  const cpBySeq = new Map<number, Record<string, unknown>[]>();
  for (const c of checkpoints) {
    const r = record(c);
    const s = typeof r?.seq === 'number' ? r.seq : 0;
    cpBySeq.set(s, [...(cpBySeq.get(s) ?? []), r ?? {}]);
  }
  const shown = entries.filter((e) => e.seq === undefined || bad.entries.has(e.seq)).concat(
    entries
      .filter((e) => e.seq !== undefined && !bad.entries.has(e.seq))
      .sort((a, b) => b.seq! - a.seq!)
      .slice(0, TIMELINE_LIMIT),
  );
  for (const e of shown) {
    const r = record(e.raw);
    const li = el('li');
    const reasons = e.seq !== undefined ? bad.entries.get(e.seq) : [`malformed-entry: the entry at position ${e.position} does not parse`];
    const unsigned = e.seq !== undefined && v.unsigned !== undefined && e.seq >= v.unsigned.fromSeq && e.seq <= v.unsigned.toSeq;
    li.className = `entry ${reasons ? 'bad' : unsigned ? 'unsigned' : 'ok'}`;
    if (e.seq !== undefined) li.dataset.seq = String(e.seq);
    li.dataset.verified = reasons ? 'failed' : unsigned ? 'unsigned' : 'ok';
    li.append(
      el('span', 'seq', e.seq !== undefined ? `#${e.seq}` : '#?'),
      el('span', 'when', typeof r?.time === 'number' ? time(r.time) : ''),
      el('span', 'what', r ? describeEntry(r) : 'unparseable entry'),
    );
    if (unsigned && !reasons) li.append(el('span', 'why', 'not yet covered by a signed checkpoint'));
    for (const why of reasons ?? []) li.append(el('span', 'why', why));
    items.push({ seq: e.seq ?? Number.MAX_SAFE_INTEGER, order: 0, node: li });
  }
  for (const [seq, list] of cpBySeq) {
    for (const r of list) {
      const reasons = bad.checkpoints.get(seq);
      const li = el('li', `checkpoint${reasons ? ' bad' : ''}`, `checkpoint at seq ${seq}${typeof r.time === 'number' ? `, ${time(r.time)}` : ''}: ${reasons ? 'FAILS' : 'signature valid'}`);
      li.dataset.checkpoint = String(seq);
      for (const why of reasons ?? []) li.append(el('span', 'why', why));
      if (!reasons) signedSeqs.add(seq);
      items.push({ seq, order: 1, node: li });
    }
  }
  for (const g of bad.gaps) {
    const li = el('li', 'gap bad', g.from === g.to ? `entry ${g.from} is missing` : `entries ${g.from}..${g.to} are missing`, el('span', 'why', g.why));
    li.dataset.gap = `${g.from}-${g.to}`;
    items.push({ seq: g.to, order: 0, node: li });
  }
  items.sort((a, b) => b.seq - a.seq || b.order - a.order);
  const list = el('ol', 'timeline');
  list.append(...items.map((i) => i.node));
  const total = entries.length;
  fill(
    'audit',
    summary,
    total > TIMELINE_LIMIT ? el('p', 'empty', `Showing the newest ${TIMELINE_LIMIT} of ${total} entries and every failing one; all ${total} were verified.`) : undefined,
    list,
  );
}

// ---------------------------------------------------------------------------------------------

function start(): void {
  $('#connect').addEventListener('click', () => void connect());
  $('#api-key').addEventListener('keydown', (e) => {
    if ((e as KeyboardEvent).key === 'Enter') void connect();
  });
  $('#refresh').addEventListener('click', () => {
    if (apiKey !== undefined) void loadAll(generation);
  });
  $('#forget').addEventListener('click', () => forget());
  message('No key loaded.');
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
