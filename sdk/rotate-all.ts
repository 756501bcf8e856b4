/**
 * Emergency rotation of every active key (issue 15, item 3): the plan, the run file and the loop behind
 * Cluster.rotateAll and `tessera rotate --all`.
 *
 * What is rotated: of each key, its newest active version (a rotation makes version highest + 1 by DKG
 * on that version's committee and retires the version it replaces: Cluster.rotate). Keys with no active
 * version (every version retired, archived or destroyed) are skipped: there is nothing in use to replace,
 * and a rotation of a retired version is refused by the nodes. An older version that is still active
 * beside a newer active one is reported as skipped too: it keeps working until someone retires it.
 *
 * How it resumes without rotating a key twice. The run file (written once, atomically, fsync'd, before
 * the first rotation) holds the PLAN: for every key, the version to rotate and the key's highest version
 * at planning time. It is never updated as keys rotate. Whether a key is done is read from the cluster
 * each time: a version above the planned highest exists. A rotation commits that version on the nodes
 * in the same step that retires the old one (core/commit.ts), so:
 *   - killed after a rotation committed but before anything was written here: the new version is on the
 *     nodes, the rerun sees it and does not rotate again (there is no bookkeeping write that could lag);
 *   - killed while a rotation was in flight: the nodes may finish it (then it is done, as above), stage
 *     it without committing, or drop it. A rerun's rotate of that key is then refused (the key is
 *     locked or has a staged change: BAD_STATE); the loop runs Cluster.repair (which commits a change
 *     every voter staged, or drops one that cannot commit), reads the cluster again, and rotates only if
 *     no new version appeared. So at most one new version per key per run;
 *   - the run file is removed only when every planned key is rotated (or no longer active); a run with
 *     failures keeps it, and the rerun retries what is left.
 * A key rotated by anyone else after the plan (the scheduler, another operator) counts as rotated: it
 * is on a new version, which is what the emergency asks for. Keys made after the plan are not in it.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from '@noble/hashes/utils.js';
import { toHex } from '../core/bytes.js';
import { ID_RE as ID } from '../core/session.js';
import type { KeyInfo, RotateResponse } from '../contract/http.js';
import { forEachGroup, groupedBy } from './grouping.js';
import { TesseraClientError } from './http.js';

export const ROTATE_ALL_RUN_FORMAT = 'tessera-rotate-all-run/1';
/** More keys than this in one run file is refused as malformed (a cluster's key count is far below). */
const MAX_PLANNED_KEYS = 1_000_000;

/** One key of the plan: `version` is rotated unless a version above `highestVersion` appears. */
export interface RotateAllPlanKey {
  /** The tenant acted for (null: the API key's own tenant, when it may not list tenants). */
  tenant: string | null;
  keyId: string;
  version: number;
  highestVersion: number;
}

export interface RotateAllSkipped {
  tenant: string | null;
  keyId: string;
  version: number;
  state: string;
  reason: string;
}

/** What the run file holds (see the file comment). */
export interface RotateAllRun {
  format: typeof ROTATE_ALL_RUN_FORMAT;
  runId: string;
  startedAt: number;
  /** The tenant the run was asked for (null: every tenant the API keys see). */
  tenant: string | null;
  keys: RotateAllPlanKey[];
  skipped: RotateAllSkipped[];
}

export interface RotateAllResult {
  runId: string;
  startedAt: number;
  /** True when the plan came from an unfinished run's file. */
  resumed: boolean;
  /** The run file, while it is kept (a run with failures, or one whose file could not be removed); absent once removed or without one. */
  runFile?: string;
  /** Keys planned for rotation. */
  total: number;
  /** `by`: this-run, or earlier (a previous run of this plan, or anyone else, made the new version). */
  rotated: { tenant: string | null; keyId: string; fromVersion: number; toVersion: number; by: 'this-run' | 'earlier' }[];
  skipped: RotateAllSkipped[];
  failed: { tenant: string | null; keyId: string; version: number; reason: string }[];
}

/** The calls the loop makes on the cluster, for one tenant (Cluster.forTenant, or the Cluster itself). */
export interface RotateAllTenantOps {
  listKeys(): Promise<KeyInfo[]>;
  rotate(o: { keyId: string; version: number }): Promise<RotateResponse>;
  repair(keyId: string): Promise<unknown>;
}

export interface RotateAllOptions {
  /** The tenant asked for (recorded in the run file: a resume must ask for the same). */
  tenant: string | null;
  /** The tenants to act for and how (a plan's tenants must all be here). */
  tenants: ReadonlyMap<string | null, RotateAllTenantOps>;
  /** The run file: resumed if it exists, written before the first rotation, removed when done. */
  statePath?: string;
  onProgress?: (line: string) => void;
  /** Keys rotated at once (default 2; 1..64). */
  concurrency?: number;
  /** Tries per key when a rotation is refused or fails (default 3): between tries, repair and look again. */
  attempts?: number;
  /** Wait between tries (default 1000 ms): a session the killed run left behind needs its time to end. */
  retryDelayMs?: number;
  now?: () => number;
}

/** The plan over every version of every key in scope (as Cluster.listKeys lists them). */
export function planRotateAll(keys: readonly { tenant: string | null; key: KeyInfo }[]): { keys: RotateAllPlanKey[]; skipped: RotateAllSkipped[] } {
  const planned: RotateAllPlanKey[] = [];
  const skipped: RotateAllSkipped[] = [];
  for (const versions of groupedBy(keys, (k) => JSON.stringify([k.tenant, k.key.keyId]))) {
    const { tenant } = versions[0]!;
    const keyId = versions[0]!.key.keyId;
    const highestVersion = Math.max(...versions.map((v) => v.key.version));
    const active = versions.filter((v) => v.key.state === 'active').map((v) => v.key.version).sort((a, b) => b - a);
    if (active.length === 0) {
      const newest = versions.find((v) => v.key.version === highestVersion)!.key;
      skipped.push({ tenant, keyId, version: newest.version, state: newest.state, reason: `no active version (the newest, v${newest.version}, is ${newest.state}): nothing in use to replace` });
      continue;
    }
    planned.push({ tenant, keyId, version: active[0]!, highestVersion });
    for (const older of active.slice(1)) {
      skipped.push({ tenant, keyId, version: older, state: 'active', reason: `an older active version beside v${active[0]}: only the newest active version is rotated (retire v${older} if it must stop being used)` });
    }
  }
  return { keys: planned, skipped };
}

export type KeyProgress = { status: 'rotated'; toVersion: number } | { status: 'to-rotate' } | { status: 'not-active'; state: string };

/**
 * Where one planned key stands, from the versions the cluster lists for it now: rotated when a version
 * above the planned highest exists (toVersion: the lowest such, the one the rotation made), else to
 * rotate while the planned version is active, else no longer active (someone retired or destroyed it).
 */
export function keyProgress(plan: RotateAllPlanKey, versions: readonly KeyInfo[]): KeyProgress {
  const newer = versions.filter((v) => v.keyId === plan.keyId && v.version > plan.highestVersion).map((v) => v.version);
  if (newer.length) return { status: 'rotated', toVersion: Math.min(...newer) };
  const planned = versions.find((v) => v.keyId === plan.keyId && v.version === plan.version);
  if (!planned) return { status: 'not-active', state: 'missing' };
  return planned.state === 'active' ? { status: 'to-rotate' } : { status: 'not-active', state: planned.state };
}

/** Errors that another try would only repeat. */
const FINAL_CODES = new Set(['POLICY_DENIED', 'UNAUTHORIZED', 'BAD_INPUT', 'BAD_PARAMETERS', 'NOT_FOUND']);

const nameOf = (k: { tenant: string | null; keyId: string }) => (k.tenant === null ? k.keyId : `${k.tenant}/${k.keyId}`);

function reasonOf(e: unknown): string {
  return e instanceof TesseraClientError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
}

/** Rotate every key of the plan (a new one, or the run file's), resuming as the file comment says. */
export async function rotateEveryKey(o: RotateAllOptions): Promise<RotateAllResult> {
  const concurrency = o.concurrency ?? 2;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new TesseraClientError('BAD_INPUT', 'concurrency: expected 1..64');
  const attempts = o.attempts ?? 3;
  if (!Number.isSafeInteger(attempts) || attempts < 1 || attempts > 100) throw new TesseraClientError('BAD_INPUT', 'attempts: expected 1..100');
  const retryDelayMs = o.retryDelayMs ?? 1000;
  const say = (line: string) => {
    try {
      o.onProgress?.(line);
    } catch {
      // A progress display that fails does not stop the rotation.
    }
  };
  const opsOf = (tenant: string | null): RotateAllTenantOps => {
    const ops = o.tenants.get(tenant);
    if (!ops) throw new TesseraClientError('BAD_STATE', `the run's plan names tenant ${tenant ?? '(own)'}, which these API keys cannot act for`);
    return ops;
  };
  const listAll = async (): Promise<{ tenant: string | null; key: KeyInfo }[]> => {
    const out: { tenant: string | null; key: KeyInfo }[] = [];
    for (const [tenant, ops] of o.tenants) for (const key of await ops.listKeys()) out.push({ tenant, key });
    return out;
  };

  let run = o.statePath !== undefined ? readRunFile(o.statePath) : undefined;
  const resumed = run !== undefined;
  if (run && run.tenant !== o.tenant) {
    throw new TesseraClientError('BAD_STATE', `${o.statePath}: an unfinished rotate --all of ${run.tenant === null ? 'every tenant' : `tenant ${run.tenant}`} (run ${run.runId}); finish it first (run it again with the same scope)`);
  }
  const listed = await listAll();
  if (!run) {
    const plan = planRotateAll(listed);
    run = { format: ROTATE_ALL_RUN_FORMAT, runId: toHex(randomBytes(8)), startedAt: (o.now ?? Date.now)(), tenant: o.tenant, keys: plan.keys, skipped: plan.skipped };
    // On disk before the first rotation: a kill from here on resumes this plan.
    if (o.statePath !== undefined) writeRunFileAtomic(o.statePath, run);
  }
  for (const k of run.keys) opsOf(k.tenant);
  const thisRun = run;
  // A resumed run says when it began: a plan is that moment's keys, not a new emergency's.
  say(`${resumed ? `resuming run ${run.runId} of ${new Date(run.startedAt).toISOString()}` : `starting run ${run.runId}`}: ${run.keys.length} key(s) to rotate, ${run.skipped.length} skipped`);

  const versionsOf = new Map<string, KeyInfo[]>();
  for (const { tenant, key } of listed) {
    const slot = JSON.stringify([tenant, key.keyId]);
    versionsOf.set(slot, [...(versionsOf.get(slot) ?? []), key]);
  }
  const result: RotateAllResult = { runId: run.runId, startedAt: run.startedAt, resumed, total: run.keys.length, rotated: [], skipped: [...run.skipped], failed: [] };
  let done = 0;
  const one = async (plan: RotateAllPlanKey) => {
    const ops = opsOf(plan.tenant);
    const name = `${nameOf(plan)} v${plan.version}`;
    let progress = keyProgress(plan, versionsOf.get(JSON.stringify([plan.tenant, plan.keyId])) ?? []);
    let line: string;
    let lastError: string | undefined;
    let rotatedHere = false;
    for (let attempt = 1; progress.status === 'to-rotate' && attempt <= attempts; attempt++) {
      try {
        const r = await ops.rotate({ keyId: plan.keyId, version: plan.version });
        progress = { status: 'rotated', toVersion: r.version };
        rotatedHere = true;
        break;
      } catch (e) {
        lastError = reasonOf(e);
        // A session a killed run left may still hold the key (locked, or staged everywhere): finish or
        // drop it, then decide from what the cluster holds, never from this failure alone.
        await ops.repair(plan.keyId).catch(() => undefined);
        const now = await ops.listKeys().then((all) => keyProgress(plan, all.filter((k) => k.keyId === plan.keyId)), () => undefined);
        if (now) progress = now;
        // A refusal (an operator's hook or a node's policy) or bad input is an answer, not a mishap: not retried.
        if (e instanceof TesseraClientError && FINAL_CODES.has(e.code)) break;
        if (progress.status === 'to-rotate' && attempt < attempts) await new Promise((r) => setTimeout(r, retryDelayMs * attempt));
      }
    }
    if (progress.status === 'rotated') {
      // A rotation this run asked for whose answer was lost, but whose version is there, counts as earlier:
      // this run cannot tell it from a session a killed run left behind.
      result.rotated.push({ tenant: plan.tenant, keyId: plan.keyId, fromVersion: plan.version, toVersion: progress.toVersion, by: rotatedHere ? 'this-run' : 'earlier' });
      line = rotatedHere ? `${name}: rotated to v${progress.toVersion}` : `${name}: already rotated to v${progress.toVersion}`;
    } else if (progress.status === 'not-active') {
      const reason = progress.state === 'missing' ? 'the version is gone from the nodes' : `the version is ${progress.state} now (changed after the plan)`;
      result.skipped.push({ tenant: plan.tenant, keyId: plan.keyId, version: plan.version, state: progress.state, reason });
      line = `${name}: skipped: ${reason}`;
    } else {
      const reason = lastError ?? 'not rotated';
      result.failed.push({ tenant: plan.tenant, keyId: plan.keyId, version: plan.version, reason });
      line = `${name}: failed: ${reason}`;
    }
    say(`[${++done}/${thisRun.keys.length}] ${line}`);
  };
  await forEachGroup(groupedBy(run.keys, (k) => JSON.stringify([k.tenant, k.keyId])), concurrency, one);

  const order = (a: { tenant: string | null; keyId: string }, b: { tenant: string | null; keyId: string }) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0);
  result.rotated.sort(order);
  result.failed.sort(order);
  if (o.statePath !== undefined) {
    if (result.failed.length > 0) result.runFile = o.statePath;
    else {
      // Not thrown: every key is done and the report must still reach the caller.
      const left = removeRunFile(o.statePath);
      if (left) {
        result.runFile = o.statePath;
        say(`finished, but ${left}: remove it before the next rotate --all (run again, it would resume this finished run)`);
      }
    }
  }
  return result;
}

// ---- the run file

/** Write `run` to `path` durably and atomically: a temp file in the same directory, fsync'd, renamed, the directory fsync'd. */
export function writeRunFileAtomic(path: string, run: RotateAllRun): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${toHex(randomBytes(4))}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, JSON.stringify(run) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    syncDirectory(dirname(path));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new TesseraClientError('WRITE_FAILED', `${path}: the rotate --all run file cannot be written (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Remove a finished run's file; what went wrong, if it could not be. */
function removeRunFile(path: string): string | undefined {
  try {
    rmSync(path, { force: true });
    syncDirectory(dirname(path));
    return undefined;
  } catch (e) {
    return `the run file ${path} cannot be removed (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

/** The run file at `path`, checked field by field; undefined when there is none. BAD_INPUT naming what is wrong. */
export function readRunFile(path: string): RotateAllRun | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TesseraClientError('BAD_INPUT', `${path}: the rotate --all run file cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const bad = (what: string) => new TesseraClientError('BAD_INPUT', `${path}: not a rotate --all run file: ${what} (remove it to start a new run)`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isVersion = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= 0xffffffff;
  const isTenant = (v: unknown): v is string | null => v === null || (typeof v === 'string' && ID.test(v));
  if (!isObject(raw) || raw.format !== ROTATE_ALL_RUN_FORMAT) throw bad(`format is not ${ROTATE_ALL_RUN_FORMAT}`);
  if (typeof raw.runId !== 'string' || !/^[0-9a-f]{16}$/.test(raw.runId)) throw bad('runId');
  if (typeof raw.startedAt !== 'number' || !Number.isSafeInteger(raw.startedAt) || raw.startedAt < 0) throw bad('startedAt');
  if (!isTenant(raw.tenant)) throw bad('tenant');
  if (!Array.isArray(raw.keys) || raw.keys.length > MAX_PLANNED_KEYS) throw bad('keys');
  if (!Array.isArray(raw.skipped) || raw.skipped.length > MAX_PLANNED_KEYS) throw bad('skipped');
  const seen = new Set<string>();
  const keys = raw.keys.map((k, i): RotateAllPlanKey => {
    if (!isObject(k) || !isTenant(k.tenant) || typeof k.keyId !== 'string' || !ID.test(k.keyId) || !isVersion(k.version) || !isVersion(k.highestVersion) || k.version > k.highestVersion) {
      throw bad(`keys[${i}]`);
    }
    const slot = JSON.stringify([k.tenant, k.keyId]);
    if (seen.has(slot)) throw bad(`keys[${i}]: key ${k.keyId} planned twice`);
    seen.add(slot);
    return { tenant: k.tenant, keyId: k.keyId, version: k.version, highestVersion: k.highestVersion };
  });
  const skipped = raw.skipped.map((s, i): RotateAllSkipped => {
    if (!isObject(s) || !isTenant(s.tenant) || typeof s.keyId !== 'string' || !ID.test(s.keyId) || !isVersion(s.version) || typeof s.state !== 'string' || typeof s.reason !== 'string' || s.reason.length > 500) {
      throw bad(`skipped[${i}]`);
    }
    return { tenant: s.tenant, keyId: s.keyId, version: s.version, state: s.state.slice(0, 20), reason: s.reason };
  });
  return { format: ROTATE_ALL_RUN_FORMAT, runId: raw.runId, startedAt: raw.startedAt, tenant: raw.tenant, keys, skipped };
}
