/**
 * Key-version lifecycle: the one table of what each state allows, the allowed transitions, and the
 * rotation schedule. Storage, the service, the API and the SDK all decide from here, so a state can
 * never mean one thing in one place and another elsewhere.
 *
 *   state       operations allowed
 *   active      every operation
 *   retired     decapsulate and verify only; no new signatures
 *   archived    nothing
 *   destroyed   nothing; the share is erased, the public key stays readable for verification
 *
 * Reading a version's public record (GET key, list) is not an operation on the key and works in every
 * state: an archived version must stay visible to be restored, a destroyed one to verify old signatures.
 *
 * Transitions (a version never goes back to a state it cannot safely reach):
 *   active   -> retired | archived
 *   retired  -> active | archived | destroyed
 *   archived -> active | retired | destroyed
 *   destroyed   (terminal)
 * Destruction needs the version to be retired or archived first, so one call cannot erase a key that
 * is still in use; an archived version can be restored (to active or retired) until it is destroyed.
 */
import { ErrorCode, TesseraError } from './errors.js';

export const KEY_STATES = ['active', 'retired', 'archived', 'destroyed'] as const;
export type KeyState = (typeof KEY_STATES)[number];

/** Operations on an existing key version, as gated by its state. */
export const KEY_OPERATIONS = ['sign', 'decapsulate', 'verify', 'refresh', 'export', 'rotate', 'reshare'] as const;
export type KeyOperation = (typeof KEY_OPERATIONS)[number];

/** The table. `rotate` is checked on the version being rotated out (the newest active one). */
export const STATE_ALLOWS: { readonly [S in KeyState]: ReadonlySet<KeyOperation> } = Object.freeze({
  active: new Set<KeyOperation>(KEY_OPERATIONS),
  // A reshare signs and decrypts nothing, it moves shares: a committee change must carry retired and archived keys too.
  retired: new Set<KeyOperation>(['decapsulate', 'verify', 'reshare']),
  archived: new Set<KeyOperation>(['reshare']),
  destroyed: new Set<KeyOperation>(),
});

export const STATE_TRANSITIONS: { readonly [S in KeyState]: readonly KeyState[] } = Object.freeze({
  active: ['retired', 'archived'],
  retired: ['active', 'archived', 'destroyed'],
  archived: ['active', 'retired', 'destroyed'],
  destroyed: [],
});

/** The operation each transition is approved, audited and certified as, and its inverse. */
export const TRANSITION_OPERATIONS = { retired: 'retire', archived: 'archive', active: 'activate', destroyed: 'destroy' } as const satisfies Record<KeyState, string>;
export const TRANSITION_TARGETS = { retire: 'retired', archive: 'archived', activate: 'active', destroy: 'destroyed' } as const satisfies Record<string, KeyState>;

export function isKeyState(s: unknown): s is KeyState {
  return typeof s === 'string' && (KEY_STATES as readonly string[]).includes(s);
}

export function isKeyOperation(op: unknown): op is KeyOperation {
  return typeof op === 'string' && (KEY_OPERATIONS as readonly string[]).includes(op);
}

/** Whether a version in `state` may serve `operation`. Unknown states or operations allow nothing. */
export function stateAllows(state: KeyState, operation: KeyOperation): boolean {
  return isKeyState(state) && isKeyOperation(operation) && STATE_ALLOWS[state].has(operation);
}

/**
 * Throw unless `state` allows `operation`: BAD_STATE, naming the key, version, state and operation
 * (the API maps BAD_STATE to 400 — the caller asked for something the version cannot do).
 */
export function assertStateAllows(state: KeyState, operation: KeyOperation, what: { keyId: string; version: number }): void {
  if (!stateAllows(state, operation)) {
    throw new TesseraError(
      ErrorCode.BadState,
      `key ${what.keyId} version ${what.version} is ${String(state)}: ${String(operation)} is not allowed`,
    );
  }
}

export function canTransition(from: KeyState, to: KeyState): boolean {
  return isKeyState(from) && isKeyState(to) && STATE_TRANSITIONS[from].includes(to);
}

/** Throw BAD_STATE unless `from -> to` is an allowed transition. */
export function assertTransition(from: KeyState, to: KeyState, what: { keyId: string; version: number }): void {
  if (!canTransition(from, to)) {
    const reachable = isKeyState(from) ? STATE_TRANSITIONS[from] : [];
    throw new TesseraError(
      ErrorCode.BadState,
      `key ${what.keyId} version ${what.version} cannot go from ${String(from)} to ${String(to)}` +
        (reachable.length ? ` (allowed: ${reachable.join(', ')})` : ' (it is final)'),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Rotation schedule

/**
 * The longest rotation period accepted: ten years. The shortest: one minute by default; a node can be
 * configured lower (TESSERA_MIN_ROTATION_PERIOD_MS, for tests), never below 1 ms.
 */
export const MAX_ROTATION_PERIOD_MS = 10 * 366 * 24 * 3600 * 1000;
export const MIN_ROTATION_PERIOD_MS = 60 * 1000;

export function isRotationPeriod(ms: unknown, minMs: number = MIN_ROTATION_PERIOD_MS): ms is number {
  return typeof ms === 'number' && Number.isSafeInteger(ms) && ms >= Math.max(1, minMs) && ms <= MAX_ROTATION_PERIOD_MS;
}

export type RotationStatus =
  /** No period set, or the version is not active (only the active version rotates). */
  | { readonly status: 'none' }
  | { readonly status: 'ok'; readonly dueAt: number }
  /** Due within the warning window: log and expose a warning. */
  | { readonly status: 'warning'; readonly dueAt: number }
  /** Due now: the nodes are rotating it (no attempt has failed yet). */
  | { readonly status: 'due'; readonly dueAt: number }
  /** Due, and an attempt of this node failed: why, and when it tries again. */
  | ({ readonly status: 'overdue'; readonly dueAt: number } & RotationAttemptRecord & { readonly lastError: string });

/**
 * What one node knows of its scheduled-rotation attempts for a due version (node/governance/scheduler.ts
 * RotationAttempts): how many it made, when the last one began, why the last one failed (a one-line
 * reason with no secrets, e.g. "EXPIRED: node 3 did not join"), and when it tries next.
 */
export interface RotationAttemptRecord {
  readonly attempts: number;
  readonly lastAttemptAt?: number;
  /** Absent while no attempt has failed (the first one may still be running). */
  readonly lastError?: string;
  readonly nextAttemptAt?: number;
}

/** Where a key info reader finds the attempt records (the scheduler's, in the node process). */
export interface RotationAttemptLookup {
  get(tenant: string, keyId: string, version: number): RotationAttemptRecord | undefined;
}

/**
 * Where an active version stands against its rotation period. A version is due `rotationPeriodMs`
 * after it was created (a rotation creates the next version, so the period restarts with it).
 * `warnBeforeMs` defaults to a tenth of the period, capped at one day.
 */
export function rotationStatus(
  rec: { readonly state: KeyState; readonly createdAt: number; readonly rotationPeriodMs?: number | undefined },
  now: number,
  warnBeforeMs?: number,
  attempts?: RotationAttemptRecord,
): RotationStatus {
  if (rec.state !== 'active' || rec.rotationPeriodMs === undefined) return { status: 'none' };
  const dueAt = rec.createdAt + rec.rotationPeriodMs;
  const warn = warnBeforeMs ?? Math.min(Math.floor(rec.rotationPeriodMs / 10), 24 * 3600 * 1000);
  // A due version whose rotation has not happened says why (issue 9, item 10: "key info says why a
  // due rotation has not happened").
  if (now >= dueAt && attempts?.lastError !== undefined) return { status: 'overdue', dueAt, ...attempts, lastError: attempts.lastError };
  if (now >= dueAt) return { status: 'due', dueAt };
  if (now >= dueAt - warn) return { status: 'warning', dueAt };
  return { status: 'ok', dueAt };
}

/** What a rotation scheduler should act on now. */
export interface RotationPlan<R> {
  /** Rotate these (each the newest active version of its key, overdue or due now). */
  readonly due: readonly (R & { readonly dueAt: number })[];
  /** Warn about these (due within the warning window). */
  readonly warning: readonly (R & { readonly dueAt: number })[];
}

/**
 * From every stored version (ShareStore.listAll), the keys whose newest active version is due for
 * rotation or about to be. Only the newest active version of a (tenant, keyId) counts: older active
 * versions are not rotated again. Ordered by due time.
 */
export function rotationPlan<R extends { tenant: string; keyId: string; version: number; state: KeyState; createdAt: number; rotationPeriodMs?: number | undefined }>(
  records: readonly R[],
  now: number,
  warnBeforeMs?: number,
): RotationPlan<R> {
  const newest = new Map<string, R>();
  for (const r of records) {
    if (r.state !== 'active') continue;
    const k = `${r.tenant}\u0000${r.keyId}`;
    const cur = newest.get(k);
    if (!cur || r.version > cur.version) newest.set(k, r);
  }
  const due: (R & { dueAt: number })[] = [];
  const warning: (R & { dueAt: number })[] = [];
  for (const r of newest.values()) {
    const s = rotationStatus(r, now, warnBeforeMs);
    if (s.status === 'due') due.push({ ...r, dueAt: s.dueAt });
    else if (s.status === 'warning') warning.push({ ...r, dueAt: s.dueAt });
  }
  const byDue = (a: { dueAt: number }, b: { dueAt: number }) => a.dueAt - b.dueAt;
  return { due: due.sort(byDue), warning: warning.sort(byDue) };
}
