/**
 * Key rotation on schedule. Each node runs this scheduler over its own store: every `checkIntervalMs`
 * (and exactly at the next due time or attempt boundary, by a wake timer) it computes core/lifecycle.ts
 * rotationPlan (the newest active version of each key that carries a rotation period), and
 *   - warns once per version, before it is due (log line at warn level, audit entry 'rotation.warning';
 *     GET /v1/keys/:keyId shows rotation {status: 'warning', dueAt} meanwhile);
 *   - rotates a due version through NodeService.rotateScheduled, the same rotate session an SDK
 *     starts (policy, state checks, audit, DKG of all n nodes, old version retired);
 *   - while a due version has not rotated, key info shows rotation {status: 'overdue', dueAt, attempts,
 *     lastAttemptAt, lastError, nextAttemptAt} (RotationAttempts), and every failure is logged.
 *
 * How the nodes meet without an SDK, whatever their clocks say (issue 9, item 10):
 * - No node compares wall-clock readings with another. Each node counts attempts from the version's
 *   dueAt as IT stored it: createdAt is the node's own clock at the moment the session that made the
 *   version ended, an instant every node saw at the same time. So attempt k begins, on every node, k
 *   slots (`retryMs`) after the same real instant plus the period: a node whose clock is off by any
 *   constant amount (10 minutes, a day) computes the same attempt at the same moment as the others.
 *   What shifts a node's attempts is only a clock that changed by more than a session's lifetime since
 *   the version was made (a step or drift); then that node's attempts miss the others', key info on
 *   every node says so (lastError names who did not join) and the operator fixes the clock.
 * - Attempt k's session id is HMAC-SHA256(cluster scheduling secret, label, tenant, key id, version,
 *   the version to be made, k), truncated to 16 bytes (scheduledRotationSessionId). Only the nodes hold
 *   the secret, so nobody outside can predict an id to decline it in advance (item 3). dueAt itself is
 *   not in the id: each node stores its own clock's createdAt, so it is not a value the nodes share.
 *   The version to be made is: a version re-activated after it was rotated once rotates under new ids.
 * - A session id is never joined twice by a node: attempt numbers only grow, and before joining the
 *   node records the attempt durably (store namespace `scheduler`), so neither a restart nor a clock
 *   stepping back makes it join an attempt it already joined.
 * - A node joins attempt k at the start of its slot (a wake timer, not the next periodic check) and
 *   waits until just before the slot ends, so it is free for attempt k+1; the coordinator ends the
 *   session earlier if its session timeout is shorter.
 * Its authority is the rotation period, which every operator's SDK approved when the key was created
 * (it is in the keygen session digest).
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Logger } from 'pino';
import { framed, i2osp, toHex, utf8ToBytes } from '../../core/bytes.js';
import { ErrorCode, ensure } from '../../core/errors.js';
import { SESSION_ID_LENGTH } from '../../core/session.js';
import type { AuditLog } from './audit.js';
import { SCHEDULE_SECRET_LENGTH } from '../config.js';
import { rotationPlan, type RotationAttemptLookup, type RotationAttemptRecord } from '../../core/lifecycle.js';
import { SCHEDULER_ACTOR, type NodeService } from '../service.js';
import type { RecordNamespace, ShareStore } from '../store/storage.js';

/** The store namespace where a node records the highest attempt it joined per scheduled rotation. */
export const SCHEDULER_NAMESPACE = 'scheduler';
const SESSION_LABEL = utf8ToBytes('tessera/scheduled-rotation/v2');

export interface RotationSchedulerOptions {
  readonly store: ShareStore;
  /** store.namespace(SCHEDULER_NAMESPACE): the attempts this node joined (never joined twice). */
  readonly records: RecordNamespace;
  readonly service: Pick<NodeService, 'rotateScheduled'>;
  readonly audit: AuditLog;
  readonly logger: Logger;
  readonly checkIntervalMs: number;
  /** The width of an attempt slot: a failed attempt is tried again this long after the previous one began. */
  readonly retryMs: number;
  readonly warnBeforeMs?: number;
  /**
   * The cluster scheduling secret (node/config.ts scheduleSecret), 32 bytes, the same on every node.
   * Without it the scheduler warns and rotates nothing (key info says why). Used, not copied.
   */
  readonly scheduleSecret?: Uint8Array;
  /** Where key info reads why a due rotation has not happened (shared with NodeService). */
  readonly attempts?: RotationAttempts;
  /** The node's clock (ms since the Unix epoch). Default Date.now. */
  readonly now?: () => number;
}

/** What a scheduled rotation session is about: every field is the same on every node. */
export interface ScheduledRotationRef {
  readonly tenant: string;
  readonly keyId: string;
  /** The version being rotated out. */
  readonly version: number;
  /** The version the rotation makes (the key's highest version + 1). */
  readonly nextVersion: number;
  /** The attempt number, counted from the version's due time in `retryMs` slots (rotationAttempt). */
  readonly attempt: number;
}

/**
 * The session id of one attempt of a scheduled rotation: HMAC-SHA256(secret, framed(label, tenant,
 * key id, version, next version, attempt)), the first 16 bytes. Different for every attempt, key,
 * version and cluster secret; unpredictable without the secret.
 */
export function scheduledRotationSessionId(secret: Uint8Array, r: ScheduledRotationRef): Uint8Array {
  ensure(secret instanceof Uint8Array && secret.length === SCHEDULE_SECRET_LENGTH, ErrorCode.BadInput, `schedule secret: expected ${SCHEDULE_SECRET_LENGTH} bytes`);
  const message = framed(SESSION_LABEL, utf8ToBytes(r.tenant), utf8ToBytes(r.keyId), i2osp(r.version, 4), i2osp(r.nextVersion, 4), i2osp(r.attempt, 8));
  return hmac(sha256, secret, message).slice(0, SESSION_ID_LENGTH);
}

/** The attempt a node is in at `now` (its clock) for a version due at `dueAt` (its record): -1 before it is due. */
export function rotationAttempt(now: number, dueAt: number, slotMs: number): number {
  return now < dueAt ? -1 : Math.floor((now - dueAt) / slotMs);
}

/** When attempt `attempt` begins, on the node's clock. */
export function attemptStart(dueAt: number, slotMs: number, attempt: number): number {
  return dueAt + attempt * slotMs;
}

/** A node must not join with less time than this left in the slot (the DKG needs some). */
export const MIN_ATTEMPT_MS = 1000;

/**
 * How long a node waits in attempt `attempt`'s session (join to the end of the DKG): until shortly
 * before the slot ends (a tenth of the slot, at most 1 s, is kept free), so it can join the next
 * attempt on time. The coordinator caps it at its own session timeout.
 */
export function scheduledJoinTimeoutMs(now: number, dueAt: number, slotMs: number, attempt: number): number {
  const slotEnd = attemptStart(dueAt, slotMs, attempt + 1);
  return slotEnd - Math.min(1000, Math.floor(slotMs / 10)) - now;
}

/** One line, printable ASCII, short: what may go into key info and logs as a failure reason. */
function reasonOf(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' && /^[A-Z_]{1,40}$/.test(err.code) ? err.code : 'ERROR';
  const message = typeof err?.message === 'string' ? err.message.replace(/[^\x20-\x7e]+/g, ' ').slice(0, 200) : '';
  // SessionAbortedError messages already start with their reason (e.g. "EXPIRED: ...").
  return message ? (/^[A-Z_]{2,40}: /.test(message) ? message : `${code}: ${message}`) : code;
}

const versionKey = (tenant: string, keyId: string, version: number): string => `${tenant}/${keyId}/${version}`;

/**
 * This node's record of due rotations that have not happened yet, per key version: what key info shows
 * as rotation {status: 'overdue', ...}. In memory (it describes the running node); forgotten once the
 * version rotated or is no longer due.
 */
export class RotationAttempts implements RotationAttemptLookup {
  private readonly byVersion = new Map<string, RotationAttemptRecord>();

  get(tenant: string, keyId: string, version: number): RotationAttemptRecord | undefined {
    return this.byVersion.get(versionKey(tenant, keyId, version));
  }

  /** An attempt began (the reason of the previous failure, if any, stays until this one ends). */
  started(tenant: string, keyId: string, version: number, at: number, nextAttemptAt: number): void {
    const cur = this.get(tenant, keyId, version);
    this.byVersion.set(versionKey(tenant, keyId, version), {
      attempts: (cur?.attempts ?? 0) + 1,
      lastAttemptAt: at,
      ...(cur?.lastError !== undefined ? { lastError: cur.lastError } : {}),
      nextAttemptAt,
    });
  }

  failed(tenant: string, keyId: string, version: number, reason: string, nextAttemptAt?: number): void {
    const cur = this.get(tenant, keyId, version);
    this.byVersion.set(versionKey(tenant, keyId, version), {
      attempts: cur?.attempts ?? 0,
      ...(cur?.lastAttemptAt !== undefined ? { lastAttemptAt: cur.lastAttemptAt } : {}),
      lastError: reason,
      ...(nextAttemptAt !== undefined ? { nextAttemptAt } : cur?.nextAttemptAt !== undefined ? { nextAttemptAt: cur.nextAttemptAt } : {}),
    });
  }

  /** Keep only the versions in `due` (the others rotated or stopped being due). */
  retain(due: ReadonlySet<string>): void {
    for (const k of [...this.byVersion.keys()]) if (!due.has(k)) this.byVersion.delete(k);
  }
}

export class RotationScheduler {
  private timer: ReturnType<typeof setInterval> | undefined;
  private wake: ReturnType<typeof setTimeout> | undefined;
  private ticking: Promise<void> | undefined;
  private readonly warned = new Set<string>();
  private readonly noSecretLogged = new Set<string>();
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  readonly attempts: RotationAttempts;
  private stopped = false;
  private running = false;
  private again = false;

  constructor(private readonly o: RotationSchedulerOptions) {
    this.now = o.now ?? Date.now;
    this.attempts = o.attempts ?? new RotationAttempts();
    ensure(Number.isSafeInteger(o.retryMs) && o.retryMs >= 1000, ErrorCode.BadInput, 'scheduler: retryMs must be an integer >= 1000');
    if (o.scheduleSecret !== undefined) {
      ensure(o.scheduleSecret instanceof Uint8Array && o.scheduleSecret.length === SCHEDULE_SECRET_LENGTH, ErrorCode.BadInput, 'scheduler: the schedule secret must be 32 bytes');
    }
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.running = true;
    this.timer = setInterval(() => void this.tick(), this.o.checkIntervalMs);
    this.timer.unref();
    void this.tick();
  }

  /** Stop ticking and wait for the rotations in flight to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.wake) clearTimeout(this.wake);
    this.timer = undefined;
    this.wake = undefined;
    await this.ticking;
    await Promise.allSettled([...this.inFlight.values()]);
  }

  /** One look at the plan (never two at once: a tick asked for meanwhile runs right after). */
  tick(): Promise<void> {
    if (this.stopped) return this.ticking ?? Promise.resolve();
    if (this.ticking) {
      this.again = true;
      return this.ticking;
    }
    this.ticking = (async () => {
      do {
        this.again = false;
        await this.check();
      } while (this.again && !this.stopped);
    })().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async check(): Promise<void> {
    const { logger } = this.o;
    try {
      const now = this.now();
      const all = await this.o.store.listAll();
      const plan = rotationPlan(all, now, this.o.warnBeforeMs);
      const highest = new Map<string, number>();
      for (const r of all) highest.set(`${r.tenant}/${r.keyId}`, Math.max(highest.get(`${r.tenant}/${r.keyId}`) ?? 0, r.version));
      let nextEvent = Infinity;

      for (const w of plan.warning) {
        nextEvent = Math.min(nextEvent, w.dueAt);
        const id = versionKey(w.tenant, w.keyId, w.version);
        if (this.warned.has(id)) continue;
        this.warned.add(id);
        logger.warn({ tenant: w.tenant, keyId: w.keyId, version: w.version, dueAt: new Date(w.dueAt).toISOString() }, 'key rotation due soon');
        await this.o.audit
          .append({
            tenant: w.tenant,
            actor: SCHEDULER_ACTOR,
            operation: 'rotation.warning',
            keyId: w.keyId,
            version: w.version,
            outcome: 'ok',
            severity: 'warning',
            reason: `rotation due at ${new Date(w.dueAt).toISOString()}`,
          })
          .catch((e: Error) => logger.error({ err: { message: e.message } }, 'cannot audit the rotation warning'));
      }

      this.attempts.retain(new Set(plan.due.map((d) => versionKey(d.tenant, d.keyId, d.version))));
      for (const d of plan.due) {
        const keyRef = `${d.tenant}/${d.keyId}`;
        const attempt = rotationAttempt(now, d.dueAt, this.o.retryMs);
        const nextAttemptAt = attemptStart(d.dueAt, this.o.retryMs, attempt + 1);
        nextEvent = Math.min(nextEvent, nextAttemptAt);
        if (this.stopped || this.inFlight.has(keyRef)) continue;
        if (!this.o.scheduleSecret) {
          const reason = 'no cluster scheduling secret is configured (scheduleSecret / TESSERA_SCHEDULE_SECRET): keys do not rotate on schedule';
          this.attempts.failed(d.tenant, d.keyId, d.version, reason);
          if (!this.noSecretLogged.has(keyRef)) {
            this.noSecretLogged.add(keyRef);
            logger.error({ tenant: d.tenant, keyId: d.keyId, version: d.version, dueAt: new Date(d.dueAt).toISOString() }, `key rotation due but not started: ${reason}`);
          }
          continue;
        }
        const joinTimeoutMs = scheduledJoinTimeoutMs(now, d.dueAt, this.o.retryMs, attempt);
        if (joinTimeoutMs < MIN_ATTEMPT_MS) continue; // too late in this slot: the wake timer brings the next one
        const ref: ScheduledRotationRef = { tenant: d.tenant, keyId: d.keyId, version: d.version, nextVersion: (highest.get(keyRef) ?? d.version) + 1, attempt };
        const run = this.attempt(ref, d.dueAt, now, joinTimeoutMs, nextAttemptAt).finally(() => this.inFlight.delete(keyRef));
        this.inFlight.set(keyRef, run);
      }
      this.arm(nextEvent, now);
    } catch (e) {
      logger.warn({ err: { message: (e as Error).message } }, 'rotation check failed');
    }
  }

  /** Join attempt `ref.attempt` unless this node joined it (or a later one) before. */
  private async attempt(ref: ScheduledRotationRef, dueAt: number, now: number, joinTimeoutMs: number, nextAttemptAt: number): Promise<void> {
    const { logger } = this.o;
    const { tenant, keyId, version } = ref;
    const recordKey = `joined/${tenant}/${keyId}/${version}/${ref.nextVersion}`;
    try {
      const raw = await this.o.records.get(recordKey);
      const joined = raw && raw.length === 8 ? Number(Buffer.from(raw).readBigUInt64BE()) : -1;
      if (joined >= ref.attempt) return; // this attempt's id was used here already
      // Recorded before joining: a crash after the join must not lead to joining the same id again.
      await this.o.records.put(recordKey, i2osp(ref.attempt, 8), { sync: true });
    } catch (e) {
      const reason = `cannot record the attempt: ${reasonOf(e)}`;
      this.attempts.failed(tenant, keyId, version, reason, nextAttemptAt);
      logger.error({ tenant, keyId, version, attempt: ref.attempt }, `scheduled rotation not started: ${reason}`);
      return;
    }
    const session = scheduledRotationSessionId(this.o.scheduleSecret!, ref);
    this.attempts.started(tenant, keyId, version, now, nextAttemptAt);
    logger.warn(
      { tenant, keyId, version, attempt: ref.attempt, dueAt: new Date(dueAt).toISOString(), session: toHex(session) },
      'key rotation due: rotating',
    );
    try {
      const r = await this.o.service.rotateScheduled(tenant, keyId, version, session, joinTimeoutMs);
      logger.info({ tenant, keyId, version: r.version, previousVersion: r.previousVersion, attempt: ref.attempt }, 'scheduled rotation done');
    } catch (e) {
      const reason = reasonOf(e);
      this.attempts.failed(tenant, keyId, version, reason, nextAttemptAt);
      logger.warn(
        { tenant, keyId, version, attempt: ref.attempt, dueAt: new Date(dueAt).toISOString(), nextAttemptAt: new Date(nextAttemptAt).toISOString(), reason },
        'scheduled rotation failed; trying again at the next attempt',
      );
    }
  }

  /**
   * Once started, tick again exactly when the next warned version turns due or the next attempt begins
   * (on this node's clock), so every node joins an attempt at its start rather than at its next
   * periodic check. (Ticks driven by hand, as in unit tests, arm nothing.)
   */
  private arm(at: number, now: number): void {
    if (this.wake) clearTimeout(this.wake);
    this.wake = undefined;
    if (this.stopped || !this.running || !Number.isFinite(at)) return;
    const delay = Math.min(Math.max(1, at - now), 2 ** 31 - 1);
    this.wake = setTimeout(() => {
      this.wake = undefined;
      void this.tick();
    }, delay);
    this.wake.unref();
  }
}
