/**
 * The signed bytes of a node-to-node channel envelope (node/sessions/channel.ts). Pure, so that a third
 * party (the SDK) can check a signed envelope offered as evidence (core/evidence.ts) exactly as the
 * receiving node checked it: the identity signature covers (session, round, sender, receiver, kind,
 * KEM bytes, nonce, ciphertext) — never the plaintext, which only the two endpoints can read.
 *
 * Batches: a node that sends several envelopes at once (one round to every peer, or two rounds to one
 * peer) signs them with ONE identity signature over the SHA-256 hashes of their signed bytes
 * (batchSignedBytes); each envelope then carries that hash list and the signature. Whoever holds one
 * envelope of the batch recomputes its hash, finds it in the list and verifies the signature: the
 * envelope is as transferable as one signed alone, at one ML-DSA signature per batch.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { framed, i2osp, utf8ToBytes } from './bytes.js';

const CHANNEL_SIGN_LABEL = utf8ToBytes('tessera/channel/v1');
const CHANNEL_BATCH_LABEL = utf8ToBytes('tessera/channel-batch/v1');

/** Length of an envelope hash in a batch (SHA-256). */
export const ENVELOPE_HASH_LENGTH = 32;
/** Envelopes in one signed batch: at least 2 (one envelope is signed alone), at most this many. */
export const MAX_BATCH_ENVELOPES = 64;

/** The signed fields of an envelope (everything but the format version and the signature). */
export interface EnvelopeFields {
  readonly r: string; // round
  readonly f: number; // from
  readonly t: number; // to
  readonly k: 'hello' | 'data';
  readonly e: Uint8Array;
  readonly n: Uint8Array;
  readonly c: Uint8Array;
}

export function envelopeSignedBytes(session: Uint8Array, env: EnvelopeFields): Uint8Array {
  return framed(CHANNEL_SIGN_LABEL, session, utf8ToBytes(env.r), i2osp(env.f, 1), i2osp(env.t, 1), utf8ToBytes(env.k), env.e, env.n, env.c);
}

/** SHA-256 of an envelope's signed bytes: its entry in a batch. */
export function envelopeHash(session: Uint8Array, env: EnvelopeFields): Uint8Array {
  return sha256(envelopeSignedBytes(session, env));
}

/** What the sender signs for a batch of its envelopes: framed(label, session, sender, hash_1, ..., hash_k). */
export function batchSignedBytes(session: Uint8Array, sender: number, hashes: readonly Uint8Array[]): Uint8Array {
  return framed(CHANNEL_BATCH_LABEL, session, i2osp(sender, 1), ...hashes);
}

/** A well-formed batch hash list: 2..MAX_BATCH_ENVELOPES hashes of ENVELOPE_HASH_LENGTH bytes. */
export function isBatchList(b: unknown): b is readonly Uint8Array[] {
  return (
    Array.isArray(b) &&
    b.length >= 2 &&
    b.length <= MAX_BATCH_ENVELOPES &&
    b.every((h) => h instanceof Uint8Array && h.length === ENVELOPE_HASH_LENGTH)
  );
}
