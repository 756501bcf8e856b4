/**
 * Presignatures: FROST with preprocessing (RFC 9591 §5.1 done ahead of time), the pure part.
 *
 * A node makes nonce pairs ahead of time (core/sign.ts signRound1), keeps them in memory only
 * (node/presign/), and hands their commitments out in batches. This module defines:
 *
 *  - the bytes a node signs with its ML-DSA-65 identity over one batch (presignBatchSignedBytes): a
 *    domain tag, the suite, the node index, the tenant, the key id, version and epoch, the pool id,
 *    and every (index, hiding, binding) in order. verifyPresignBatch checks such a signature (SDKs:
 *    a batch that does not verify under the node's identity key is not used);
 *  - the check of a presigned commitment list, the one a signer runs before it signs with one of its
 *    presignatures (checkPresignedList): every entry well formed, nodes distinct and within
 *    the key's committee, at least `threshold` of them, every point a valid element of the suite's group
 *    (RFC 9591 §3.1 DeserializeElement), and the checking node's own entry present;
 *  - presignRef: the 20 bytes (pool id ‖ I2OSP(index, 4)) naming one presignature, unique for the
 *    node's lifetime (pool ids are random), which the node's audit entry of the signature carries.
 *
 * Why a signer needs nothing but its own entry and a well-formed list (RFC 9591 §5.2): the signer
 * checks that its own commitment is in the list and that the list is valid, then computes its share
 * z_i = d_i + e_i·ρ_i + λ_i·s_i·c. The binding factor ρ_i (§4.4) hashes the message and the WHOLE
 * encoded commitment list, and c hashes the group commitment R derived from it, so a share is bound to
 * exactly one (message, list). Shares computed over different lists or messages use different ρ and
 * c: they never aggregate into a valid signature (§5.3/§5.4 reject them), whatever the other
 * signers' batch signatures said. The batch signatures protect the SDK (it only builds lists from
 * commitments a node really issued); a node never needs other nodes' batch signatures.
 */
import { equalBytes, framed, fromHex, i2osp, toHex, utf8ToBytes } from './bytes.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import { isParty } from './committee.js';
import { decodePoint, knownPoint, rememberPoint } from './frost.js';
import { identitySign, identityVerify } from './identity.js';
import type { SignCommitMsg } from './messages.js';
import { checkPackageCommittee } from './shamir.js';
import { SIGNING_SUITES, type SigningSuite, type SigningSuiteId } from './suites.js';

/** A pool id: 16 random bytes, new for every pool. */
export const PRESIGN_POOL_ID_LENGTH = 16;
/** Pool entry indexes are 32-bit unsigned integers. */
export const MAX_PRESIGN_INDEX = 0xffffffff;
/** Length of presignRef (pool id ‖ I2OSP(index, 4)). */
export const PRESIGN_REF_LENGTH = PRESIGN_POOL_ID_LENGTH + 4;

const TAG_PRESIGN_BATCH = utf8ToBytes('TESSERA-v1/presign/batch');
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** One commitment of a batch: the pool entry index and the RFC 9591 §5.1 commitments (SerializeElement). */
export interface PresignCommitment {
  readonly index: number;
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
}

/** Everything a node's batch signature binds. */
export interface PresignBatch {
  readonly suite: SigningSuiteId;
  /** The issuing node's index (1..255). */
  readonly node: number;
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly epoch: number;
  readonly poolId: Uint8Array;
  readonly commitments: readonly PresignCommitment[];
}

/** One signer's entry in a presigned commitment list (contract PresignedCommitmentJson, decoded). */
export interface PresignedEntry {
  readonly node: number;
  readonly poolId: Uint8Array;
  readonly index: number;
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
}

/** The same entry as it travels in JSON (hex strings). */
export interface PresignedEntryJson {
  readonly node: number;
  readonly poolId: string;
  readonly index: number;
  readonly hiding: string;
  readonly binding: string;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

function checkU32(n: unknown, what: string): asserts n is number {
  ensure(Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= MAX_PRESIGN_INDEX, ErrorCode.BadInput, `${what}: expected an integer from 0 to ${MAX_PRESIGN_INDEX}`);
}

function checkNode(n: unknown, what: string): asserts n is number {
  ensure(Number.isSafeInteger(n) && (n as number) >= 1 && (n as number) <= 255, ErrorCode.BadInput, `${what}: expected a node index from 1 to 255`);
}

function checkPoolId(b: unknown, what: string): asserts b is Uint8Array {
  ensure(b instanceof Uint8Array && b.length === PRESIGN_POOL_ID_LENGTH, ErrorCode.BadInput, `${what}: expected ${PRESIGN_POOL_ID_LENGTH} bytes`);
}

/**
 * The exact bytes a node signs (ML-DSA-65, core/identity.ts) over one batch of presignature
 * commitments. Every field is length-prefixed (core/bytes.ts framed), so no two batches share bytes.
 * Checks shapes only (points are checked where a list is used: checkPresignedList).
 */
export function presignBatchSignedBytes(b: PresignBatch): Uint8Array {
  ensure(isObject(b), ErrorCode.BadInput, 'presignature batch: expected an object');
  ensure((SIGNING_SUITES as readonly string[]).includes(b.suite), ErrorCode.UnknownSuite, 'presignature batch: not a signing suite');
  checkNode(b.node, 'presignature batch node');
  ensure(typeof b.tenant === 'string' && ID_PATTERN.test(b.tenant), ErrorCode.BadInput, 'presignature batch tenant: expected an id');
  ensure(typeof b.keyId === 'string' && ID_PATTERN.test(b.keyId), ErrorCode.BadInput, 'presignature batch keyId: expected an id');
  checkU32(b.version, 'presignature batch version');
  checkU32(b.epoch, 'presignature batch epoch');
  checkPoolId(b.poolId, 'presignature batch poolId');
  ensure(Array.isArray(b.commitments), ErrorCode.BadInput, 'presignature batch commitments: expected a list');
  const parts: Uint8Array[] = [
    TAG_PRESIGN_BATCH,
    utf8ToBytes(b.suite),
    i2osp(b.node, 2),
    utf8ToBytes(b.tenant),
    utf8ToBytes(b.keyId),
    i2osp(b.version, 4),
    i2osp(b.epoch, 4),
    b.poolId,
    i2osp(b.commitments.length, 4),
  ];
  b.commitments.forEach((c, k) => {
    ensure(isObject(c), ErrorCode.BadInput, `presignature batch commitments[${k}]: expected an object`);
    checkU32(c.index, `presignature batch commitments[${k}].index`);
    ensure(c.hiding instanceof Uint8Array && c.binding instanceof Uint8Array, ErrorCode.BadInput, `presignature batch commitments[${k}]: expected bytes`);
    parts.push(i2osp(c.index, 4), c.hiding, c.binding);
  });
  return framed(...parts);
}

/** Sign a batch with the node's identity secret key (node side). */
export function signPresignBatch(identitySecretKey: Uint8Array, b: PresignBatch): Uint8Array {
  return identitySign(identitySecretKey, presignBatchSignedBytes(b));
}

/**
 * A batch as the presignatures route returns it (contract PresignaturesResponse): hex strings, with the
 * node's signature.
 */
export interface PresignBatchJson {
  readonly suite: string;
  readonly node: number;
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly epoch: number;
  readonly poolId: string;
  readonly commitments: readonly { readonly index: number; readonly hiding: string; readonly binding: string }[];
  readonly signature: string;
}

/** Decode a batch from its JSON form (BAD_INPUT on bad hex or shapes; the signature is left out). */
export function presignBatchFromJson(r: PresignBatchJson): PresignBatch {
  ensure(isObject(r) && Array.isArray(r.commitments), ErrorCode.BadInput, 'presignature batch: expected an object with commitments');
  ensure((SIGNING_SUITES as readonly string[]).includes(r.suite), ErrorCode.UnknownSuite, 'presignature batch: not a signing suite');
  return {
    suite: r.suite as SigningSuiteId,
    node: r.node,
    tenant: r.tenant,
    keyId: r.keyId,
    version: r.version,
    epoch: r.epoch,
    poolId: fromHex(r.poolId, 'poolId', PRESIGN_POOL_ID_LENGTH),
    commitments: r.commitments.map((c, k) => {
      ensure(isObject(c as unknown), ErrorCode.BadInput, `commitments[${k}]: expected an object`);
      return { index: c.index, hiding: fromHex(c.hiding, `commitments[${k}].hiding`), binding: fromHex(c.binding, `commitments[${k}].binding`) };
    }),
  };
}

/**
 * Check a node's signature over a batch it returned (SDK side), under that node's identity public key
 * as the SDK trusts it (the cluster membership, never a key the response names). Takes the response
 * as it came (PresignaturesResponse). Never throws: a malformed batch is simply not a valid one.
 * Only the signature: the SDK still checks the batch is for the key, version and node it asked, and
 * the points are checked when a list is used (checkPresignedList).
 */
export function verifyPresignBatch(identityPublicKey: Uint8Array, response: PresignBatchJson): boolean {
  let bytes: Uint8Array;
  let signature: Uint8Array;
  try {
    bytes = presignBatchSignedBytes(presignBatchFromJson(response));
    signature = fromHex(response.signature, 'signature');
  } catch {
    return false;
  }
  return identityVerify(identityPublicKey, bytes, signature);
}

/** Decode a presigned commitment list from JSON (hex); shapes only (checkPresignedList checks the rest). */
export function presignedListFromJson(list: readonly PresignedEntryJson[]): PresignedEntry[] {
  ensure(Array.isArray(list), ErrorCode.BadInput, 'commitments: expected a list');
  return list.map((e: PresignedEntryJson, k) => {
    ensure(isObject(e as unknown), ErrorCode.BadInput, `commitments[${k}]: expected an object`);
    return {
      node: e.node,
      poolId: fromHex(e.poolId, `commitments[${k}].poolId`, PRESIGN_POOL_ID_LENGTH),
      index: e.index,
      hiding: fromHex(e.hiding, `commitments[${k}].hiding`),
      binding: fromHex(e.binding, `commitments[${k}].binding`),
    };
  });
}

/** The presigned list the other way round, for requests (SDK side). */
export function presignedListToJson(list: readonly PresignedEntry[]): PresignedEntryJson[] {
  return list.map((e) => ({ node: e.node, poolId: toHex(e.poolId), index: e.index, hiding: toHex(e.hiding), binding: toHex(e.binding) }));
}

/** The key parameters a list is checked against (from the node's own record, never from the request). */
export interface PresignListParams {
  readonly threshold: number;
  readonly parties: number;
  /** The key's committee (core/types.ts PublicKeyPackage.indices): absent means 1..parties. */
  readonly indices?: readonly number[];
}

/**
 * Check a presigned commitment list before signing with it (RFC 9591 §5.2 "the signer checks its own
 * commitment is in the list and the list is well formed"), in this order, before any secret is touched:
 *   1. every entry well formed (node 1..255, 16-byte pool id, 32-bit index, byte strings);
 *   2. nodes that hold the key (its committee; UNEXPECTED_PARTY), no node twice (BAD_INPUT), at least `threshold`
 *      and at most `parties` entries (BAD_PARAMETERS);
 *   3. `self`, when given, has an entry (BAD_PARAMETERS);
 *   4. every hiding and binding commitment a valid, canonical, non-identity element of the suite's
 *      prime-order group (RFC 9591 §3.1 DeserializeElement; BAD_POINT naming the nodes whose entries
 *      fail: the SDK that built the list got them from those nodes' batches, or made them up).
 *      An entry byte-equal to the caller's `decoded` commitment for that node (a node's own pooled
 *      commitment, decoded when it was made) is not decoded again.
 * Returns the list as core/sign.ts takes it (signRound2, aggregateSignature): commitments keyed by node.
 */
export function checkPresignedList(
  suite: SigningSuite,
  params: PresignListParams,
  list: readonly PresignedEntry[],
  self?: number,
  decoded?: ReadonlyMap<number, SignCommitMsg>,
): Map<number, SignCommitMsg> {
  ensure(isObject(suite) && suite.kind === 'sign', ErrorCode.UnknownSuite, 'not a signing suite');
  ensure(isObject(params), ErrorCode.BadInput, 'presigned list: expected key parameters');
  const { threshold, parties, indices } = params;
  ensure(
    Number.isSafeInteger(parties) && parties >= 2 && parties <= 255 && Number.isSafeInteger(threshold) && threshold >= 2 && threshold <= parties,
    ErrorCode.BadParameters,
    'presigned list: bad key parameters',
  );
  checkPackageCommittee({ threshold, parties, indices }, 'presigned list: key');
  const committee = { parties, indices };
  ensure(Array.isArray(list), ErrorCode.BadInput, 'presigned list: expected a list');
  ensure(list.length <= 255, ErrorCode.BadParameters, 'presigned list: more than 255 entries');
  const seen = new Set<number>();
  list.forEach((e, k) => {
    ensure(isObject(e), ErrorCode.BadInput, `commitments[${k}]: expected an object`);
    checkNode(e.node, `commitments[${k}].node`);
    checkPoolId(e.poolId, `commitments[${k}].poolId`);
    checkU32(e.index, `commitments[${k}].index`);
    ensure(e.hiding instanceof Uint8Array && e.binding instanceof Uint8Array, ErrorCode.BadInput, `commitments[${k}]: hiding and binding must be bytes`);
    ensure(isParty(committee, e.node), ErrorCode.UnexpectedParty, `commitments[${k}]: node ${e.node} is not a holder of this key`);
    ensure(!seen.has(e.node), ErrorCode.BadInput, `commitments: node ${e.node} is listed twice`);
    seen.add(e.node);
  });
  ensure(list.length >= threshold, ErrorCode.BadParameters, `commitments: need at least ${threshold} signers (the key's threshold), got ${list.length}`);
  if (self !== undefined) ensure(seen.has(self), ErrorCode.BadParameters, `commitments: this node (${self}) has no entry in the list`);
  // RFC 9591 §3.1 DeserializeElement, once per element: each point is decoded on the copy handed on
  // (core/frost.ts decodePoint remembers it), so signRound2 and aggregation do not decode it again.
  // An entry equal to one in `decoded` (the caller's own pooled commitment, which it made and decoded
  // itself) takes that element instead of being validated a second time.
  const { group } = suite;
  const adopt = (copy: Uint8Array, known: Uint8Array | undefined, what: string): void => {
    const p = known !== undefined && equalBytes(known, copy) ? knownPoint(group, known) : undefined;
    if (p !== undefined) rememberPoint(group, copy, p);
    else decodePoint(group, copy, what);
  };
  const bad: number[] = [];
  const out = new Map<number, SignCommitMsg>();
  for (const e of [...list].sort((a, b) => a.node - b.node)) {
    const copy = { hiding: Uint8Array.from(e.hiding), binding: Uint8Array.from(e.binding) };
    const known = decoded?.get(e.node);
    try {
      adopt(copy.hiding, known?.hiding, `hiding commitment of node ${e.node}`);
      adopt(copy.binding, known?.binding, `binding commitment of node ${e.node}`);
    } catch (err) {
      if (!(err instanceof TesseraError)) throw err;
      bad.push(e.node);
    }
    out.set(e.node, copy);
  }
  if (bad.length > 0) {
    throw new TesseraError(ErrorCode.BadPoint, `commitments of node(s) ${bad.join(', ')} are not valid ${suite.id} elements`);
  }
  return out;
}

/** The 20 bytes naming one presignature of a node: pool id ‖ I2OSP(index, 4). */
export function presignRef(poolId: Uint8Array, index: number): Uint8Array {
  checkPoolId(poolId, 'poolId');
  checkU32(index, 'index');
  const out = new Uint8Array(PRESIGN_REF_LENGTH);
  out.set(poolId, 0);
  out.set(i2osp(index, 4), PRESIGN_POOL_ID_LENGTH);
  return out;
}
