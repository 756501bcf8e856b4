import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { generateIdentity, type IdentityKeyPair } from '../../core/identity.js';
import { unpack } from 'msgpackr';
import { ChannelError, SessionChannel } from '../../node/sessions/channel.js';
import { MemoryRelay } from '../helpers/memory-relay.js';
import { pairKeysOf } from '../helpers/pair-keys.js';
import { PairKeys } from '../../node/sessions/pair-keys.js';


const ids: IdentityKeyPair[] = [1, 2, 3].map(() => generateIdentity());
const membership = new Map(ids.map((k, i) => [i + 1, k.publicKey] as const));

function channels(relay: MemoryRelay, session = randomBytes(16)) {
  return [1, 2, 3].map(
    (self) => new SessionChannel({ session, self, players: [1, 2, 3], identity: ids[self - 1]!, membership, link: relay.link(self), pairKeys: pairKeysOf(self) }),
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

// ---------------------------------------------------------------------------------------------
// Blame, bounded resources and the session digest (issue 9: relay faults name no node; a flood or
// an unexpected round names the signer; nodes with different parameters never run a round).

type ChannelOpts = Partial<Pick<ConstructorParameters<typeof SessionChannel>[0], 'rounds' | 'maxMessages' | 'maxBytes' | 'digest'>>;

function channelsWith(relay: MemoryRelay, opts: (self: number) => ChannelOpts, players = [1, 2, 3], session = randomBytes(16)) {
  return players.map(
    (self) => new SessionChannel({ session, self, players, identity: ids[self - 1]!, membership, link: relay.link(self), pairKeys: pairKeysOf(self), ...opts(self) }),
  );
}

/** The error a promise rejects with (fails the test if it resolves or hangs). */
async function failureOf(p: Promise<unknown>): Promise<ChannelError> {
  const e = await withTimeout(p).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected the session to fail').toBeInstanceOf(ChannelError);
  return e as ChannelError;
}

const isHello = (payload: Uint8Array) => (unpack(payload) as { k: string }).k === 'hello';

describe('a tampering or replaying relay never gets a node named', () => {
  const relayAttacks: [string, (relay: MemoryRelay) => void][] = [
    [
      'flips a bit',
      (relay) =>
        (relay.tamper = (from, to, payload) => {
          if (from !== 1 || to !== 2) return [{ from, to, payload }];
          const p = Uint8Array.from(payload);
          p[p.length - 40]! ^= 1;
          return [{ from, to, payload: p }];
        }),
    ],
    ['truncates a message', (relay) => (relay.tamper = (from, to, payload) => [{ from, to, payload: from === 1 && to === 2 ? payload.slice(0, 20) : payload }])],
    ['sends garbage', (relay) => (relay.tamper = (from, to, payload) => [{ from, to, payload: from === 1 && to === 2 ? randomBytes(300) : payload }])],
    ['relays a message as if another node sent it', (relay) => (relay.tamper = (from, to, payload) => [{ from: from === 1 && to === 2 ? 3 : from, to, payload }])],
    ['delivers a message addressed to another node', (relay) => (relay.tamper = (from, to, payload) => [{ from, to: from === 1 && to === 3 ? 2 : to, payload }])],
    ['replays every message', (relay) => (relay.tamper = (from, to, payload) => [{ from, to, payload }, { from, to, payload }])],
    [
      'reorders two messages',
      (relay) => {
        let held: Uint8Array | undefined;
        relay.tamper = (from, to, payload) => {
          if (from !== 1 || to !== 2) return [{ from, to, payload }];
          if (!held) return (held = payload), [];
          return [{ from, to, payload }, { from, to, payload: held }];
        };
      },
    ],
  ];
  for (const [name, install] of relayAttacks) {
    it(`fails with no culprit when it ${name}`, async () => {
      const relay = new MemoryRelay();
      const ch = channelsWith(relay, () => ({ rounds: ['r1', 'r2'] }));
      await Promise.all(ch.map((c) => c.open()));
      install(relay);
      ch[0]!.send(2, 'r1', Uint8Array.of(1));
      ch[0]!.send(2, 'r2', Uint8Array.of(2));
      ch[0]!.send(3, 'r1', Uint8Array.of(1));
      ch[2]!.send(2, 'r1', Uint8Array.of(3));
      const e = await failureOf(Promise.all([ch[1]!.receiveAll('r1', [1, 3]), ch[1]!.receive(1, 'r2')]));
      expect(e.culprits).toEqual([]);
      expect(e.message).toMatch(/relay fault on the link from node \d/);
      expect(e.relayFrom).toBeTypeOf('number');
      ch.forEach((c) => c.close());
    });
  }

  it('a replayed hello names nobody', async () => {
    const relay = new MemoryRelay();
    relay.tamper = (from, to, payload) => [{ from, to, payload }, { from, to, payload }];
    const ch = channelsWith(relay, () => ({}));
    const e = await failureOf(Promise.all(ch.map((c) => c.open())));
    expect(e.culprits).toEqual([]);
    expect(e.message).toMatch(/replayed/);
    ch.forEach((c) => c.close());
  });

  it('a message moved into another session names nobody', async () => {
    const relayA = new MemoryRelay();
    const relayB = new MemoryRelay();
    const a = channelsWith(relayA, () => ({}));
    const b = channelsWith(relayB, () => ({}));
    await Promise.all([...a, ...b].map((c) => c.open()));
    let captured: Uint8Array | undefined;
    relayA.tamper = (_from, _to, payload) => ((captured = payload), []);
    a[0]!.send(2, 'r1', Uint8Array.of(1));
    await new Promise((r) => setTimeout(r, 10));
    relayB.deliver(1, 2, captured!);
    const e = await failureOf(b[1]!.receive(1, 'r1'));
    expect(e.culprits).toEqual([]);
    [...a, ...b].forEach((c) => c.close());
  });
});

describe('signed misbehaviour names the signer', () => {
  it('a message under a round the protocol does not run names its sender', async () => {
    const relay = new MemoryRelay();
    // Node 1 runs a protocol with an extra round; nodes 2 and 3 expect only r1.
    const ch = channelsWith(relay, (self) => ({ rounds: self === 1 ? ['r1', 'not-a-round'] : ['r1'] }));
    await Promise.all(ch.map((c) => c.open()));
    ch[0]!.send(2, 'not-a-round', Uint8Array.of(1));
    const e = await failureOf(ch[1]!.receive(1, 'r1'));
    expect(e.culprits).toEqual([1]);
    expect(e.message).toMatch(/node 1 signed a message for round not-a-round/);
    // The local side refuses undeclared rounds outright.
    expect(() => ch[2]!.send(1, 'not-a-round', Uint8Array.of(1))).toThrow(/not one this protocol runs/);
    await expect(ch[2]!.receive(1, 'not-a-round')).rejects.toThrow(/not one this protocol runs/);
    ch.forEach((c) => c.close());
  });

  it('a flood of distinct signed messages fails the session naming the flooder, and reading stops there', async () => {
    const relay = new MemoryRelay();
    const maxMessages = 10;
    const ch = channelsWith(relay, (self) => (self === 2 ? { maxMessages } : {}), [1, 2]);
    await Promise.all(ch.map((c) => c.open()));
    const sent = 40;
    for (let i = 0; i < sent; i++) ch[0]!.send(2, `flood-${i}`, randomBytes(64));
    const e = await failureOf(ch[1]!.receive(1, `flood-${sent - 1}`));
    expect(e.culprits).toEqual([1]);
    expect(e.message).toMatch(/more than 10 messages/);
    await new Promise((r) => setTimeout(r, 20));
    // Bounded memory: the channel read the hello and maxMessages - 1 messages plus the one over the
    // cap, and nothing after it; the rest stays with the relay (which the link bounds separately).
    expect(relay.queues.get(2)?.length).toBe(sent - maxMessages);
    ch.forEach((c) => c.close());
  });

  it('oversized messages fail the session naming the sender', async () => {
    const relay = new MemoryRelay();
    const ch = channelsWith(relay, (self) => (self === 2 ? { maxBytes: 64 * 1024 } : {}), [1, 2]);
    await Promise.all(ch.map((c) => c.open()));
    ch[0]!.send(2, 'big', new Uint8Array(100 * 1024).fill(9));
    const e = await failureOf(ch[1]!.receive(1, 'big'));
    expect(e.culprits).toEqual([1]);
    expect(e.message).toMatch(/more than 65536 bytes/);
    ch.forEach((c) => c.close());
  });

  it('a replaying relay cannot push an honest node over its cap', async () => {
    const relay = new MemoryRelay();
    // Node 1 sends exactly the cap; the relay doubles each message.
    const ch = channelsWith(relay, (self) => (self === 2 ? { maxMessages: 3 } : {}), [1, 2]);
    await Promise.all(ch.map((c) => c.open()));
    relay.tamper = (from, to, payload) => [{ from, to, payload }, { from, to, payload }];
    ch[0]!.send(2, 'a', Uint8Array.of(1));
    ch[0]!.send(2, 'b', Uint8Array.of(2));
    const e = await failureOf(Promise.all([ch[1]!.receive(1, 'a'), ch[1]!.receive(1, 'b')]).then(() => ch[1]!.receive(1, 'c')));
    expect(e.culprits).toEqual([]);
    expect(e.message).toMatch(/replayed/);
    ch.forEach((c) => c.close());
  });

  it('two different messages a node signed for one round name it', async () => {
    const relay = new MemoryRelay();
    const session = randomBytes(16);
    const ch = channelsWith(relay, () => ({}), [1, 2], session);
    // A second channel holding node 1's identity: it signs its own message for the same round.
    let twinInbox: ((m: { from: number; payload: Uint8Array }) => void) | undefined;
    const twinQueue: { from: number; payload: Uint8Array }[] = [];
    relay.tamper = (from, to, payload) => {
      if (from === 2 && to === 1 && isHello(payload)) {
        const m = { from, payload };
        if (twinInbox) twinInbox(m);
        else twinQueue.push(m);
      }
      return [{ from, to, payload }];
    };
    const twin = new SessionChannel({
      session,
      self: 1,
      players: [1, 2],
      identity: ids[0]!,
      membership,
      // The twin is another process with node 1's identity: its own pair keys.
      pairKeys: new PairKeys({ self: 1, sweepIntervalMs: 0 }),
      link: {
        send: (_s, to, payload) => {
          if (!isHello(payload)) queueMicrotask(() => relay.deliver(1, to, payload));
        },
        receive: () => (twinQueue.length ? Promise.resolve(twinQueue.shift()!) : new Promise((r) => (twinInbox = r))),
      },
    });
    await Promise.all([...ch.map((c) => c.open()), twin.open()]);
    ch[0]!.send(2, 'r1', Uint8Array.of(1));
    twin.send(2, 'r1', Uint8Array.of(2));
    const e = await failureOf(ch[1]!.receive(1, 'r1').then(() => ch[1]!.receive(1, 'r2')));
    expect(e.culprits).toEqual([1]);
    expect(e.message).toMatch(/two different messages for round r1/);
    // And a node never signs two messages for one round itself.
    expect(() => ch[0]!.send(2, 'r1', Uint8Array.of(3))).toThrow(/already sent round r1/);
    [...ch, twin].forEach((c) => c.close());
  });
});

describe('the session digest is signed into the hellos', () => {
  it('nodes with the same digest run; a node with another digest fails the session with no culprit', async () => {
    const d = randomBytes(32);
    const relay = new MemoryRelay();
    const same = channelsWith(relay, () => ({ digest: d }));
    await Promise.all(same.map((c) => c.open()));
    same[0]!.send(2, 'r1', Uint8Array.of(5));
    expect([...(await same[1]!.receive(1, 'r1'))]).toEqual([5]);
    same.forEach((c) => c.close());

    const relay2 = new MemoryRelay();
    const other = randomBytes(32);
    const ch = channelsWith(relay2, (self) => ({ digest: self === 3 ? other : d }));
    const results = await Promise.all(ch.map((c) => withTimeout(c.open()).then(() => undefined, (e: unknown) => e)));
    for (const r of results) expect(r).toBeInstanceOf(ChannelError);
    const e1 = results[0] as ChannelError;
    expect(e1.culprits).toEqual([]);
    expect(e1.code).toBe('BAD_PARAMETERS');
    expect(e1.message).toMatch(/node [23] joined this session with different parameters/);
    expect((results[2] as ChannelError).culprits).toEqual([]);
    ch.forEach((c) => c.close());
  });

  it('a hello without a digest does not pass where one is expected, and bad options are refused', async () => {
    const relay = new MemoryRelay();
    const ch = channelsWith(relay, (self) => (self === 1 ? {} : { digest: new Uint8Array(32).fill(7) }), [1, 2]);
    const opened = ch[0]!.open().catch(() => undefined);
    const e = await failureOf(ch[1]!.open());
    await opened;
    expect(e.culprits).toEqual([]);
    ch.forEach((c) => c.close());
    const base = { session: randomBytes(16), self: 1, players: [1, 2], identity: ids[0]!, membership, link: relay.link(1), pairKeys: pairKeysOf(1) };
    expect(() => new SessionChannel({ ...base, digest: new Uint8Array(31) })).toThrow(/digest must be 32 bytes/);
    expect(() => new SessionChannel({ ...base, rounds: ['r1', 'r1'] })).toThrow(/twice/);
    expect(() => new SessionChannel({ ...base, rounds: ['hello'] })).toThrow(/bad round name/);
    expect(() => new SessionChannel({ ...base, maxMessages: 0 })).toThrow(/maxMessages/);
    expect(() => new SessionChannel({ ...base, maxBytes: 1.5 })).toThrow(/maxBytes/);
  });
});
