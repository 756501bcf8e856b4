/**
 * Development / compose TLS material: a self-signed CA and server certificates it signs.
 *
 * Node's crypto module makes the EC P-256 private keys (so a key file is created with mode 0600 and
 * never exists with looser permissions); the `openssl` command line turns them into X.509
 * certificates, because Node has no API that issues certificates. Everything is idempotent: a CA or a
 * certificate that is still valid, matches its key, is issued by the CA and covers the requested host
 * names is kept, so restarting a cluster does not change the CA that clients pinned.
 *
 * This is for `tessera dev --tls`, the compose bootstrap and tests, not a production PKI.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface CertFiles {
  /** PEM certificate. */
  readonly certFile: string;
  /** PEM PKCS#8 private key, mode 0600. */
  readonly keyFile: string;
}

const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Reissue a certificate that expires within this many milliseconds. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;

function openssl(args: string[], input?: string): string {
  try {
    return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new Error('TLS certificates need the `openssl` command, which is not installed or not on PATH');
    const why = (err.stderr ?? err.message).trim().split('\n')[0];
    throw new Error(`openssl ${args[0]} failed: ${why}`);
  }
}

/** Write a file atomically (temp file + rename) with the given mode. */
function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function newKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

function readCert(path: string): X509Certificate | undefined {
  try {
    return new X509Certificate(readFileSync(path));
  } catch {
    return undefined;
  }
}

function keyMatches(cert: X509Certificate, keyFile: string): boolean {
  try {
    return cert.checkPrivateKey(createPrivateKey(readFileSync(keyFile)));
  } catch {
    return false;
  }
}

function fresh(cert: X509Certificate): boolean {
  return Date.parse(cert.validFrom) <= Date.now() && Date.parse(cert.validTo) - RENEW_BEFORE_MS > Date.now();
}

function checkName(name: string): void {
  if (!FILE_NAME.test(name)) throw new Error(`certificate name "${name.slice(0, 64)}" must be 1-64 of [A-Za-z0-9._-]`);
}

/** The subjectAltName value for a list of DNS names / IP addresses, e.g. "DNS:localhost,IP:127.0.0.1". */
export function subjectAltName(hosts: readonly string[]): string {
  if (hosts.length === 0) throw new Error('a server certificate needs at least one host name');
  return hosts
    .map((h) => {
      if (isIP(h) !== 0) return `IP:${h}`;
      if (!DNS_NAME.test(h)) throw new Error(`"${h.slice(0, 64)}" is not a host name or IP address`);
      return `DNS:${h.toLowerCase()}`;
    })
    .join(',');
}

/**
 * Make (or keep) a self-signed CA in `dir`: `<name>.pem` and `<name>.key` (mode 0600).
 * The CA key is only needed to issue certificates; keep `dir` private.
 */
export function ensureCa(dir: string, o: { name?: string; commonName?: string; days?: number } = {}): CertFiles {
  const name = o.name ?? 'ca';
  checkName(name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  const existing = readCert(certFile);
  if (existing && existing.ca && fresh(existing) && keyMatches(existing, keyFile) && existing.checkIssued(existing)) {
    return { certFile, keyFile };
  }
  writeAtomic(keyFile, newKeyPem(), 0o600);
  const pem = openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    keyFile,
    '-sha256',
    '-days',
    String(o.days ?? 3650),
    '-subj',
    `/CN=${(o.commonName ?? 'Tessera development CA').replace(/[/=\\]/g, ' ')}`,
    '-set_serial',
    `0x${randomBytes(16).toString('hex')}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-addext',
    'subjectKeyIdentifier=hash',
  ]);
  writeAtomic(certFile, pem, 0o644);
  return { certFile, keyFile };
}

/**
 * Make (or keep) a server certificate `<dir>/<name>.pem` + `<name>.key` (mode 0600) issued by `ca`,
 * valid for every entry of `hosts` (DNS names and IP addresses).
 */
export function ensureServerCert(ca: CertFiles, dir: string, name: string, hosts: readonly string[], o: { days?: number } = {}): CertFiles {
  checkName(name);
  const san = subjectAltName(hosts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  const caCert = readCert(ca.certFile);
  if (!caCert) throw new Error(`${ca.certFile} is not a PEM certificate`);
  const existing = readCert(certFile);
  if (
    existing &&
    fresh(existing) &&
    keyMatches(existing, keyFile) &&
    existing.checkIssued(caCert) &&
    existing.verify(caCert.publicKey) &&
    san.split(',').every((entry) => (existing.subjectAltName ?? '').split(', ').includes(entry.replace(/^IP:/, 'IP Address:')))
  ) {
    return { certFile, keyFile };
  }
  writeAtomic(keyFile, newKeyPem(), 0o600);
  const csr = openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${name}`]);
  const extFile = join(dir, `.${name}.${randomBytes(6).toString('hex')}.ext`);
  writeFileSync(
    extFile,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${san}`,
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid,issuer',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  try {
    const pem = openssl(
      [
        'x509',
        '-req',
        '-sha256',
        '-CA',
        ca.certFile,
        '-CAkey',
        ca.keyFile,
        '-set_serial',
        `0x${randomBytes(16).toString('hex')}`,
        '-days',
        String(o.days ?? 825),
        '-extfile',
        extFile,
      ],
      csr,
    );
    writeAtomic(certFile, pem, 0o644);
  } finally {
    rmSync(extFile, { force: true });
  }
  return { certFile, keyFile };
}
