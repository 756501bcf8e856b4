/**
 * The signed bytes of a node-to-node channel envelope (node/sessions/channel.ts). Pure, so that a third
 * party (the SDK) can check a signed envelope offered as evidence (core/evidence.ts) exactly as the
 * receiving node checked it: the identity signature covers (session, round, sender, receiver, kind,
 * KEM bytes, nonce, ciphertext) — never the plaintext, which only the two endpoints can read.
 */
import { framed, i2osp, utf8ToBytes } from './bytes.js';

const CHANNEL_SIGN_LABEL = utf8ToBytes('tessera/channel/v1');

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
