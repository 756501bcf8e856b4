/**
 * Valid message bodies for wire-format tests (test/unit/wire.test.ts, test/fuzz/wire.fuzz.test.ts),
 * built with the suite's own Group so every point and scalar is well formed.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { Packr } from 'msgpackr';
import { concatBytes } from '../../core/bytes.js';
import type { DkgRound1Msg, MessageBodies, MessageType } from '../../core/messages.js';
import { MESSAGE_TYPES } from '../../core/messages.js';
import { SUITE_IDS, getSuite, type SuiteId } from '../../core/suites.js';

/** The suites a message type may travel under (FROST messages: signing suites; decap: KEM suites). */
export function suitesFor(type: MessageType): SuiteId[] {
  return SUITE_IDS.filter((id) => {
    const kind = getSuite(id).kind;
    if (type.startsWith('sign/')) return kind === 'sign';
    if (type === 'decap/partial') return kind === 'kem';
    if (type.startsWith('ecdsa/')) return kind === 'ecdsa';
    return true;
  });
}

export const TYPE_SUITE_PAIRS: [MessageType, SuiteId][] = MESSAGE_TYPES.flatMap((t) => suitesFor(t).map((s) => [t, s] as [MessageType, SuiteId]));

export function randomPoint(suite: SuiteId): Uint8Array {
  const { group } = getSuite(suite);
  return group.pointToBytes(group.mulBase(group.randomScalar()));
}

export function randomScalar(suite: SuiteId): Uint8Array {
  const { group } = getSuite(suite);
  return group.scalarToBytes(group.randomScalar());
}

export function round1Body(suite: SuiteId, threshold = 2, refresh = false, signatureLength = 64): DkgRound1Msg {
  const count = refresh ? threshold - 1 : threshold;
  return {
    commitments: Array.from({ length: count }, () => randomPoint(suite)),
    proof: refresh ? new Uint8Array(0) : concatBytes(randomPoint(suite), randomScalar(suite)),
    signature: randomBytes(signatureLength),
  };
}

export function validBody<T extends MessageType>(type: T, suite: SuiteId, opts: { threshold?: number; parties?: number } = {}): MessageBodies[T] {
  const t = opts.threshold ?? 2;
  const n = opts.parties ?? 3;
  const bodies: { [K in MessageType]: () => MessageBodies[K] } = {
    'dkg/round1': () => round1Body(suite, t),
    'dkg/round2': () => ({ share: randomScalar(suite) }),
    'dkg/echo': () => {
      const packages: Record<number, DkgRound1Msg> = {};
      for (let i = 1; i < n; i++) packages[i] = round1Body(suite, t);
      return { packages };
    },
    'dkg/confirm': () => ({ digest: randomBytes(32) }),
    'sign/commit': () => ({ hiding: randomPoint(suite), binding: randomPoint(suite), signature: randomBytes(3309) }),
    'sign/share': () => {
      const commitments: Record<number, MessageBodies['sign/commit']> = {};
      for (let i = 1; i <= t; i++) commitments[i] = { hiding: randomPoint(suite), binding: randomPoint(suite), signature: randomBytes(3309) };
      return { share: randomScalar(suite), commitments, signature: randomBytes(3309) };
    },
    'decap/partial': () => ({ partial: randomPoint(suite), proofChallenge: randomScalar(suite), proofResponse: randomScalar(suite) }),
    'wrap/share': () => ({ kem: 0x647a, enc: randomBytes(1120), ciphertext: randomBytes(120) }),
    'ecdsa/setup1': () => ({ msg: randomBytes(98) }),
    'ecdsa/setup2': () => ({ msg: randomBytes(4224) }),
    'ecdsa/setup3': () => ({ msg: randomBytes(4096) }),
    'ecdsa/setup4': () => ({ msg: randomBytes(4096) }),
    'ecdsa/setup5': () => ({ msg: randomBytes(8192) }),
    'ecdsa/round1': () => ({ commitment: randomBytes(32), mul: randomBytes(10016) }),
    'ecdsa/round2': () => ({
      echo: randomBytes(32),
      R: randomPoint(suite),
      salt: randomBytes(32),
      gammaU: randomPoint(suite),
      gammaV: randomPoint(suite),
      psi: randomScalar(suite),
      mul: randomBytes(53408),
    }),
    'ecdsa/round3': () => ({ u: randomScalar(suite), w: randomScalar(suite) }),
    'ecdsa/presign1': () => ({ instances: [bodies['ecdsa/round1'](), bodies['ecdsa/round1']()] }),
    'ecdsa/presign2': () => ({ instances: [bodies['ecdsa/round2'](), bodies['ecdsa/round2']()] }),
    'reshare/deal': () => ({ commitments: Array.from({ length: t }, () => randomPoint(suite)), oldPackageDigest: randomBytes(32), signature: randomBytes(3309) }),
    'reshare/share': () => ({ share: randomScalar(suite), signature: randomBytes(3309) }),
    'reshare/echo': () => {
      const packages: Record<number, MessageBodies['reshare/deal']> = {};
      for (let i = 1; i < n; i++) packages[i] = bodies['reshare/deal']();
      return { packages };
    },
    'reshare/confirm': () => ({ digest: randomBytes(32) }),
  };
  return bodies[type]() as MessageBodies[T];
}

/** A plain msgpack packer for hand-built (possibly malformed) messages. */
export const rawPackr = new Packr({ useRecords: false, structuredClone: false, bundleStrings: false, moreTypes: false, variableMapSize: true });

export function rawPack(value: unknown): Uint8Array {
  return new Uint8Array(rawPackr.pack(value));
}

/** A msgpack map in the given key order (the wire format's maps are Maps, not records). */
export function wireMap(entries: [unknown, unknown][]): Map<unknown, unknown> {
  return new Map(entries);
}
