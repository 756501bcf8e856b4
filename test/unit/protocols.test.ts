/**
 * node/sessions/protocols.ts drivers over real end-to-end channels (node/sessions/channel.ts) and an in-memory relay:
 * DKG among all n, then the signing session with a subset, every node binding the same run id.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { generateIdentity, loadIdentityEngine } from '../../core/identity.js';
import { getSigningSuite } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { SessionChannel, type RelayLink } from '../../node/sessions/channel.js';
import { runDkg, runSign, type DriverContext } from '../../node/sessions/protocols.js';
import { pairKeysOf } from '../helpers/pair-keys.js';

/** Relay messages between nodes in memory, in order, through one queue per receiver. */
class MemoryRelay {
  private readonly queues = new Map<number, { from: number; payload: Uint8Array }[]>();
  private readonly waiters = new Map<number, (m: { from: number; payload: Uint8Array }) => void>();
  private deliver(from: number, to: number, payload: Uint8Array): void {
    const w = this.waiters.get(to);
    if (w) {
      this.waiters.delete(to);
      w({ from, payload });
    } else this.queues.set(to, [...(this.queues.get(to) ?? []), { from, payload }]);
  }
  link(self: number): RelayLink {
    return {
      send: (_s, to, payload) => queueMicrotask(() => this.deliver(self, to, payload)),
      receive: () => {
        const q = this.queues.get(self);
        if (q && q.length) return Promise.resolve(q.shift()!);
        return new Promise((resolve) => this.waiters.set(self, resolve));
      },
    };
  }
}

const ids = [1, 2, 3].map(() => generateIdentity());
const membership = new Map(ids.map((k, i) => [i + 1, k.publicKey] as const));

async function inSession<T>(players: number[], body: (ctx: DriverContext) => Promise<T>): Promise<Map<number, T>> {
  const relay = new MemoryRelay();
  const session = randomBytes(16);
  const runId = randomBytes(32);
  const results = await Promise.all(
    players.map(async (self) => {
      const channel = new SessionChannel({ session, self, players, identity: ids[self - 1]!, membership, link: relay.link(self), pairKeys: pairKeysOf(self) });
      try {
        await channel.open();
        return [self, await body({ session, runId, self, players, channel, identity: ids[self - 1]!, membership })] as const;
      } finally {
        channel.close();
      }
    }),
  );
  return new Map(results);
}

describe('protocol drivers over end-to-end channels', () => {
  it('DKG among 3, then signing sessions with {1,3} and {1,2,3}: one valid signature each', async () => {
    await loadIdentityEngine();
    const keys = await inSession([1, 2, 3], (ctx) => runDkg(ctx, 'ed25519', 2));
    const key = (i: number): KeyShare => keys.get(i)!;
    const suite = getSigningSuite('ed25519');
    const message = randomBytes(40);
    for (const players of [[1, 3], [1, 2, 3]]) {
      const sigs = await inSession(players, (ctx) => runSign(ctx, key(ctx.self), message));
      const hexes = new Set([...sigs.values()].map((s) => Buffer.from(s).toString('hex')));
      expect(hexes.size).toBe(1);
      const sig = [...sigs.values()][0]!;
      expect(suite.verify(sig, message, suite.publicKeyBytes(suite.group.pointFromBytes(key(1).publicKey.commitments[0]!, 'Y')))).toBe(true);
    }
  }, 60_000);
});
