/**
 * The sessions this node runs right now, for the operator console (GET /v1/admin/console/sessions).
 *
 * Every session passes through SessionEngine.run (node/sessions/engine.ts); node/service.ts wraps that
 * one method with track() so that a session is listed from the moment this node begins it (before its
 * join, while it waits for the other players) until it ends, however it ends. Only public parameters
 * are kept: the session id, operation, tenant, key id and version, suite and players (what the audit
 * log records too), never a payload or anything of the key's.
 */
import { toHex } from '../core/bytes.js';
import type { SessionParams } from '../core/session.js';
import type { SessionInFlight } from '../contract/console.js';
import type { SessionEngine } from './sessions/engine.js';

export class SessionsInFlight {
  private readonly running = new Map<object, SessionInFlight>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Run `fn` as the session `session` with `params`: listed while it runs. */
  async track<T>(session: Uint8Array, params: SessionParams, fn: () => Promise<T>): Promise<T> {
    const token = {};
    this.running.set(token, {
      sessionId: toHex(session),
      operation: params.operation,
      tenant: params.tenant,
      keyId: params.keyId,
      version: params.version,
      suite: params.suite,
      players: [...params.players].sort((a, b) => a - b),
      startedAt: this.now(),
    });
    try {
      return await fn();
    } finally {
      this.running.delete(token);
    }
  }

  /** Make every session `engine` runs from now on a tracked one (node/service.ts calls this once). */
  instrument(engine: Pick<SessionEngine, 'run'>): void {
    const run = engine.run.bind(engine);
    engine.run = (spec, body) => this.track(spec.session, spec.params, () => run(spec, body));
  }

  /** The sessions running now, oldest first (copies). */
  list(): SessionInFlight[] {
    return [...this.running.values()].sort((a, b) => a.startedAt - b.startedAt).map((s) => ({ ...s, players: [...s.players] }));
  }

  get size(): number {
    return this.running.size;
  }
}
