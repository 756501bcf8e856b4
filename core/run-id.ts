/**
 * The per-run value that every identity-signed protocol message binds (issue 9, "every identity-signed
 * protocol message binds a fresh per-run value contributed by all players").
 *
 * A session id alone is not enough: scheduled-rotation ids are deterministic, so a session can run
 * twice under one id, and a package an honest party signed in the first run would still verify in the
 * second — a peer could replay it as "proof" that the party equivocated. Each player therefore
 * contributes 32 fresh random bytes (exchanged in the signed channel hello), and
 *
 *   runId = SHA-256(framed("TESSERA-v1/run-id", sessionDigest, i2osp(i, 2) || contribution_i, ...))
 *
 * over every player's contribution in index order. One honest contribution makes the run id fresh.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, framed, i2osp, utf8ToBytes } from './bytes.js';
import { ErrorCode, ensure } from './errors.js';

/** Length of a run id (SHA-256 output). */
export const RUN_ID_LENGTH = 32;
/** Length of each player's random contribution. */
export const RUN_CONTRIBUTION_LENGTH = 32;
/** Length of the session digest a run id is derived from (core/session.ts sessionDigest). */
export const SESSION_DIGEST_LENGTH = 32;

const TAG_RUN_ID = utf8ToBytes('TESSERA-v1/run-id');

/** The one check of a run id handed to a protocol: exactly RUN_ID_LENGTH bytes. */
export function checkRunId(runId: unknown): asserts runId is Uint8Array {
  ensure(runId instanceof Uint8Array && runId.length === RUN_ID_LENGTH, ErrorCode.BadInput, `run id must be ${RUN_ID_LENGTH} bytes`);
}

/**
 * Derive the run id from the session digest and every player's contribution (keyed by 1-based
 * player index). With `players`, the contributors must be exactly those players (each once: a Map
 * holds one entry per index). Pure; validates sizes and indexes before hashing.
 */
export function deriveRunId(
  sessionDigest: Uint8Array,
  contributions: ReadonlyMap<number, Uint8Array>,
  players?: readonly number[],
): Uint8Array {
  ensure(
    sessionDigest instanceof Uint8Array && sessionDigest.length === SESSION_DIGEST_LENGTH,
    ErrorCode.BadInput,
    `run id: session digest must be ${SESSION_DIGEST_LENGTH} bytes`,
  );
  ensure(contributions instanceof Map, ErrorCode.BadInput, 'run id: contributions must be a Map keyed by player index');
  const indexes = [...contributions.keys()];
  for (const i of indexes) {
    ensure(Number.isSafeInteger(i) && i >= 1 && i <= 255, ErrorCode.BadInput, 'run id: contributor indexes must be integers 1..255');
    const c = contributions.get(i);
    ensure(
      c instanceof Uint8Array && c.length === RUN_CONTRIBUTION_LENGTH,
      ErrorCode.BadInput,
      `run id: the contribution of player ${i} must be ${RUN_CONTRIBUTION_LENGTH} bytes`,
    );
  }
  ensure(indexes.length >= 2, ErrorCode.BadInput, 'run id: at least two players must contribute');
  indexes.sort((a, b) => a - b);
  if (players !== undefined) {
    ensure(Array.isArray(players), ErrorCode.BadInput, 'run id: players must be a list');
    const want = [...players].sort((a, b) => a - b);
    const distinct = want.every((p, k) => Number.isSafeInteger(p) && (k === 0 || want[k - 1] !== p));
    ensure(distinct, ErrorCode.BadInput, 'run id: players must be distinct integers');
    const missing = want.filter((p) => !contributions.has(p));
    const extra = indexes.filter((i) => !want.includes(i));
    ensure(missing.length === 0, ErrorCode.BadInput, `run id: no contribution from player ${missing.join(', ')}`);
    ensure(extra.length === 0, ErrorCode.BadInput, `run id: contribution from non-player ${extra.join(', ')}`);
  }
  return sha256(framed(TAG_RUN_ID, sessionDigest, ...indexes.map((i) => concatBytes(i2osp(i, 2), contributions.get(i)!))));
}
