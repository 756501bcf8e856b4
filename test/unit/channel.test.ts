import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { generateIdentity, type IdentityKeyPair } from '../../core/identity.js';
import { SessionChannel, type RelayLink } from '../../node/channel.js';

/** An in-memory relay with a hook that lets a test play a malicious coordinator. */
class MemoryRelay {
  queues = new Map<number, { from: number; payload: Uint8Array }[]>();
  waiters = new Map<number, (m: { from: number; payload: Uint8Array }) => void>();
  tamper: (from: number, to: number, payload: Uint8Array) => { from: number; to: number; payload: Uint8Array }[] = (
    from,
    to,
    payload,
  ) => [{ from, to, payload }];
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
      send: (_s, to, payload) => queueMicrotask(() => this.deliver(self, to, payload)),
      receive: () => {
        const q = this.queues.get(self);
        if (q && q.length) return Promise.resolve(q.shift()!);
        return new Promise((resolve) => this.waiters.set(self, resolve));
      },
    };
  }
}

const ids: IdentityKeyPair[] = [1, 2, 3].map(() => generateIdentity());
const membership = new Map(ids.map((k, i) => [i + 1, k.publicKey] as const));

function channels(relay: MemoryRelay, session = randomBytes(16)) {
  return [1, 2, 3].map(
    (self) => new SessionChannel({ session, self, players: [1, 2, 3], identity: ids[self - 1]!, membership, link: relay.link(self) }),
  );
}

const withTimeout = <T>(p: Promise<T>, ms = 3000) =>
  Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), ms))]);

describe('end-to-end node channel', () => {
  it('delivers hello info and round messages between every pair', async () => {
    const relay = new MemoryRelay();
    const ch = channels(relay);
    const infos = await Promise.all(ch.map((c, i) => c.open(Uint8Array.of(i + 1))));
    expect([...infos[0]!.entries()].map(([k, v]) => [k, v[0]])).toEqual([
      [2, 2],
      [3, 3],
    ]);
    ch[0]!.broadcast('r1', Uint8Array.of(7, 7));
    ch[1]!.send(3, 'r1', Uint8Array.of(9));
    expect([...(await ch[1]!.receive(1, 'r1'))]).toEqual([7, 7]);
    expect([...(await ch[2]!.receive(1, 'r1'))]).toEqual([7, 7]);
    expect([...(await ch[2]!.receive(2, 'r1'))]).toEqual([9]);
    ch.forEach((c) => c.close());
  });

  it('the coordinator never sees the plaintext', async () => {
    const relay = new MemoryRelay();
    const seen: Uint8Array[] = [];
    relay.tamper = (from, to, payload) => (seen.push(payload), [{ from, to, payload }]);
    const ch = channels(relay);
    await Promise.all(ch.map((c) => c.open()));
    const secret = randomBytes(32);
    ch[0]!.send(2, 'r1', secret);
    await ch[1]!.receive(1, 'r1');
    const hex = Buffer.from(secret).toString('hex');
    expect(seen.some((p) => Buffer.from(p).toString('hex').includes(hex))).toBe(false);
    ch.forEach((c) => c.close());
  });

  const attacks: [string, (relay: MemoryRelay) => void][] = [
    [
      'a flipped bit',
      (relay) =>
        (relay.tamper = (from, to, payload) => {
          if (from === 1 && to === 2 && payload.length > 4000) {
            const p = Uint8Array.from(payload);
            p[p.length - 40]! ^= 1;
            return [{ from, to, payload: p }];
          }
          return [{ from, to, payload }];
        }),
    ],
    [
      'a message relayed as if from another node',
      (relay) =>
        (relay.tamper = (from, to, payload) =>
          from === 3 && to === 2 && payload.length > 4000 ? [{ from: 1, to, payload }] : [{ from, to, payload }]),
    ],
  ];
  for (const [name, install] of attacks) {
    it(`rejects ${name} and fails the session instead of delivering it`, async () => {
      const relay = new MemoryRelay();
      const ch = channels(relay);
      await Promise.all(ch.map((c) => c.open()));
      install(relay);
      ch[0]!.send(2, 'r1', Uint8Array.of(1));
      ch[2]!.send(2, 'r1', Uint8Array.of(3));
      await expect(withTimeout(ch[1]!.receiveAll('r1', [1, 3]))).rejects.toThrow(/channel:/);
      ch.forEach((c) => c.close());
    });
  }

  it('rejects a replayed message: the session fails at its next receive', async () => {
    const relay = new MemoryRelay();
    const ch = channels(relay);
    await Promise.all(ch.map((c) => c.open()));
    relay.tamper = (from, to, payload) => (from === 1 && to === 2 ? [{ from, to, payload }, { from, to, payload }] : [{ from, to, payload }]);
    ch[0]!.send(2, 'r1', Uint8Array.of(1));
    expect([...(await ch[1]!.receive(1, 'r1'))]).toEqual([1]);
    await expect(withTimeout(ch[1]!.receive(1, 'r2'))).rejects.toThrow(/replayed/);
    ch.forEach((c) => c.close());
  });

  it('rejects a message moved into another session', async () => {
    const relay = new MemoryRelay();
    const a = channels(relay);
    const relay2 = new MemoryRelay();
    const b = channels(relay2);
    await Promise.all([...a.map((c) => c.open()), ...b.map((c) => c.open())]);
    // Capture a message of session A and inject it into session B at node 2.
    let captured: Uint8Array | undefined;
    relay.tamper = (from, to, payload) => ((captured = payload), []);
    a[0]!.send(2, 'r1', Uint8Array.of(1));
    await new Promise((r) => setTimeout(r, 10));
    relay2.deliver(1, 2, captured!);
    await expect(withTimeout(b[1]!.receive(1, 'r1'))).rejects.toThrow(/signature/);
    [...a, ...b].forEach((c) => c.close());
  });
});
