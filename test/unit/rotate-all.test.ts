/**
 * sdk/rotate-all.ts: the plan (which version of which key; what is skipped and why), where a planned key
 * stands from the versions the nodes list, the run file (atomic, checked field by field), and the
 * resume logic of rotateEveryKey over an in-memory stand-in for the nodes' key records: a run killed
 * while rotations were in flight (one committed after the kill, one left staged) is resumed and no key
 * gets two new versions. The real cluster and CLI are test/integration/rotate-all.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { KeyInfo, RotateResponse } from '../../sdk/client.js';
import { TesseraClientError } from '../../sdk/http.js';
import { forEachGroup } from '../../sdk/grouping.js';
import { keyProgress, planRotateAll, readRunFile, rotateEveryKey, ROTATE_ALL_RUN_FORMAT, type RotateAllTenantOps } from '../../sdk/rotate-all.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-rotate-all-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newRunFile = () => join(dir, `run-${++files}.json`);

const info = (keyId: string, version: number, state: string): KeyInfo => ({ keyId, version, state }) as unknown as KeyInfo;

/**
 * The nodes' key records of one tenant, as far as rotateAll sees them: a rotation makes version
 * highest + 1 and retires the version it replaces, or is staged (`stage`) until repair commits it.
 */
class FakeTenant implements RotateAllTenantOps {
  readonly versions = new Map<string, KeyInfo[]>();
  readonly rotations = new Map<string, number>();
  /** Keys whose next rotate commits and then never answers (the CLI killed while it waits). */
  readonly hangAfterCommit = new Set<string>();
  /** Keys whose next rotate is staged on the nodes and never answers (killed before the commit). */
  readonly stageAndHang = new Set<string>();
  readonly staged = new Set<string>();
  rotateCalls: string[] = [];
  onRotate: () => void = () => undefined;

  add(keyId: string, ...states: string[]): void {
    this.versions.set(keyId, states.map((s, i) => info(keyId, i + 1, s)));
  }
  async listKeys(): Promise<KeyInfo[]> {
    return [...this.versions.values()].flat().map((k) => ({ ...k }));
  }
  private commit(keyId: string, version: number): RotateResponse {
    const vs = this.versions.get(keyId)!;
    const next = Math.max(...vs.map((v) => v.version)) + 1;
    vs.find((v) => v.version === version)!.state = 'retired';
    vs.push(info(keyId, next, 'active'));
    this.rotations.set(keyId, (this.rotations.get(keyId) ?? 0) + 1);
    return { keyId, version: next, previousVersion: version } as RotateResponse;
  }
  async rotate(o: { keyId: string; version: number }): Promise<RotateResponse> {
    this.rotateCalls.push(o.keyId);
    this.onRotate();
    if (this.staged.has(o.keyId)) throw new TesseraClientError('BAD_STATE', `key ${o.keyId} has an uncommitted rotate`);
    const v = this.versions.get(o.keyId)!.find((k) => k.version === o.version);
    if (!v || v.state !== 'active') throw new TesseraClientError('BAD_STATE', `version ${o.version} is not active`);
    if (this.stageAndHang.delete(o.keyId)) {
      this.staged.add(o.keyId);
      return new Promise(() => undefined);
    }
    const r = this.commit(o.keyId, o.version);
    if (this.hangAfterCommit.delete(o.keyId)) return new Promise(() => undefined);
    return r;
  }
  async repair(keyId: string): Promise<unknown> {
    if (this.staged.delete(keyId)) this.commit(keyId, Math.max(...this.versions.get(keyId)!.filter((v) => v.state === 'active').map((v) => v.version)));
    return {};
  }
}

describe('planRotateAll', () => {
  it("plans each key's newest active version; skips keys with no active version and older active versions, saying why", () => {
    const keys = [
      info('a', 1, 'retired'),
      info('a', 2, 'active'),
      info('b', 1, 'active'),
      info('b', 2, 'retired'),
      info('b', 3, 'active'),
      info('c', 1, 'retired'),
      info('c', 2, 'archived'),
      info('d', 1, 'destroyed'),
    ].map((key) => ({ tenant: 't1', key }));
    const plan = planRotateAll([...keys, { tenant: 't2', key: info('a', 1, 'active') }]);
    expect(plan.keys).toEqual([
      { tenant: 't1', keyId: 'a', version: 2, highestVersion: 2 },
      { tenant: 't1', keyId: 'b', version: 3, highestVersion: 3 },
      { tenant: 't2', keyId: 'a', version: 1, highestVersion: 1 },
    ]);
    expect(plan.skipped.map((s) => [s.keyId, s.version, s.state])).toEqual([
      ['b', 1, 'active'],
      ['c', 2, 'archived'],
      ['d', 1, 'destroyed'],
    ]);
    expect(plan.skipped[0]!.reason).toMatch(/only the newest active version is rotated/);
    expect(plan.skipped[1]!.reason).toMatch(/no active version/);
  });
});

describe('keyProgress', () => {
  const plan = { tenant: null, keyId: 'k', version: 2, highestVersion: 3 };
  it('rotated once a version above the planned highest exists (its lowest), whatever happened to the planned one', () => {
    expect(keyProgress(plan, [info('k', 2, 'retired'), info('k', 3, 'retired'), info('k', 4, 'active')])).toEqual({ status: 'rotated', toVersion: 4 });
    expect(keyProgress(plan, [info('k', 2, 'retired'), info('k', 5, 'active'), info('k', 4, 'retired')])).toEqual({ status: 'rotated', toVersion: 4 });
  });
  it('to rotate while the planned version is active and nothing newer exists; else not active (with its state)', () => {
    expect(keyProgress(plan, [info('k', 2, 'active'), info('k', 3, 'retired'), info('other', 9, 'active')])).toEqual({ status: 'to-rotate' });
    expect(keyProgress(plan, [info('k', 2, 'archived'), info('k', 3, 'retired')])).toEqual({ status: 'not-active', state: 'archived' });
    expect(keyProgress(plan, [])).toEqual({ status: 'not-active', state: 'missing' });
  });
});

describe('rotateEveryKey', () => {
  const quick = { retryDelayMs: 1 };

  it('rotates every planned key once, reports from/to versions and the skipped, and removes its run file', async () => {
    const t = new FakeTenant();
    for (let i = 0; i < 20; i++) t.add(`k${String(i).padStart(2, '0')}`, 'active');
    t.add('old', 'retired');
    const statePath = newRunFile();
    // The plan is on disk before the first rotation.
    t.onRotate = () => expect(readRunFile(statePath)?.keys).toHaveLength(20);
    const lines: string[] = [];
    const r = await rotateEveryKey({ tenant: null, tenants: new Map([[null, t]]), statePath, onProgress: (l) => lines.push(l), concurrency: 3, ...quick });
    expect(r).toMatchObject({ resumed: false, total: 20, failed: [] });
    expect(r.rotated).toHaveLength(20);
    expect(r.rotated[0]).toEqual({ tenant: null, keyId: 'k00', fromVersion: 1, toVersion: 2, by: 'this-run' });
    expect(r.skipped.map((s) => s.keyId)).toEqual(['old']);
    expect([...t.rotations.values()]).toEqual(Array(20).fill(1));
    expect(lines[0]).toMatch(/^starting run [0-9a-f]{16}: 20 key\(s\) to rotate, 1 skipped$/);
    expect(lines.filter((l) => /^\[\d+\/20\] k\d\d v1: rotated to v2$/.test(l))).toHaveLength(20);
    expect(() => statSync(statePath)).toThrow();
  });

  it('killed with rotations in flight (one committed unanswered, one staged): the rerun resumes and no key is rotated twice', async () => {
    const t = new FakeTenant();
    const keys = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    for (const k of keys) t.add(k, 'active');
    t.hangAfterCommit.add('k04'); // committed on the nodes; the killed CLI never heard
    t.stageAndHang.add('k05'); // staged on the nodes when the CLI died
    const statePath = newRunFile();
    const lines: string[] = [];
    // Concurrency 2: the workers reach k04 and k05 and wait for ever; "kill" the run there.
    const first = rotateEveryKey({ tenant: null, tenants: new Map([[null, t]]), statePath, onProgress: (l) => lines.push(l), concurrency: 2, ...quick });
    for (let i = 0; i < 50 && t.rotateCalls.length < 6; i++) await new Promise((r) => setImmediate(r));
    expect(t.rotateCalls.slice(-2).sort()).toEqual(['k04', 'k05']);
    void first; // abandoned: the process is gone
    const planned = readRunFile(statePath)!;
    expect(planned.keys.map((k) => k.keyId)).toEqual(keys);

    // A key retired by someone after the plan is reported skipped, not rotated.
    t.versions.get('k11')![0]!.state = 'retired';
    const again = await rotateEveryKey({ tenant: null, tenants: new Map([[null, t]]), statePath, onProgress: (l) => lines.push(l), concurrency: 2, ...quick });
    expect(again).toMatchObject({ resumed: true, runId: planned.runId, total: 12, failed: [] });
    expect(lines).toContain(`resuming run ${planned.runId} of ${new Date(planned.startedAt).toISOString()}: 12 key(s) to rotate, 0 skipped`);
    const by = Object.fromEntries(again.rotated.map((k) => [k.keyId, k.by]));
    expect(by).toMatchObject({ k00: 'earlier', k03: 'earlier', k04: 'earlier', k05: 'earlier', k06: 'this-run', k10: 'this-run' });
    expect(again.skipped).toEqual([{ tenant: null, keyId: 'k11', version: 1, state: 'retired', reason: 'the version is retired now (changed after the plan)' }]);
    // Exactly one new version per key: k05's staged rotation was committed by repair, not made again.
    for (const k of keys.slice(0, 11)) expect(t.versions.get(k)!.map((v) => `v${v.version} ${v.state}`), k).toEqual(['v1 retired', 'v2 active']);
    expect(t.rotations.get('k05')).toBe(1);
    expect(() => statSync(statePath)).toThrow();
  });

  it('a key that keeps failing is reported with its reason and the run file is kept for the rerun', async () => {
    const t = new FakeTenant();
    t.add('a', 'active');
    t.add('b', 'active');
    const failing: RotateAllTenantOps = {
      listKeys: () => t.listKeys(),
      repair: (k) => t.repair(k),
      rotate: (o) => (o.keyId === 'b' ? Promise.reject(new TesseraClientError('NODE_TIMEOUT', 'node 3 did not answer')) : t.rotate(o)),
    };
    const statePath = newRunFile();
    const r = await rotateEveryKey({ tenant: 'acme', tenants: new Map([['acme', failing]]), statePath, attempts: 2, ...quick });
    expect(r.rotated.map((k) => k.keyId)).toEqual(['a']);
    expect(r.failed).toEqual([{ tenant: 'acme', keyId: 'b', version: 1, reason: 'NODE_TIMEOUT: node 3 did not answer' }]);
    expect(r.runFile).toBe(statePath);
    // Another scope is refused while this run is unfinished; the same scope resumes and finishes.
    await expect(rotateEveryKey({ tenant: null, tenants: new Map([[null, t]]), statePath, ...quick })).rejects.toMatchObject({ code: 'BAD_STATE' });
    const rerun = await rotateEveryKey({ tenant: 'acme', tenants: new Map([['acme', t]]), statePath, ...quick });
    expect(rerun.rotated.map((k) => [k.keyId, k.by])).toEqual([
      ['a', 'earlier'],
      ['b', 'this-run'],
    ]);
    expect(t.rotations.get('a')).toBe(1);
  });

  it('a refusal (an operator hook or a node policy) is reported at once, not retried; the other keys go on', async () => {
    const t = new FakeTenant();
    t.add('a', 'active');
    t.add('b', 'active');
    let asked = 0;
    const refusing: RotateAllTenantOps = {
      listKeys: () => t.listKeys(),
      repair: (k) => t.repair(k),
      rotate: (o) => (o.keyId === 'a' ? (asked++, Promise.reject(new TesseraClientError('POLICY_DENIED', 'policy hook of node 3 refused the rotate request'))) : t.rotate(o)),
    };
    const r = await rotateEveryKey({ tenant: null, tenants: new Map([[null, refusing]]), retryDelayMs: 60_000 });
    expect(asked).toBe(1);
    expect(r.failed).toEqual([{ tenant: null, keyId: 'a', version: 1, reason: 'POLICY_DENIED: policy hook of node 3 refused the rotate request' }]);
    expect(r.rotated.map((k) => k.keyId)).toEqual(['b']);
  });

  it('bad options and run files are refused with a clear error, never used', async () => {
    const t = new FakeTenant();
    await expect(rotateEveryKey({ tenant: null, tenants: new Map([[null, t]]), concurrency: 0 })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    const statePath = newRunFile();
    const good = { format: ROTATE_ALL_RUN_FORMAT, runId: '0123456789abcdef', startedAt: 1, tenant: null, keys: [{ tenant: null, keyId: 'a', version: 1, highestVersion: 1 }], skipped: [] };
    for (const [content, what] of [
      ['{', /not JSON/],
      [JSON.stringify({ ...good, format: 'x' }), /format/],
      [JSON.stringify({ ...good, runId: 'zz' }), /runId/],
      [JSON.stringify({ ...good, keys: [{ tenant: null, keyId: 'a', version: 2, highestVersion: 1 }] }), /keys\[0\]/],
      [JSON.stringify({ ...good, keys: [good.keys[0], good.keys[0]] }), /planned twice/],
      [JSON.stringify({ ...good, keys: [{ tenant: null, keyId: '../x', version: 1, highestVersion: 1 }] }), /keys\[0\]/],
    ] as const) {
      writeFileSync(statePath, content);
      const e = await rotateEveryKey({ tenant: null, tenants: new Map([[null, t]]), statePath }).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'BAD_INPUT' });
      expect((e as Error).message).toMatch(what);
    }
    writeFileSync(statePath, JSON.stringify(good));
    expect(readRunFile(statePath)).toEqual(good);
    // A plan naming a tenant these API keys cannot act for.
    writeFileSync(statePath, JSON.stringify({ ...good, keys: [{ ...good.keys[0], tenant: 'other' }] }));
    await expect(rotateEveryKey({ tenant: null, tenants: new Map([[null, t]]), statePath })).rejects.toMatchObject({ code: 'BAD_STATE' });
    expect(JSON.parse(readFileSync(statePath, 'utf8')).keys[0].tenant).toBe('other'); // left as it was
  });
});

describe('forEachGroup (the per-key worker pool of rotateAll and reshareAll)', () => {
  it('at most `concurrency` items at once, the items of one group one after another and in order, every item once', async () => {
    const groups = Array.from({ length: 7 }, (_, g) => Array.from({ length: (g % 3) + 1 }, (_, i) => ({ g, i })));
    let running = 0;
    let most = 0;
    const busy = new Set<number>();
    const seen: string[] = [];
    await forEachGroup(groups, 3, async ({ g, i }) => {
      expect(busy.has(g), `group ${g} twice at once`).toBe(false);
      busy.add(g);
      most = Math.max(most, ++running);
      await new Promise((r) => setImmediate(r));
      seen.push(`${g}.${i}`);
      busy.delete(g);
      running--;
    });
    expect(most).toBe(3);
    expect(seen.sort()).toEqual(groups.flat().map(({ g, i }) => `${g}.${i}`).sort());
    for (const group of groups) {
      const order = seen.filter((x) => x.startsWith(`${group[0]!.g}.`));
      expect(order).toEqual([...order].sort());
    }
    await forEachGroup([], 4, async () => expect.fail('no items'));
  });
});
