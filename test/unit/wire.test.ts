import { describe, expect, it } from 'vitest';
import { Unpackr } from 'msgpackr';
import { randomBytes } from '@noble/hashes/utils.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { toHex } from '../../core/bytes.js';
import type { MessageType } from '../../core/messages.js';
import { getSuite, type SuiteId } from '../../core/suites.js';
import { MAX_MESSAGE_BYTES, WIRE_VERSION, decodeMessage, encodeMessage } from '../../core/wire.js';
import { TYPE_SUITE_PAIRS, randomPoint, randomScalar, rawPack, round1Body, validBody, wireMap } from '../helpers/wire-fixtures.js';

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false });

/** Decode a valid encoding into its msgpack Map tree, let `mutate` change it, and repack it. */
function tamper(bytes: Uint8Array, mutate: (env: Map<unknown, unknown>, body: Map<unknown, unknown>) => void): Uint8Array {
  const env = unpackr.unpack(bytes) as Map<unknown, unknown>;
  mutate(env, env.get('b') as Map<unknown, unknown>);
  return rawPack(env);
}

function expectCode(fn: () => unknown, code: ErrorCode, pattern?: RegExp): TesseraError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TesseraError);
  const err = caught as TesseraError;
  expect(err.code).toBe(code);
  if (pattern) expect(err.message).toMatch(pattern);
  return err;
}

/** Every plain byte string in a decoded body (to check that decoding copies into plain Uint8Arrays). */
function byteLeaves(v: unknown): Uint8Array[] {
  if (v instanceof Uint8Array) return [v];
  if (Array.isArray(v)) return v.flatMap(byteLeaves);
  if (typeof v === 'object' && v !== null) return Object.values(v).flatMap(byteLeaves);
  return [];
}

describe('wire: round trips', () => {
  for (const [type, suite] of TYPE_SUITE_PAIRS) {
    it(`${type} / ${suite}: decode(encode(body)) = body and encode(decode(x)) = x`, () => {
      const body = validBody(type, suite);
      const wire = encodeMessage(type, suite, body);
      expect(wire.constructor).toBe(Uint8Array);
      const decoded = decodeMessage(wire, type, suite, { threshold: 2, parties: 3 });
      expect(decoded).toEqual(body);
      expect(encodeMessage(type, suite, decoded)).toEqual(wire);
      // Decoded byte strings are plain copies, independent of the input buffer.
      for (const b of byteLeaves(decoded)) expect(b.constructor).toBe(Uint8Array);
      expect('dataView' in wire).toBe(false); // msgpackr did not decorate the caller's array
      const before = structuredClone(decoded);
      wire.fill(0);
      expect(decoded).toEqual(before);
    });
  }

  it('the envelope is the msgpack map {v, t, s, b} in that order', () => {
    const wire = encodeMessage('sign/share', 'ed25519', validBody('sign/share', 'ed25519'));
    const env = unpackr.unpack(wire) as Map<string, unknown>;
    expect([...env.keys()]).toEqual(['v', 't', 's', 'b']);
    expect(env.get('v')).toBe(WIRE_VERSION);
    expect(env.get('t')).toBe('sign/share');
    expect(env.get('s')).toBe('ed25519');
    // fixmap(4), fixstr "v", 1
    expect(toHex(wire.subarray(0, 4))).toBe('84a17601');
  });

  it('echo keys are integers on the wire, ascending, whatever the order of the JS object', () => {
    const p = (i: number) => round1Body('secp256k1', 2);
    const packages = { 3: p(3), 1: p(1), 2: p(2) };
    const wire = encodeMessage('dkg/echo', 'secp256k1', { packages });
    const keys = [...((unpackr.unpack(wire) as Map<string, Map<string, Map<unknown, unknown>>>).get('b')!.get('packages')!.keys())];
    expect(keys).toEqual([1, 2, 3]);
    expect(Object.keys(decodeMessage(wire, 'dkg/echo', 'secp256k1', { parties: 3 }).packages)).toEqual(['1', '2', '3']);
  });

  it('accepts zero scalars (RFC 9591 DeserializeScalar) and refresh packages with t - 1 commitments', () => {
    const zero = new Uint8Array(32);
    expect(decodeMessage(encodeMessage('sign/share', 'p256', { ...validBody('sign/share', 'p256'), share: zero }), 'sign/share', 'p256').share).toEqual(zero);
    const refresh = round1Body('ed25519', 3, true);
    const wire = encodeMessage('dkg/round1', 'ed25519', refresh);
    expect(decodeMessage(wire, 'dkg/round1', 'ed25519', { threshold: 3 }).commitments.length).toBe(2);
  });

  it('carries both wrapping KEMs and ML-DSA-65-sized signatures', () => {
    const mlkem = { kem: 0x0041, enc: randomBytes(1088), ciphertext: randomBytes(64) };
    expect(decodeMessage(encodeMessage('wrap/share', 'bip340', mlkem), 'wrap/share', 'bip340')).toEqual(mlkem);
    const r1 = round1Body('p256', 2, false, 3309);
    expect(decodeMessage(encodeMessage('dkg/round1', 'p256', r1), 'dkg/round1', 'p256')).toEqual(r1);
  });
});

describe('wire: rejections', () => {
  const commit = () => encodeMessage('sign/commit', 'secp256k1', validBody('sign/commit', 'secp256k1'));
  const decodeCommit = (b: Uint8Array) => decodeMessage(b, 'sign/commit', 'secp256k1');

  it('unknown field in the body or the envelope', () => {
    expectCode(() => decodeCommit(tamper(commit(), (_e, b) => b.set('extra', 1))), ErrorCode.BadMessage, /unknown field/);
    expectCode(() => decodeCommit(tamper(commit(), (e) => e.set('x', 1))), ErrorCode.BadMessage, /unknown field/);
    // A non-string key is an unknown field too.
    expectCode(() => decodeCommit(tamper(commit(), (_e, b) => b.set(7, 1))), ErrorCode.BadMessage, /unknown field/);
  });

  it('missing field in the body or the envelope', () => {
    expectCode(() => decodeCommit(tamper(commit(), (_e, b) => b.delete('binding'))), ErrorCode.BadMessage, /missing field binding/);
    expectCode(() => decodeCommit(tamper(commit(), (e) => e.delete('s'))), ErrorCode.BadMessage, /missing field s/);
  });

  it('wrong length and wrong value types', () => {
    expectCode(() => decodeCommit(tamper(commit(), (_e, b) => b.set('hiding', randomBytes(32)))), ErrorCode.BadMessage, /hiding: expected 33 bytes, got 32/);
    expectCode(() => decodeCommit(tamper(commit(), (_e, b) => b.set('hiding', 'ab'.repeat(33)))), ErrorCode.BadMessage, /byte string/);
    const share = encodeMessage('sign/share', 'ed25519', validBody('sign/share', 'ed25519'));
    expectCode(
      () => decodeMessage(tamper(share, (_e, b) => b.set('share', randomBytes(33))), 'sign/share', 'ed25519'),
      ErrorCode.BadMessage,
      /expected 32 bytes/,
    );
    const confirm = encodeMessage('dkg/confirm', 'ed25519', { digest: randomBytes(32) });
    expectCode(() => decodeMessage(tamper(confirm, (_e, b) => b.set('digest', randomBytes(16))), 'dkg/confirm', 'ed25519'), ErrorCode.BadMessage);
    expectCode(() => decodeCommit(tamper(commit(), (e) => e.set('b', [1, 2]))), ErrorCode.BadMessage, /expected a map/);
  });

  it('non-canonical scalar (all 0xff)', () => {
    for (const suite of ['ed25519', 'secp256k1', 'p256'] as const) {
      const share = encodeMessage('sign/share', suite, validBody('sign/share', suite));
      const err = expectCode(
        () => decodeMessage(tamper(share, (_e, b) => b.set('share', new Uint8Array(32).fill(0xff))), 'sign/share', suite),
        ErrorCode.BadScalar,
        /not canonical/,
      );
      expect(err.message).not.toContain('ff'.repeat(8));
    }
    // Scalars inside a proof (R || z) are checked too.
    const r1 = round1Body('ed25519');
    r1.proof.fill(0xff, 32);
    expectCode(() => decodeMessage(encodeMessage('dkg/round1', 'ed25519', r1), 'dkg/round1', 'ed25519'), ErrorCode.BadScalar);
  });

  it('invalid point (random bytes that are not a group element)', () => {
    for (const suite of ['ed25519', 'secp256k1', 'p256', 'hpke-x25519'] as const) {
      const { group } = getSuite(suite);
      let junk: Uint8Array;
      for (;;) {
        junk = randomBytes(group.pointLength);
        try {
          group.pointFromBytes(junk, 'probe');
        } catch {
          break;
        }
      }
      const body = { commitments: [randomPoint(suite), junk], proof: new Uint8Array(0), signature: randomBytes(64) };
      const err = expectCode(() => decodeMessage(encodeMessage('dkg/round1', suite, body), 'dkg/round1', suite), ErrorCode.BadPoint);
      expect(err.message).toContain('commitments[1]');
      expect(err.message).not.toContain(toHex(junk));
    }
  });

  it('identity point', () => {
    const edIdentity = new Uint8Array(32);
    edIdentity[0] = 0x01;
    const ed = encodeMessage('sign/commit', 'ed25519', { hiding: randomPoint('ed25519'), binding: edIdentity, signature: randomBytes(3309) });
    // (core/group.ts reports the edwards25519 identity as 'not a valid curve point': noble's
    // assertValidity rejects it before the explicit identity check.)
    expectCode(() => decodeMessage(ed, 'sign/commit', 'ed25519'), ErrorCode.BadPoint, /binding/);
    // SEC1 has no 33-byte identity encoding: an invalid prefix stands in for it.
    for (const suite of ['secp256k1', 'p256'] as const) {
      const bad = new Uint8Array(33);
      const msg = encodeMessage('sign/commit', suite, { hiding: bad, binding: randomPoint(suite), signature: randomBytes(3309) });
      expectCode(() => decodeMessage(msg, 'sign/commit', suite), ErrorCode.BadPoint, /hiding/);
    }
    const dec = encodeMessage('decap/partial', 'hpke-x25519', { partial: edIdentity, proofChallenge: randomScalar('hpke-x25519'), proofResponse: randomScalar('hpke-x25519') });
    expectCode(() => decodeMessage(dec, 'decap/partial', 'hpke-x25519'), ErrorCode.BadPoint, /partial/);
  });

  it('wrong version', () => {
    for (const v of [0, 2, '1', null]) {
      expectCode(() => decodeCommit(tamper(commit(), (e) => e.set('v', v))), ErrorCode.BadMessage, /version/);
    }
  });

  it('wrong type', () => {
    expectCode(() => decodeMessage(commit(), 'sign/share', 'secp256k1'), ErrorCode.BadMessage, /not of type sign\/share/);
    expectCode(() => decodeCommit(tamper(commit(), (e) => e.set('t', 'sign/other'))), ErrorCode.BadMessage, /type/);
    expectCode(() => decodeMessage(commit(), 'nope' as MessageType, 'secp256k1'), ErrorCode.BadMessage, /unknown message type/);
  });

  it('wrong suite, unknown suite, suite that cannot carry the type', () => {
    // bip340 and secp256k1 share a group: only the envelope tells them apart.
    expectCode(() => decodeMessage(commit(), 'sign/commit', 'bip340'), ErrorCode.BadMessage, /suite bip340/);
    expectCode(() => decodeMessage(commit(), 'sign/commit', 'rsa' as SuiteId), ErrorCode.UnknownSuite);
    expectCode(() => decodeMessage(commit(), 'sign/commit', 'hpke-p256'), ErrorCode.UnknownSuite, /cannot carry/);
    expectCode(() => encodeMessage('decap/partial', 'ed25519', validBody('decap/partial', 'hpke-x25519')), ErrorCode.UnknownSuite);
  });

  it('oversize input, non-byte input, empty input', () => {
    expectCode(() => decodeCommit(new Uint8Array(MAX_MESSAGE_BYTES + 1)), ErrorCode.BadMessage, /exceeds/);
    expectCode(() => decodeCommit('84a17601' as unknown as Uint8Array), ErrorCode.BadMessage, /byte array/);
    expectCode(() => decodeCommit(new Uint8Array(0)), ErrorCode.BadMessage, /truncated/);
  });

  it('wrong kem length and unknown kem', () => {
    const wrap = encodeMessage('wrap/share', 'ed25519', validBody('wrap/share', 'ed25519'));
    expectCode(
      () => decodeMessage(tamper(wrap, (_e, b) => b.set('kem', 0x0041)), 'wrap/share', 'ed25519'),
      ErrorCode.BadMessage,
      /enc: expected 1088 bytes for KEM 65, got 1120/,
    );
    expectCode(() => decodeMessage(tamper(wrap, (_e, b) => b.set('kem', 0x0020)), 'wrap/share', 'ed25519'), ErrorCode.BadMessage, /kem/);
    expectCode(
      () => decodeMessage(tamper(wrap, (_e, b) => b.set('ciphertext', new Uint8Array(5000))), 'wrap/share', 'ed25519'),
      ErrorCode.BadMessage,
      /ciphertext/,
    );
  });

  it('commitment counts follow the threshold (t for DKG, t - 1 for refresh)', () => {
    const dkg = encodeMessage('dkg/round1', 'p256', round1Body('p256', 3));
    expect(decodeMessage(dkg, 'dkg/round1', 'p256', { threshold: 3 }).commitments.length).toBe(3);
    expectCode(() => decodeMessage(dkg, 'dkg/round1', 'p256', { threshold: 2 }), ErrorCode.BadMessage, /expected 2 commitments/);
    const refresh = encodeMessage('dkg/round1', 'p256', round1Body('p256', 3, true));
    expectCode(() => decodeMessage(refresh, 'dkg/round1', 'p256', { threshold: 2 }), ErrorCode.BadMessage, /refresh/);
    // Without a threshold: a DKG package needs >= 2 commitments.
    const oneCommitment = { ...round1Body('p256', 2), commitments: [randomPoint('p256')] };
    expectCode(() => encodeMessage('dkg/round1', 'p256', oneCommitment), ErrorCode.BadMessage, /commitments/);
    const one = tamper(dkg, (_e, b) => b.set('commitments', oneCommitment.commitments));
    expectCode(() => decodeMessage(one, 'dkg/round1', 'p256'), ErrorCode.BadMessage, /commitments/);
    // A proof is empty or exactly R || z.
    const shortProof = tamper(dkg, (_e, b) => b.set('proof', new Uint8Array(10)));
    expectCode(() => decodeMessage(shortProof, 'dkg/round1', 'p256'), ErrorCode.BadMessage, /proof: expected 0 or 65 bytes/);
    expectCode(() => decodeMessage(dkg, 'dkg/round1', 'p256', { threshold: 1 }), ErrorCode.BadParameters);
  });

  it('echo keys are party indexes 1..parties, at most parties of them', () => {
    const echo = encodeMessage('dkg/echo', 'ed25519', validBody('dkg/echo', 'ed25519', { parties: 4 })); // keys 1..3
    expect(Object.keys(decodeMessage(echo, 'dkg/echo', 'ed25519', { parties: 3, threshold: 2 }).packages)).toHaveLength(3);
    expectCode(() => decodeMessage(echo, 'dkg/echo', 'ed25519', { parties: 2 }), ErrorCode.BadMessage, /entries/);
    const pkgs = (b: Map<unknown, unknown>) => b.get('packages') as Map<unknown, unknown>;
    const moved = (from: unknown, to: unknown) =>
      tamper(echo, (_e, b) => {
        const p = pkgs(b);
        const v = p.get(from);
        p.delete(from);
        p.set(to, v);
      });
    expectCode(() => decodeMessage(moved(3, 9), 'dkg/echo', 'ed25519', { parties: 5 }), ErrorCode.BadMessage, /out of range 1..5/);
    expectCode(() => decodeMessage(moved(3, 0), 'dkg/echo', 'ed25519'), ErrorCode.BadMessage, /party indexes/);
    expectCode(() => decodeMessage(moved(3, '3'), 'dkg/echo', 'ed25519'), ErrorCode.BadMessage, /canonical/);
    expectCode(() => decodeMessage(moved(3, 2.5), 'dkg/echo', 'ed25519'), ErrorCode.BadMessage);
    // Out of order keys decode to the same body but are not the canonical encoding.
    const reordered = tamper(echo, (_e, b) => b.set('packages', new Map([...pkgs(b).entries()].reverse())));
    expectCode(() => decodeMessage(reordered, 'dkg/echo', 'ed25519'), ErrorCode.BadMessage, /canonical/);
    // Nested packages are checked like top-level ones (threshold, points).
    expectCode(() => decodeMessage(echo, 'dkg/echo', 'ed25519', { threshold: 3 }), ErrorCode.BadMessage, /packages\[1\]\.commitments/);
  });

  it('non-canonical msgpack: key order, non-minimal integers, duplicate keys, trailing bytes', () => {
    const wire = commit();
    const swapped = tamper(wire, (_e, b) => {
      const h = b.get('hiding');
      b.delete('hiding');
      b.set('hiding', h);
    });
    expectCode(() => decodeCommit(swapped), ErrorCode.BadMessage, /canonical/);
    // v = 1 as uint8 (0xcc 0x01) instead of fixint.
    const wide = new Uint8Array([0x84, 0xa1, 0x76, 0xcc, 0x01, ...wire.subarray(4)]);
    expectCode(() => decodeCommit(wide), ErrorCode.BadMessage, /canonical/);
    // A duplicated envelope key (map of 5 with "v" twice).
    const dup = new Uint8Array([0x85, 0xa1, 0x76, 0x01, ...wire.subarray(1)]);
    expectCode(() => decodeCommit(dup), ErrorCode.BadMessage, /canonical/);
    expectCode(() => decodeCommit(new Uint8Array([...wire, 0x00])), ErrorCode.BadMessage, /trailing/);
    expectCode(() => decodeCommit(wire.subarray(0, wire.length - 1)), ErrorCode.BadMessage, /truncated/);
  });

  it('msgpack extensions, floats, deep nesting and oversized container headers', () => {
    const wire = commit();
    // undefined as msgpackr writes it (fixext 1, type 0) in place of v.
    const ext = new Uint8Array([0x84, 0xa1, 0x76, 0xd4, 0x00, 0x00, ...wire.subarray(4)]);
    expectCode(() => decodeCommit(ext), ErrorCode.BadMessage, /extension/);
    // msgpackr record definition extension (0x72 'r') and a timestamp.
    expectCode(() => decodeCommit(new Uint8Array([0xd4, 0x72, 0x40])), ErrorCode.BadMessage, /extension/);
    expectCode(() => decodeCommit(new Uint8Array([0xd6, 0xff, 0, 0, 0, 0])), ErrorCode.BadMessage, /extension/);
    expectCode(() => decodeCommit(new Uint8Array([0xc1])), ErrorCode.BadMessage, /reserved/);
    const float = new Uint8Array([0x84, 0xa1, 0x76, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, ...wire.subarray(4)]);
    expectCode(() => decodeCommit(float), ErrorCode.BadMessage, /float/);
    expectCode(() => decodeCommit(new Uint8Array(100_000).fill(0x91)), ErrorCode.BadMessage, /deeper/);
    expectCode(() => decodeCommit(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])), ErrorCode.BadMessage, /more than 255/);
    expectCode(() => decodeCommit(new Uint8Array([0xdf, 0, 0, 0, 200])), ErrorCode.BadMessage, /truncated/);
    expectCode(() => decodeCommit(new Uint8Array([0xc6, 0xff, 0xff, 0xff, 0xff])), ErrorCode.BadMessage, /truncated/);
    expectCode(() => decodeCommit(rawPack([1, 2, 3])), ErrorCode.BadMessage, /not a map/);
  });

  it('maximal hostile inputs are rejected in linear time', () => {
    const big = (fill: number, prefix: number[] = []) => {
      const b = new Uint8Array(MAX_MESSAGE_BYTES).fill(fill);
      b.set(prefix);
      return b;
    };
    const started = Date.now();
    expectCode(() => decodeCommit(big(0x90)), ErrorCode.BadMessage, /trailing/); // 4 Mi empty arrays
    expectCode(() => decodeCommit(big(0x91)), ErrorCode.BadMessage, /deeper/);
    expectCode(() => decodeCommit(big(0x00, [0xc6, 0x00, 0x3f, 0xff, 0xfb])), ErrorCode.BadMessage, /not a map/); // one 4 MiB bin
    expectCode(() => decodeCommit(big(0x9f, [0xdc, 0x00, 0xff])), ErrorCode.BadMessage, /deeper/);
    // Widest legal tree: 255 arrays of 255 ... as deep as allowed, then truncated.
    expectCode(() => decodeCommit(big(0xdc, [0xdc, 0x00, 0xff]).map((x, i) => (i % 3 === 0 ? 0xdc : i % 3 === 1 ? 0x00 : 0xff))), ErrorCode.BadMessage);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('encodeMessage checks the body shape too', () => {
    const body = validBody('sign/commit', 'ed25519');
    expectCode(() => encodeMessage('sign/commit', 'ed25519', { ...body, extra: 1 } as never), ErrorCode.BadMessage, /unknown field/);
    expectCode(() => encodeMessage('sign/commit', 'ed25519', { hiding: body.hiding } as never), ErrorCode.BadMessage, /missing field/);
    expectCode(() => encodeMessage('sign/share', 'ed25519', { ...validBody('sign/share', 'ed25519'), share: new Uint8Array(31) }), ErrorCode.BadMessage, /expected 32 bytes/);
    expectCode(() => encodeMessage('dkg/echo', 'ed25519', { packages: {} }), ErrorCode.BadMessage, /entries/);
    expectCode(
      () => encodeMessage('dkg/echo', 'ed25519', { packages: { '01': round1Body('ed25519') } as never }),
      ErrorCode.BadMessage,
      /party indexes/,
    );
  });

  it('hand-built envelopes with the right shape decode', () => {
    const share = randomScalar('p256');
    const wire = rawPack(wireMap([['v', 1], ['t', 'dkg/round2'], ['s', 'p256'], ['b', wireMap([['share', share]])]]));
    expect(decodeMessage(wire, 'dkg/round2', 'p256').share).toEqual(share);
  });
});

describe('wire: signed FROST messages (sign/commit, sign/share)', () => {
  const suite = 'secp256k1' as const;

  it('sign/commit carries the commitments and the identity signature; sign/share the share, the echo and a signature', () => {
    const commit = validBody('sign/commit', suite);
    expect(decodeMessage(encodeMessage('sign/commit', suite, commit), 'sign/commit', suite)).toEqual(commit);
    const share = validBody('sign/share', suite, { threshold: 3, parties: 5 });
    const wire = encodeMessage('sign/share', suite, share);
    const decoded = decodeMessage(wire, 'sign/share', suite, { threshold: 3, parties: 5 });
    expect(decoded).toEqual(share);
    expect(Object.keys(decoded.commitments)).toEqual(['1', '2', '3']);
    const body = (unpackr.unpack(wire) as Map<string, Map<string, unknown>>).get('b')!;
    expect([...body.keys()]).toEqual(['share', 'commitments', 'signature']);
    // Echo keys are integers on the wire, ascending.
    expect([...(body.get('commitments') as Map<unknown, unknown>).keys()]).toEqual([1, 2, 3]);
  });

  it('a signature is required, non-empty and bounded', () => {
    const commit = validBody('sign/commit', suite);
    expectCode(() => encodeMessage('sign/commit', suite, { hiding: commit.hiding, binding: commit.binding } as never), ErrorCode.BadMessage, /missing field signature/);
    expectCode(() => encodeMessage('sign/commit', suite, { ...commit, signature: new Uint8Array(0) }), ErrorCode.BadMessage, /signature/);
    expectCode(() => encodeMessage('sign/commit', suite, { ...commit, signature: new Uint8Array(8193) }), ErrorCode.BadMessage, /signature/);
    const share = validBody('sign/share', suite);
    const wire = encodeMessage('sign/share', suite, share);
    expectCode(() => decodeMessage(tamper(wire, (_e, b) => b.delete('signature')), 'sign/share', suite), ErrorCode.BadMessage, /missing field signature/);
  });

  it('the echoed commitment list: party-index keys within the session, each a full signed commitment', () => {
    const share = validBody('sign/share', suite, { threshold: 2 });
    const wire = encodeMessage('sign/share', suite, share);
    // More entries than parties, or an index beyond n.
    const three = encodeMessage('sign/share', suite, validBody('sign/share', suite, { threshold: 3 }));
    expectCode(() => decodeMessage(three, 'sign/share', suite, { parties: 2, threshold: 2 }), ErrorCode.BadMessage, /entries/);
    const far = encodeMessage('sign/share', suite, { ...share, commitments: { 1: share.commitments[1]!, 9: share.commitments[2]! } });
    expectCode(() => decodeMessage(far, 'sign/share', suite, { parties: 5 }), ErrorCode.BadMessage, /out of range/);
    // Fewer than two signers is no signing session.
    expectCode(() => encodeMessage('sign/share', suite, { ...share, commitments: { 1: share.commitments[1]! } }), ErrorCode.BadMessage, /entries/);
    // Keys must be party indexes.
    expectCode(() => encodeMessage('sign/share', suite, { ...share, commitments: { '01': share.commitments[1]!, 2: share.commitments[2]! } as never }), ErrorCode.BadMessage, /party indexes/);
    // An echoed commitment without its signature.
    const unsigned = tamper(wire, (_e, b) => ((b.get('commitments') as Map<number, Map<string, unknown>>).get(2)!.delete('signature')));
    expectCode(() => decodeMessage(unsigned, 'sign/share', suite), ErrorCode.BadMessage, /missing field signature/);
    // An echoed commitment that is not a group element: BadPoint, naming the path, not the bytes.
    const junk = new Uint8Array(33).fill(0x07);
    const badPoint = encodeMessage('sign/share', suite, { ...share, commitments: { ...share.commitments, 2: { ...share.commitments[2]!, binding: junk } } });
    const err = expectCode(() => decodeMessage(badPoint, 'sign/share', suite), ErrorCode.BadPoint, /commitments\[2\]\.binding/);
    expect(err.message).not.toContain(toHex(junk));
  });
});
