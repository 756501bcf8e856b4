/**
 * Key rotation on schedule. Each node runs this scheduler over its own store: every `checkIntervalMs`
 * it computes node/lifecycle.ts rotationPlan (the newest active version of each key that carries a
 * rotation period), and
 *   - warns once per version, before it is due (log line at warn level, audit entry 'rotation.warning';
 *     GET /v1/keys/:keyId shows rotation {status: 'warning', dueAt} meanwhile);
 *   - rotates a due version through NodeService.rotateScheduled, the same rotate session an SDK
 *     starts (policy, state checks, audit, DKG of all n nodes, old version retired).
 *
 * How the nodes meet without an SDK: a scheduled rotation is the one session nobody asks for, so each
 * node derives its session id from what all of them know, the key (tenant, key id, version due) and
 * the current retry window (floor(now / retryMs)). Nodes whose clocks agree to well within a window
 * join the same session; if one of them is down or lands in the next window, the session expires and
 * every node tries again in the next window under a new id. A node waits for the others until a little
 * after its window ends (scheduledJoinTimeoutMs), so one that joined late in a window is free to join
 * the next window's session while the nodes that are already there still wait for it. Its authority is the rotation period,
 * which every operator's SDK approved when the key was created (it is in the keygen session digest).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { Logger } from 'pino';
import { framed, i2osp, toHex, utf8ToBytes } from '../core/bytes.js';
import { SESSION_ID_LENGTH } from '../core/session.js';
import type { AuditLog } from './audit.js';
import { rotationPlan } from './lifecycle.js';
import { SCHEDULER_ACTOR, type NodeService } from './service.js';
import type { ShareStore } from './storage.js';

export interface RotationSchedulerOptions {
  readonly store: ShareStore;
  readonly service: Pick<NodeService, 'rotateScheduled'>;
  readonly audit: AuditLog;
  readonly logger: Logger;
  readonly checkIntervalMs: number;
  readonly retryMs: number;
  readonly warnBeforeMs?: number;
  readonly now?: () => number;
}

/** The session id every node's scheduler uses for rotating (tenant, keyId, version) in retry window `window`. */
export function scheduledRotationSessionId(tenant: string, keyId: string, version: number, window: number): Uint8Array {
  return sha256(framed(utf8ToBytes('tessera/scheduled-rotation/v1'), utf8ToBytes(tenant), utf8ToBytes(keyId), i2osp(version, 4), i2osp(window, 8))).slice(
    0,
    SESSION_ID_LENGTH,
  );
}

/**
 * How long a node waits in a scheduled rotation session: to the end of its window plus a grace (half a
 * window, at most 10 s) for the DKG to finish; the coordinator caps it at its own session timeout.
 */
export function scheduledJoinTimeoutMs(now: number, retryMs: number): number {
  const windowEnd = (Math.floor(now / retryMs) + 1) * retryMs;
  return Math.max(1000, windowEnd - now) + Math.min(10_000, Math.floor(retryMs / 2));
}

export class RotationScheduler {
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking: Promise<void> | undefined;
  private readonly warned = new Set<string>();
  /** tenant/keyId/version/window already tried on this node (a session id can be joined once). */
  private readonly attempted = new Set<string>();
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly o: RotationSchedulerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.o.checkIntervalMs);
    this.timer.unref();
    void this.tick();
  }

  /** Stop ticking and wait for the rotations in flight to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await Promise.allSettled([...this.inFlight.values()]);
  }

  /** One look at the plan (never two at once). */
  tick(): Promise<void> {
    if (this.ticking || this.stopped) return this.ticking ?? Promise.resolve();
    this.ticking = this.check().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async check(): Promise<void> {
    const { logger } = this.o;
    try {
      const now = this.now();
      const plan = rotationPlan(await this.o.store.listAll(), now, this.o.warnBeforeMs);
      for (const w of plan.warning) {
        const id = `${w.tenant}/${w.keyId}/${w.version}`;
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
      const window = Math.floor(now / this.o.retryMs);
      for (const key of [...this.attempted]) if (Number(key.slice(key.lastIndexOf('/') + 1)) < window) this.attempted.delete(key);
      for (const d of plan.due) {
        const keyRef = `${d.tenant}/${d.keyId}`;
        const attempt = `${keyRef}/${d.version}/${window}`;
        if (this.inFlight.has(keyRef) || this.attempted.has(attempt) || this.stopped) continue;
        this.attempted.add(attempt);
        const session = scheduledRotationSessionId(d.tenant, d.keyId, d.version, window);
        logger.warn(
          { tenant: d.tenant, keyId: d.keyId, version: d.version, dueAt: new Date(d.dueAt).toISOString(), session: toHex(session) },
          'key rotation due: rotating',
        );
        const run = this.o.service
          .rotateScheduled(d.tenant, d.keyId, d.version, session, scheduledJoinTimeoutMs(now, this.o.retryMs))
          .then(
            (r) => logger.info({ tenant: d.tenant, keyId: d.keyId, version: r.version, previousVersion: r.previousVersion }, 'scheduled rotation done'),
            (e: { code?: string; message?: string }) =>
              logger.warn({ tenant: d.tenant, keyId: d.keyId, version: d.version, code: e.code, err: { message: e.message } }, 'scheduled rotation failed; retrying in the next window'),
          )
          .finally(() => this.inFlight.delete(keyRef));
        this.inFlight.set(keyRef, run);
      }
    } catch (e) {
      logger.warn({ err: { message: (e as Error).message } }, 'rotation check failed');
    }
  }
}
