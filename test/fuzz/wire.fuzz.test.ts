/**
 * Fuzzing the strict wire decoder: random bytes, mutated valid encodings and random msgpack values are
 * fed to decodeMessage for every message type. The only acceptable outcomes are a body (which must
 * then re-encode to exactly the input) or a TesseraError of the wire codes; anything else — a raw
 * library throw, a hang, another error code — fails.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from '@noble/hashes/utils.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { equalBytes } from '../../core/bytes.js';
import type { MessageBodies, MessageType } from '../../core/messages.js';
import { getSuite, type SuiteId } from '../../core/suites.js';
import { decodeMessage, encodeMessage, type WireLimits } from '../../core/wire.js';
import { TYPE_SUITE_PAIRS, rawPack, validBody, wireMap } from '../helpers/wire-fixtures.js';

const WIRE_CODES = new Set<string>([ErrorCode.BadMessage, ErrorCode.BadPoint, ErrorCode.BadScalar]);
const LIMITS: WireLimits = { threshold: 2, parties: 3 };

const outcomes = new Map<string, number>();
let cases = 0;

/** Decode and classify; throws (failing the property) on any outcome other than a body or a wire error. */
function feed(bytes: Uint8Array, type: MessageType, suite: SuiteId, limits?: WireLimits): string {
  cases++;
  let outcome: string;
  try {
    const body = decodeMessage(bytes, type, suite, limits);
    // Accepted input is canonical: it is exactly what the encoder would produce.
    if (!equalBytes(encodeMessage(type, suite, body), bytes)) throw new Error(`accepted a non-canonical ${type} encoding`);
    outcome = 'ok';
  } catch (e) {
    if (!(e instanceof TesseraError) || !WIRE_CODES.has(e.code)) throw e;
    outcome = e.code;
  }
  outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  return outcome;
}

// A few valid encodings per (type, suite): the seeds that mutations start from.
const SEEDS: { type: MessageType; suite: SuiteId; bytes: Uint8Array }[] = TYPE_SUITE_PAIRS.flatMap(([type, suite]) =>
  Array.from({ length: 2 }, () => ({ type, suite, bytes: encodeMessage(type, suite, validBody(type, suite, LIMITS)) })),
);

const pair = fc.constantFrom(...TYPE_SUITE_PAIRS);
const seed = fc.constantFrom(...SEEDS);
const limits = fc.constantFrom<WireLimits | undefined>(undefined, LIMITS, { threshold: 3, parties: 5 });

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; extra: Uint8Array }
  | { op: 'insert'; at: number; extra: Uint8Array }
  | { op: 'delete'; at: number; count: number };

// msgpack type bytes that steer the parser into interesting places.
const TOKENS = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xca, 0xcb, 0xcc, 0xcf, 0xd4, 0xd8, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...TOKENS), fc.nat(255)) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 40 }) }),
);

function mutate(input: Uint8Array, ops: Mutation[]): Uint8Array {
  let b = Uint8Array.from(input);
  for (const m of ops) {
    const at = b.length === 0 ? 0 : 'at' in m ? m.at % b.length : 0;
    switch (m.op) {
      case 'flip':
        if (b.length) b[at]! ^= 1 << m.bit;
        break;
      case 'set':
        if (b.length) b[at] = m.value;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'extend':
        b = Uint8Array.from([...b, ...m.extra]);
        break;
      case 'insert':
        b = Uint8Array.from([...b.subarray(0, at), ...m.extra, ...b.subarray(at)]);
        break;
      case 'delete':
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.count)]);
        break;
    }
  }
  return b;
}

// Field names the schemas use, so random maps sometimes look almost right.
const FIELD_NAMES = ['v', 't', 's', 'b', 'commitments', 'proof', 'signature', 'share', 'packages', 'digest', 'hiding', 'binding', 'partial', 'proofChallenge', 'proofResponse', 'kem', 'enc', 'ciphertext'];

/** Random msgpack-representable values, biased towards the wire format's shapes and lengths. */
const { value: wireValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tie('leaf'),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(tie('key'), tie('value')), { maxLength: 6 }).map((e) => new Map(e)),
  ),
  key: fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.string({ maxLength: 6 }), fc.integer({ min: -2, max: 300 })),
  leaf: fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
    fc.constantFrom(1, 2, 0x41, 0x647a, 2 ** 53),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.constantFrom(...TYPE_SUITE_PAIRS.flat()),
    fc.constantFrom(0, 16, 31, 32, 33, 64, 65, 1088, 1120).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    fc.uint8Array({ maxLength: 70 }),
  ),
})) as { value: fc.Arbitrary<unknown> };

function packOrSkip(value: unknown): Uint8Array | undefined {
  try {
    return rawPack(value);
  } catch {
    return undefined; // some values (huge bigints, ...) cannot be packed at all
  }
}

describe('wire fuzz: decodeMessage returns a body or a wire TesseraError, never anything else', () => {
  it('random bytes', () => {
    fc.assert(
      fc.property(pair, fc.uint8Array({ maxLength: 600 }), limits, ([type, suite], bytes, lim) => {
        feed(bytes, type, suite, lim);
      }),
      { numRuns: 2000 },
    );
  });

  it('valid encodings with bit flips, byte sets, truncations, extensions, insertions and deletions', () => {
    fc.assert(
      fc.property(seed, fc.array(mutation, { minLength: 1, maxLength: 4 }), limits, (s, ops, lim) => {
        feed(mutate(s.bytes, ops), s.type, s.suite, lim);
      }),
      { numRuns: 5000 },
    );
  });

  it('random msgpack values, bare and inside a well-formed envelope', () => {
    fc.assert(
      fc.property(pair, wireValue, fc.boolean(), limits, ([type, suite], value, enveloped, lim) => {
        const bytes = packOrSkip(enveloped ? wireMap([['v', 1], ['t', type], ['s', suite], ['b', value]]) : value);
        if (bytes) feed(bytes, type, suite, lim);
      }),
      { numRuns: 2500 },
    );
  });

  it('fc.anything() packed with msgpackr', () => {
    const anything = fc.anything({ withMap: true, withSet: true, withTypedArray: true, withBigInt: true, withDate: true, withNullPrototype: true, maxDepth: 4 });
    fc.assert(
      fc.property(pair, anything, ([type, suite], value) => {
        const bytes = packOrSkip(value);
        if (bytes) feed(bytes, type, suite);
      }),
      { numRuns: 600 },
    );
  });

  it('well-formed messages with one group element or scalar replaced by random bytes of the right length', () => {
    // Reaches the Group checks (BadPoint / BadScalar) past every structural check.
    const swap = fc.record({ which: fc.nat(), fill: fc.oneof(fc.constant('random'), fc.constant('ff'), fc.constant('00')) });
    fc.assert(
      fc.property(seed, swap, (s, { which, fill }) => {
        const { group } = getSuite(s.suite);
        const body = decodeMessage(s.bytes, s.type, s.suite) as unknown as Record<string, unknown>;
        const slots: Uint8Array[] = [];
        const collect = (v: unknown): void => {
          if (v instanceof Uint8Array) {
            if (v.length === group.pointLength || v.length === group.scalarLength || v.length === group.pointLength + group.scalarLength) slots.push(v);
          } else if (typeof v === 'object' && v !== null) Object.values(v).forEach(collect);
        };
        collect(body);
        if (slots.length === 0) return;
        const slot = slots[which % slots.length]!;
        if (fill === 'random') slot.set(randomBytes(slot.length));
        else slot.fill(fill === 'ff' ? 0xff : 0x00);
        feed(encodeMessage(s.type, s.suite, body as never), s.type, s.suite, LIMITS);
      }),
      { numRuns: 1200 },
    );
  });

  it('signed FROST messages (sign/commit, sign/share with its commitment echo): mutations land on the structure', () => {
    // Short signatures, so that most mutations hit fields, keys and the echo map rather than signature bytes.
    const shortSig = (): Uint8Array => randomBytes(8);
    const signedSeeds = (['ed25519', 'secp256k1', 'p256', 'bip340'] as const).flatMap((suite) => {
      const c = (): MessageBodies['sign/commit'] => ({ ...validBody('sign/commit', suite), signature: shortSig() });
      const commitments = { 1: c(), 2: c(), 3: c() };
      return [
        { type: 'sign/commit' as const, suite, bytes: encodeMessage('sign/commit', suite, c()) },
        { type: 'sign/share' as const, suite, bytes: encodeMessage('sign/share', suite, { ...validBody('sign/share', suite), commitments, signature: shortSig() }) },
      ];
    });
    fc.assert(
      fc.property(fc.constantFrom(...signedSeeds), fc.array(mutation, { minLength: 1, maxLength: 3 }), limits, (s, ops, lim) => {
        feed(mutate(s.bytes, ops), s.type, s.suite, lim);
      }),
      { numRuns: 1500 },
    );
  });

  it('covered at least 10,000 cases and reached every outcome', () => {
    expect(cases).toBeGreaterThanOrEqual(10_000);
    for (const outcome of ['ok', ErrorCode.BadMessage, ErrorCode.BadPoint, ErrorCode.BadScalar]) {
      expect(outcomes.get(outcome) ?? 0, `outcome ${outcome}`).toBeGreaterThan(0);
    }
  });
});
