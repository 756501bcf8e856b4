/**
 * Long-lived pairwise channels (issue 10, "What to build" 5): one ML-KEM handshake per node pair per
 * rekey period, forward secrecy per period, and counters against replay (node/sessions/pair-keys.ts,
 * node/sessions/channel.ts).
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { unpack } from 'msgpackr';
import { generateIdentity, type IdentityKeyPair } from '../../core/identity.js';
import { ChannelError, SessionChannel } from '../../node/sessions/channel.js';
import { PairKeys, REPLAY_WINDOW, ReplayWindow } from '../../node/sessions/pair-keys.js';
import { MemoryRelay } from '../helpers/memory-relay.js';

const ids: IdentityKeyPair[] = [1, 2, 3].map(() => generateIdentity());
const membership = new Map(ids.map((k, i) => [i + 1, k.publicKey] as const));
const PERIOD = 60_000;

/** Three nodes' pair keys on one test clock. */
function cluster() {
  const clock = { now: 1_000_000 };
  const keys = new Map([1, 2, 3].map((self) => [self, new PairKeys({ self, rekeyPeriodMs: PERIOD, sweepIntervalMs: 0, now: () => clock.now })] as const));
  return { clock, keys };
}

function session(relay: MemoryRelay, keys: ReadonlyMap<number, PairKeys>, players = [1, 2, 3]) {
  const s = randomBytes(16);
  return players.map((self) => new SessionChannel({ session: s, self, players, identity: ids[self - 1]!, membership, link: relay.link(self), pairKeys: keys.get(self)! }));
}

/** Open, send one message from every node to every other, read them all, close. */
async function runSession(relay: MemoryRelay, keys: ReadonlyMap<number, PairKeys>, players = [1, 2, 3]) {
  const ch = session(relay, keys, players);
  try {
    await Promise.all(ch.map((c) => c.open()));
    for (const c of ch) c.broadcast('r1', Uint8Array.of(42));
    await Promise.all(ch.map((c, i) => c.receiveAll('r1', players.filter((p) => p !== players[i]))));
  } finally {
    ch.forEach((c) => c.close());
  }
}

type Env = { k: string; e: Uint8Array; n: Uint8Array; f: number; t: number; r: string };
const decoded = (payload: Uint8Array) => unpack(payload) as Env;

async function failureOf(p: Promise<unknown>): Promise<ChannelError> {
  const e = await Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 3000))]).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected the session to fail').toBeInstanceOf(ChannelError);
  return e as ChannelError;
}

describe('one ML-KEM handshake per node pair per rekey period', () => {
  it('the sessions of one period reuse the period key and the pair keys: no KEM work after the first', async () => {
    const { keys } = cluster();
    const relay = new MemoryRelay();
    await runSession(relay, keys);
    const first = [...keys.values()].map((k) => k.stats());
    // Each node: one period key, one encapsulation toward each of its 2 peers, one decapsulation from each.
    expect(first).toEqual([1, 2, 3].map(() => ({ periodKeys: 1, encapsulations: 2, decapsulations: 2 })));
    const helloKeys = () => relay.log.filter((m) => decoded(m.payload).k === 'hello' && m.from === 1).map((m) => Buffer.from(decoded(m.payload).e).toString('hex'));
    for (let i = 0; i < 4; i++) await runSession(relay, keys);
    expect([...keys.values()].map((k) => k.stats())).toEqual(first);
    // Every hello of node 1 in the period carried the same period public key.
    expect(new Set(helloKeys()).size).toBe(1);
    // Each session direction still carries the pair key's ciphertext on its first message (so a
    // session never depends on another session's messages), the same bytes every time.
    const cts = relay.log.filter((m) => m.from === 1 && m.to === 2 && decoded(m.payload).k === 'data').map((m) => Buffer.from(decoded(m.payload).e).toString('hex'));
    expect(cts).toHaveLength(5);
    expect(new Set(cts).size).toBe(1);
    for (const k of keys.values()) k.close();
  });

  it('a new period makes a new period key and new pair keys, and wipes the old ones once their sessions end', async () => {
    const { clock, keys } = cluster();
    const relay = new MemoryRelay();
    await runSession(relay, keys);
    const probes = [...keys.values()].map((k) => k.wipeProbe());
    expect(probes.every((p) => p.count === 5 && !p.allZero())).toBe(true); // period key + 2 received + 2 sent
    // A session that started in the old period keeps its keys until it ends, even past the period.
    const running = session(relay, keys);
    await Promise.all(running.map((c) => c.open()));
    clock.now += PERIOD;
    for (const k of keys.values()) k.expire();
    expect(probes.every((p) => !p.allZero())).toBe(true);
    running[0]!.send(2, 'r1', Uint8Array.of(1));
    expect([...(await running[1]!.receive(1, 'r1'))]).toEqual([1]);
    running.forEach((c) => c.close());
    for (const k of keys.values()) k.expire();
    // Forward secrecy per period: the old decapsulation key and every pair key of the period are zeros.
    expect(probes.every((p) => p.allZero())).toBe(true);
    // The next session hands out a new period key and handshakes again.
    await runSession(relay, keys);
    // (Node 1's send in the running session, after the period, already took a new pair key toward
    // node 2's old period key: a sending pair key is used for one period at most.)
    expect([...keys.values()].map((k) => k.stats())).toEqual([
      { periodKeys: 2, encapsulations: 5, decapsulations: 4 },
      { periodKeys: 2, encapsulations: 4, decapsulations: 5 },
      { periodKeys: 2, encapsulations: 4, decapsulations: 4 },
    ]);
    const hellos = relay.log.filter((m) => decoded(m.payload).k === 'hello' && m.from === 1 && m.to === 2);
    expect(Buffer.from(decoded(hellos.at(-1)!.payload).e).equals(Buffer.from(decoded(hellos[0]!.payload).e))).toBe(false);
    for (const k of keys.values()) k.close();
  });

  it('a restarted node (no pair keys, a new period key) is keyed afresh by its peers; its counters start again under new keys', async () => {
    const { keys } = cluster();
    const relay = new MemoryRelay();
    await runSession(relay, keys);
    keys.get(1)!.close();
    const restarted = new Map(keys);
    restarted.set(1, new PairKeys({ self: 1, rekeyPeriodMs: PERIOD, sweepIntervalMs: 0 }));
    await runSession(relay, restarted);
    // Peers encapsulated again to node 1's new period key; node 1's counters restarted at 0.
    expect(keys.get(2)!.stats().encapsulations).toBe(3);
    const fromOne = relay.log.filter((m) => m.from === 1 && m.to === 2 && decoded(m.payload).k === 'data').map((m) => Buffer.from(decoded(m.payload).n).readBigUInt64BE(4));
    expect(fromOne).toEqual([0n, 0n]);
    for (const k of restarted.values()) k.close();
  });

  it('closed pair keys wipe everything, and refuse new sessions', async () => {
    const { keys } = cluster();
    const relay = new MemoryRelay();
    await runSession(relay, keys);
    const probe = keys.get(1)!.wipeProbe();
    keys.get(1)!.close();
    expect(probe.allZero()).toBe(true);
    await expect(keys.get(1)!.lease()).rejects.toThrow(/closed/);
    expect(() => new PairKeys({ self: 0 })).toThrow(/node index/);
    expect(() => new PairKeys({ self: 1, rekeyPeriodMs: 0 })).toThrow(/rekeyPeriodMs/);
    for (const k of keys.values()) k.close();
  });
});

describe('counters against replay', () => {
  it('the nonce of every data message is the sender\'s counter under the pair key, across sessions', async () => {
    const { keys } = cluster();
    const relay = new MemoryRelay();
    for (let i = 0; i < 3; i++) await runSession(relay, keys);
    const nonces = relay.log.filter((m) => m.from === 1 && m.to === 3 && decoded(m.payload).k === 'data').map((m) => decoded(m.payload).n);
    expect(nonces.map((n) => Buffer.from(n.subarray(0, 4)).readUInt32BE(0))).toEqual([0, 0, 0]);
    expect(nonces.map((n) => Buffer.from(n).readBigUInt64BE(4))).toEqual([0n, 1n, 2n]);
    for (const k of keys.values()) k.close();
  });

  it('a replayed data message is refused by the anti-replay window, naming no one', async () => {
    const { keys } = cluster();
    const relay = new MemoryRelay();
    const ch = session(relay, keys, [1, 2]);
    await Promise.all(ch.map((c) => c.open()));
    // Replay node 1's second message (under the established pair key: no KEM ciphertext on it).
    relay.tamper = (from, to, payload) =>
      from === 1 && decoded(payload).k === 'data' && decoded(payload).e.length === 0 ? [{ from, to, payload }, { from, to, payload }] : [{ from, to, payload }];
    ch[0]!.send(2, 'r1', Uint8Array.of(1));
    await new Promise((r) => setTimeout(r, 5));
    ch[0]!.send(2, 'r2', Uint8Array.of(2));
    expect([...(await ch[1]!.receive(1, 'r1'))]).toEqual([1]);
    expect([...(await ch[1]!.receive(1, 'r2'))]).toEqual([2]);
    const e = await failureOf(ch[1]!.receive(1, 'r3'));
    expect(e.message).toMatch(/replayed: message counter 1 under this pair key/);
    expect(e.culprits).toEqual([]);
    ch.forEach((c) => c.close());
    for (const k of keys.values()) k.close();
  });

  it('messages of concurrent sessions may arrive out of counter order', async () => {
    const { keys } = cluster();
    const relayA = new MemoryRelay();
    const relayB = new MemoryRelay();
    const a = session(relayA, keys, [1, 2]);
    const b = session(relayB, keys, [1, 2]);
    await Promise.all([...a, ...b].map((c) => c.open()));
    // Hold node 1's first data message (counter 0, session a) until after session b's (counter 1).
    let held: Uint8Array | undefined;
    relayA.tamper = (from, to, payload) => {
      if (from === 1 && decoded(payload).k === 'data' && held === undefined) {
        held = payload;
        return [];
      }
      return [{ from, to, payload }];
    };
    a[0]!.send(2, 'r1', Uint8Array.of(0xa));
    await new Promise((r) => setTimeout(r, 5));
    b[0]!.send(2, 'r1', Uint8Array.of(0xb));
    expect([...(await b[1]!.receive(1, 'r1'))]).toEqual([0xb]);
    expect(Buffer.from(decoded(relayB.log.find((m) => decoded(m.payload).k === 'data')!.payload).n).readBigUInt64BE(4)).toBe(1n);
    relayA.tamper = (from, to, payload) => [{ from, to, payload }];
    relayA.deliver(1, 2, held!);
    expect([...(await a[1]!.receive(1, 'r1'))]).toEqual([0xa]);
    [...a, ...b].forEach((c) => c.close());
    for (const k of keys.values()) k.close();
  });

  it('the window: fresh counters pass in any order, a seen counter or one behind the window does not', () => {
    const w = new ReplayWindow();
    expect(w.check(5)).toBe('ok');
    w.mark(5);
    expect(w.check(5)).toBe('replayed');
    expect(w.check(3)).toBe('ok');
    w.mark(3);
    expect(w.check(3)).toBe('replayed');
    w.mark(5 + REPLAY_WINDOW);
    expect(w.check(5)).toBe('too-old');
    expect(w.check(6)).toBe('ok'); // inside the window, never seen
    expect(w.check(5 + REPLAY_WINDOW)).toBe('replayed');
    w.mark(10 * REPLAY_WINDOW);
    expect(w.check(10 * REPLAY_WINDOW - 1)).toBe('ok');
    expect(w.check(5 + REPLAY_WINDOW)).toBe('too-old');
  });

  it('a signed nonce that is not a counter names its signer', async () => {
    const { keys } = cluster();
    const relay = new MemoryRelay();
    const ch = session(relay, keys, [1, 2]);
    await Promise.all(ch.map((c) => c.open()));
    // Node 1's channel is made to sign a random nonce (as a node that does not follow the format would).
    const sending = keys.get(1)!.sending.bind(keys.get(1)!);
    keys.get(1)!.sending = (peer, pk) => ({ ...sending(peer, pk), nextCounter: () => 2 ** 40 * 2 ** 12 });
    ch[0]!.send(2, 'r1', Uint8Array.of(1));
    const e = await failureOf(ch[1]!.receive(1, 'r1'));
    expect(e.message).toMatch(/nonce is not a message counter/);
    expect(e.culprits).toEqual([1]);
    ch.forEach((c) => c.close());
    for (const k of keys.values()) k.close();
  });
});
