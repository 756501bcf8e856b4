/**
 * What the KEK provider costs per store operation (issue 15: "the per-operation cost of the PKCS#11 provider
 * against the file provider"): the same ShareStore calls under a file KEK (RawKek, in memory) and under a
 * pkcs11 KEK in a SoftHSM2 token (node/store/kek-pkcs11.ts), in this process.
 *
 *   wrap + unwrap     one data key wrapped and unwrapped by the KEK (Kek.wrapKey / unwrapKey), nothing else
 *   put (seal)        ShareStore.put of a new key's share: a fresh data key wrapped once, plus the store's
 *                     record MAC and LevelDB write (the same under both providers)
 *   getShare (open)   ShareStore.getShare of a stored share: one unwrap (the read cache keeps only the
 *                     sealed share, so every read unwraps)
 *
 * SoftHSM2 runs in this process, so its rows are the PKCS#11 call path and the token's software AES; a USB
 * or network HSM adds its round trip to every wrap and unwrap. No target: the figures are for comparison.
 * Needs the softhsm2 package (.ci/run installs it); without it the section says so and has no rows.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { split } from '../core/shamir.js';
import { ED25519 } from '../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../core/types.js';
import type { KekSource } from '../node/config.js';
import { RawKek, type Kek } from '../node/store/kek.js';
import { createPkcs11Kek, openPkcs11Keks } from '../node/store/kek-pkcs11.js';
import { ShareStore } from '../node/store/storage.js';
import { measure, measureAsync, type Budget, type Section, type Stats } from './stats.js';
import { sampleShare } from '../test/helpers/key-shares.js';

const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TITLE = 'KEK providers: per-operation cost of a pkcs11 KEK (SoftHSM2) against a file KEK';


async function rowsFor(label: string, kek: Kek, dataDir: string, b: { fast: Budget; op: Budget }): Promise<Stats[]> {
  const rows: Stats[] = [];
  const aad = randomBytes(28);
  const dataKey = randomBytes(32);
  rows.push({ ...measure('', () => kek.unwrapKey(kek.wrapKey(dataKey, aad), aad), b.fast), name: `${label}  wrap + unwrap a data key` });
  const store = await ShareStore.open({ dataDir, kek, nodeIndex: 1 });
  try {
    const s = sampleShare();
    let n = 0;
    rows.push({ ...(await measureAsync('', () => store.put({ tenant: 'bench', keyId: `k${n++}`, version: 1, share: s, exportable: false }), b.op)), name: `${label}  store put (seal a share)` });
    rows.push({ ...(await measureAsync('', () => store.getShare('bench', 'k0'), b.op)), name: `${label}  store getShare (open a share)` });
  } finally {
    await store.close();
  }
  return rows;
}

export async function runKek(o: { quick: boolean; emit: (s: Section) => void; log: (s: string) => void }): Promise<Section[]> {
  const budget = (warmup: number, minIterations: number, maxIterations: number, targetMs: number): Budget =>
    o.quick ? { warmup: 1, minIterations: 3, maxIterations: 5, targetMs: 0 } : { warmup, minIterations, maxIterations, targetMs };
  const b = { fast: budget(200, 500, 20_000, 1_000), op: budget(20, 200, 5_000, 1_500) };
  if (!existsSync(SOFTHSM_MODULE)) {
    const s: Section = { title: TITLE, note: `not measured: SoftHSM2 is not installed (${SOFTHSM_MODULE}); apt-get install softhsm2`, rows: [] };
    o.emit(s);
    return [s];
  }
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-kek-'));
  const savedConf = process.env.SOFTHSM2_CONF;
  try {
    // A token of our own: SoftHSM reads SOFTHSM2_CONF when the library is initialised (first open below).
    const conf = join(dir, 'softhsm2.conf');
    await writeFile(conf, `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`, { mode: 0o600 });
    const pin = randomBytes(8).toString('hex');
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'tessera-bench', '--so-pin', `so-${pin}`, '--pin', pin], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'ignore' });
    process.env.SOFTHSM2_CONF = conf;
    const source = Object.defineProperty({ kind: 'pkcs11' as const, module: SOFTHSM_MODULE, tokenLabel: 'tessera-bench', keyLabel: 'bench-kek' }, 'pin', { value: pin, enumerable: false }) as Extract<KekSource, { kind: 'pkcs11' }>;
    o.log('kek: file KEK, then a pkcs11 KEK in a SoftHSM2 token');
    const raw = randomBytes(32);
    const fileKek = new RawKek(raw, 'file');
    raw.fill(0);
    const rows: Stats[] = [];
    try {
      rows.push(...(await rowsFor('file  ', fileKek, join(dir, 'store-file'), b)));
    } finally {
      fileKek.close();
    }
    await createPkcs11Kek(source, source.keyLabel);
    const { current } = await openPkcs11Keks(source, 1);
    try {
      rows.push(...(await rowsFor('pkcs11', current, join(dir, 'store-pkcs11'), b)));
    } finally {
      current.close();
    }
    const s: Section = {
      title: TITLE,
      note: 'one ShareStore in this process; SoftHSM2 runs in-process (a hardware token adds its round trip to each wrap and unwrap)',
      rows,
    };
    o.emit(s);
    return [s];
  } finally {
    if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = savedConf;
    await rm(dir, { recursive: true, force: true });
  }
}
