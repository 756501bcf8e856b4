/**
 * The SDK-facing HTTP API: one request and one response type per route, with its JSON schema.
 * Bytes are lowercase hex. No response type has a field that can hold share or private-key material;
 * test/integration/api-surface.test.ts enumerates every route and checks that.
 */
import { BUNDLE_FORMAT, BUNDLE_VERSION, type KeyBundleJson, type WrappedShareJson } from '../core/bundle.js';
import { SUITE_IDS } from '../core/suites.js';
import { WRAP_KEMS } from '../core/wrap.js';

const hex = (min: number, max: number) => ({ type: 'string', pattern: '^([0-9a-fA-F]{2})*$', minLength: min * 2, maxLength: max * 2 }) as const;
const id = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } as const;
const index = { type: 'integer', minimum: 1, maximum: 255 } as const;
const players = { type: 'array', items: index, minItems: 2, maxItems: 255 } as const;
const sessionId = hex(16, 16);
const suite = { type: 'string', enum: [...SUITE_IDS] } as const;
const version = { type: 'integer', minimum: 1 } as const;

export const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    culprits: { type: 'array', items: index },
    nodes: { type: 'array', items: index },
  },
  additionalProperties: false,
} as const;

export interface PublicKeyPackageJson {
  suite: string;
  threshold: number;
  parties: number;
  epoch: number;
  commitments: string[];
  verifyingShares: string[];
}
const publicPackageSchema = {
  type: 'object',
  required: ['suite', 'threshold', 'parties', 'epoch', 'commitments', 'verifyingShares'],
  properties: {
    suite,
    threshold: { type: 'integer' },
    parties: { type: 'integer' },
    epoch: { type: 'integer' },
    commitments: { type: 'array', items: { type: 'string' } },
    verifyingShares: { type: 'array', items: { type: 'string' } },
  },
  additionalProperties: false,
} as const;

export interface KeyInfo {
  keyId: string;
  version: number;
  suite: string;
  /** The suite's standard public-key encoding, hex. */
  publicKey: string;
  threshold: number;
  parties: number;
  epoch: number;
  state: string;
  exportable: boolean;
  publicPackage: PublicKeyPackageJson;
}
const keyInfoSchema = {
  type: 'object',
  required: ['keyId', 'version', 'suite', 'publicKey', 'threshold', 'parties', 'epoch', 'state', 'exportable', 'publicPackage'],
  properties: {
    keyId: id,
    version,
    suite,
    publicKey: { type: 'string' },
    threshold: { type: 'integer' },
    parties: { type: 'integer' },
    epoch: { type: 'integer' },
    state: { type: 'string' },
    exportable: { type: 'boolean' },
    publicPackage: publicPackageSchema,
  },
  additionalProperties: false,
} as const;

export interface NodeInfo {
  index: number;
  parties: number;
  identityPublicKey: string;
  /** ML-KEM-768 public key that shares and results can be wrapped to for this node. */
  importPublicKey: string;
  ready: boolean;
  online: number[];
}

export interface KeygenRequest {
  sessionId: string;
  keyId: string;
  suite: string;
  threshold: number;
  exportable?: boolean;
}
export interface SignRequest {
  sessionId: string;
  message: string;
  players: number[];
  version?: number;
}
export interface SignResponse {
  keyId: string;
  version: number;
  signature: string;
}
export interface DecapsulateRequest {
  sessionId: string;
  enc: string;
  players: number[];
  /** ML-KEM-768 public key of the receiver that alone can combine the partial results. */
  receiverPublicKey: string;
  version?: number;
}
export interface DecapsulateResponse {
  keyId: string;
  version: number;
  index: number;
  /** The partial decapsulation with its DLEQ proof, HPKE-wrapped to receiverPublicKey. */
  wrappedPartial: { kem: number; enc: string; ciphertext: string };
  publicPackage: PublicKeyPackageJson;
}
export interface RefreshRequest {
  sessionId: string;
  version?: number;
}
export interface RefreshResponse {
  keyId: string;
  version: number;
  epoch: number;
}

export interface ExportRequest {
  sessionId: string;
  /** ML-KEM-768 or X-Wing public keys: one for every share, or one per share (node i uses [i - 1]). */
  wrappingKeys: string[];
  version?: number;
}
export interface ExportResponse {
  keyId: string;
  version: number;
  index: number;
  /** This node's re-randomised share, HPKE-wrapped to its wrapping key (core/bundle.ts). */
  wrappedShare: WrappedShareJson;
  /** The public package of the re-randomised shares (one epoch above the cluster's, never committed). */
  publicPackage: PublicKeyPackageJson;
}
export interface ImportRequest {
  sessionId: string;
  /** The key id to store under; default the bundle's. */
  keyId?: string;
  bundle: KeyBundleJson;
  /** Fixed at import and never changed; default false. */
  exportable?: boolean;
  /** The destination's threshold; when given, the bundle's must equal it. */
  threshold?: number;
}

const wrappedShareSchema = {
  type: 'object',
  required: ['index', 'kem', 'wrappingKeyFingerprint', 'enc', 'ciphertext'],
  properties: {
    index,
    kem: { type: 'string', enum: [...WRAP_KEMS] },
    wrappingKeyFingerprint: hex(32, 32),
    enc: hex(1, 2048),
    ciphertext: hex(1, 256),
  },
  additionalProperties: false,
} as const;
const pointList = { type: 'array', items: hex(32, 65), minItems: 1, maxItems: 255 } as const;
/** Shape only; core/bundle.ts parseBundle checks everything else before any use. */
const bundleSchema = {
  type: 'object',
  required: ['format', 'version', 'keyId', 'keyVersion', 'suite', 'threshold', 'parties', 'epoch', 'publicKey', 'commitments', 'verifyingShares', 'wrappedShares'],
  properties: {
    format: { type: 'string', enum: [BUNDLE_FORMAT] },
    version: { type: 'integer', enum: [BUNDLE_VERSION] },
    keyId: id,
    keyVersion: version,
    suite,
    threshold: { type: 'integer', minimum: 2, maximum: 255 },
    parties: { type: 'integer', minimum: 2, maximum: 255 },
    epoch: { type: 'integer', minimum: 0 },
    publicKey: hex(32, 65),
    commitments: pointList,
    verifyingShares: pointList,
    wrappedShares: { type: 'array', items: wrappedShareSchema, minItems: 1, maxItems: 255 },
  },
  additionalProperties: false,
} as const;

const keyParams = { type: 'object', required: ['keyId'], properties: { keyId: id }, additionalProperties: false } as const;
const withErrors = (ok: object) => ({ 200: ok, '4xx': errorSchema, '5xx': errorSchema });

/** Route table: method, URL and schema of every route the node serves. */
export const ROUTES = {
  health: { method: 'GET', url: '/health', schema: { response: withErrors({ type: 'object', properties: { status: { type: 'string' } }, required: ['status'], additionalProperties: false }) } },
  ready: {
    method: 'GET',
    url: '/ready',
    schema: { response: { 200: { type: 'object', properties: { ready: { type: 'boolean' } }, additionalProperties: false }, 503: errorSchema } },
  },
  node: {
    method: 'GET',
    url: '/v1/node',
    schema: {
      response: withErrors({
        type: 'object',
        required: ['index', 'parties', 'identityPublicKey', 'importPublicKey', 'ready', 'online'],
        properties: {
          index,
          parties: { type: 'integer' },
          identityPublicKey: { type: 'string' },
          importPublicKey: { type: 'string' },
          ready: { type: 'boolean' },
          online: { type: 'array', items: index },
        },
        additionalProperties: false,
      }),
    },
  },
  keygen: {
    method: 'POST',
    url: '/v1/keys',
    schema: {
      body: {
        type: 'object',
        required: ['sessionId', 'keyId', 'suite', 'threshold'],
        properties: { sessionId, keyId: id, suite, threshold: { type: 'integer', minimum: 2, maximum: 255 }, exportable: { type: 'boolean' } },
        additionalProperties: false,
      },
      response: withErrors(keyInfoSchema),
    },
  },
  getKey: {
    method: 'GET',
    url: '/v1/keys/:keyId',
    schema: {
      params: keyParams,
      querystring: { type: 'object', properties: { version }, additionalProperties: false },
      response: withErrors(keyInfoSchema),
    },
  },
  sign: {
    method: 'POST',
    url: '/v1/keys/:keyId/sign',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'message', 'players'],
        properties: { sessionId, message: hex(0, 1 << 20), players, version },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'signature'],
        properties: { keyId: id, version, signature: { type: 'string' } },
        additionalProperties: false,
      }),
    },
  },
  decapsulate: {
    method: 'POST',
    url: '/v1/keys/:keyId/decapsulate',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'enc', 'players', 'receiverPublicKey'],
        properties: { sessionId, enc: hex(1, 256), players, receiverPublicKey: hex(1184, 1216), version },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'index', 'wrappedPartial', 'publicPackage'],
        properties: {
          keyId: id,
          version,
          index,
          wrappedPartial: {
            type: 'object',
            required: ['kem', 'enc', 'ciphertext'],
            properties: { kem: { type: 'integer' }, enc: { type: 'string' }, ciphertext: { type: 'string' } },
            additionalProperties: false,
          },
          publicPackage: publicPackageSchema,
        },
        additionalProperties: false,
      }),
    },
  },
  refresh: {
    method: 'POST',
    url: '/v1/keys/:keyId/refresh',
    schema: {
      params: keyParams,
      body: { type: 'object', required: ['sessionId'], properties: { sessionId, version }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'epoch'],
        properties: { keyId: id, version, epoch: { type: 'integer' } },
        additionalProperties: false,
      }),
    },
  },
  /** Export: re-randomise (not committed), wrap this node's new share to its wrapping key. Needs all n nodes. */
  exportKey: {
    method: 'POST',
    url: '/v1/keys/:keyId/export',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'wrappingKeys'],
        properties: { sessionId, wrappingKeys: { type: 'array', items: hex(1184, 1216), minItems: 1, maxItems: 255 }, version },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'index', 'wrappedShare', 'publicPackage'],
        properties: { keyId: id, version, index, wrappedShare: wrappedShareSchema, publicPackage: publicPackageSchema },
        additionalProperties: false,
      }),
    },
  },
  /** Import: unwrap this node's share of a bundle, check it, re-randomise with the others, store. Needs all n nodes. */
  importKey: {
    method: 'POST',
    url: '/v1/import',
    schema: {
      body: {
        type: 'object',
        required: ['sessionId', 'bundle'],
        properties: {
          sessionId,
          keyId: id,
          bundle: bundleSchema,
          exportable: { type: 'boolean' },
          threshold: { type: 'integer', minimum: 2, maximum: 255 },
        },
        additionalProperties: false,
      },
      response: withErrors(keyInfoSchema),
    },
  },
  /** The operator's policy refused a session: tell the coordinator, so the other nodes fail fast. */
  decline: {
    method: 'POST',
    url: '/v1/sessions/decline',
    schema: {
      body: { type: 'object', required: ['sessionId'], properties: { sessionId }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['sessionId', 'declined'],
        properties: { sessionId: { type: 'string' }, declined: { type: 'boolean' } },
        additionalProperties: false,
      }),
    },
  },
} as const;
