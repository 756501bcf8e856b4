/**
 * DKLs23 signing (core/ecdsa/dkls23.ts, ePrint 2023/765 Protocol 3.6) as rounds over point-to-point
 * messages (core/messages.ts EcdsaRound1Msg..EcdsaRound3Msg), the form the node's session channel carries.
 *
 *   round 1  to each P_j: the commitment to R_i (the same to all) and the F_RVOLE message as Bob;
 *   round 2  to each P_j: the echo H(every signer's round-1 commitment, as received), the decommitment
 *            (R_i, salt), Γ^u, Γ^v, ψ and the F_RVOLE reply as Alice;
 *   presign  check every peer's echo against this signer's own view, then Protocol 3.6's checks
 *            (decommitments, Γ consistency, F_RVOLE) and u_i, v_i (no message needed yet);
 *   round 3  broadcast (u_i, w_i) for the message digest; combine every signer's pair (step 10).
 *
 * The echo: Protocol 3.6 step 6 broadcasts the commitment to R_i. Over point-to-point channels a signer
 * could send different commitments to different signers; the echo of round 2 makes every honest
 * signer abort unless all of them hold the same commitment from every signer (echo broadcast, as the
 * paper's broadcast of the commitment requires). A mismatch names no one: from this signer's view alone
 * it cannot tell whether the commitment's author or the echo's author lied.
 *
 * Secret state is used once and wiped on every exit (dkls23.ts's states; the echo is public).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, framed, i2osp, utf8ToBytes } from '../bytes.js';
import { ErrorCode, ensure } from '../errors.js';
import type { EcdsaRound1Msg, EcdsaRound2Msg, EcdsaRound3Msg } from '../messages.js';
import {
  combine,
  discardSignState,
  presign,
  signRound1,
  signRound2,
  signWithPresignature,
  type EcdsaSigningKey,
  type Presignature,
  type Round2Broadcast,
  type Round2Direct,
  type SignRound1State,
  type SignRound2State,
  type SignCheat,
  type SignRound3State,
} from './dkls23.js';
import type { FinalEcdsaSignature } from './signature.js';

const DST_SESSION = utf8ToBytes('tessera/ecdsa-sign/v1');
const DST_ECHO = utf8ToBytes('tessera/ecdsa-sign/v1/echo');
const DST_PRESIGN_INSTANCE = utf8ToBytes('tessera/ecdsa-presign/v1/instance');
const DST_PRESIGN_ID = utf8ToBytes('tessera/ecdsa-presign/v1/id');
/** Length of a presignature id (ecdsaPresignatureIds). */
export const ECDSA_PRESIGNATURE_ID_LENGTH = 16;

export interface EcdsaSession1 {
  readonly dkls: SignRound1State;
  readonly commitment: Uint8Array;
}
export interface EcdsaSession2 {
  readonly dkls: SignRound2State;
  readonly echo: Uint8Array;
}

/** The DKLs23 session id of a session run: H(session id, run id), 32 bytes (unique per run). */
export function ecdsaSessionId(session: Uint8Array, runId: Uint8Array): Uint8Array {
  return sha256(framed(DST_SESSION, session, runId));
}

/**
 * The DKLs23 session id of instance k of a presigning run: H(ecdsaSessionId(session, run id), k), so every
 * instance of every run has its own (unique per run, as each instance is a signing session of its own).
 */
export function ecdsaPresignSessionIds(session: Uint8Array, runId: Uint8Array, count: number): Uint8Array[] {
  ensure(Number.isSafeInteger(count) && count >= 1 && count <= 0xffff, ErrorCode.BadInput, 'presign: count must be 1..65535');
  const base = ecdsaSessionId(session, runId);
  return Array.from({ length: count }, (_, k) => sha256(framed(DST_PRESIGN_INSTANCE, base, i2osp(k, 2))));
}

/**
 * The id of the presignature instance k of a presigning run makes: the same at every player (from the
 * session id and the run id every player contributed to), unpredictable before the run, and unrelated
 * to any secret. 16 bytes.
 */
export function ecdsaPresignatureIds(session: Uint8Array, runId: Uint8Array, count: number): Uint8Array[] {
  ensure(Number.isSafeInteger(count) && count >= 1 && count <= 0xffff, ErrorCode.BadInput, 'presign: count must be 1..65535');
  return Array.from({ length: count }, (_, k) => sha256(framed(DST_PRESIGN_ID, session, runId, i2osp(k, 2))).subarray(0, ECDSA_PRESIGNATURE_ID_LENGTH));
}

function echoOf(signers: readonly number[], commitments: ReadonlyMap<number, Uint8Array>): Uint8Array {
  return sha256(framed(DST_ECHO, ...signers.flatMap((j) => [i2osp(j, 1), commitments.get(j)!])));
}

/** Round 1 (steps 5–6). `sessionId` from ecdsaSessionId. `cheat`: tests only (dkls23.ts SignCheat), never passed by honest code. */
export function ecdsaRound1(key: EcdsaSigningKey, sessionId: Uint8Array, signers: readonly number[], cheat?: SignCheat): { state: EcdsaSession1; out: Map<number, EcdsaRound1Msg> } {
  const r1 = signRound1(key, sessionId, signers, cheat);
  const out = new Map<number, EcdsaRound1Msg>();
  for (const [j, d] of r1.direct) out.set(j, { commitment: r1.broadcast.commitment, mul: d.mul });
  return { state: { dkls: r1.state, commitment: r1.broadcast.commitment }, out };
}

/** Round 2 (step 7) with the echo of the round-1 commitments. Consumes the round-1 state. `cheat`: tests only, as in round 1. */
export function ecdsaRound2(state: EcdsaSession1, incoming: ReadonlyMap<number, EcdsaRound1Msg>, cheat?: SignCheat): { state: EcdsaSession2; out: Map<number, EcdsaRound2Msg> } {
  const { dkls } = state;
  const broadcasts = new Map<number, { commitment: Uint8Array }>();
  const direct = new Map<number, { mul: Uint8Array }>();
  for (const [j, m] of incoming) {
    broadcasts.set(j, { commitment: m.commitment });
    direct.set(j, { mul: m.mul });
  }
  const r2 = signRound2(dkls, broadcasts, direct, cheat);
  const all = new Map(broadcasts.entries());
  all.set(dkls.index, { commitment: state.commitment });
  const echo = echoOf(dkls.signers, new Map([...all].map(([j, b]) => [j, b.commitment])));
  const out = new Map<number, EcdsaRound2Msg>();
  for (const [j, d] of r2.direct) out.set(j, { echo, R: r2.broadcast.R, salt: r2.broadcast.salt, gammaU: d.gammaU, gammaV: d.gammaV, psi: d.psi, mul: d.mul });
  return { state: { dkls: r2.state, echo }, out };
}

/**
 * Check every echo, then Protocol 3.6's checks and the message-free shares (dkls23.ts presign).
 * Consumes the round-2 state; the presignature signs exactly one digest.
 */
export function ecdsaPresign(state: EcdsaSession2, incoming: ReadonlyMap<number, EcdsaRound2Msg>): Presignature {
  const broadcasts = new Map<number, Round2Broadcast>();
  const direct = new Map<number, Round2Direct>();
  try {
    for (const [j, m] of incoming) {
      ensure(
        m.echo instanceof Uint8Array && equalBytes(m.echo, state.echo),
        ErrorCode.SessionAborted,
        `node ${j} holds other round-1 commitments than node ${state.dkls.index}: a signer sent different commitments to different signers`,
      );
      broadcasts.set(j, { R: m.R, salt: m.salt });
      direct.set(j, { gammaU: m.gammaU, gammaV: m.gammaV, psi: m.psi, mul: m.mul });
    }
  } catch (e) {
    discardSignState(state.dkls);
    throw e;
  }
  return presign(state.dkls, broadcasts, direct);
}

/** Round 3: the signature share for `digest` (step 9). Consumes the presignature. */
export function ecdsaRound3(presig: Presignature, digest: Uint8Array): { state: SignRound3State; broadcast: EcdsaRound3Msg } {
  return signWithPresignature(presig, digest);
}

/** Step 10: combine every signer's round-3 broadcast (this signer's own included) and verify. */
export function ecdsaCombine(state: SignRound3State, incoming: ReadonlyMap<number, EcdsaRound3Msg>, own: EcdsaRound3Msg): FinalEcdsaSignature {
  ensure(!incoming.has(state.index), ErrorCode.BadInput, 'round-3 messages: this signer\'s own entry is given separately');
  const all = new Map(incoming);
  all.set(state.index, own);
  return combine(state, all);
}

/** Abandon a session between rounds: wipe its secret state. */
export function ecdsaDiscard(state: EcdsaSession1 | EcdsaSession2 | Presignature): void {
  discardSignState('dkls' in state ? state.dkls : state);
}
