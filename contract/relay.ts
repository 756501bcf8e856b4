/**
 * The node <-> coordinator wire contract (issue 4, "Cluster architecture"): one WebSocket per node,
 * binary frames, each frame one msgpack map (msgpackr, useRecords:false).
 *
 * Both ends decode with the same strict validators: every field is checked for presence, type,
 * length and range, and a frame with an unknown type or any extra field is rejected. Nothing in a
 * frame is trusted beyond its shape: the coordinator takes a relay's sender from the authenticated
 * connection, never from the frame, and the payloads it relays are opaque (end-to-end encrypted and
 * signed by node/sessions/channel.ts).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { Packr } from 'msgpackr';
import { framed, i2osp, utf8ToBytes } from '../core/bytes.js';
import { ErrorCode, TesseraError } from '../core/errors.js';
import { SESSION_ID_LENGTH } from '../core/session.js';

/** The WebSocket path nodes connect to. */
export const WS_PATH = '/nodes';
/** Largest relay payload; a whole frame is this plus a small header. */
export const MAX_PAYLOAD_BYTES = 4 * 1024 * 1024;
/** Frame cap enforced by the WebSocket layer on both ends (ws `maxPayload`). */
export const MAX_FRAME_BYTES = MAX_PAYLOAD_BYTES + 4096;

export const NONCE_LENGTH = 32;
export const DIGEST_LENGTH = 32;
export const SCOPE_LENGTH = 32;
export const MAX_NODE_INDEX = 255;
const MAX_SIGNATURE_LENGTH = 8192;
const MAX_ID_LENGTH = 128;
const MAX_CODE_LENGTH = 64;
const MAX_MESSAGE_LENGTH = 1024;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** Changes in one membership frame. */
export const MAX_MEMBERSHIP_CHANGES_PER_FRAME = 64;
/** An encoded membership of 255 members (255 x 1952-byte identity keys, core/membership.ts) is ~500 KB. */
export const MAX_MEMBERSHIP_BYTES = 512 * 1024;
/** An encoded certificate with 255 ML-DSA-65 votes (3309 bytes each, core/commit.ts) is ~850 KB. */
export const MAX_CERTIFICATE_BYTES = 1024 * 1024;

/** WebSocket close codes. */
export const CloseCode = {
  /** Authentication failed: unknown index, bad signature, no hello in time. */
  AuthFailed: 4001,
  /** A frame that does not decode, has an unknown type or bad fields, or breaks a relay rule. */
  BadFrame: 4002,
  /** Another authenticated connection for the same node index replaced this one. */
  Replaced: 4003,
  /** The peer cannot keep up with what is sent to it. */
  SlowConsumer: 4004,
  /**
   * A certified membership change (core/membership.ts) removed this node's index or gave it a new
   * identity key: the connection authenticated under a key that is no longer a member's.
   */
  MembershipChanged: 4005,
  GoingAway: 1001,
  Normal: 1000,
} as const;

export const ABORT_CODES = ['DIGEST_MISMATCH', 'NODE_OFFLINE', 'EXPIRED', 'FAILED', 'PLAYERS_MISMATCH', 'DECLINED'] as const;
/** A `fail` frame with this code means the node's operator declined the session: not a protocol fault. */
export const DECLINE_CODE = 'POLICY_DENIED';
export type AbortCode = (typeof ABORT_CODES)[number];

export const AUTH_LABEL = 'tessera/coordinator-auth/v1';
export const SCOPE_LABEL = 'tessera/session-scope/v1';

/**
 * What a session is about, so that the coordinator can match a decline with the session it declines
 * without learning the tenant or the key: SHA-256(framed(label, session id, tenant, key id)). Per
 * session, so scopes do not link sessions on one key. A node sends it with its join and with a decline
 * of a session on a key; a decline counts only for a session whose joins carry the same scope, so an
 * API key can decline only sessions on its own tenant's keys.
 */
export function sessionScope(session: Uint8Array, tenant: string, keyId: string): Uint8Array {
  return sha256(framed(utf8ToBytes(SCOPE_LABEL), session, utf8ToBytes(tenant), utf8ToBytes(keyId)));
}

/** What a node signs to answer a challenge: framed(label, coordinator id, nonce, I2OSP(index, 1)). */
export function authMessage(coordinatorId: string, nonce: Uint8Array, index: number): Uint8Array {
  return framed(utf8ToBytes(AUTH_LABEL), utf8ToBytes(coordinatorId), nonce, i2osp(index, 1));
}

// ---- frames ---------------------------------------------------------------------------------

export interface ChallengeFrame { t: 'challenge'; nonce: Uint8Array; coordinator: string }
export interface HelloFrame { t: 'hello'; index: number; signature: Uint8Array }
export interface WelcomeFrame { t: 'welcome'; online: number[] }
export interface OnlineFrame { t: 'online'; online: number[] }
export interface JoinFrame { t: 'join'; session: Uint8Array; digest: Uint8Array; players: number[]; timeoutMs?: number; scope?: Uint8Array }
export interface StartFrame { t: 'start'; session: Uint8Array; players: number[] }
export interface AbortFrame { t: 'abort'; session: Uint8Array; code: AbortCode; message: string; nodes: number[] }
/** node -> coordinator */
export interface RelaySendFrame { t: 'relay'; session: Uint8Array; to: number; payload: Uint8Array }
/** coordinator -> node */
export interface RelayDeliverFrame { t: 'relay'; session: Uint8Array; from: number; payload: Uint8Array }
export interface DoneFrame { t: 'done'; session: Uint8Array }
/** `scope` (sessionScope) on a decline: the tenant and key the declining node was asked about. */
export interface FailFrame { t: 'fail'; session: Uint8Array; code: string; message: string; culprits: number[]; scope?: Uint8Array }
/**
 * One committed membership change: the new membership (core/membership.ts encodeMembership bytes) and
 * the certificate that commits it (core/commit.ts encodeCertificate bytes).
 */
export interface MembershipChangeBytes { membership: Uint8Array; certificate: Uint8Array }
/**
 * node -> coordinator: the sender's chain of committed membership changes, oldest first (a long chain
 * goes as several frames, in order). The coordinator trusts none of it: it adopts a change only when
 * its certificate verifies against the membership it holds (core/membership.ts verifyMembershipChange).
 */
export interface MembershipFrame { t: 'membership'; changes: MembershipChangeBytes[] }

export type NodeFrame = HelloFrame | JoinFrame | RelaySendFrame | DoneFrame | FailFrame | MembershipFrame;
export type CoordinatorFrame = ChallengeFrame | WelcomeFrame | OnlineFrame | StartFrame | AbortFrame | RelayDeliverFrame;

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
// copyBuffers: decoded byte fields never alias the socket's receive buffer.
const unpackr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false, copyBuffers: true });

export function encodeFrame(frame: NodeFrame | CoordinatorFrame): Uint8Array {
  // Optional fields that are undefined must not appear on the wire (a strict peer rejects them).
  const clean: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(frame)) if (v !== undefined) clean[k] = v;
  return packr.pack(clean);
}

// ---- strict decoding ------------------------------------------------------------------------

function bad(message: string): never {
  throw new TesseraError(ErrorCode.BadMessage, `frame: ${message}`);
}

function decodeMap(data: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = unpackr.unpack(data);
  } catch {
    bad('not a msgpack value');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) bad('not a map');
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) bad('not a plain map');
  return value as Record<string, unknown>;
}

function exactKeys(o: Record<string, unknown>, required: readonly string[], optional: readonly string[] = [], what = String(o.t)): void {
  for (const k of required) if (!Object.prototype.hasOwnProperty.call(o, k)) bad(`${what}: missing field ${k}`);
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) bad(`${what}: unknown field ${k.slice(0, 32)}`);
  }
}

function bytes(o: Record<string, unknown>, k: string, min: number, max = min): Uint8Array {
  const v = o[k];
  if (!(v instanceof Uint8Array)) bad(`${k}: expected bytes`);
  if (v.length < min || v.length > max) bad(min === max ? `${k}: expected ${min} bytes` : `${k}: expected ${min}..${max} bytes`);
  // A plain Uint8Array (not a Node Buffer view) so callers can compare and hold it safely.
  return new Uint8Array(v.buffer, v.byteOffset, v.length);
}

function uint(o: Record<string, unknown>, k: string, min: number, max: number): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(`${k}: expected an integer ${min}..${max}`);
  return v;
}

function str(o: Record<string, unknown>, k: string, min: number, max: number): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length < min || v.length > max) bad(`${k}: expected a string of ${min}..${max} characters`);
  return v;
}

function nodeIndex(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_NODE_INDEX) bad(`${what}: expected node indexes 1..${MAX_NODE_INDEX}`);
  return v;
}

/** A list of distinct node indexes, returned sorted. */
function indexList(o: Record<string, unknown>, k: string, minLength: number): number[] {
  const v = o[k];
  if (!Array.isArray(v)) bad(`${k}: expected an array`);
  if (v.length < minLength || v.length > MAX_NODE_INDEX) bad(`${k}: expected ${minLength}..${MAX_NODE_INDEX} entries`);
  const out = v.map((x) => nodeIndex(x, k));
  if (new Set(out).size !== out.length) bad(`${k}: duplicate node index`);
  return out.sort((a, b) => a - b);
}

const session = (o: Record<string, unknown>) => bytes(o, 'session', SESSION_ID_LENGTH);

/** Decode and validate a frame a node sent. Throws TesseraError(BAD_MESSAGE). */
export function decodeNodeFrame(data: Uint8Array): NodeFrame {
  const o = decodeMap(data);
  switch (o.t) {
    case 'hello':
      exactKeys(o, ['t', 'index', 'signature']);
      return { t: 'hello', index: uint(o, 'index', 1, MAX_NODE_INDEX), signature: bytes(o, 'signature', 1, MAX_SIGNATURE_LENGTH) };
    case 'join': {
      exactKeys(o, ['t', 'session', 'digest', 'players'], ['timeoutMs', 'scope']);
      const f: JoinFrame = { t: 'join', session: session(o), digest: bytes(o, 'digest', DIGEST_LENGTH), players: indexList(o, 'players', 1) };
      if (o.timeoutMs !== undefined) f.timeoutMs = uint(o, 'timeoutMs', 1, MAX_TIMEOUT_MS);
      if (o.scope !== undefined) f.scope = bytes(o, 'scope', SCOPE_LENGTH);
      return f;
    }
    case 'relay':
      exactKeys(o, ['t', 'session', 'to', 'payload']);
      return { t: 'relay', session: session(o), to: uint(o, 'to', 1, MAX_NODE_INDEX), payload: bytes(o, 'payload', 1, MAX_PAYLOAD_BYTES) };
    case 'done':
      exactKeys(o, ['t', 'session']);
      return { t: 'done', session: session(o) };
    case 'fail': {
      exactKeys(o, ['t', 'session', 'code', 'message', 'culprits'], ['scope']);
      const f: FailFrame = {
        t: 'fail',
        session: session(o),
        code: str(o, 'code', 1, MAX_CODE_LENGTH),
        message: str(o, 'message', 0, MAX_MESSAGE_LENGTH),
        culprits: indexList(o, 'culprits', 0),
      };
      if (o.scope !== undefined) f.scope = bytes(o, 'scope', SCOPE_LENGTH);
      return f;
    }
    case 'membership': {
      exactKeys(o, ['t', 'changes']);
      const v = o.changes;
      if (!Array.isArray(v) || v.length < 1 || v.length > MAX_MEMBERSHIP_CHANGES_PER_FRAME) bad(`changes: expected 1..${MAX_MEMBERSHIP_CHANGES_PER_FRAME} entries`);
      const changes = v.map((c: unknown): MembershipChangeBytes => {
        if (c === null || typeof c !== 'object' || Array.isArray(c) || c instanceof Uint8Array) bad('changes: expected maps');
        const proto = Object.getPrototypeOf(c);
        if (proto !== Object.prototype && proto !== null) bad('changes: expected plain maps');
        const e = c as Record<string, unknown>;
        exactKeys(e, ['membership', 'certificate'], [], 'membership change');
        return { membership: bytes(e, 'membership', 1, MAX_MEMBERSHIP_BYTES), certificate: bytes(e, 'certificate', 1, MAX_CERTIFICATE_BYTES) };
      });
      return { t: 'membership', changes };
    }
    default:
      bad(`unknown frame type ${typeof o.t === 'string' ? o.t.slice(0, 32) : typeof o.t}`);
  }
}

/** Decode and validate a frame the coordinator sent. Throws TesseraError(BAD_MESSAGE). */
export function decodeCoordinatorFrame(data: Uint8Array): CoordinatorFrame {
  const o = decodeMap(data);
  switch (o.t) {
    case 'challenge':
      exactKeys(o, ['t', 'nonce', 'coordinator']);
      return { t: 'challenge', nonce: bytes(o, 'nonce', NONCE_LENGTH), coordinator: str(o, 'coordinator', 1, MAX_ID_LENGTH) };
    case 'welcome':
      exactKeys(o, ['t', 'online']);
      return { t: 'welcome', online: indexList(o, 'online', 0) };
    case 'online':
      exactKeys(o, ['t', 'online']);
      return { t: 'online', online: indexList(o, 'online', 0) };
    case 'start':
      exactKeys(o, ['t', 'session', 'players']);
      return { t: 'start', session: session(o), players: indexList(o, 'players', 1) };
    case 'abort': {
      exactKeys(o, ['t', 'session', 'code', 'message', 'nodes']);
      const code = str(o, 'code', 1, MAX_CODE_LENGTH);
      if (!(ABORT_CODES as readonly string[]).includes(code)) bad(`abort: unknown code ${code}`);
      return { t: 'abort', session: session(o), code: code as AbortCode, message: str(o, 'message', 0, MAX_MESSAGE_LENGTH), nodes: indexList(o, 'nodes', 0) };
    }
    case 'relay':
      exactKeys(o, ['t', 'session', 'from', 'payload']);
      return { t: 'relay', session: session(o), from: uint(o, 'from', 1, MAX_NODE_INDEX), payload: bytes(o, 'payload', 1, MAX_PAYLOAD_BYTES) };
    default:
      bad(`unknown frame type ${typeof o.t === 'string' ? o.t.slice(0, 32) : typeof o.t}`);
  }
}

/** Limits callers may want to check before sending. */
export const LIMITS = { MAX_CODE_LENGTH, MAX_MESSAGE_LENGTH, MAX_TIMEOUT_MS, MAX_ID_LENGTH } as const;
