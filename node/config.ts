/**
 * Node configuration: a JSON file plus TESSERA_* environment overrides, validated in full at startup.
 *
 * Every problem is a `ConfigError` whose message is one line naming the field, e.g.
 * "config: api.port must be an integer 0..65535". Values that might be secret (the KEK) are never echoed.
 *
 * Transport rules enforced here: API keys travel over the node's HTTP API and node identities
 * authenticate over the coordinator WebSocket, so plain HTTP / ws:// is accepted only on loopback.
 *
 * What is NOT checked here: that the node's stored identity public key matches its membership entry
 * (the node does that once it has opened its store), and that TLS / CA files exist (the servers that
 * read them report that).
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isIP } from 'node:net';
import { sha256 } from '@noble/hashes/sha2.js';
import { IDENTITY_PUBLIC_KEY_LENGTH } from '../core/identity.js';
import { METRICS_TOKEN_PATTERN } from '../contract/http.js';

export class ConfigError extends Error {
  /** The configuration field at fault, e.g. "api.port". */
  readonly field: string;
  constructor(field: string, problem: string) {
    super(oneLine(`config: ${field} ${problem}`));
    this.name = 'ConfigError';
    this.field = field;
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Tenant / API key ids: the same alphabet as session tenants and key ids (core/session.ts). */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface MemberConfig {
  readonly index: number;
  /** ML-DSA-65 identity public key (core/identity.ts), 1952 bytes. */
  readonly identityPublicKey: Uint8Array;
}

export const API_KEY_ROLES = ['tenant', 'admin'] as const;

export interface ApiKeyConfig {
  readonly id: string;
  readonly tenant: string;
  /** SHA-256 of the API key's UTF-8 bytes (see apiKeyHash); the key itself is never configured. */
  readonly keyHash: Uint8Array;
  /** 'admin' may also manage tenants, API keys, policy and read the audit log (node/governance/tenants.ts). Default 'tenant'. */
  readonly role?: (typeof API_KEY_ROLES)[number];
}

/** Key rotation schedule (node/governance/scheduler.ts). */
export interface RotationConfig {
  /** How often the scheduler looks for keys due (or about to be due) for rotation. Default 60 s. */
  readonly checkIntervalMs: number;
  /** The shortest rotation period a key may carry. Default one minute; lower only for tests. */
  readonly minPeriodMs: number;
  /** Warn this long before a rotation is due. Default: a tenth of the key's period, at most one day. */
  readonly warnBeforeMs?: number;
  /** A due rotation that did not complete is tried again in the next window of this length. Default 5 min. */
  readonly retryMs: number;
}

/**
 * Where the node's key-encryption key comes from (its KEK provider, issue 15; node/store/kek.ts):
 *   env             TESSERA_KEK (hex), held in a non-enumerable property so that logging or
 *                   JSON-serializing the config does not print it;
 *   file            kekFile / TESSERA_KEK_FILE, a 32-byte key file readable by its owner only;
 *   shamir-unseal   made by the node at initialisation and split K-of-N among operators; the node
 *                   starts sealed until K shares are submitted (node/store/kek-unseal.ts);
 *   pkcs11          a non-extractable AES key in a PKCS#11 token (node/store/kek-pkcs11.ts): `module` the
 *                   PKCS#11 library, `tokenLabel` the token, `keyLabel` the key object's label (default
 *                   tessera-kek-node-<index>), the user PIN from TESSERA_PKCS11_PIN or `pinFile` (mode 0600),
 *                   held non-enumerable like the env KEK.
 * Config file: `kekFile`, or `kekProvider` {kind: 'shamir-unseal'} | {kind: 'pkcs11', module, tokenLabel,
 * keyLabel?, pinFile?}; one source only.
 */
export type KekSource =
  | { readonly kind: 'env'; readonly key: Uint8Array }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'shamir-unseal' }
  | { readonly kind: 'pkcs11'; readonly module: string; readonly tokenLabel: string; readonly keyLabel: string; readonly pin: string };

export interface NodeConfig {
  /** This node's party index, 1..255. */
  readonly index: number;
  /** Absolute path of the data directory (forced to mode 0700 when the store opens it). */
  readonly dataDir: string;
  readonly api: {
    readonly host: string;
    readonly port: number;
    readonly tls?: { readonly certFile: string; readonly keyFile: string };
  };
  /** ws:// (loopback only) or wss:// URL of the coordinator. */
  readonly coordinatorUrl: string;
  /** PEM CA bundle to trust for a wss:// coordinator (default: the system roots). */
  readonly coordinatorCaFile?: string;
  /**
   * The coordinator id this node authenticates to (pinned): a challenge naming any other id is refused
   * and nothing is signed for it (node/sessions/link.ts). Default DEFAULT_COORDINATOR_ID, the coordinator's own
   * default, so the check is always on; give each deployment its own id (tessera dev does).
   */
  readonly coordinatorId: string;
  /**
   * Every node of the cluster, sorted by index: distinct indexes in 1..255 (1..n for a new cluster; a
   * membership change may leave gaps, core/membership.ts); includes this node.
   */
  readonly membership: readonly MemberConfig[];
  /**
   * The membership's epoch (core/membership.ts): 0 for a new cluster; a node that a membership change
   * added (or repaired) is given the new membership with its epoch. A node that committed a newer
   * membership uses that one (node/main.ts).
   */
  readonly membershipEpoch: number;
  readonly kek: KekSource;
  readonly apiKeys: readonly ApiKeyConfig[];
  /** Defaults for keygen when the caller does not say: 2 <= threshold <= parties <= membership size. */
  readonly thresholdDefaults: { readonly threshold: number; readonly parties: number };
  readonly logLevel: LogLevel;
  /**
   * Lowercase hex SHA-256 fingerprints of the wrapping keys shares may be exported to.
   * Undefined: no allowlist configured. Empty: no wrapping key is allowed.
   */
  readonly wrappingKeyAllowlist?: readonly string[];
  readonly rotation: RotationConfig;
  /** Emergency fail-open: the window when none is given (default 5 min) and the longest accepted (default 1 h). */
  readonly failOpen: { readonly defaultMs: number; readonly maxMs: number };
  /** Audit checkpoints: every N entries (default 100) and every T ms with new entries (default 60 s). */
  readonly audit: { readonly checkpointEvery: number; readonly checkpointIntervalMs: number };
  /**
   * The cluster scheduling secret: 32 bytes every node of the cluster shares, keying the session ids of
   * scheduled rotations (node/governance/scheduler.ts) so nobody outside the nodes can predict them. File field
   * `scheduleSecret` or env TESSERA_SCHEDULE_SECRET (64 hex characters), or a file holding them
   * (`scheduleSecretFile` / TESSERA_SCHEDULE_SECRET_FILE, e.g. in compose). A non-enumerable property:
   * logging or JSON-serializing the config does not print it. Absent: keys never rotate on schedule
   * (key info and the logs say why).
   */
  readonly scheduleSecret?: Uint8Array;
  /**
   * A bearer token that may read GET /metrics (and nothing else) besides admin API keys (node/metrics.ts):
   * file field `metricsToken` or env TESSERA_METRICS_TOKEN (contract/http.ts METRICS_TOKEN_PATTERN). A non-enumerable
   * property, like scheduleSecret: logging or JSON-serializing the config does not print it. Absent:
   * only admin API keys read the metrics.
   */
  readonly metricsToken?: string;
  /**
   * How long one rekey period of the pairwise node channels lasts (node/sessions/pair-keys.ts): a new
   * ML-KEM period key and new pair keys each period, the old ones wiped (forward secrecy per period).
   * File field `channelRekeyMs` or env TESSERA_CHANNEL_REKEY_MS; default 10 minutes, 1 s to 1 day.
   */
  readonly channelRekeyMs: number;
}

/** The length of the cluster scheduling secret (NodeConfig.scheduleSecret). */
export const SCHEDULE_SECRET_LENGTH = 32;

/** The id a coordinator uses when its config names none (coordinator/server.ts uses the same default). */
export const DEFAULT_COORDINATOR_ID = 'tessera-coordinator';

/** The hash stored in `apiKeys[].keyHash`: SHA-256 of the key's UTF-8 bytes. */
export function apiKeyHash(apiKey: string): Uint8Array {
  return sha256(new TextEncoder().encode(apiKey));
}

const TOP_LEVEL_FIELDS = new Set([
  'index',
  'dataDir',
  'api',
  'coordinatorUrl',
  'coordinatorCaFile',
  'coordinatorId',
  'membership',
  'membershipFile',
  'membershipEpoch',
  'kekFile',
  'kekProvider',
  'apiKeys',
  'apiKeysFile',
  'thresholdDefaults',
  'logLevel',
  'wrappingKeyAllowlist',
  'rotation',
  'failOpen',
  'audit',
  'scheduleSecret',
  'scheduleSecretFile',
  'metricsToken',
  'channelRekeyMs',
]);

/**
 * Load and validate the node configuration.
 *
 * File fields (all optional in the file when the matching env var is set):
 *   index, dataDir, api {host, port, tls {certFile, keyFile}}, coordinatorUrl, coordinatorCaFile,
 *   coordinatorId (env TESSERA_COORDINATOR_ID; default DEFAULT_COORDINATOR_ID),
 *   membership [{index, identityPublicKey}] | membershipFile, kekFile, apiKeys [{id, tenant, keyHash}] |
 *   apiKeysFile, thresholdDefaults {threshold, parties}, logLevel, wrappingKeyAllowlist [hex],
 *   rotation {checkIntervalMs, minPeriodMs, warnBeforeMs, retryMs} (env TESSERA_ROTATION_CHECK_MS,
 *   TESSERA_MIN_ROTATION_PERIOD_MS, TESSERA_ROTATION_WARN_MS, TESSERA_ROTATION_RETRY_MS),
 *   failOpen {defaultMs, maxMs} (env TESSERA_FAIL_OPEN_MS, TESSERA_MAX_FAIL_OPEN_MS),
 *   audit {checkpointEvery, checkpointIntervalMs} (env TESSERA_AUDIT_CHECKPOINT_EVERY, TESSERA_AUDIT_CHECKPOINT_MS),
 *   scheduleSecret (64 hex characters; env TESSERA_SCHEDULE_SECRET; never echoed) or scheduleSecretFile (a file
 *   holding them; env TESSERA_SCHEDULE_SECRET_FILE); one source only,
 *   metricsToken (16..256 printable ASCII characters; env TESSERA_METRICS_TOKEN; never echoed).
 * Relative paths in the file are relative to the file's directory; relative paths in env vars are
 * relative to the working directory. The KEK cannot be put inline in the file, only in TESSERA_KEK.
 */
export function loadNodeConfig(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): NodeConfig {
  const env = opts.env ?? process.env;
  const fileDir = opts.file !== undefined ? dirname(resolve(opts.file)) : process.cwd();
  const raw: Record<string, unknown> = opts.file !== undefined ? readJsonObject(opts.file, 'file') : {};
  for (const k of Object.keys(raw)) {
    if (!TOP_LEVEL_FIELDS.has(k)) throw new ConfigError(safeName(k), 'is not a known field');
  }
  const fromFile = (p: string): string => (isAbsolute(p) ? p : resolve(fileDir, p));
  const fromEnv = (p: string): string => resolve(p);
  const envValue = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };

  // index
  const indexEnv = envValue('TESSERA_NODE_INDEX');
  const index = intField('index', indexEnv !== undefined ? parseIntStrict(indexEnv) : raw.index, 1, 255);

  // dataDir
  const dataDirEnv = envValue('TESSERA_DATA_DIR');
  const dataDir =
    dataDirEnv !== undefined ? fromEnv(dataDirEnv) : fromFile(pathField('dataDir', raw.dataDir));

  // api
  const apiRaw = raw.api === undefined ? {} : objectField('api', raw.api, ['host', 'port', 'tls']);
  const hostEnv = envValue('TESSERA_API_HOST');
  const host = hostField('api.host', hostEnv ?? apiRaw.host ?? '127.0.0.1');
  const portEnv = envValue('TESSERA_API_PORT');
  const port = intField('api.port', portEnv !== undefined ? parseIntStrict(portEnv) : apiRaw.port, 0, 65535);
  const tlsRaw = apiRaw.tls === undefined ? {} : objectField('api.tls', apiRaw.tls, ['certFile', 'keyFile']);
  const certEnv = envValue('TESSERA_TLS_CERT');
  const keyEnv = envValue('TESSERA_TLS_KEY');
  const certFile =
    certEnv !== undefined ? fromEnv(certEnv) : tlsRaw.certFile !== undefined ? fromFile(pathField('api.tls.certFile', tlsRaw.certFile)) : undefined;
  const keyFile =
    keyEnv !== undefined ? fromEnv(keyEnv) : tlsRaw.keyFile !== undefined ? fromFile(pathField('api.tls.keyFile', tlsRaw.keyFile)) : undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(certFile === undefined ? 'api.tls.certFile' : 'api.tls.keyFile', 'is required when the other TLS file is set');
  }
  const tls = certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
  if (tls === undefined && !isLoopbackHost(host)) {
    throw new ConfigError('api.host', 'is not a loopback address: plain HTTP is allowed only on loopback, configure api.tls');
  }

  // coordinator
  const coordinatorUrl = coordinatorUrlField(envValue('TESSERA_COORDINATOR_URL') ?? raw.coordinatorUrl);
  const caEnv = envValue('TESSERA_COORDINATOR_CA');
  const coordinatorCaFile =
    caEnv !== undefined ? fromEnv(caEnv) : raw.coordinatorCaFile !== undefined ? fromFile(pathField('coordinatorCaFile', raw.coordinatorCaFile)) : undefined;
  if (coordinatorCaFile !== undefined && !coordinatorUrl.startsWith('wss:')) {
    throw new ConfigError('coordinatorCaFile', 'is set but coordinatorUrl is not wss://');
  }
  const coordinatorId = coordinatorIdField(envValue('TESSERA_COORDINATOR_ID') ?? raw.coordinatorId ?? DEFAULT_COORDINATOR_ID);

  // membership
  const membershipEnv = envValue('TESSERA_MEMBERSHIP_FILE');
  let membershipList: unknown;
  // A membership file may say its epoch ({"nodes": [...], "epoch": N}); so may the config (membershipEpoch).
  let fileEpoch: unknown;
  if (membershipEnv !== undefined) {
    ({ list: membershipList, epoch: fileEpoch } = membershipFromFile(fromEnv(membershipEnv)));
  } else if (raw.membershipFile !== undefined) {
    if (raw.membership !== undefined) throw new ConfigError('membership', 'and membershipFile are both set; use one');
    ({ list: membershipList, epoch: fileEpoch } = membershipFromFile(fromFile(pathField('membershipFile', raw.membershipFile))));
  } else {
    membershipList = raw.membership;
  }
  if (fileEpoch !== undefined && raw.membershipEpoch !== undefined) throw new ConfigError('membershipEpoch', 'is set in both the config and the membership file; use one');
  const membershipEpoch = intField('membershipEpoch', fileEpoch ?? raw.membershipEpoch ?? 0, 0, 0xfffffffe);
  const membership = membershipField(membershipList);
  if (!membership.some((m) => m.index === index)) {
    throw new ConfigError('index', `${index} is not in membership (indexes ${membership.map((m) => m.index).join(',')})`);
  }

  // KEK
  const kekHex = envValue('TESSERA_KEK');
  const kekFileEnv = envValue('TESSERA_KEK_FILE');
  let kek: KekSource;
  const kekSources = [kekHex !== undefined && 'TESSERA_KEK', kekFileEnv !== undefined && 'TESSERA_KEK_FILE', raw.kekFile !== undefined && 'kekFile', raw.kekProvider !== undefined && 'kekProvider'].filter((x) => x);
  if (kekSources.length > 1 && !(kekSources.length === 2 && raw.kekFile !== undefined && raw.kekProvider === undefined)) {
    // An env var may override the file's kekFile (as it always could); any other pair is ambiguous.
    throw new ConfigError('kek', `is set by ${kekSources.join(' and ')}; use one`);
  }
  if (raw.kekProvider !== undefined) {
    kek = kekProviderField(raw.kekProvider, index, fromFile, envValue('TESSERA_PKCS11_PIN'));
  } else if (kekHex !== undefined) {
    // Never echo the value: it is the key.
    if (!/^[0-9a-fA-F]{64}$/.test(kekHex.trim())) throw new ConfigError('kek', '(TESSERA_KEK) must be 64 hex characters (32 bytes)');
    kek = Object.defineProperty({ kind: 'env' as const }, 'key', {
      value: Uint8Array.from(Buffer.from(kekHex.trim(), 'hex')),
      enumerable: false,
    }) as KekSource;
  } else if (kekFileEnv !== undefined) {
    kek = { kind: 'file', path: fromEnv(kekFileEnv) };
  } else if (raw.kekFile !== undefined) {
    kek = { kind: 'file', path: fromFile(pathField('kekFile', raw.kekFile)) };
  } else {
    throw new ConfigError('kek', 'is missing: set kekFile, kekProvider, TESSERA_KEK_FILE or TESSERA_KEK');
  }

  // API keys
  const apiKeysEnv = envValue('TESSERA_API_KEYS_FILE');
  let apiKeyList: unknown;
  if (apiKeysEnv !== undefined) {
    apiKeyList = listFromFile(fromEnv(apiKeysEnv), 'apiKeys', 'apiKeysFile');
  } else if (raw.apiKeysFile !== undefined) {
    if (raw.apiKeys !== undefined) throw new ConfigError('apiKeys', 'and apiKeysFile are both set; use one');
    apiKeyList = listFromFile(fromFile(pathField('apiKeysFile', raw.apiKeysFile)), 'apiKeys', 'apiKeysFile');
  } else {
    apiKeyList = raw.apiKeys ?? [];
  }
  const apiKeys = apiKeysField(apiKeyList);

  // threshold defaults
  const tdRaw =
    raw.thresholdDefaults === undefined ? {} : objectField('thresholdDefaults', raw.thresholdDefaults, ['threshold', 'parties']);
  const n = membership.length;
  const parties = intField('thresholdDefaults.parties', tdRaw.parties ?? n, 2, n);
  const threshold = intField('thresholdDefaults.threshold', tdRaw.threshold ?? Math.floor(parties / 2) + 1, 2, parties);

  // log level
  const logLevelValue = envValue('TESSERA_LOG_LEVEL') ?? raw.logLevel ?? 'info';
  if (typeof logLevelValue !== 'string' || !(LOG_LEVELS as readonly string[]).includes(logLevelValue)) {
    throw new ConfigError('logLevel', `must be one of ${LOG_LEVELS.join(', ')}`);
  }

  // wrapping-key allowlist
  const allowEnv = env.TESSERA_WRAPPING_KEY_ALLOWLIST;
  const allowRaw: unknown =
    allowEnv !== undefined ? allowEnv.split(/[\s,]+/).filter((s) => s !== '') : raw.wrappingKeyAllowlist;
  const wrappingKeyAllowlist = allowRaw === undefined ? undefined : allowlistField(allowRaw);

  // rotation schedule, fail-open window, audit checkpoints
  const num = (name: string, v: unknown): unknown => {
    const e = envValue(name);
    return e !== undefined ? parseIntStrict(e) : v;
  };
  const DAY = 24 * 3600_000;
  const rotRaw = raw.rotation === undefined ? {} : objectField('rotation', raw.rotation, ['checkIntervalMs', 'minPeriodMs', 'warnBeforeMs', 'retryMs']);
  const warnRaw = num('TESSERA_ROTATION_WARN_MS', rotRaw.warnBeforeMs);
  const rotation: RotationConfig = {
    checkIntervalMs: intField('rotation.checkIntervalMs', num('TESSERA_ROTATION_CHECK_MS', rotRaw.checkIntervalMs) ?? 60_000, 10, DAY),
    minPeriodMs: intField('rotation.minPeriodMs', num('TESSERA_MIN_ROTATION_PERIOD_MS', rotRaw.minPeriodMs) ?? 60_000, 1, 366 * DAY),
    retryMs: intField('rotation.retryMs', num('TESSERA_ROTATION_RETRY_MS', rotRaw.retryMs) ?? 5 * 60_000, 1000, DAY),
    ...(warnRaw !== undefined ? { warnBeforeMs: intField('rotation.warnBeforeMs', warnRaw, 0, 366 * DAY) } : {}),
  };
  const foRaw = raw.failOpen === undefined ? {} : objectField('failOpen', raw.failOpen, ['defaultMs', 'maxMs']);
  const failOpenMax = intField('failOpen.maxMs', num('TESSERA_MAX_FAIL_OPEN_MS', foRaw.maxMs) ?? 3600_000, 1, DAY);
  const failOpen = { defaultMs: intField('failOpen.defaultMs', num('TESSERA_FAIL_OPEN_MS', foRaw.defaultMs) ?? 5 * 60_000, 1, failOpenMax), maxMs: failOpenMax };
  const auRaw = raw.audit === undefined ? {} : objectField('audit', raw.audit, ['checkpointEvery', 'checkpointIntervalMs']);
  const audit = {
    checkpointEvery: intField('audit.checkpointEvery', num('TESSERA_AUDIT_CHECKPOINT_EVERY', auRaw.checkpointEvery) ?? 100, 1, 1_000_000),
    checkpointIntervalMs: intField('audit.checkpointIntervalMs', num('TESSERA_AUDIT_CHECKPOINT_MS', auRaw.checkpointIntervalMs) ?? 60_000, 0, DAY),
  };

  const config: NodeConfig = {
    index,
    dataDir,
    api: tls ? { host, port, tls } : { host, port },
    coordinatorUrl,
    ...(coordinatorCaFile !== undefined ? { coordinatorCaFile } : {}),
    coordinatorId,
    membership,
    membershipEpoch,
    kek,
    apiKeys,
    thresholdDefaults: { threshold, parties },
    logLevel: logLevelValue as LogLevel,
    ...(wrappingKeyAllowlist !== undefined ? { wrappingKeyAllowlist } : {}),
    rotation,
    failOpen,
    audit,
    channelRekeyMs: intField('channelRekeyMs', num('TESSERA_CHANNEL_REKEY_MS', raw.channelRekeyMs) ?? 10 * 60_000, 1000, DAY),
  };
  // The scheduling secret: never echoed (an error names the field only), never enumerable.
  const secretSources: [field: string, value: unknown][] = [];
  const scheduleSecretEnv = envValue('TESSERA_SCHEDULE_SECRET');
  const scheduleSecretFileEnv = envValue('TESSERA_SCHEDULE_SECRET_FILE');
  if (scheduleSecretEnv !== undefined) secretSources.push(['scheduleSecret (TESSERA_SCHEDULE_SECRET)', scheduleSecretEnv.trim()]);
  else if (raw.scheduleSecret !== undefined) secretSources.push(['scheduleSecret', raw.scheduleSecret]);
  const secretFile =
    scheduleSecretFileEnv !== undefined ? fromEnv(scheduleSecretFileEnv) : raw.scheduleSecretFile !== undefined ? fromFile(pathField('scheduleSecretFile', raw.scheduleSecretFile)) : undefined;
  if (secretFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(secretFile, 'utf8');
    } catch (e) {
      throw new ConfigError('scheduleSecretFile', `${secretFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'read error'})`);
    }
    secretSources.push([`scheduleSecretFile (${secretFile})`, text.trim()]);
  }
  if (secretSources.length > 1) throw new ConfigError('scheduleSecret', 'is set both inline and as a file; use one');
  const [secretSource] = secretSources;
  if (secretSource) {
    Object.defineProperty(config, 'scheduleSecret', { value: hexField(secretSource[0], secretSource[1], SCHEDULE_SECRET_LENGTH), enumerable: false });
  }
  // The metrics token: never echoed either (an error names the field only), never enumerable.
  const metricsTokenEnv = envValue('TESSERA_METRICS_TOKEN');
  const metricsToken = metricsTokenEnv ?? raw.metricsToken;
  if (metricsToken !== undefined) {
    if (typeof metricsToken !== 'string' || !METRICS_TOKEN_PATTERN.test(metricsToken)) {
      throw new ConfigError(metricsTokenEnv !== undefined ? 'metricsToken (TESSERA_METRICS_TOKEN)' : 'metricsToken', 'must be 16..256 printable ASCII characters without spaces');
    }
    Object.defineProperty(config, 'metricsToken', { value: metricsToken, enumerable: false });
  }
  return config;
}

/** localhost, 127.0.0.0/8, ::1 (also as an IPv4-mapped address). 0.0.0.0 and :: are NOT loopback. */
export function isLoopbackHost(host: string): boolean {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h.startsWith('::ffff:')) h = h.slice('::ffff:'.length);
  if (isIP(h) === 4) return h.split('.')[0] === '127';
  if (isIP(h) === 6) return /^(0{0,4}:){7}0{0,3}1$/.test(expandIpv6(h)) || h === '::1';
  return false;
}

// ---------------------------------------------------------------------------------------------
// Field validators. Each throws ConfigError naming its field.

function oneLine(s: string): string {
  return s.replace(/[\r\n\t]+/g, ' ');
}

/** Field names from user input, trimmed to something printable. */
function safeName(s: string): string {
  return JSON.stringify(s.slice(0, 64));
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function parseIntStrict(s: string): unknown {
  return /^-?\d+$/.test(s.trim()) ? Number(s.trim()) : s;
}

function intField(field: string, v: unknown, min: number, max: number): number {
  if (v === undefined) throw new ConfigError(field, `is missing (an integer ${min}..${max})`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ConfigError(field, `must be an integer ${min}..${max}`);
  }
  return v;
}

function pathField(field: string, v: unknown): string {
  if (v === undefined) throw new ConfigError(field, 'is missing');
  if (typeof v !== 'string' || v.trim() === '' || /[\0\r\n]/.test(v)) throw new ConfigError(field, 'must be a non-empty path');
  return v;
}

/** The config file's `kekProvider` (see KekSource). The PIN is never echoed, and kept non-enumerable. */
function kekProviderField(v: unknown, index: number, fromFile: (p: string) => string, pinEnv: string | undefined): KekSource {
  const o = objectField('kekProvider', v, ['kind', 'module', 'tokenLabel', 'keyLabel', 'pinFile']);
  if (o.kind === 'shamir-unseal') {
    for (const k of ['module', 'tokenLabel', 'keyLabel', 'pinFile']) if (o[k] !== undefined) throw new ConfigError(`kekProvider.${k}`, 'is for kind pkcs11 only');
    return { kind: 'shamir-unseal' };
  }
  if (o.kind !== 'pkcs11') throw new ConfigError('kekProvider.kind', "must be 'shamir-unseal' or 'pkcs11' (for a key file use kekFile)");
  const label = (field: string, x: unknown): string => {
    if (typeof x !== 'string' || !/^[\x20-\x7e]{1,32}$/.test(x)) throw new ConfigError(`kekProvider.${field}`, 'must be 1..32 printable ASCII characters');
    return x;
  };
  const module = fromFile(pathField('kekProvider.module', o.module));
  const tokenLabel = label('tokenLabel', o.tokenLabel);
  const keyLabel = o.keyLabel === undefined ? `tessera-kek-node-${index}` : label('keyLabel', o.keyLabel);
  if (pinEnv !== undefined && o.pinFile !== undefined) throw new ConfigError('kekProvider.pinFile', 'is set and so is TESSERA_PKCS11_PIN; use one');
  let pin: string;
  if (pinEnv !== undefined) {
    pin = pinEnv;
  } else if (o.pinFile !== undefined) {
    const path = fromFile(pathField('kekProvider.pinFile', o.pinFile));
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      throw new ConfigError('kekProvider.pinFile', `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!st.isFile() || (st.mode & 0o077) !== 0) throw new ConfigError('kekProvider.pinFile', `${path} must be a regular file that only its owner may access (chmod 600)`);
    pin = readFileSync(path, 'utf8').trim();
  } else {
    throw new ConfigError('kekProvider', 'kind pkcs11 needs the token PIN: TESSERA_PKCS11_PIN or pinFile');
  }
  if (!/^[\x20-\x7e]{4,255}$/.test(pin)) throw new ConfigError('kekProvider', 'the PKCS#11 PIN must be 4..255 printable ASCII characters');
  return Object.defineProperty({ kind: 'pkcs11' as const, module, tokenLabel, keyLabel }, 'pin', { value: pin, enumerable: false }) as KekSource;
}

function hostField(field: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(field, 'must be a host name or IP address');
  const h = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
  if (isIP(h) !== 0) return h;
  if (!/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(h)) {
    throw new ConfigError(field, 'must be a host name or IP address');
  }
  return h;
}

function objectField(field: string, v: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(field, `must be an object, got ${typeName(v)}`);
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) throw new ConfigError(`${field}.${safeName(k)}`, 'is not a known field');
  }
  return v as Record<string, unknown>;
}

function hexField(field: string, v: unknown, length: number): Uint8Array {
  if (typeof v !== 'string' || v.length !== 2 * length || !/^[0-9a-fA-F]*$/.test(v)) {
    throw new ConfigError(field, `must be ${2 * length} hex characters (${length} bytes)`);
  }
  return Uint8Array.from(Buffer.from(v, 'hex'));
}

function coordinatorUrlField(v: unknown): string {
  const field = 'coordinatorUrl';
  if (v === undefined) throw new ConfigError(field, 'is missing');
  if (typeof v !== 'string') throw new ConfigError(field, 'must be a ws:// or wss:// URL');
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ConfigError(field, 'must be a ws:// or wss:// URL');
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new ConfigError(field, 'must be a ws:// or wss:// URL');
  if (url.username !== '' || url.password !== '') throw new ConfigError(field, 'must not contain credentials');
  if (url.protocol === 'ws:' && !isLoopbackHost(url.hostname)) {
    throw new ConfigError(field, 'uses ws:// to a non-loopback host; use wss://');
  }
  return url.toString();
}

/** The coordinator's own rule (coordinator/config.ts): 1..128 characters; here also printable ASCII, no spaces. */
function coordinatorIdField(v: unknown): string {
  if (typeof v !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(v)) {
    throw new ConfigError('coordinatorId', 'must be 1..128 printable ASCII characters without spaces');
  }
  return v;
}

function readJsonObject(path: string, field: string): Record<string, unknown> {
  const v = readJson(path, field);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(field, `${path} must hold a JSON object`);
  return v as Record<string, unknown>;
}

function readJson(path: string, field: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'read error';
    throw new ConfigError(field, `${path} cannot be read (${code})`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigError(field, `${path} is not valid JSON`);
  }
}

/**
 * A list file holds either a JSON array or an object {<key>: [...]}. For membership, {"nodes": [...]}
 * (the coordinator's membership file format) is accepted too, so one file serves both processes.
 */
function listFromFile(path: string, key: string, field: string): unknown {
  return listFromValue(readJson(path, field), path, key, field);
}

function listFromValue(v: unknown, path: string, key: string, field: string): unknown {
  if (Array.isArray(v)) return v;
  const keys = key === 'membership' ? [key, 'nodes'] : [key];
  if (typeof v === 'object' && v !== null && Object.keys(v).length === 1) {
    const [only] = Object.keys(v);
    if (keys.includes(only!) && Array.isArray((v as Record<string, unknown>)[only!])) return (v as Record<string, unknown>)[only!];
  }
  throw new ConfigError(field, `${path} must hold a JSON array or ${keys.map((k) => `{"${k}": [...]}`).join(' or ')}`);
}

/** A membership file: a JSON array, or {"membership" | "nodes": [...]} with an optional "epoch". */
function membershipFromFile(path: string): { list: unknown; epoch: unknown } {
  const v = readJson(path, 'membershipFile');
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && 'epoch' in v) {
    const { epoch, ...rest } = v as Record<string, unknown>;
    return { list: listFromValue(rest, path, 'membership', 'membershipFile'), epoch };
  }
  return { list: listFromValue(v, path, 'membership', 'membershipFile'), epoch: undefined };
}

function membershipField(v: unknown): MemberConfig[] {
  if (v === undefined) throw new ConfigError('membership', 'is missing');
  if (!Array.isArray(v)) throw new ConfigError('membership', `must be an array, got ${typeName(v)}`);
  if (v.length < 2 || v.length > 255) throw new ConfigError('membership', 'must list 2..255 nodes');
  const out: MemberConfig[] = [];
  v.forEach((m, i) => {
    const field = `membership[${i}]`;
    const o = objectField(field, m, ['index', 'identityPublicKey']);
    out.push({
      index: intField(`${field}.index`, o.index, 1, 255),
      identityPublicKey: hexField(`${field}.identityPublicKey`, o.identityPublicKey, IDENTITY_PUBLIC_KEY_LENGTH),
    });
  });
  out.sort((a, b) => a.index - b.index);
  out.forEach((m, i) => {
    if (i > 0 && m.index === out[i - 1]!.index) throw new ConfigError('membership', `lists index ${m.index} twice`);
  });
  const keys = new Set(out.map((m) => Buffer.from(m.identityPublicKey).toString('hex')));
  if (keys.size !== out.length) throw new ConfigError('membership', 'lists the same identityPublicKey twice');
  return out;
}

function apiKeysField(v: unknown): ApiKeyConfig[] {
  if (!Array.isArray(v)) throw new ConfigError('apiKeys', `must be an array, got ${typeName(v)}`);
  const out: ApiKeyConfig[] = [];
  const ids = new Set<string>();
  const hashes = new Set<string>();
  v.forEach((k, i) => {
    const field = `apiKeys[${i}]`;
    const o = objectField(field, k, ['id', 'tenant', 'keyHash', 'role']);
    if (typeof o.id !== 'string' || !ID_PATTERN.test(o.id)) throw new ConfigError(`${field}.id`, 'must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric');
    if (typeof o.tenant !== 'string' || !ID_PATTERN.test(o.tenant)) {
      throw new ConfigError(`${field}.tenant`, 'must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric');
    }
    const keyHash = hexField(`${field}.keyHash`, o.keyHash, 32);
    if (ids.has(o.id)) throw new ConfigError(`${field}.id`, `duplicates id ${o.id}`);
    const h = Buffer.from(keyHash).toString('hex');
    if (hashes.has(h)) throw new ConfigError(`${field}.keyHash`, 'duplicates another API key');
    if (o.role !== undefined && !(API_KEY_ROLES as readonly unknown[]).includes(o.role)) {
      throw new ConfigError(`${field}.role`, `must be one of ${API_KEY_ROLES.join(', ')}`);
    }
    ids.add(o.id);
    hashes.add(h);
    out.push({ id: o.id, tenant: o.tenant, keyHash, ...(o.role !== undefined ? { role: o.role as ApiKeyConfig['role'] } : {}) });
  });
  return out;
}

function allowlistField(v: unknown): string[] {
  if (!Array.isArray(v)) throw new ConfigError('wrappingKeyAllowlist', `must be an array of hex SHA-256 fingerprints, got ${typeName(v)}`);
  const out = v.map((f, i) => Buffer.from(hexField(`wrappingKeyAllowlist[${i}]`, f, 32)).toString('hex'));
  return [...new Set(out)];
}

function expandIpv6(h: string): string {
  const [head, tail] = h.includes('::') ? h.split('::') : [h, undefined];
  const a = head ? head.split(':') : [];
  const b = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? Array(8 - a.length - b.length).fill('0') : [];
  return [...a, ...fill, ...b].join(':');
}
