/**
 * The malicious-node harness (test only, like the crash points of TESSERA_FAULT_POINTS): scripted
 * deviations a node follows when TESSERA_TEST_DEVIATIONS is set, so real clusters can be run with one
 * cheating node. Never set in production: node/main.ts logs a warning when it is.
 *
 *   wrong-confirm-to:N[+M]     send a wrong DKG/refresh confirmation to nodes N, M only
 *   withhold-vote-to:N[+M]     do not send this node's commit vote to nodes N, M
 *   claim-epoch-ahead          claim (in the channel hello) an epoch one above the one held, with no certificate
 *   equivocate-dkg-to:N[+M]    DKG/refresh round 1: a second, independently dealt package (the core round run
 *                              again with fresh randomness, validly signed) to nodes N, M; the first to the rest
 *   equivocate-sign-to:N[+M]   FROST round 1: other validly signed nonce commitments to signers N, M
 *   bad-share-to:N[+M]         DKG/refresh round 2: a share to N, M that does not verify against this node's
 *                              commitments (the real share plus one)
 *   wrong-vote-to:N[+M]        commit: a vote (validly signed) over another result digest to nodes N, M
 *   garbage-vote-to:N[+M]      commit: random bytes as the vote to nodes N, M
 *   flood-messages-to:N[+M]    right after the hello: FLOOD_MESSAGES distinct signed messages to N, M under
 *                              round names the protocol does not run
 *   flood-bytes-to:N[+M]       right after the hello: relay-sized messages to N, M under the protocol's own
 *                              rounds (last rounds first) until more than the channel's per-peer byte cap
 *
 * Each deviation is a small hook where the message is sent (node/sessions/protocols.ts, commit.ts,
 * engine.ts); with no deviation set those paths send exactly what they always did. core/ stays pure:
 * the deviations tamper with a message here, or call a core round a second time.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { voteBytes, type CommitStatement } from '../../core/commit.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { IDENTITY_SIGNATURE_LENGTH, identitySign, type IdentityKeyPair } from '../../core/identity.js';
import type { DkgRound2Msg } from '../../core/messages.js';
import { getSuite, type SuiteId } from '../../core/suites.js';
import { MAX_PAYLOAD_BYTES } from '../../contract/relay.js';
import { DEFAULT_MAX_BYTES_PER_PEER, type SessionChannel } from './channel.js';

export interface Deviations {
  readonly wrongConfirmTo?: readonly number[];
  readonly withholdVote?: readonly number[];
  readonly claimEpochAhead?: boolean;
  readonly equivocateDkgTo?: readonly number[];
  readonly equivocateSignTo?: readonly number[];
  readonly badShareTo?: readonly number[];
  readonly wrongVoteTo?: readonly number[];
  readonly garbageVoteTo?: readonly number[];
  readonly floodMessagesTo?: readonly number[];
  readonly floodBytesTo?: readonly number[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The deviations that take node indexes, by their env name. */
const TARGETED: Record<string, keyof Deviations> = {
  'wrong-confirm-to': 'wrongConfirmTo',
  'withhold-vote-to': 'withholdVote',
  'equivocate-dkg-to': 'equivocateDkgTo',
  'equivocate-sign-to': 'equivocateSignTo',
  'bad-share-to': 'badShareTo',
  'wrong-vote-to': 'wrongVoteTo',
  'garbage-vote-to': 'garbageVoteTo',
  'flood-messages-to': 'floodMessagesTo',
  'flood-bytes-to': 'floodBytesTo',
};

/** How many distinct messages flood-messages sends to each target. */
export const FLOOD_MESSAGES = 256;
/** Room left in each flood-bytes payload for the channel envelope (round, KEM ciphertext, nonce, signature). */
const ENVELOPE_ROOM = 64 * 1024;

function nodes(v: string, what: string): number[] {
  const out = v.split('+').map((x) => Number(x));
  if (out.length === 0 || out.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 255)) {
    throw new TesseraError(ErrorCode.BadInput, `TESSERA_TEST_DEVIATIONS: ${what} needs node indexes, e.g. ${what}:2+3`);
  }
  return out;
}

/** Parse TESSERA_TEST_DEVIATIONS (comma-separated); unknown names are refused. */
export function parseDeviations(env: string | undefined): Deviations | undefined {
  if (env === undefined || env.trim() === '') return undefined;
  const d: Mutable<Deviations> = {};
  for (const item of env.split(',').map((s) => s.trim())) {
    const [name, arg, extra] = item.split(':');
    const field = name !== undefined ? TARGETED[name] : undefined;
    if (field && arg && extra === undefined) (d as Record<string, unknown>)[field] = nodes(arg, name!);
    else if (name === 'claim-epoch-ahead' && arg === undefined) d.claimEpochAhead = true;
    else throw new TesseraError(ErrorCode.BadInput, `TESSERA_TEST_DEVIATIONS: unknown deviation ${item.slice(0, 40)}`);
  }
  return d;
}

/** Whether `to` is one of a deviation's targets. */
export function targets(list: readonly number[] | undefined, to: number): boolean {
  return list !== undefined && list.includes(to);
}

/** bad-share-to: the real share plus one, a canonical scalar that fails the receiver's check against our commitments. */
export function badShare(suite: SuiteId, share: DkgRound2Msg): DkgRound2Msg {
  const { group } = getSuite(suite);
  return { share: group.scalarToBytes(group.add(group.scalarFromBytes(share.share, 'share', true), 1n)) };
}

/**
 * The commit vote to send to `to`: the real one, a vote signed over another result digest
 * (wrong-vote-to), random bytes (garbage-vote-to), or none (withhold-vote-to).
 */
export function voteFor(d: Deviations, to: number, vote: Uint8Array, identity: IdentityKeyPair, s: CommitStatement): Uint8Array | undefined {
  if (targets(d.withholdVote, to)) return undefined;
  if (targets(d.wrongVoteTo, to)) return identitySign(identity.secretKey, voteBytes({ ...s, resultDigest: randomBytes(s.resultDigest.length) }));
  if (targets(d.garbageVoteTo, to)) return randomBytes(IDENTITY_SIGNATURE_LENGTH);
  return vote;
}

/** flood-messages: the extra round names the flooder declares in its own channel, so its channel sends them. */
export function floodRounds(d: Deviations | undefined): string[] {
  if (!d?.floodMessagesTo) return [];
  return Array.from({ length: FLOOD_MESSAGES }, (_, i) => `flood/${i}`);
}

/**
 * Right after the hello: flood-messages sends FLOOD_MESSAGES distinct signed messages under rounds the
 * protocol does not run; flood-bytes sends relay-sized messages under the protocol's own `rounds` (last
 * first, so the flooder's own protocol is not the first to trip over a round already sent) until more
 * than the receiver's per-peer byte cap went out, or the rounds ran out.
 */
export function flood(d: Deviations | undefined, channel: SessionChannel, peers: readonly number[], rounds: readonly string[]): void {
  if (!d) return;
  for (const to of peers) {
    if (targets(d.floodMessagesTo, to)) for (const round of floodRounds(d)) channel.send(to, round, randomBytes(32));
    if (targets(d.floodBytesTo, to)) {
      const big = new Uint8Array(MAX_PAYLOAD_BYTES - ENVELOPE_ROOM).fill(0x5a); // content is irrelevant: only its size
      let sent = 0;
      for (const round of [...rounds].reverse()) {
        if (sent > DEFAULT_MAX_BYTES_PER_PEER) break;
        channel.send(to, round, big);
        sent += big.length;
      }
    }
  }
}
