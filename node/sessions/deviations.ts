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
 * Threshold ECDSA (DKLs23, core/ecdsa/; issue 12 "Malicious-party tests"):
 *   ecdsa-setup-tamper-to:N[+M]   keygen/refresh pairwise setup (core/ecdsa/setup.ts): one bit flipped in
 *                                 this node's setup message of round ecdsa-setup-round (default 1) to N, M
 *   ecdsa-setup-round:K           the setup round (1..5) ecdsa-setup-tamper-to cheats in
 *   ecdsa-mul-cheat-to:N[+M]      sign round 2, F_RVOLE as Alice with N, M as Bob: an inconsistent correlation
 *                                 in every OT (core/ecdsa/mul.ts MulAliceCheat), the selective-failure attack
 *   ecdsa-mul-probe-to:N[+M]      the same in OT 0 only: the check fails iff Bob's choice bit β_0 is 1, so
 *                                 a run that goes through would tell the cheater that bit (DKLs19 §1)
 *   ecdsa-kos-cheat-to:N[+M]      sign round 1, F_RVOLE as Bob with N, M as Alice: the OT-extension columns
 *                                 changed before the KOS check is derived (core/ecdsa/ote.ts KosReceiverCheat)
 *   ecdsa-bad-gamma-u-to:N[+M]    sign round 2: the negated Γ^u to N, M (a valid point, the wrong one)
 *   ecdsa-bad-gamma-v-to:N[+M]    sign round 2: the negated Γ^v to N, M
 *   ecdsa-bad-psi-to:N[+M]        sign round 2: ψ ± 1 to N, M
 *   ecdsa-bad-decommit-to:N[+M]   sign round 2: a salt with one bit flipped, so (R, salt) does not open the
 *                                 round-1 commitment at N, M
 *   ecdsa-bad-share-to:N[+M]      sign round 3: u_i ± 1 to N, M (the real pair to the rest)
 *
 * Each deviation is a small hook where the message is sent (node/sessions/protocols.ts, commit.ts,
 * engine.ts); with no deviation set those paths send exactly what they always did. core/ stays pure:
 * the deviations tamper with a message here, or call a core round a second time.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { voteBytes, type CommitStatement } from '../../core/commit.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { IDENTITY_SIGNATURE_LENGTH, identitySign, type IdentityKeyPair } from '../../core/identity.js';
import type { DkgRound2Msg, EcdsaRound2Msg, EcdsaRound3Msg } from '../../core/messages.js';
import type { SignCheat } from '../../core/ecdsa/dkls23.js';
import { OTE_KAPPA } from '../../core/ecdsa/ote.js';
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
  // Threshold ECDSA (test only, like every field here; see the table above).
  readonly ecdsaSetupTamperTo?: readonly number[];
  /** 1..5; default 1. */
  readonly ecdsaSetupRound?: number;
  readonly ecdsaMulCheatTo?: readonly number[];
  readonly ecdsaMulProbeTo?: readonly number[];
  readonly ecdsaKosCheatTo?: readonly number[];
  readonly ecdsaBadGammaUTo?: readonly number[];
  readonly ecdsaBadGammaVTo?: readonly number[];
  readonly ecdsaBadPsiTo?: readonly number[];
  readonly ecdsaBadDecommitTo?: readonly number[];
  readonly ecdsaBadShareTo?: readonly number[];
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
  'ecdsa-setup-tamper-to': 'ecdsaSetupTamperTo',
  'ecdsa-mul-cheat-to': 'ecdsaMulCheatTo',
  'ecdsa-mul-probe-to': 'ecdsaMulProbeTo',
  'ecdsa-kos-cheat-to': 'ecdsaKosCheatTo',
  'ecdsa-bad-gamma-u-to': 'ecdsaBadGammaUTo',
  'ecdsa-bad-gamma-v-to': 'ecdsaBadGammaVTo',
  'ecdsa-bad-psi-to': 'ecdsaBadPsiTo',
  'ecdsa-bad-decommit-to': 'ecdsaBadDecommitTo',
  'ecdsa-bad-share-to': 'ecdsaBadShareTo',
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
    else if (name === 'ecdsa-setup-round' && arg && extra === undefined && /^[1-5]$/.test(arg)) d.ecdsaSetupRound = Number(arg);
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

// ------------------------------------------------------------------------------ threshold ECDSA

/** A copy of `bytes` with the lowest bit of byte `at` flipped (negative `at` counts from the end). */
function flipBit(bytes: Uint8Array, at: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const k = at < 0 ? out.length + at : at;
  out[k]! ^= 1;
  return out;
}

/**
 * ecdsa-setup-tamper-to: the setup message of `round` (1..5) to send to `to`, one bit flipped in its
 * middle byte where the deviation says so (every VSOT message of core/ecdsa/setup.ts is checked by
 * its receiver or answered into a check, so the session aborts); else the message as it is.
 */
export function setupMessageFor(d: Deviations | undefined, round: number, to: number, msg: Uint8Array): Uint8Array {
  if (!targets(d?.ecdsaSetupTamperTo, to) || (d?.ecdsaSetupRound ?? 1) !== round) return msg;
  return flipBit(msg, msg.length >> 1);
}

/**
 * The cheats of ecdsa-mul-cheat-to, ecdsa-mul-probe-to and ecdsa-kos-cheat-to, as core/ecdsa/dkls23.ts
 * SignCheat takes them (the only caller that passes one); undefined when none is set.
 */
export function ecdsaSignCheat(d: Deviations | undefined): SignCheat | undefined {
  if (!d || !(d.ecdsaMulCheatTo || d.ecdsaMulProbeTo || d.ecdsaKosCheatTo)) return undefined;
  return {
    // Alice: ã₀ + 1 in every OT (cheat) or in OT 0 only (probe); τ, χ, u and r̃ follow from it honestly.
    mulAlice: (j) =>
      targets(d.ecdsaMulCheatTo, j)
        ? { correlation: (_ot, k, value) => (k === 0 ? value + 1n : value) }
        : targets(d.ecdsaMulProbeTo, j)
          ? { correlation: (ot, k, value) => (ot === 0 && k === 0 ? value + 1n : value) }
          : undefined,
    // Bob: row 0's choice bit flipped in every column (consistently across columns, but not in the x̃
    // the check is derived from), so KOS15's check fails for any Δ ≠ 0.
    mulBob: (j) =>
      targets(d.ecdsaKosCheatTo, j)
        ? {
            corruptColumns: (columns) => {
              const colBytes = columns.length / OTE_KAPPA;
              for (let i = 0; i < OTE_KAPPA; i++) columns[i * colBytes]! ^= 1;
            },
          }
        : undefined,
  };
}

/** The round-2 message to send to `to`: Γ^u / Γ^v negated (the SEC 1 prefix flipped), ψ ± 1, or a salt that does not open. */
export function ecdsaRound2For(d: Deviations | undefined, to: number, m: EcdsaRound2Msg): EcdsaRound2Msg {
  if (!d) return m;
  let out = m;
  if (targets(d.ecdsaBadGammaUTo, to)) out = { ...out, gammaU: flipBit(out.gammaU, 0) };
  if (targets(d.ecdsaBadGammaVTo, to)) out = { ...out, gammaV: flipBit(out.gammaV, 0) };
  if (targets(d.ecdsaBadPsiTo, to)) out = { ...out, psi: flipBit(out.psi, -1) };
  if (targets(d.ecdsaBadDecommitTo, to)) out = { ...out, salt: flipBit(out.salt, 0) };
  return out;
}

/** The round-3 pair to send to `to`: u_i ± 1 where ecdsa-bad-share-to says so. */
export function ecdsaRound3For(d: Deviations | undefined, to: number, m: EcdsaRound3Msg): EcdsaRound3Msg {
  return targets(d?.ecdsaBadShareTo, to) ? { ...m, u: flipBit(m.u, -1) } : m;
}
