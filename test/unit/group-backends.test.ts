/**
 * Choosing the group backends (runtime/group-backend.ts) and installing them (core/suites.ts
 * installGroupBackends over core/group.ts groupSlot), issue 10 item 1:
 *   - TESSERA_GROUP_BACKEND native | wasm | noble picks where each group's list starts; anything else
 *     is refused;
 *   - a backend that does not load, or loads and fails its known-answer check, falls back to the next
 *     one with a warning (never silently), and the `secp256k1` package's index.js (which falls back to
 *     pure-JS elliptic on its own) is never loaded; a real process whose native secp256k1 build cannot
 *     load prints the warning;
 *   - the install hook is one process-wide setting, refused once a point of that group exists.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { x25519 } from '@noble/curves/ed25519.js';
import { toHex } from '../../core/bytes.js';
import { sodiumEd25519Group, type SodiumEd25519Binding } from '../../core/backends/sodium-ed25519.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { groupSlot } from '../../core/group.js';
import { NOBLE_GROUPS } from '../../core/suites.js';
import { chooseGroupBackends, groupBackendPreference, GROUP_BACKEND_ENV } from '../../runtime/group-backend.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const realRequire = createRequire(join(ROOT, 'runtime', 'group-backend.ts'));

/** A loader that records what it was asked for and fails the ids in `failing`. */
function loader(failing: Record<string, string> = {}) {
  const asked: string[] = [];
  const load = (id: string): unknown => {
    asked.push(id);
    if (failing[id]) throw new Error(failing[id]);
    return realRequire(id);
  };
  return { asked, load };
}

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    // (By name: a module instance from vi.resetModules has its own TesseraError class.)
    return e instanceof Error && e.name === new TesseraError(ErrorCode.BadInput, '').name ? (e as TesseraError).code : `not a TesseraError: ${String(e)}`;
  }
  return undefined;
}

describe('TESSERA_GROUP_BACKEND', () => {
  it('native by default; native, wasm and noble are accepted; anything else is refused, naming the variable', () => {
    expect(groupBackendPreference({})).toBe('native');
    expect(groupBackendPreference({ [GROUP_BACKEND_ENV]: '' })).toBe('native');
    for (const v of ['native', 'wasm', 'noble'] as const) expect(groupBackendPreference({ [GROUP_BACKEND_ENV]: v })).toBe(v);
    for (const v of ['Native', 'elliptic', 'sodium', '1']) {
      expect(code(() => groupBackendPreference({ [GROUP_BACKEND_ENV]: v }))).toBe(ErrorCode.BadInput);
      expect(() => groupBackendPreference({ [GROUP_BACKEND_ENV]: v })).toThrow(/TESSERA_GROUP_BACKEND/);
    }
    expect(chooseGroupBackends({ env: { [GROUP_BACKEND_ENV]: 'noble' } }).names).toEqual({ edwards25519: 'noble', secp256k1: 'noble', 'P-256': 'noble' });
  });
});

describe('chooseGroupBackends', () => {
  it('native: sodium-native and the native libsecp256k1 binding load here, with no warning', () => {
    const warn = vi.fn();
    const { asked, load } = loader();
    const c = chooseGroupBackends({ prefer: 'native', warn, load });
    expect(c.names).toEqual({ edwards25519: 'sodium-native', secp256k1: 'libsecp256k1 (native)', 'P-256': 'node:crypto (OpenSSL)' });
    expect(c.groups.edwards25519.backend).toBe('sodium-native');
    expect(warn).not.toHaveBeenCalled();
    expect(c.warnings).toEqual([]);
    // The native secp256k1 backend also takes libsodium's SHA-256 and CSPRNG (runtime/group-backend.ts).
    expect(asked).toEqual(['sodium-native', 'secp256k1/bindings', 'sodium-native']);
  });

  it('wasm: tiny-secp256k1 for secp256k1, noble for edwards25519 (no WASM build of it), node:crypto for P-256 (part of Node): no native addon is loaded', () => {
    const warn = vi.fn();
    const { asked, load } = loader();
    const c = chooseGroupBackends({ prefer: 'wasm', warn, load });
    expect(c.names).toEqual({ edwards25519: 'noble', secp256k1: 'tiny-secp256k1 (WASM)', 'P-256': 'node:crypto (OpenSSL)' });
    expect(asked).toEqual(['tiny-secp256k1']);
    expect(warn).not.toHaveBeenCalled();
  });

  it('noble: nothing is loaded and the groups are the noble ones', () => {
    const { asked, load } = loader();
    const c = chooseGroupBackends({ prefer: 'noble', warn: vi.fn(), load });
    expect(c.groups.edwards25519).toBe(NOBLE_GROUPS.edwards25519);
    expect(c.groups.secp256k1).toBe(NOBLE_GROUPS.secp256k1);
    expect(c.groups['P-256']).toBe(NOBLE_GROUPS['P-256']);
    expect(asked).toEqual([]);
  });

  it('a native secp256k1 build that does not load falls back to tiny-secp256k1 with a warning; the elliptic fallback is never loaded', () => {
    const warn = vi.fn();
    const { asked, load } = loader({ 'secp256k1/bindings': 'No native build was found for platform=linux' });
    const c = chooseGroupBackends({ prefer: 'native', warn, load });
    expect(c.names.secp256k1).toBe('tiny-secp256k1 (WASM)');
    expect(c.names.edwards25519).toBe('sodium-native');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toBe(
      'group backend: secp256k1 cannot use libsecp256k1 (native) (No native build was found for platform=linux); falling back to tiny-secp256k1 (WASM)',
    );
    expect(c.warnings).toEqual([warn.mock.calls[0]![0]]);
    expect(asked).not.toContain('secp256k1');
    expect(asked).not.toContain('secp256k1/elliptic');
  });

  it('nothing loads: every addon-backed group falls back to noble, one warning per backend that failed (P-256 keeps node:crypto, part of Node)', () => {
    const warn = vi.fn();
    const { load } = loader({ 'sodium-native': 'cannot open shared object', 'secp256k1/bindings': 'no build', 'tiny-secp256k1': 'no wasm' });
    const c = chooseGroupBackends({ prefer: 'native', warn, load });
    expect(c.names).toEqual({ edwards25519: 'noble', secp256k1: 'noble', 'P-256': 'node:crypto (OpenSSL)' });
    expect(warn.mock.calls.map((a) => a[0])).toEqual([
      'group backend: edwards25519 cannot use sodium-native (cannot open shared object); falling back to noble',
      'group backend: secp256k1 cannot use libsecp256k1 (native) (no build); falling back to noble',
      'group backend: secp256k1 cannot use tiny-secp256k1 (WASM) (no wasm); falling back to noble',
    ]);
  });

  it('a build that loads but computes wrong results fails its known-answer check and is skipped with a warning', () => {
    const sodium = realRequire('sodium-native') as SodiumEd25519Binding;
    const broken: SodiumEd25519Binding = {
      ...sodium,
      crypto_core_ed25519_is_valid_point: (p) => sodium.crypto_core_ed25519_is_valid_point(p),
      crypto_core_ed25519_add: (r, p, q) => sodium.crypto_core_ed25519_add(r, p, q),
      crypto_core_ed25519_sub: (r, p, q) => sodium.crypto_core_ed25519_sub(r, p, q),
      crypto_scalarmult_ed25519_noclamp: (q, n, p) => sodium.crypto_scalarmult_ed25519_noclamp(q, n, p),
      // Off by one base point.
      crypto_scalarmult_ed25519_base_noclamp(q, n) {
        sodium.crypto_scalarmult_ed25519_base_noclamp(q, n);
        sodium.crypto_core_ed25519_add(q, q, NOBLE_GROUPS.edwards25519.pointToBytes(NOBLE_GROUPS.edwards25519.base));
      },
    };
    const warn = vi.fn();
    const c = chooseGroupBackends({ prefer: 'native', warn, load: (id) => (id === 'sodium-native' ? broken : realRequire(id)) });
    expect(c.names.edwards25519).toBe('noble');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(/^group backend: edwards25519 cannot use sodium-native \(known-answer check failed: mulBase\); falling back to noble$/);
  });

  it('a module without the functions the adapter needs is skipped with a warning', () => {
    const warn = vi.fn();
    const c = chooseGroupBackends({ prefer: 'native', warn, load: (id) => (id === 'sodium-native' ? {} : realRequire(id)) });
    expect(c.names.edwards25519).toBe('noble');
    expect(warn.mock.calls[0]![0]).toMatch(/sodium-native \(sodium-native binding lacks crypto_core_ed25519_is_valid_point\)/);
  });

  it('a real process whose native secp256k1 build cannot load prints the fallback warning', async () => {
    // node-gyp-build matches prebuilds by libc; LIBC=none matches none, as on a platform without a prebuild.
    const script = "import('./runtime/group-backend.ts').then((m) => console.log(JSON.stringify(m.selectGroupBackends().names)))";
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, env: { ...process.env, LIBC: 'none', [GROUP_BACKEND_ENV]: 'native' }, timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout, stderr }),
      ),
    );
    expect(JSON.parse(stdout)).toEqual({ edwards25519: 'sodium-native', secp256k1: 'tiny-secp256k1 (WASM)', 'P-256': 'node:crypto (OpenSSL)' });
    expect(stderr).toContain('[TESSERA_GROUP_BACKEND] Warning: group backend: secp256k1 cannot use libsecp256k1 (native) (No native build was found');
    expect(stderr).toContain('falling back to tiny-secp256k1 (WASM)');
  });
});

describe('the install hook', () => {
  const sodium = () => sodiumEd25519Group(realRequire('sodium-native') as SodiumEd25519Binding, NOBLE_GROUPS.edwards25519);

  it('groupSlot forwards to the installed backend until a point exists, then refuses another', () => {
    for (const makePoint of [(g: ReturnType<typeof groupSlot>['group']) => g.base, (g: ReturnType<typeof groupSlot>['group']) => g.identity, (g: ReturnType<typeof groupSlot>['group']) => g.mulBase(5n), (g: ReturnType<typeof groupSlot>['group']) => g.msm([], []), (g: ReturnType<typeof groupSlot>['group']) => g.pointFromBytes(NOBLE_GROUPS.edwards25519.pointToBytes(NOBLE_GROUPS.edwards25519.base), 'p')]) {
      const slot = groupSlot(NOBLE_GROUPS.edwards25519);
      expect(slot.group.backend).toBe('noble');
      // Scalar arithmetic makes no point.
      slot.group.add(1n, 2n);
      slot.group.hashToScalar(new Uint8Array(1), new Uint8Array(1));
      expect(slot.sealed).toBe(false);
      const backend = sodium();
      slot.install(backend);
      expect(slot.group.backend).toBe('sodium-native');
      expect(slot.backend).toBe(backend);
      makePoint(slot.group);
      expect(slot.sealed).toBe(true);
      slot.install(backend); // the backend in place: a no-op
      expect(code(() => slot.install(NOBLE_GROUPS.edwards25519))).toBe(ErrorCode.BadState);
      expect(slot.group.backend).toBe('sodium-native');
    }
  });

  it('refuses a backend of another curve', () => {
    const slot = groupSlot(NOBLE_GROUPS.secp256k1);
    expect(code(() => slot.install(sodium()))).toBe(ErrorCode.BadInput);
    expect(slot.group.backend).toBe('noble');
  });

  it('installGroupBackends: every suite of the group uses the backend, hpke-x25519 included; refused once a point exists', async () => {
    vi.resetModules(); // a fresh core/suites.ts: no point made yet
    const suites = await import('../../core/suites.js');
    const runtime = await import('../../runtime/group-backend.js');
    const choice = runtime.selectGroupBackends({ prefer: 'native', warn: vi.fn() });
    expect(suites.groupBackendNames()).toEqual({ edwards25519: 'sodium-native', secp256k1: 'libsecp256k1 (native)', 'P-256': 'node:crypto (OpenSSL)' });
    expect(choice.names).toEqual(suites.groupBackendNames());
    for (const id of ['ed25519', 'hpke-x25519'] as const) expect(suites.getSuite(id).group.backend).toBe('sodium-native');
    for (const id of ['secp256k1', 'bip340'] as const) expect(suites.getSuite(id).group.backend).toBe('libsecp256k1 (native)');
    for (const id of ['p256', 'ecdsa-p256', 'hpke-p256'] as const) expect(suites.getSuite(id).group.backend).toBe('node:crypto (OpenSSL)');

    // hpke-x25519 maps enc to a point of the installed backend: DH through it is X25519's.
    const kem = suites.HPKE_X25519;
    const skR = x25519.utils.randomSecretKey();
    const skE = x25519.utils.randomSecretKey();
    const enc = x25519.getPublicKey(skE);
    const E = kem.encToPoint(enc);
    const dh = kem.dhBytes(kem.group.mulPoint(E, kem.privateKeyToScalar(skR)));
    expect(toHex(dh)).toBe(toHex(x25519.getSharedSecret(skR, enc)));

    // Points exist now: another backend is refused, and nothing changed.
    expect(code(() => suites.installGroupBackends({ edwards25519: suites.NOBLE_GROUPS.edwards25519 }))).toBe(ErrorCode.BadState);
    expect(suites.groupBackendNames().edwards25519).toBe('sodium-native');
    // A refused call changes neither group (secp256k1 has points too now? make one, then try both).
    suites.getSuite('secp256k1').group.mulBase(3n);
    expect(code(() => suites.installGroupBackends({ secp256k1: suites.NOBLE_GROUPS.secp256k1 }))).toBe(ErrorCode.BadState);
    expect(suites.groupBackendNames()).toEqual(choice.names);
    // Installing what is installed is a no-op.
    suites.installGroupBackends(choice.groups);
  });

  it('a refused installGroupBackends changes no group', async () => {
    vi.resetModules();
    const suites = await import('../../core/suites.js');
    suites.getSuite('secp256k1').group.base; // secp256k1 is fixed to noble now
    const backend = sodiumEd25519Group(realRequire('sodium-native') as SodiumEd25519Binding, suites.NOBLE_GROUPS.edwards25519);
    const tiny = (await import('../../core/backends/tiny-secp256k1.js')).tinySecp256k1Group(realRequire('tiny-secp256k1') as never, suites.NOBLE_GROUPS.secp256k1);
    expect(code(() => suites.installGroupBackends({ edwards25519: backend, secp256k1: tiny }))).toBe(ErrorCode.BadState);
    expect(suites.groupBackendNames()).toEqual({ edwards25519: 'noble', secp256k1: 'noble', 'P-256': 'noble' });
  });

  it('ensureGroupBackends (SDK) selects once and never throws: points made before it keep noble, with a warning', async () => {
    vi.resetModules();
    const suites = await import('../../core/suites.js');
    const runtime = await import('../../runtime/group-backend.js');
    suites.getSuite('ed25519').group.mulBase(2n);
    const warn = vi.fn();
    runtime.ensureGroupBackends({ prefer: 'native', warn });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(/^group backend: edwards25519 keeps noble: edwards25519: points were already made with the noble backend/);
    // The other group had no point yet: it got its backend.
    expect(suites.groupBackendNames()).toEqual({ edwards25519: 'noble', secp256k1: 'libsecp256k1 (native)', 'P-256': 'node:crypto (OpenSSL)' });
    runtime.ensureGroupBackends({ prefer: 'native', warn });
    expect(warn).toHaveBeenCalledTimes(1);
  });
});
