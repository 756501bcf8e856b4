/**
 * An in-memory relay between session channels (node/sessions/channel.ts RelayLink) for unit tests:
 * delivers each message in a microtask, logs what every channel handed it, and lets a test play a
 * malicious coordinator through `tamper` (return the messages to deliver instead of the one sent).
 */
import type { RelayLink } from '../../node/sessions/channel.js';

export interface RelayedMessage {
  from: number;
  to: number;
  payload: Uint8Array;
}

export class MemoryRelay {
  queues = new Map<number, { from: number; payload: Uint8Array }[]>();
  waiters = new Map<number, (m: { from: number; payload: Uint8Array }) => void>();
  /** Every message a channel sent, before any tampering. */
  log: RelayedMessage[] = [];
  tamper: (from: number, to: number, payload: Uint8Array) => RelayedMessage[] = (from, to, payload) => [{ from, to, payload }];

  deliver(from: number, to: number, payload: Uint8Array) {
    for (const m of this.tamper(from, to, payload)) {
      const w = this.waiters.get(m.to);
      if (w) {
        this.waiters.delete(m.to);
        w({ from: m.from, payload: m.payload });
      } else {
        const q = this.queues.get(m.to) ?? [];
        q.push({ from: m.from, payload: m.payload });
        this.queues.set(m.to, q);
      }
    }
  }

  link(self: number): RelayLink {
    return {
      send: (_s, to, payload) => {
        this.log.push({ from: self, to, payload });
        queueMicrotask(() => this.deliver(self, to, payload));
      },
      receive: () => {
        const q = this.queues.get(self);
        if (q && q.length) return Promise.resolve(q.shift()!);
        return new Promise((resolve) => this.waiters.set(self, resolve));
      },
    };
  }
}
