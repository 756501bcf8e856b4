/**
 * Reading docker-compose.yml in tests, without Docker: parse (with YAML merge keys, as Compose does),
 * Compose-style variable interpolation, volume and port specs, and turning one service into the
 * environment of a plain process (paths under a temp dir, service host names -> localhost, ports
 * remapped) so test/integration/compose-topology.test.ts runs the very same configuration.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const COMPOSE_PATH = join(ROOT, 'docker-compose.yml');
export const DOCKERFILE_PATH = join(ROOT, 'Dockerfile');

export interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[] | string;
  user?: string;
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string };
}

export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export function loadComposeFile(path = COMPOSE_PATH): ComposeFile {
  const doc = parse(readFileSync(path, 'utf8'), { merge: true }) as ComposeFile;
  if (!doc || typeof doc !== 'object' || typeof doc.services !== 'object') throw new Error(`${path}: no services`);
  return doc;
}

/**
 * Compose interpolation: $$ -> $, ${NAME}, ${NAME:-default} (unset or empty), ${NAME-default} (unset).
 * Throws on anything else, so a typo in the file is a test failure rather than a silent empty string.
 */
export function interpolate(value: string, vars: Readonly<Record<string, string | undefined>>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, name, op, dflt, bare) => {
    if (m === '$$') return '$';
    if (bare !== undefined) throw new Error(`unbraced variable ${m} in "${value}"`);
    const v = vars[name as string];
    if (op === ':-') return v === undefined || v === '' ? (dflt as string) : v;
    if (op === '-') return v === undefined ? (dflt as string) : v;
    return v ?? '';
  });
}

/** A service's environment as strings, interpolated. */
export function serviceEnv(s: ComposeService, vars: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(s.environment)) {
    for (const e of s.environment) {
      const i = e.indexOf('=');
      if (i < 1) throw new Error(`environment entry "${e}" has no value`);
      out[e.slice(0, i)] = interpolate(e.slice(i + 1), vars);
    }
  } else {
    for (const [k, v] of Object.entries(s.environment ?? {})) out[k] = interpolate(v === null ? '' : String(v), vars);
  }
  return out;
}

export interface Mount {
  /** Named volume, or host path for a bind mount. */
  source: string;
  target: string;
  readOnly: boolean;
  named: boolean;
}

export function parseMount(spec: string, vars: Readonly<Record<string, string | undefined>> = {}): Mount {
  const parts = interpolate(spec, vars).split(':');
  if (parts.length < 2 || parts.length > 3) throw new Error(`volume "${spec}": expected source:target[:mode]`);
  const [source, target, mode] = parts as [string, string, string | undefined];
  if (!posix.isAbsolute(target)) throw new Error(`volume "${spec}": target must be absolute`);
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new Error(`volume "${spec}": mode must be ro or rw`);
  return { source, target: posix.normalize(target), readOnly: mode === 'ro', named: !source.startsWith('.') && !source.startsWith('/') };
}

export interface PortMapping {
  hostIp?: string;
  hostPort: string;
  containerPort: number;
}

/** "127.0.0.1:7701:7701", "7701:7701" or "7701". */
export function parsePort(spec: string, vars: Readonly<Record<string, string | undefined>> = {}): PortMapping {
  const parts = interpolate(spec, vars).split(':');
  const containerPort = Number(parts[parts.length - 1]);
  if (!Number.isInteger(containerPort)) throw new Error(`port "${spec}": bad container port`);
  if (parts.length === 3) return { hostIp: parts[0]!, hostPort: parts[1]!, containerPort };
  if (parts.length === 2) return { hostPort: parts[0]!, containerPort };
  return { hostPort: '', containerPort };
}

export function commandOf(s: ComposeService): string[] {
  if (s.command === undefined) throw new Error('service has no command');
  return Array.isArray(s.command) ? s.command.map(String) : s.command.split(/\s+/);
}

/** The mount (of this service) a container path lies under, if any. Longest target wins. */
export function mountFor(mounts: readonly Mount[], containerPath: string): Mount | undefined {
  const p = posix.normalize(containerPath);
  return [...mounts]
    .sort((a, b) => b.target.length - a.target.length)
    .find((m) => p === m.target || p.startsWith(m.target.endsWith('/') ? m.target : m.target + '/'));
}

export interface LocalizeOptions {
  /** Where container paths go: container path /x/y -> <root>/x/y. */
  root: string;
  /** Container ports (as configured in the file) -> the ports the local processes use. */
  ports: ReadonlyMap<number, number>;
  /** Compose service names: as URL hosts they become `localhost`. */
  serviceNames: readonly string[];
}

/**
 * Turn one service's environment (already interpolated) into a local process environment:
 *   - absolute container paths -> under opts.root, and each must lie on (or above) a mount of the
 *     service, so the test fails if a service reads a path its container would not have;
 *   - ws/wss/http/https URLs whose host is a compose service -> localhost, port remapped;
 *   - *_PORT values -> remapped; 0.0.0.0 listen addresses -> 127.0.0.1 (keep test processes off the
 *     machine's other interfaces; TLS is still required by the config rules for 0.0.0.0 and is kept).
 * Comma lists are mapped item by item.
 */
export function localizeEnv(service: string, s: ComposeService, env: Record<string, string>, o: LocalizeOptions): Record<string, string> {
  const mounts = (s.volumes ?? []).map((v) => parseMount(v));
  const mapItem = (key: string, item: string): string => {
    if (item.startsWith('/')) {
      const covered = mountFor(mounts, item) ?? mounts.find((m) => m.target.startsWith(posix.normalize(item) + '/'));
      if (!covered) throw new Error(`${service}: ${key}=${item} is not on any volume of the service`);
      return join(o.root, item);
    }
    const url = /^(wss?|https?):\/\/([^/:]+)(?::(\d+))?(\/.*)?$/.exec(item);
    if (url) {
      const [, scheme, host, port, path] = url;
      if (!o.serviceNames.includes(host!) && host !== 'localhost' && host !== '127.0.0.1') return item;
      const mapped = port !== undefined ? o.ports.get(Number(port)) : undefined;
      if (port !== undefined && mapped === undefined) throw new Error(`${service}: ${key}=${item}: port ${port} is not a port of any service`);
      return `${scheme}://${o.serviceNames.includes(host!) ? 'localhost' : host}${mapped !== undefined ? `:${mapped}` : ''}${path ?? ''}`;
    }
    if (/_PORT$/.test(key) && /^\d+$/.test(item)) {
      const mapped = o.ports.get(Number(item));
      if (mapped === undefined) throw new Error(`${service}: ${key}=${item} is not a known service port`);
      return String(mapped);
    }
    if (/_HOST$/.test(key) && item === '0.0.0.0') return '127.0.0.1';
    return item;
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = v.split(',').map((item) => mapItem(k, item)).join(',');
  return out;
}

/**
 * The compiled file a service command runs (`dist/<dir>/<name>.js`, what the image's build stage makes
 * with `npm run build`); its source `<dir>/<name>.ts` must exist in the repo.
 */
export function scriptOf(command: readonly string[]): string {
  const script = command.find((a) => /^dist\/.+\.js$/.test(a));
  if (!script) throw new Error(`command ${command.join(' ')} runs no compiled dist/*.js file`);
  const source = sourceOf(script);
  if (!existsSync(join(ROOT, source))) throw new Error(`command runs ${script}, whose source ${source} does not exist`);
  return script;
}

/** dist/<dir>/<name>.js -> <dir>/<name>.ts */
export function sourceOf(script: string): string {
  return script.replace(/^dist\//, '').replace(/\.js$/, '.ts');
}

/** A command's node arguments, run from the TypeScript sources through tsx (tests need no build). */
export function fromSource(args: readonly string[]): string[] {
  return args.flatMap((a) => (/^dist\/.+\.js$/.test(a) ? ['--import', 'tsx', sourceOf(a)] : [a]));
}
