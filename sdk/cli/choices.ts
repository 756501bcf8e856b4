/**
 * The fixed value lists the command table offers as choices. They are written out here, not imported
 * from their registries (core/suites.ts, core/wrap.ts, sdk/formats.ts), so that `--help`, `--version`
 * and a usage error load none of the SDK's crypto (start-up time, issue 11). Each list is checked at
 * compile time to hold exactly the members of its registry's type: adding a suite without listing it
 * here fails `tsc`.
 */
import type { EcdsaSuiteId, KemSuiteId, SigningSuiteId, SUITE_SCHEMES as SuiteSchemes } from '../../core/suites.js';
import type { WrapKem } from '../../core/wrap.js';
import type { KeyState } from '../client.js';
import type { DEFAULT_CLUSTER_FILE as DefaultClusterFile } from '../cluster-file.js';
import type { PublicKeyFormat } from '../formats.js';

/** `list` unchanged, if it holds every member of U and nothing else (a compile-time check only). */
const exactly =
  <U extends string>() =>
  <const L extends readonly U[]>(list: L & ([U] extends [L[number]] ? unknown : { missing: Exclude<U, L[number]> })): L =>
    list;

export const SIGNING_SUITE_IDS = exactly<SigningSuiteId>()(['ed25519', 'secp256k1', 'bip340', 'p256']);
export const ECDSA_SUITE_IDS = exactly<EcdsaSuiteId>()(['ecdsa-secp256k1', 'ecdsa-p256']);
export const KEM_SUITE_IDS = exactly<KemSuiteId>()(['hpke-x25519', 'hpke-p256']);
export const SUITE_IDS = [...SIGNING_SUITE_IDS, ...ECDSA_SUITE_IDS, ...KEM_SUITE_IDS] as const;
/** core/suites.ts SUITE_SCHEMES, written out (its literal type makes this a compile-time equality check). */
export const SUITE_SCHEME_LABELS: typeof SuiteSchemes = {
  ed25519: 'FROST Ed25519 (RFC 9591), verifies as RFC 8032 Ed25519',
  secp256k1: 'FROST Schnorr (RFC 9591), not ECDSA',
  bip340: 'FROST Schnorr (RFC 9591), verifies as BIP-340 Schnorr',
  p256: 'FROST Schnorr (RFC 9591), not ECDSA',
  'ecdsa-secp256k1': 'threshold ECDSA (DKLs23), standard secp256k1 ECDSA',
  'ecdsa-p256': 'threshold ECDSA (DKLs23), standard P-256 ECDSA (ES256)',
  'hpke-x25519': 'threshold decapsulation, RFC 9180 DHKEM(X25519)',
  'hpke-p256': 'threshold decapsulation, RFC 9180 DHKEM(P-256)',
};
/** The suite list of `--suite` help (a details paragraph): each suite with what it makes. */
export const SUITE_HELP = `What each suite makes. ${SUITE_IDS.map((id) => `${id}: ${SUITE_SCHEME_LABELS[id]}`).join('; ')}.`;
/** The warning every suite list carries. */
export const NOT_ECDSA_NOTE =
  'secp256k1 and p256 keys make FROST Schnorr signatures (RFC 9591), NOT ECDSA: OpenSSL, WebCrypto, JWT ES256, X.509 and Ethereum or Bitcoin ECDSA verifiers reject them. For ECDSA, use ecdsa-secp256k1 or ecdsa-p256.';
export const WRAP_KEM_IDS = exactly<WrapKem>()(['ml-kem-768', 'x-wing']);
export const PUBLIC_KEY_FORMAT_IDS = exactly<PublicKeyFormat>()(['raw', 'spki', 'pem', 'jwk']);
export const KEY_STATES = exactly<KeyState>()(['active', 'retired', 'archived', 'destroyed']);

/** sdk/cluster-file.ts DEFAULT_CLUSTER_FILE (its literal type makes this a compile-time equality check). */
export const DEFAULT_CLUSTER_FILE: typeof DefaultClusterFile = '.tessera/dev/cluster.json';

/** `tessera dev`'s data dir when --data is not given (sdk/cli/dev.ts, sdk/dev.ts). */
export const DEFAULT_DEV_DATA_DIR = '.tessera/dev';
