/**
 * Session parameters and the digest every node joins with (../shared/design/sessions.md, step 3):
 * digest = H(protocol-id, session id, parameters, sorted players).
 *
 * Two nodes that were asked for anything different (another message, key, version, threshold, player
 * set, receiver key, ...) compute different digests, and the coordinator refuses to start the session.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, framed, i2osp, utf8ToBytes } from './bytes.js';
import { formatDerivationPath, parseDerivationPath } from './derive.js';
import { ErrorCode, ensure } from './errors.js';
import { checkPlayers } from './shamir.js';
import { ECDSA_SUITES, isSuiteId, type SuiteId } from './suites.js';

const isEcdsaSuiteId = (s: SuiteId): boolean => (ECDSA_SUITES as readonly string[]).includes(s);

export const PROTOCOL_ID = 'tessera/session/v1';
/**
 * Every session a node joins. All but sign and decapsulate need every node: keygen, refresh, export,
 * import, rotate (a DKG for the next version) and the lifecycle transitions retire / archive / activate /
 * destroy (every node changes its copy, so every node's operator approves).
 */
export const OPERATIONS = ['keygen', 'sign', 'decapsulate', 'refresh', 'export', 'import', 'rotate', 'retire', 'archive', 'activate', 'destroy', 'reshare', 'membership'] as const;
export type Operation = (typeof OPERATIONS)[number];
export const SESSION_ID_LENGTH = 16;

export interface SessionParams {
  readonly operation: Operation;
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly suite: SuiteId;
  readonly threshold: number;
  readonly parties: number;
  /**
   * The nodes that take part, node indices in 1..parties (the cluster's nodes): all of them for keygen
   * and import; the key's whole committee (core/committee.ts partyIndices, which each node reads from
   * its own record) for refresh, export, rotate and the lifecycle transitions; any t or more of the
   * committee for sign/decapsulate; dealers and new committee for reshare.
   */
  readonly players: readonly number[];
  /** SHA-256 of the operation's payload (message, enc || receiver key, wrapping keys...), 32 bytes. */
  readonly payloadDigest: Uint8Array;
  /**
   * sign only: the non-hardened BIP-32 path of the child key to sign with (core/derive.ts), canonical
   * ("m/0/5"); absent for the key itself. In the digest, so signers asked for different children never
   * sign together.
   */
  readonly path?: string;
}

/** Tenants and key ids: 1-128 of [A-Za-z0-9._:-], starting alphanumeric. */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Validate parameters before anything else touches them. Returns them with players sorted. */
export function checkSessionParams(p: SessionParams): SessionParams {
  ensure((OPERATIONS as readonly string[]).includes(p.operation), ErrorCode.BadParameters, `unknown operation ${String(p.operation).slice(0, 32)}`);
  ensure(typeof p.tenant === 'string' && ID_RE.test(p.tenant), ErrorCode.BadParameters, 'tenant: expected 1-128 of [A-Za-z0-9._:-]');
  ensure(typeof p.keyId === 'string' && ID_RE.test(p.keyId), ErrorCode.BadParameters, 'keyId: expected 1-128 of [A-Za-z0-9._:-]');
  ensure(Number.isSafeInteger(p.version) && p.version >= 1, ErrorCode.BadParameters, 'version: expected an integer >= 1');
  ensure(isSuiteId(p.suite), ErrorCode.UnknownSuite, `unknown suite ${String(p.suite).slice(0, 32)}`);
  ensure(p.payloadDigest instanceof Uint8Array && p.payloadDigest.length === 32, ErrorCode.BadParameters, 'payloadDigest: expected 32 bytes');
  ensure(Number.isSafeInteger(p.parties) && p.parties >= 2 && p.parties <= 255, ErrorCode.BadParameters, `parties must be 2..255`);
  ensure(
    Number.isSafeInteger(p.threshold) && p.threshold >= 2 && p.threshold <= p.parties,
    ErrorCode.BadParameters,
    `threshold ${p.threshold} must be 2..${p.parties}`,
  );
  if (p.path !== undefined) {
    ensure(p.operation === 'sign', ErrorCode.BadParameters, `path: only a sign session takes a derivation path, not ${p.operation}`);
    const steps = parseDerivationPath(p.path);
    ensure(steps.length > 0 && formatDerivationPath(steps) === p.path, ErrorCode.BadParameters, 'path: expected the canonical form of a non-empty path, such as m/0/5');
  }
  // Making a new key from nothing (keygen) or from a bundle (import) deals to every member of the
  // cluster, which the node knows and this pure check does not: after a membership change the members
  // are any indices up to `parties` (core/membership.ts). Every other operation runs on an existing
  // key's holders: at least t of them, as checked. Either way the digest binds exactly which players.
  const players = checkPlayers(p.players, p.parties, p.threshold);
  return { ...p, players };
}

/** The rounds of the joint-Feldman engine (DKG, refresh, export's re-randomisation, import). */
export const JOINT_FELDMAN_ROUNDS = ['dkg/round1', 'dkg/round2', 'dkg/echo', 'dkg/confirm'] as const;
/** Resharing to a new committee (core/reshare.ts): the signed deals with their private sub-shares, the echo, the confirmation. */
export const RESHARE_ROUNDS = ['reshare/deal', 'reshare/share', 'reshare/echo', 'reshare/confirm'] as const;
/** FROST signing (RFC 9591 §5.1, §5.2; the round-1 echo is folded into round 2). */
export const SIGN_ROUNDS = ['sign/commit', 'sign/share'] as const;
/** Threshold ECDSA key setup (core/ecdsa/setup.ts), after the joint-Feldman rounds of a key-making session. */
export const ECDSA_SETUP_ROUNDS = ['ecdsa/setup1', 'ecdsa/setup2', 'ecdsa/setup3', 'ecdsa/setup4', 'ecdsa/setup5'] as const;
/** DKLs23 signing (core/ecdsa/session.ts). */
export const ECDSA_SIGN_ROUNDS = ['ecdsa/round1', 'ecdsa/round2', 'ecdsa/round3'] as const;
/**
 * DKLs23 presigning (node/sessions/protocols.ts runEcdsaPresign): rounds 1 and 2 of a batch of signing
 * instances. A 'sign' session on an ECDSA key whose payload digest binds the presigning tag and the
 * count instead of a message (node/service.ts ecdsaPresignatures), so it never shares a digest with a signing session.
 */
export const ECDSA_PRESIGN_ROUNDS = ['ecdsa/presign1', 'ecdsa/presign2'] as const;
/** The commit step of every state-changing session (node/sessions/commit.ts): attest, vote, certificate. */
export const COMMIT_ROUNDS = ['commit/staged', 'commit/vote', 'commit/cert'] as const;
/** A peer's certificate for a player behind on an existing key version (node/sessions/engine.ts). */
export const CATCH_UP_ROUND = 'commit/catchup';

/**
 * Every round name a session of `operation` on a key of `suite` sends on the channel, besides the hello.
 * The node's channel accepts no other (node/sessions/channel.ts), and a third party checking a signed
 * envelope offered as evidence (core/evidence.ts) uses the same table: one list for both. Threshold
 * ECDSA keys add the pairwise setup to every session that makes shares for keeping (keygen, rotate,
 * import, refresh) and sign with DKLs23's rounds instead of FROST's. Without a suite (a checker that
 * does not know the key's), the rounds of every suite: an honest node's envelope is then never taken
 * for evidence, at the price of not catching a round that only another suite runs.
 */
export function declaredRounds(operation: Operation, suite?: SuiteId): readonly string[] {
  const frost = suite === undefined || !isEcdsaSuiteId(suite);
  const ecdsa = suite === undefined || isEcdsaSuiteId(suite);
  const setup = ecdsa ? ECDSA_SETUP_ROUNDS : [];
  switch (operation) {
    case 'keygen':
    case 'rotate':
    case 'import':
      return [...JOINT_FELDMAN_ROUNDS, ...setup, ...COMMIT_ROUNDS];
    case 'refresh':
      return [...JOINT_FELDMAN_ROUNDS, ...setup, ...COMMIT_ROUNDS, CATCH_UP_ROUND];
    case 'export':
      return [...JOINT_FELDMAN_ROUNDS, CATCH_UP_ROUND];
    case 'reshare':
      // An ECDSA key's new committee makes its pairwise setups in the same session, before the commit.
      // 'reshare/key': the dealers hand the old package and metadata to players joining the committee (node/sessions/reshare.ts).
      return ['reshare/key', 'reshare/created', ...RESHARE_ROUNDS, ...setup, ...COMMIT_ROUNDS, CATCH_UP_ROUND];
    case 'sign':
      return [...(frost ? SIGN_ROUNDS : []), ...(ecdsa ? [...ECDSA_SIGN_ROUNDS, ...ECDSA_PRESIGN_ROUNDS] : []), CATCH_UP_ROUND];
    case 'decapsulate':
      return [CATCH_UP_ROUND];
    case 'retire':
    case 'archive':
    case 'activate':
    case 'destroy':
    case 'membership':
      // A membership change (core/membership.ts) is a commit and nothing else: the votes are the change.
      return [...COMMIT_ROUNDS];
  }
}

/** The digest a node joins a session with. */
export function sessionDigest(sessionId: Uint8Array, params: SessionParams): Uint8Array {
  ensure(sessionId instanceof Uint8Array && sessionId.length === SESSION_ID_LENGTH, ErrorCode.BadParameters, `session id: expected ${SESSION_ID_LENGTH} bytes`);
  const p = checkSessionParams(params);
  return sha256(
    framed(
      utf8ToBytes(PROTOCOL_ID),
      sessionId,
      utf8ToBytes(p.operation),
      utf8ToBytes(p.tenant),
      utf8ToBytes(p.keyId),
      i2osp(p.version, 4),
      utf8ToBytes(p.suite),
      i2osp(p.threshold, 1),
      i2osp(p.parties, 1),
      concatBytes(...p.players.map((x) => i2osp(x, 1))),
      p.payloadDigest,
      // Appended only when present, so that the digest of every session without a path is unchanged.
      ...(p.path !== undefined ? [utf8ToBytes('path'), utf8ToBytes(p.path)] : []),
    ),
  );
}

/** Associated data binding a wrapped partial decapsulation to its session, key version and sender node. */
export function decapPartialBinding(sessionId: Uint8Array, keyId: string, version: number, index: number): Uint8Array {
  return framed(utf8ToBytes('tessera/decap-partial/v1'), sessionId, utf8ToBytes(keyId), i2osp(version, 4), i2osp(index, 1));
}
