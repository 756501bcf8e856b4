/**
 * KEK rotation (issue 15 item 2): move every record of a node's store from its KEK to a new one, then
 * destroy the old KEK. `tessera kek rotate --node I` asks the node for it (an admin call); a node that
 * finds an unfinished rotation at start finishes it before it serves (resumeKekRotation).
 *
 * The steps, and why a crash (SIGKILL) at any point loses nothing:
 *   1. next     the provider makes the next KEK durable before anything uses it: the file provider writes
 *               <kekFile>.next (mode 0600, synced), the pkcs11 provider creates the token key <keyLabel>.next.
 *               A crash here leaves an unused next KEK: the node opens it beside the current one
 *               (node/store/kek-provider.ts), sees it, and resumes to it.
 *   2. begin    the store records {from, to} (synced) and wraps everything new under `to`
 *               (ShareStore.beginKekRotation). Both KEKs open records from here on.
 *   3. rewrap   every sealed value's data key is re-wrapped under `to`, record by record, each write synced
 *               and under the record's locks (ShareStore.rewrapRecords). A crash leaves records on both
 *               sides, each naming its KEK: the resumed rotation moves the rest.
 *   4. retire   only when no record is left under `from` (counted again, not assumed) does the provider destroy
 *               the old KEK: the file provider renames <kekFile>.next over <kekFile> (atomic; the old key's
 *               bytes are unlinked, not scrubbed from the medium), the pkcs11 provider destroys the old token
 *               key and relabels the new one. Idempotent: a crash after it repeats it harmlessly.
 *   5. end      the store forgets the old KEK and deletes the rotation record (ShareStore.endKekRotation).
 *
 * KEKs from TESSERA_KEK (env) cannot be rotated by the node: it cannot change its own environment. A
 * shamir-unseal KEK's new shares must reach the operators before step 1: a prepare phase makes them and
 * <dataDir>/unseal-next.json (node/store/kek-unseal.ts shamirRotationSteps, where steps 1 and 4 are).
 */
import { rename, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import type { KekSource } from '../config.js';
import { RawKek, createKekFile, readKekFile, type Kek } from './kek.js';
import { nextKekFilePath } from './kek-provider.js';
import { shamirRotationSteps } from './kek-unseal.js';
import type { ShareStore } from './storage.js';

/** The provider's half of a rotation: make the next KEK durable, and destroy the old one. */
export interface KekRotationSteps {
  /** The next KEK, made durable first (or the one a crashed rotation already made). */
  prepareNext(): Promise<Kek>;
  /** Destroy KEK `oldId` for good and make the next KEK the one the config names. Idempotent. */
  retire(oldId: string): Promise<void>;
}

/** Crash points for the fault tests (TESSERA_FAULT_POINTS, node/service.ts FAULT_POINTS). */
export const KEK_ROTATION_FAULT_POINTS = ['kek-rotate-after-next', 'kek-rotate-after-begin', 'kek-rotate-midway', 'kek-rotate-after-rewrap', 'kek-rotate-after-retire'] as const;
export type KekRotationFaultPoint = (typeof KEK_ROTATION_FAULT_POINTS)[number];

export interface KekRotationReport {
  /** The public ids of the old and the new KEK. */
  readonly from: string;
  readonly to: string;
  /** Sealed records looked at, and how many of them this run moved (a resumed run moves the rest). */
  readonly records: number;
  readonly moved: number;
  /** True when this run finished a rotation a crash had interrupted. */
  readonly resumed: boolean;
}

export interface RotateKekOptions {
  readonly crashPoint?: (point: KekRotationFaultPoint) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * The rotation steps for the node's configured KEK provider; BAD_INPUT for one that cannot rotate.
 * `node` is what a shamir-unseal node's steps need: its data dir and its current KEK (which wraps the next).
 */
export async function kekRotationSteps(source: KekSource, node: { dataDir: string; currentKek: Kek }): Promise<KekRotationSteps> {
  if (source.kind === 'file') return fileRotationSteps(source.path);
  if (source.kind === 'pkcs11') {
    const p11 = (await import('./kek-pkcs11.js')) as unknown as { pkcs11RotationSteps?: (s: typeof source) => KekRotationSteps };
    ensure(typeof p11.pkcs11RotationSteps === 'function', ErrorCode.BadInput, 'this node cannot rotate a pkcs11 KEK yet');
    return p11.pkcs11RotationSteps!(source);
  }
  if (source.kind === 'env') {
    throw new TesseraError(ErrorCode.BadInput, 'this node takes its KEK from TESSERA_KEK, which it cannot change: rotate by restarting it with a key file (kekFile) or replace the node');
  }
  return shamirRotationSteps(node.dataDir, node.currentKek);
}

/** The file provider: the next KEK is <kekFile>.next until step 4 renames it over <kekFile>. */
export function fileRotationSteps(kekFile: string): KekRotationSteps {
  const next = nextKekFilePath(kekFile);
  return {
    async prepareNext() {
      try {
        await createKekFile(next); // O_EXCL, mode 0600, synced
        await syncDir(dirname(next));
      } catch (e) {
        if (!(e instanceof Error && /already exists/.test(e.message))) throw e;
        // A crash after step 1 left it: it is the next KEK (never yet used, or used by a rotation that resumes now).
      }
      const bytes = await readKekFile(next);
      try {
        return new RawKek(bytes, 'file');
      } finally {
        bytes.fill(0);
      }
    },
    async retire() {
      try {
        await rename(next, kekFile);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // done before a crash
        throw e;
      }
      await syncDir(dirname(kekFile));
    },
  };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Rotate the store's KEK, or finish a rotation a crash interrupted (see the file comment for the steps).
 * The old Kek is closed at the end; the new one is the store's current KEK.
 */
export async function rotateKek(store: ShareStore, steps: KekRotationSteps, o: RotateKekOptions = {}): Promise<KekRotationReport> {
  const crash = o.crashPoint ?? (() => {});
  const recorded = await store.kekRotation();
  const held = store.keks();
  let next: Kek;
  if (recorded && held.some((k) => k.id === recorded.to)) {
    next = held.find((k) => k.id === recorded.to)!;
  } else {
    ensure(!recorded, ErrorCode.BadState, `the rotation to KEK ${recorded?.to} is unfinished but that KEK is missing: restore it (its file or token key) to finish the rotation`);
    // A crash after step 1 left the next KEK, which the node opened beside its current one at start: use
    // that Kek (opening it again would, for pkcs11, hold a second token session that nobody closes).
    next = held.length > 1 ? held[1]! : await steps.prepareNext();
    crash('kek-rotate-after-next');
  }
  const resumed = recorded !== undefined || held.some((k) => k.id === next.id);
  const state = await store.beginKekRotation(next);
  crash('kek-rotate-after-begin');
  let midwayPassed = false;
  const result = await store.rewrapRecords((done, total) => {
    o.onProgress?.(done, total);
    if (!midwayPassed && total > 1 && done >= Math.floor(total / 2)) {
      midwayPassed = true;
      crash('kek-rotate-midway');
    }
  });
  if (result.refused.length > 0) {
    throw new TesseraError(
      ErrorCode.BadState,
      `KEK rotation cannot finish: ${result.refused.length} record(s) fail their integrity check (${result.refused.slice(0, 3).join('; ')}); repair them (\`tessera repair --key-id\`) and run the rotation again. The old KEK is kept.`,
    );
  }
  crash('kek-rotate-after-rewrap');
  // A write that sealed under the old KEK just before step 2 and landed after the pass listed the records
  // is caught here: another pass moves it (a bounded number of passes; the count below decides).
  for (let pass = 0; pass < 3 && (await store.countNotUnderCurrentKek()) > 0; pass++) await store.rewrapRecords();
  const left = await store.countNotUnderCurrentKek();
  ensure(left === 0, ErrorCode.BadState, `KEK rotation: ${left} record(s) are still under another KEK; the old KEK is kept`);
  await steps.retire(state.from);
  crash('kek-rotate-after-retire');
  const old = await store.endKekRotation();
  old?.close();
  return { from: state.from, to: state.to, records: result.records, moved: result.moved, resumed };
}

/** At start: finish a rotation that a crash interrupted (a rotation record, or a next KEK beside the current one). */
export async function resumeKekRotation(store: ShareStore, source: KekSource, dataDir: string, o: RotateKekOptions = {}): Promise<KekRotationReport | undefined> {
  const recorded = await store.kekRotation();
  if (!recorded && store.keks().length < 2) return undefined;
  return rotateKek(store, await kekRotationSteps(source, { dataDir, currentKek: store.keks()[0]! }), o);
}
