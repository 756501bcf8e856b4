/**
 * Batched channel envelopes (issue 10 item 5): the envelopes a node sends in one turn share one ML-DSA
 * identity signature over the hashes of their signed bytes (core/envelope.ts batchSignedBytes). Each
 * envelope carries the hash list, so it stays transferable evidence on its own (core/evidence.ts), and
 * a relay that tampers with a batch still names nobody.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Packr, unpack } from 'msgpackr';
import { MAX_BATCH_ENVELOPES, batchSignedBytes, envelopeHash, type EnvelopeFields } from '../../core/envelope.js';
import { verifyEquivocationEvidence, type EnvelopeEvidence, type SignedEnvelope } from '../../core/evidence.js';
import { generateIdentity, identitySign } from '../../core/identity.js';
import { declaredRounds } from '../../core/session.js';
import { ChannelError, SessionChannel } from '../../node/sessions/channel.js';
import { MemoryRelay } from '../helpers/memory-relay.js';
import { pairKeysOf } from '../helpers/pair-keys.js';

const culprit = generateIdentity();
const other = generateIdentity();
const session = Uint8Array.from(randomBytes(16));
const context = { session, declaredRounds: declaredRounds('keygen', 'ed25519') };

function fields(over: Partial<EnvelopeFields> = {}): EnvelopeFields {
  return { r: 'flood/1', f: 3, t: 1, k: 'data', e: new Uint8Array(), n: Uint8Array.from(randomBytes(12)), c: Uint8Array.from(randomBytes(40)), ...over };
}

/** Sign `envs` as one batch, as the channel does. */
function batch(envs: EnvelopeFields[], who = culprit, signer = 3): SignedEnvelope[] {
  const b = envs.map((e) => envelopeHash(session, e));
  const s = identitySign(who.secretKey, batchSignedBytes(session, signer, b));
  return envs.map((e) => ({ ...e, s, b }));
}

const undeclared = (env: SignedEnvelope): EnvelopeEvidence => ({ protocol: 'envelope', fault: 'undeclared-round', signer: 3, session, envelopes: [env] });
const two = (x: SignedEnvelope, y: SignedEnvelope): EnvelopeEvidence => ({ protocol: 'envelope', fault: 'two-messages', signer: 3, session, envelopes: [x, y] });

describe('batched envelopes as evidence', () => {
  it('an envelope of a signed batch proves what it proves when signed alone', () => {
    const [a, b, c] = batch([fields(), fields({ t: 2 }), fields({ r: 'dkg/round1' })]);
    expect(verifyEquivocationEvidence(undeclared(a!), culprit.publicKey, context)).toBe(true);
    expect(verifyEquivocationEvidence(undeclared(b!), culprit.publicKey, context)).toBe(true);
    // A declared round proves nothing, batched or not.
    expect(verifyEquivocationEvidence(undeclared(c!), culprit.publicKey, context)).toBe(false);
    // Evidence survives its encoding (msgpack, as it travels to the SDK).
    const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
    expect(verifyEquivocationEvidence(packr.unpack(packr.pack(undeclared(a!))) as EnvelopeEvidence, culprit.publicKey, context)).toBe(true);
  });

  it('a batch that does not list the envelope, a changed list, another signer or a malformed list proves nothing', () => {
    const [a, b] = batch([fields(), fields({ t: 2 })]);
    const [x] = batch([fields(), fields({ t: 2 })]);
    // The envelope's hash is not in the list it carries (another batch's list and signature).
    expect(verifyEquivocationEvidence(undeclared({ ...a!, b: x!.b, s: x!.s }), culprit.publicKey, context)).toBe(false);
    // A tampered field: its hash leaves the list.
    expect(verifyEquivocationEvidence(undeclared({ ...a!, c: Uint8Array.from(randomBytes(40)) }), culprit.publicKey, context)).toBe(false);
    // The list changed (an entry dropped, replaced or added) no longer matches the signature.
    expect(verifyEquivocationEvidence(undeclared({ ...a!, b: [a!.b![0]!, Uint8Array.from(randomBytes(32))] }), culprit.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared({ ...a!, b: [...a!.b!, Uint8Array.from(randomBytes(32))] }), culprit.publicKey, context)).toBe(false);
    // A one-entry list is not a batch; a wrong-size hash or too many entries are malformed.
    const single = [envelopeHash(session, a!)];
    expect(verifyEquivocationEvidence(undeclared({ ...a!, b: single, s: identitySign(culprit.secretKey, batchSignedBytes(session, 3, single)) }), culprit.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared({ ...a!, b: [a!.b![0]!, new Uint8Array(31)] }), culprit.publicKey, context)).toBe(false);
    const many = Array.from({ length: MAX_BATCH_ENVELOPES + 1 }, (_, i) => (i === 0 ? envelopeHash(session, a!) : Uint8Array.from(randomBytes(32))));
    expect(verifyEquivocationEvidence(undeclared({ ...a!, b: many, s: identitySign(culprit.secretKey, batchSignedBytes(session, 3, many)) }), culprit.publicKey, context)).toBe(false);
    // Another node's key, or a batch signed for another sender index.
    expect(verifyEquivocationEvidence(undeclared(b!), other.publicKey, context)).toBe(false);
    const [y] = batch([fields(), fields({ t: 2 })], culprit, 2);
    expect(verifyEquivocationEvidence(undeclared(y!), culprit.publicKey, context)).toBe(false);
  });

  it('two different envelopes for one round to one receiver prove it, in one batch or across batches', () => {
    const [a, b] = batch([fields({ r: 'dkg/round2' }), fields({ r: 'dkg/round2' })]);
    const [c] = batch([fields({ r: 'dkg/round2' }), fields({ r: 'dkg/echo' })]);
    expect(verifyEquivocationEvidence(two(a!, b!), culprit.publicKey, { session })).toBe(true);
    expect(verifyEquivocationEvidence(two(a!, c!), culprit.publicKey, { session })).toBe(true);
    expect(verifyEquivocationEvidence(two(a!, a!), culprit.publicKey, { session })).toBe(false);
  });
});

// ---- the channel ------------------------------------------------------------------------------


const ids = [1, 2, 3].map(() => generateIdentity());
const membership = new Map(ids.map((k, i) => [i + 1, k.publicKey] as const));

function channels(relay: MemoryRelay, rounds = ['r1', 'r2']) {
  const s = Uint8Array.from(randomBytes(16));
  return [1, 2, 3].map((self) => new SessionChannel({ session: s, self, players: [1, 2, 3], identity: ids[self - 1]!, membership, link: relay.link(self), pairKeys: pairKeysOf(self), rounds }));
}

type Wire = { v: number; r: string; t: number; s: Uint8Array; b?: Uint8Array[] };
const wire = (payload: Uint8Array) => unpack(payload) as Wire;

describe('the channel signs what it sends in one turn once', () => {
  it('a round to every peer and two rounds to one peer go out under one signature, and arrive', async () => {
    const relay = new MemoryRelay();
    const ch = channels(relay);
    await Promise.all(ch.map((c) => c.open()));
    // The hellos of one node to its two peers were one batch.
    const hellos = relay.log.filter((m) => m.from === 1 && wire(m.payload).r === 'hello').map((m) => wire(m.payload));
    expect(hellos).toHaveLength(2);
    expect(hellos.every((h) => h.v === 2 && Buffer.from(h.s).equals(Buffer.from(hellos[0]!.s)))).toBe(true);
    relay.log = [];
    ch[0]!.send(2, 'r1', Uint8Array.of(1));
    ch[0]!.send(2, 'r2', Uint8Array.of(2));
    ch[0]!.send(3, 'r1', Uint8Array.of(3));
    expect(relay.log).toHaveLength(0); // signed and handed to the relay at the end of the turn
    await Promise.resolve();
    const sent = relay.log.map((m) => wire(m.payload));
    expect(sent).toHaveLength(3);
    expect(new Set(sent.map((m) => Buffer.from(m.s).toString('hex'))).size).toBe(1);
    expect(sent.every((m) => m.v === 2 && m.b?.length === 3)).toBe(true);
    expect([...(await ch[1]!.receive(1, 'r1'))]).toEqual([1]);
    expect([...(await ch[1]!.receive(1, 'r2'))]).toEqual([2]);
    expect([...(await ch[2]!.receive(1, 'r1'))]).toEqual([3]);
    // One envelope in a turn is signed alone (v1).
    relay.log = [];
    ch[1]!.send(3, 'r1', Uint8Array.of(4));
    ch[1]!.flush();
    expect(wire(relay.log[0]!.payload).v).toBe(1);
    expect(wire(relay.log[0]!.payload).b).toBeUndefined();
    expect([...(await ch[2]!.receive(2, 'r1'))]).toEqual([4]);
    ch.forEach((c) => c.close());
  });

  const tamperings: [string, (w: Record<string, unknown>) => Record<string, unknown>][] = [
    ['drops the hash list', (w) => ({ ...w, v: 1, b: undefined })],
    ['replaces a hash in the list', (w) => ({ ...w, b: [(w.b as Uint8Array[])[0], Uint8Array.from(randomBytes(32)), (w.b as Uint8Array[])[2]] })],
    ['drops a hash from the list', (w) => ({ ...w, b: (w.b as Uint8Array[]).slice(0, 2) })],
    ['sends a one-entry list', (w) => ({ ...w, b: (w.b as Uint8Array[]).slice(0, 1) })],
  ];
  for (const [name, change] of tamperings) {
    it(`a relay that ${name} fails the session naming nobody`, async () => {
      const relay = new MemoryRelay();
      const ch = channels(relay);
      await Promise.all(ch.map((c) => c.open()));
      const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
      relay.tamper = (from, to, payload) => {
        if (from !== 1 || to !== 2) return [{ from, to, payload }];
        const w = change(unpack(payload) as Record<string, unknown>);
        for (const k of Object.keys(w)) if (w[k] === undefined) delete w[k];
        return [{ from, to, payload: packr.pack(w) }];
      };
      ch[0]!.send(2, 'r1', Uint8Array.of(1));
      ch[0]!.send(2, 'r2', Uint8Array.of(2));
      ch[0]!.send(3, 'r1', Uint8Array.of(3));
      const e = await Promise.race([
        ch[1]!.receive(1, 'r1').then(() => ch[1]!.receive(1, 'r2')).then(() => undefined, (err: unknown) => err),
        new Promise((r) => setTimeout(() => r('timeout'), 3000)),
      ]);
      expect(e).toBeInstanceOf(ChannelError);
      expect((e as ChannelError).culprits).toEqual([]);
      expect((e as ChannelError).message).toMatch(/relay fault on the link from node 1/);
      ch.forEach((c) => c.close());
    });
  }

  it('a batched message under an undeclared round names its signer with evidence the SDK can check', async () => {
    const relay = new MemoryRelay();
    const s = Uint8Array.from(randomBytes(16));
    const ch = [1, 2, 3].map(
      (self) => new SessionChannel({ session: s, self, players: [1, 2, 3], identity: ids[self - 1]!, membership, link: relay.link(self), pairKeys: pairKeysOf(self), rounds: self === 1 ? ['r1', 'not-a-round'] : ['r1'] }),
    );
    await Promise.all(ch.map((c) => c.open()));
    ch[0]!.send(3, 'r1', Uint8Array.of(1));
    ch[0]!.send(2, 'not-a-round', Uint8Array.of(1));
    const e = await ch[1]!.receive(1, 'r1').then(() => undefined, (err: unknown) => err as ChannelError);
    expect(e).toBeInstanceOf(ChannelError);
    expect(e!.culprits).toEqual([1]);
    const evidence = e!.evidence[0] as EnvelopeEvidence;
    expect(evidence.envelopes[0]!.b).toHaveLength(2);
    expect(verifyEquivocationEvidence(evidence, ids[0]!.publicKey, { session: s, declaredRounds: ['r1'] })).toBe(true);
    expect(verifyEquivocationEvidence(evidence, ids[1]!.publicKey, { session: s, declaredRounds: ['r1'] })).toBe(false);
    ch.forEach((c) => c.close());
  });
});
