/**
 * SessionChannel.ignore (node/sessions/channel.ts): once a node no longer reads a round (the commit
 * certificate after its own votes decided), later messages of that round are dropped unchecked, and the
 * channel carries on; every other round is still checked.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { generateIdentity, type IdentityKeyPair } from '../../core/identity.js';
import { SessionChannel } from '../../node/sessions/channel.js';
import { MemoryRelay } from '../helpers/memory-relay.js';
import { pairKeysOf } from '../helpers/pair-keys.js';

const ids: IdentityKeyPair[] = [1, 2].map(() => generateIdentity());
const membership = new Map(ids.map((k, i) => [i + 1, k.publicKey] as const));

function pair(relay: MemoryRelay) {
  const session = randomBytes(16);
  return [1, 2].map((self) => new SessionChannel({ session, self, players: [1, 2], identity: ids[self - 1]!, membership, link: relay.link(self), pairKeys: pairKeysOf(self), rounds: ['a', 'b', 'c'] }));
}

/** The relay flips a bit near the end of every message (the signature no longer verifies). */
function damageAll(relay: MemoryRelay): void {
  relay.tamper = (from, to, payload) => {
    const p = Uint8Array.from(payload);
    p[p.length - 40]! ^= 1;
    return [{ from, to, payload: p }];
  };
}
const deliver = (from: number, to: number, payload: Uint8Array) => [{ from, to, payload }];

describe('channel: a round this node no longer reads', () => {
  it('a damaged message of an ignored round is dropped unchecked; the same damage on a read round fails the session', async () => {
    const relay = new MemoryRelay();
    const [c1, c2] = pair(relay);
    await Promise.all([c1!.open(), c2!.open()]);
    c1!.send(2, 'a', Uint8Array.of(1)); // sets up the direction's key
    expect([...(await c2!.receive(1, 'a'))]).toEqual([1]);
    c2!.ignore('b');
    // Round 'b' is ignored: its damaged message is dropped, nothing fails.
    damageAll(relay);
    c1!.send(2, 'b', Uint8Array.of(2));
    c1!.flush();
    relay.tamper = deliver;
    c1!.send(2, 'c', Uint8Array.of(3));
    expect([...(await c2!.receive(1, 'c'))]).toEqual([3]);
    // Round 'a' is read: a damaged message fails the session as before.
    const relay2 = new MemoryRelay();
    const [d1, d2] = pair(relay2);
    await Promise.all([d1!.open(), d2!.open()]);
    d1!.send(2, 'a', Uint8Array.of(1));
    await d2!.receive(1, 'a');
    d2!.ignore('b');
    damageAll(relay2);
    d1!.send(2, 'c', Uint8Array.of(4));
    await expect(d2!.receive(1, 'c')).rejects.toThrow(/relay fault/);
    for (const c of [c1, c2, d1, d2]) c!.close();
  });

  it('refuses to ignore a round the protocol does not run', () => {
    const [c1] = pair(new MemoryRelay());
    expect(() => c1!.ignore('zz')).toThrow(/not one this protocol runs/);
    c1!.close();
  });
});
