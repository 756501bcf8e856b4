/**
 * Shared setup for the unit tests that open a ShareStore (node/store/storage.ts): a fresh temp dir under
 * os.tmpdir() and a random 32-byte KEK for every test, stores opened through `open` closed after it,
 * then the dir removed.
 */
import { afterEach, beforeEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ShareStore } from '../../node/store/storage.js';

export interface TempStores {
  /** This test's temp dir. */
  dir(): string;
  /** This test's KEK (32 random bytes). */
  kek(): Uint8Array;
  /** Open a store (default: <dir>/data, node 1, this test's KEK), closed after the test. */
  open(dataDir?: string, nodeIndex?: number, kek?: Uint8Array): Promise<ShareStore>;
  /** Run `fn` after the test, before the dir is removed (last registered runs first). */
  onCleanup(fn: () => Promise<void>): void;
}

/** Register the beforeEach/afterEach of a fresh temp dir (named `prefix` + random) and KEK per test. */
export function useTempStores(prefix: string): TempStores {
  let dir: string | undefined;
  let kek: Uint8Array | undefined;
  const cleanup: (() => Promise<void>)[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    kek = Uint8Array.from(randomBytes(32));
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
    await rm(dir!, { recursive: true, force: true });
  });
  const t: TempStores = {
    dir: () => dir!,
    kek: () => kek!,
    async open(dataDir = join(t.dir(), 'data'), nodeIndex = 1, key = t.kek()) {
      const s = await ShareStore.open({ dataDir, kek: key, nodeIndex });
      cleanup.push(() => s.close());
      return s;
    },
    onCleanup: (fn) => void cleanup.push(fn),
  };
  return t;
}
