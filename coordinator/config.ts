/**
 * Coordinator configuration: a JSON file (or environment variables), checked field by field before
 * anything starts. A bad value is refused with a ConfigError naming the field.
 *
 * Config file:
 *   {
 *     "port": 7400,                       // required, 0..65535
 *     "host": "0.0.0.0",                  // optional, default 127.0.0.1
 *     "coordinatorId": "prod-1",          // optional
 *     "sessionTimeoutMs": 30000,          // optional
 *     "membershipFile": "membership.json",// required; relative paths are relative to the config file
 *     "membershipStateFile": "membership-state.json", // optional: where adopted membership changes are kept
 *     "tls": { "certFile": "c.pem", "keyFile": "k.pem" },   // optional
 *     "logLevel": "info",                 // optional
 *     "metricsToken": "<16..256 chars>"   // optional: the bearer token that reads GET /metrics
 *   }
 * Membership file: { "nodes": [ { "index": 1, "identityPublicKey": "<hex, 1952 bytes>" }, ... ], "epoch": 0 }
 *   (`epoch` optional, default 0: the membership's epoch, core/membership.ts). It is the starting point:
 *   later memberships are adopted only from certified changes (coordinator/membership-state.ts), kept in
 *   `membershipStateFile` (without one, in memory only: a restarted coordinator catches up when the
 *   nodes send their chains again on reconnect).
 *
 * Environment (used when no --config is given): TESSERA_COORDINATOR_PORT, _HOST, _ID,
 * _SESSION_TIMEOUT_MS, _MEMBERSHIP (file), _MEMBERSHIP_STATE (file), _TLS_CERT, _TLS_KEY (files), _LOG_LEVEL, _METRICS_TOKEN.
 * TESSERA_COORDINATOR_METRICS_TOKEN also overrides a config file's metricsToken (a secret is often
 * handed to a process in its environment, not in its config file).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fromHex } from '../core/bytes.js';
import { IDENTITY_PUBLIC_KEY_LENGTH } from '../core/identity.js';
import { METRICS_TOKEN_PATTERN } from '../contract/http.js';
import type { CoordinatorOptions } from './server.js';

/** core/membership.ts checkMembership's epoch bound. */
const MAX_MEMBERSHIP_EPOCH = 0xfffffffe;

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoadedConfig {
  options: Omit<CoordinatorOptions, 'logger'>;
  logLevel: LogLevel;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function readText(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(field, `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function parseJson(text: string, field: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigError(field, 'not valid JSON');
  }
}

function checkKeys(o: Record<string, unknown>, allowed: readonly string[], prefix: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new ConfigError(`${prefix}${k}`, 'unknown field');
}

/** Parse a membership document: { nodes: [{ index, identityPublicKey: hex }], epoch? }. */
export function parseMembership(doc: unknown, field = 'membership'): Map<number, Uint8Array> {
  return parseMembershipDocument(doc, field).membership;
}

/** The membership document's nodes and its epoch (0 when the file does not say). */
export function parseMembershipDocument(doc: unknown, field = 'membership'): { membership: Map<number, Uint8Array>; epoch: number } {
  if (!isObject(doc) || !Array.isArray(doc.nodes)) throw new ConfigError(`${field}.nodes`, 'expected an array');
  checkKeys(doc, ['nodes', 'epoch'], `${field}.`);
  const epoch = doc.epoch ?? 0;
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0 || epoch > MAX_MEMBERSHIP_EPOCH) {
    throw new ConfigError(`${field}.epoch`, `expected an integer 0..${MAX_MEMBERSHIP_EPOCH}`);
  }
  if (doc.nodes.length < 1) throw new ConfigError(`${field}.nodes`, 'expected at least one node');
  const out = new Map<number, Uint8Array>();
  doc.nodes.forEach((n: unknown, i: number) => {
    const at = `${field}.nodes[${i}]`;
    if (!isObject(n)) throw new ConfigError(at, 'expected an object');
    checkKeys(n, ['index', 'identityPublicKey'], `${at}.`);
    if (typeof n.index !== 'number' || !Number.isSafeInteger(n.index) || n.index < 1 || n.index > 255) {
      throw new ConfigError(`${at}.index`, 'expected an integer 1..255');
    }
    if (out.has(n.index)) throw new ConfigError(`${at}.index`, `duplicate node index ${n.index}`);
    let key: Uint8Array;
    try {
      key = fromHex(n.identityPublicKey, 'key', IDENTITY_PUBLIC_KEY_LENGTH);
    } catch {
      throw new ConfigError(`${at}.identityPublicKey`, `expected hex of ${IDENTITY_PUBLIC_KEY_LENGTH} bytes`);
    }
    out.set(n.index, key);
  });
  return { membership: out, epoch };
}

interface RawConfig {
  port?: unknown;
  host?: unknown;
  coordinatorId?: unknown;
  sessionTimeoutMs?: unknown;
  membershipFile?: unknown;
  membershipStateFile?: unknown;
  tls?: unknown;
  logLevel?: unknown;
  metricsToken?: unknown;
}

/** Validate a raw config object. Relative file paths resolve against baseDir. */
export function loadConfig(raw: unknown, baseDir: string): LoadedConfig {
  if (!isObject(raw)) throw new ConfigError('config', 'expected a JSON object');
  checkKeys(raw, ['port', 'host', 'coordinatorId', 'sessionTimeoutMs', 'membershipFile', 'membershipStateFile', 'tls', 'logLevel', 'metricsToken'], '');
  const c = raw as RawConfig;
  if (typeof c.port !== 'number' || !Number.isSafeInteger(c.port) || c.port < 0 || c.port > 65535) {
    throw new ConfigError('port', 'expected an integer 0..65535');
  }
  if (c.host !== undefined && (typeof c.host !== 'string' || c.host.length === 0)) throw new ConfigError('host', 'expected a host name or address');
  if (c.coordinatorId !== undefined && (typeof c.coordinatorId !== 'string' || c.coordinatorId.length < 1 || c.coordinatorId.length > 128)) {
    throw new ConfigError('coordinatorId', 'expected a string of 1..128 characters');
  }
  if (
    c.sessionTimeoutMs !== undefined &&
    (typeof c.sessionTimeoutMs !== 'number' || !Number.isSafeInteger(c.sessionTimeoutMs) || c.sessionTimeoutMs < 1 || c.sessionTimeoutMs > 2 ** 31 - 1)
  ) {
    throw new ConfigError('sessionTimeoutMs', 'expected a positive integer (milliseconds)');
  }
  if (c.logLevel !== undefined && !(LOG_LEVELS as readonly unknown[]).includes(c.logLevel)) {
    throw new ConfigError('logLevel', `expected one of ${LOG_LEVELS.join(', ')}`);
  }
  // Never echoed: it is a credential.
  if (c.metricsToken !== undefined && (typeof c.metricsToken !== 'string' || !METRICS_TOKEN_PATTERN.test(c.metricsToken))) {
    throw new ConfigError('metricsToken', 'expected 16..256 printable ASCII characters without spaces');
  }
  if (typeof c.membershipFile !== 'string' || c.membershipFile.length === 0) throw new ConfigError('membershipFile', 'expected a file path');
  const membershipPath = resolve(baseDir, c.membershipFile);
  const { membership, epoch: membershipEpoch } = parseMembershipDocument(parseJson(readText(membershipPath, 'membershipFile'), 'membershipFile'), 'membershipFile');
  // Read (and every link verified) when the coordinator starts: coordinator/membership-state.ts.
  if (c.membershipStateFile !== undefined && (typeof c.membershipStateFile !== 'string' || c.membershipStateFile.length === 0)) {
    throw new ConfigError('membershipStateFile', 'expected a file path');
  }
  const membershipStateFile = c.membershipStateFile !== undefined ? resolve(baseDir, c.membershipStateFile as string) : undefined;

  let tls: CoordinatorOptions['tls'];
  if (c.tls !== undefined) {
    if (!isObject(c.tls)) throw new ConfigError('tls', 'expected { certFile, keyFile }');
    checkKeys(c.tls, ['certFile', 'keyFile'], 'tls.');
    if (typeof c.tls.certFile !== 'string' || c.tls.certFile.length === 0) throw new ConfigError('tls.certFile', 'expected a file path');
    if (typeof c.tls.keyFile !== 'string' || c.tls.keyFile.length === 0) throw new ConfigError('tls.keyFile', 'expected a file path');
    const cert = readText(resolve(baseDir, c.tls.certFile), 'tls.certFile');
    const key = readText(resolve(baseDir, c.tls.keyFile), 'tls.keyFile');
    if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('tls.certFile', 'expected a PEM certificate');
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new ConfigError('tls.keyFile', 'expected a PEM private key');
    tls = { cert, key };
  }
  return {
    options: {
      port: c.port,
      host: c.host as string | undefined,
      coordinatorId: c.coordinatorId as string | undefined,
      sessionTimeoutMs: c.sessionTimeoutMs as number | undefined,
      membership,
      membershipEpoch,
      ...(membershipStateFile !== undefined ? { membershipStateFile } : {}),
      tls,
      ...(c.metricsToken !== undefined ? { metricsToken: c.metricsToken as string } : {}),
    },
    logLevel: (c.logLevel as LogLevel | undefined) ?? 'info',
  };
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const full = resolve(path);
  const raw = parseJson(readText(full, 'config'), 'config');
  const token = env.TESSERA_COORDINATOR_METRICS_TOKEN;
  if (token !== undefined && token !== '' && isObject(raw)) raw.metricsToken = token;
  return loadConfig(raw, dirname(full));
}

/** Build the same raw config from TESSERA_COORDINATOR_* variables. */
export function loadConfigFromEnv(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const v = (name: string) => env[`TESSERA_COORDINATOR_${name}`];
  const int = (name: string, field: string): number | undefined => {
    const s = v(name);
    if (s === undefined) return undefined;
    if (!/^\d+$/.test(s)) throw new ConfigError(field, `TESSERA_COORDINATOR_${name}: expected an integer`);
    return Number(s);
  };
  if (v('PORT') === undefined) throw new ConfigError('port', 'TESSERA_COORDINATOR_PORT is not set (or pass --config FILE)');
  const raw: Record<string, unknown> = {
    port: int('PORT', 'port'),
    host: v('HOST'),
    coordinatorId: v('ID'),
    sessionTimeoutMs: int('SESSION_TIMEOUT_MS', 'sessionTimeoutMs'),
    membershipFile: v('MEMBERSHIP'),
    membershipStateFile: v('MEMBERSHIP_STATE'),
    logLevel: v('LOG_LEVEL'),
    metricsToken: v('METRICS_TOKEN') || undefined,
  };
  if (v('TLS_CERT') !== undefined || v('TLS_KEY') !== undefined) raw.tls = { certFile: v('TLS_CERT'), keyFile: v('TLS_KEY') };
  for (const k of Object.keys(raw)) if (raw[k] === undefined) delete raw[k];
  return loadConfig(raw, process.cwd());
}
