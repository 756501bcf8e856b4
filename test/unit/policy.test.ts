/**
 * The policy engine (node/governance/policy.ts): ordered rules where the first deny wins, allowed operations per
 * API key / tenant / key, persisted quotas, in-memory rate limits, fail-closed UNAVAILABLE when the rule
 * store is broken, and the emergency fail-open with its automatic revert and critical audit entries.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { verifyAuditLog, type AuditEntry } from '../../core/audit-verify.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/governance/audit.js';
import { DEFAULT_FAIL_OPEN_MS, POLICY_NAMESPACE, PolicyEngine, validateRules, type PolicyRequest, type PolicyRule } from '../../node/governance/policy.js';
import { ShareStore, storageLocation } from '../../node/store/storage.js';
import { useTempStores } from '../helpers/temp-store.js';

const packr = new Packr({ useRecords: false });
let identity: IdentityKeyPair;
beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
});

const { dir, open, onCleanup } = useTempStores('tessera-policy-');

const HOUR = 3600_000;
interface Node {
  store: ShareStore;
  audit: AuditLog;
  policy: PolicyEngine;
  clock: { t: number };
}

/** A store, audit log and policy engine on a fake clock (timers are real). */
async function openNode(o: { now?: () => number; clockStart?: number } = {}): Promise<Node> {
  const clock = { t: o.clockStart ?? 1_700_000_000_000 };
  const now = o.now ?? (() => clock.t);
  const store = await open(); // closed after policy and audit (cleanups run last first)
  const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0, now });
  const policy = await PolicyEngine.open({ records: store.namespace(POLICY_NAMESPACE), audit, now });
  onCleanup(async () => {
    await policy.close();
    await audit.close();
  });
  return { store, audit, policy, clock };
}

async function closeNode(n: Node): Promise<void> {
  await n.policy.close();
  await n.audit.close();
  await n.store.close();
}

const req = (o: Partial<PolicyRequest> = {}): PolicyRequest => ({ tenant: 'acme', apiKeyId: 'ak_1', operation: 'sign', keyId: 'k1', ...o });

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return (e as TesseraError).code;
  }
  throw new Error('expected a TesseraError');
}

async function auditEntries(n: Node): Promise<AuditEntry[]> {
  return [...(await n.audit.exportLog({ checkpoint: false })).entries];
}

async function decisions(policy: PolicyEngine, reqs: PolicyRequest[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of reqs) {
    const d = await policy.evaluate(r);
    out.push(d.allow ? 'allow' : `deny:${d.rule}`);
  }
  return out;
}

describe('rules', () => {
  it('no rules: everything is allowed; the empty document is version 0', async () => {
    const n = await openNode();
    expect(await n.policy.getRules()).toMatchObject({ version: 0, rules: [] });
    expect(await n.policy.evaluate(req())).toEqual({ allow: true });
  });

  it('allowed operations per API key, per tenant and per key', async () => {
    const n = await openNode();
    await n.policy.setRules(
      [
        { id: 'signer-key-only-signs', type: 'allow-operations', scope: { apiKeyId: 'signer' }, operations: ['sign'] },
        { id: 'globex-no-export', type: 'allow-operations', scope: { tenant: 'globex' }, operations: ['keygen', 'sign', 'decapsulate', 'refresh', 'rotate'] },
        { id: 'kem-key', type: 'allow-operations', scope: { tenant: 'acme', keyId: 'kem' }, operations: ['decapsulate', 'refresh'] },
      ],
      'admin',
    );
    expect(
      await decisions(n.policy, [
        req({ apiKeyId: 'signer' }),
        req({ apiKeyId: 'signer', operation: 'keygen' }),
        req({ apiKeyId: 'other', operation: 'keygen' }),
        req({ tenant: 'globex', operation: 'sign' }),
        req({ tenant: 'globex', operation: 'export' }),
        req({ tenant: 'acme', operation: 'export' }),
        req({ keyId: 'kem', operation: 'sign' }),
        req({ keyId: 'kem', operation: 'decapsulate' }),
        req({ tenant: 'globex', keyId: 'kem', operation: 'sign' }), // another tenant's key of that name: not in scope
      ]),
    ).toEqual(['allow', 'deny:signer-key-only-signs', 'allow', 'allow', 'deny:globex-no-export', 'allow', 'deny:kem-key', 'allow', 'allow']);
    const d = await n.policy.evaluate(req({ apiKeyId: 'signer', operation: 'destroy' }));
    expect(d).toEqual({ allow: false, rule: 'signer-key-only-signs', reason: 'rule signer-key-only-signs: destroy is not among the allowed operations' });
    expect(await codeOf(n.policy.enforce(req({ apiKeyId: 'signer', operation: 'destroy' })))).toBe(ErrorCode.PolicyDenied);
    expect(await n.policy.enforce(req())).toEqual({ allow: true });
  });

  it('ordered, first deny wins', async () => {
    const n = await openNode();
    const a: PolicyRule = { id: 'a-deny-destroy', type: 'deny', scope: { tenant: 'acme' }, operations: ['destroy'] };
    const b: PolicyRule = { id: 'b-only-sign', type: 'allow-operations', operations: ['sign'] };
    const c: PolicyRule = { id: 'c-deny-all-k2', type: 'deny', scope: { keyId: 'k2' } };
    await n.policy.setRules([a, b, c], 'admin');
    expect(await decisions(n.policy, [req({ operation: 'destroy' }), req({ operation: 'keygen' }), req({ keyId: 'k2' }), req()])).toEqual([
      'deny:a-deny-destroy',
      'deny:b-only-sign',
      'deny:c-deny-all-k2',
      'allow',
    ]);
    await n.policy.setRules([c, b, a], 'admin');
    expect(await decisions(n.policy, [req({ operation: 'destroy', keyId: 'k2' }), req({ operation: 'destroy' })])).toEqual(['deny:c-deny-all-k2', 'deny:b-only-sign']);
    expect((await n.policy.getRules()).version).toBe(2);
  });

  it('setRules validates, is audited before the write, and refuses when it cannot be audited', async () => {
    const n = await openNode();
    const bad: unknown[] = [
      'rules',
      [{ id: 'x', type: 'nope' }],
      [{ id: 'x', type: 'deny' }, { id: 'x', type: 'deny' }],
      [{ id: 'x', type: 'deny', extra: 1 }],
      [{ id: 'x', type: 'deny', operations: ['sign', 'sign'] }],
      [{ id: 'x', type: 'deny', operations: ['launch'] }],
      [{ id: 'x', type: 'deny', scope: { tenant: 'a/b' } }],
      [{ id: 'x', type: 'deny', scope: { role: 'admin' } }],
      [{ id: 'x', type: 'allow-operations' }],
      [{ id: 'x', type: 'quota', operations: ['sign'], per: 'tenant', limit: 5 }],
      [{ id: 'x', type: 'quota', operations: [], per: 'tenant', limit: 5, periodMs: HOUR }],
      [{ id: 'x', type: 'quota', operations: ['sign'], per: 'node', limit: 5, periodMs: HOUR }],
      [{ id: 'x', type: 'quota', operations: ['sign'], per: 'tenant', limit: -1, periodMs: HOUR }],
      [{ id: 'x', type: 'rate', per: 'key', limit: 1, intervalMs: 1000 }],
      [{ id: 'x', type: 'rate', per: 'apiKey', limit: 0, intervalMs: 1000 }],
      [{ id: 'x'.repeat(65), type: 'deny' }],
    ];
    for (const rules of bad) expect(await codeOf(() => validateRules(rules))).toBe(ErrorCode.BadInput);
    for (const rules of bad) expect(await codeOf(n.policy.setRules(rules as PolicyRule[], 'admin'))).toBe(ErrorCode.BadInput);
    expect(await codeOf(n.policy.setRules([], 'bad actor'))).toBe(ErrorCode.BadInput);
    expect((await n.policy.getRules()).version).toBe(0);

    const doc = await n.policy.setRules([{ id: 'd', type: 'deny', operations: ['destroy'] }], 'ops-admin');
    expect(doc).toMatchObject({ version: 1, updatedBy: 'ops-admin' });
    const entries = await auditEntries(n);
    expect(entries.map((e) => [e.operation, e.actor, e.reason])).toEqual([['policy.update', 'ops-admin', 'policy version 1: 1 rules']]);

    await n.audit.close();
    expect(await codeOf(n.policy.setRules([], 'ops-admin'))).toBe(ErrorCode.Unavailable);
    expect((await n.policy.getRules()).version).toBe(1);
  });
});

describe('quotas', () => {
  const quota: PolicyRule = { id: 'sign-quota', type: 'quota', operations: ['sign'], per: 'tenant', limit: 3, periodMs: HOUR };

  it('count admitted requests per tenant per fixed window, reset in the next window, survive a restart', async () => {
    let n = await openNode({ clockStart: 10 * HOUR + 5 });
    await n.policy.setRules([quota], 'admin');
    expect(await decisions(n.policy, [req(), req({ apiKeyId: 'ak_2' }), req({ operation: 'decapsulate' }), req(), req()])).toEqual([
      'allow',
      'allow',
      'allow', // not a counted operation
      'allow',
      'deny:sign-quota',
    ]);
    expect(await decisions(n.policy, [req({ tenant: 'globex' })])).toEqual(['allow']);
    const denied = await n.policy.evaluate(req());
    expect(denied).toEqual({ allow: false, rule: 'sign-quota', reason: 'rule sign-quota: quota of 3 per 3600000 ms reached' });

    // Restart within the window: still exhausted (persisted in LevelDB).
    const t = n.clock.t;
    await closeNode(n);
    n = await openNode({ clockStart: t + 1000 });
    expect(await decisions(n.policy, [req()])).toEqual(['deny:sign-quota']);
    // Next window (aligned to the epoch: 11:00).
    n.clock.t = 11 * HOUR;
    expect(await decisions(n.policy, [req(), req(), req(), req()])).toEqual(['allow', 'allow', 'allow', 'deny:sign-quota']);
  });

  it('per API key and per key buckets', async () => {
    const n = await openNode();
    await n.policy.setRules(
      [
        { id: 'per-key', type: 'quota', operations: ['sign'], per: 'key', limit: 1, periodMs: HOUR },
        { id: 'per-api-key', type: 'quota', operations: ['sign', 'decapsulate'], per: 'apiKey', limit: 2, periodMs: HOUR },
      ],
      'admin',
    );
    expect(
      await decisions(n.policy, [
        req({ keyId: 'a' }),
        req({ keyId: 'a' }), // per-key exhausted for acme/a
        req({ keyId: 'a', tenant: 'globex' }), // globex/a is another key; ak_1's second
        req({ keyId: 'b' }), // ak_1 exhausted
        req({ keyId: 'b', apiKeyId: 'ak_2' }),
      ]),
    ).toEqual(['allow', 'deny:per-key', 'allow', 'deny:per-api-key', 'allow']);
  });

  it('count only on admission: a request denied by a later rule uses no quota; concurrent requests never exceed it', async () => {
    const n = await openNode();
    await n.policy.setRules([quota, { id: 'no-k9', type: 'deny', scope: { keyId: 'k9' } }], 'admin');
    expect(await decisions(n.policy, [req({ keyId: 'k9' }), req({ keyId: 'k9' }), req({ keyId: 'k9' }), req({ keyId: 'k9' })])).toEqual(
      Array(4).fill('deny:no-k9'),
    );
    const results = await Promise.all(Array.from({ length: 10 }, () => n.policy.evaluate(req())));
    expect(results.filter((d) => d.allow).length).toBe(3);
  });

  it('a corrupt quota counter makes evaluation fail closed', async () => {
    const n = await openNode();
    await n.policy.setRules([quota], 'admin');
    await n.policy.evaluate(req());
    await n.store.namespace(POLICY_NAMESPACE).put('q/sign-quota/t/acme', Uint8Array.of(0xc1));
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
    expect(await n.policy.evaluate(req({ tenant: 'globex' }))).toEqual({ allow: true });
  });
});

describe('rate limits', () => {
  it('token bucket per API key: burst, refill over time, independent keys; in memory (a new engine starts full)', async () => {
    const n = await openNode();
    await n.policy.setRules([{ id: 'rate', type: 'rate', per: 'apiKey', limit: 2, intervalMs: 1000 }], 'admin');
    expect(await decisions(n.policy, [req(), req(), req(), req({ apiKeyId: 'ak_2' })])).toEqual(['allow', 'allow', 'deny:rate', 'allow']);
    n.clock.t += 499;
    expect(await decisions(n.policy, [req()])).toEqual(['deny:rate']); // 0.998 tokens
    n.clock.t += 1;
    expect(await decisions(n.policy, [req(), req()])).toEqual(['allow', 'deny:rate']);
    n.clock.t += 10_000;
    expect(await decisions(n.policy, [req(), req(), req()])).toEqual(['allow', 'allow', 'deny:rate']); // capped at the burst
    const d = await n.policy.evaluate(req());
    expect(d).toMatchObject({ allow: false, reason: 'rule rate: rate limit of 2 per 1000 ms exceeded' });

    // Rate limits count only admitted requests, too.
    await n.policy.setRules(
      [
        { id: 'rate', type: 'rate', per: 'apiKey', limit: 1, intervalMs: 60_000, operations: ['sign'] },
        { id: 'deny-k2', type: 'deny', scope: { keyId: 'k2' } },
      ],
      'admin',
    );
    n.clock.t += 120_000;
    expect(await decisions(n.policy, [req({ keyId: 'k2' }), req(), req()])).toEqual(['deny:deny-k2', 'allow', 'deny:rate']);
  });
});

describe('fail closed', () => {
  it('the rule document corrupted directly in LevelDB: UNAVAILABLE (503) for every request, until an admin sets rules', async () => {
    let n = await openNode();
    await n.policy.setRules([{ id: 'd', type: 'deny', operations: ['destroy'] }], 'admin');
    await closeNode(n);
    const db = new Level<string, Uint8Array>(storageLocation(join(dir(), 'data')), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    const key = `x/${POLICY_NAMESPACE}/rules`;
    const raw = (await db.get(key))!;
    await db.put(key, raw.subarray(0, raw.length - 3)); // truncated
    await db.close();

    n = await openNode(); // the node still starts
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
    expect(await codeOf(n.policy.evaluate(req({ operation: 'destroy' })))).toBe(ErrorCode.Unavailable);
    expect(await codeOf(n.policy.getRules())).toBe(ErrorCode.Unavailable);
    // Repair: setRules works on a corrupt store.
    expect((await n.policy.setRules([], 'admin')).version).toBe(1);
    expect(await n.policy.evaluate(req())).toEqual({ allow: true });
  });

  it('the rule document replaced without the KEK (a deny removed): its record MAC fails, UNAVAILABLE naming the record, never evaluated', async () => {
    let n = await openNode();
    await n.policy.setRules([{ id: 'd', type: 'deny', operations: ['destroy'] }], 'admin');
    await closeNode(n);
    const db = new Level<string, Uint8Array>(storageLocation(join(dir(), 'data')), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    // Well-formed, newer, no rules: what an intruder with write access but no KEK would like to store.
    await db.put(`x/${POLICY_NAMESPACE}/rules`, Uint8Array.from(packr.pack({ v: 1, version: 9, rules: [], updatedAt: 1 })));
    await db.close();

    n = await openNode(); // the node still starts
    const report = await n.store.checkIntegrity();
    expect(report.unauthentic.map((r) => r.name)).toEqual([`${POLICY_NAMESPACE} record rules`]);
    expect(await codeOf(n.policy.evaluate(req({ operation: 'destroy' })))).toBe(ErrorCode.Unavailable);
    const err = await n.store.namespace(POLICY_NAMESPACE).get('rules').catch((e: TesseraError) => e);
    expect(err).toMatchObject({ code: ErrorCode.Unavailable, message: expect.stringMatching(/^storage: policy record rules fails its integrity check/) });
    // An admin repairs it by setting rules again.
    await n.policy.setRules([{ id: 'd', type: 'deny', operations: ['destroy'] }], 'admin');
    expect(await decisions(n.policy, [req({ operation: 'destroy' })])).toEqual(['deny:d']);
  });

  it('valid msgpack with an invalid rule, a deleted document, a closed store: all UNAVAILABLE', async () => {
    const n = await openNode();
    const ns = n.store.namespace(POLICY_NAMESPACE);
    await ns.put('rules', Uint8Array.from(packr.pack({ v: 1, version: 3, updatedAt: 1, rules: [{ id: 'x', type: 'allow-everything' }] })));
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
    await ns.put('rules', Uint8Array.from(packr.pack({ v: 2, version: 3, updatedAt: 1, rules: [] })));
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
    await ns.del('rules');
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
    await n.policy.setRules([], 'admin');
    expect(await n.policy.evaluate(req())).toEqual({ allow: true });
    await n.store.close();
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
  });

  it('a malformed request is BAD_INPUT, not a decision', async () => {
    const n = await openNode();
    for (const bad of [req({ operation: 'launch' as never }), req({ tenant: 'a/b' }), req({ keyId: '' }), req({ version: 0 }), null]) {
      expect(await codeOf(n.policy.evaluate(bad as PolicyRequest))).toBe(ErrorCode.BadInput);
    }
  });
});

describe('emergency fail-open', () => {
  async function corruptRules(n: Node): Promise<void> {
    await n.store.namespace(POLICY_NAMESPACE).put('rules', Uint8Array.of(0xc1));
  }

  it('allows when the engine cannot evaluate, never ignores an evaluable deny, reverts by the clock; critical audit entries on and off', async () => {
    const n = await openNode();
    await n.policy.setRules(
      [
        { id: 'no-destroy', type: 'deny', operations: ['destroy'] },
        { id: 'q', type: 'quota', operations: ['sign'], per: 'tenant', limit: 10, periodMs: HOUR },
      ],
      'admin',
    );
    expect(n.policy.failOpenStatus()).toEqual({ active: false });
    const start = n.clock.t;
    const status = await n.policy.enableFailOpen({ actor: 'ops-admin' });
    expect(status).toEqual({ active: true, until: start + DEFAULT_FAIL_OPEN_MS, enabledBy: 'ops-admin' });

    // Quota counter broken, rules readable: the deny still denies, the quota is skipped.
    await n.store.namespace(POLICY_NAMESPACE).put('q/q/t/acme', Uint8Array.of(0xc1));
    expect(await n.policy.evaluate(req({ operation: 'destroy' }))).toMatchObject({ allow: false, rule: 'no-destroy' });
    expect(await n.policy.evaluate(req())).toEqual({ allow: true, failOpen: true, skipped: ['q'] });
    // Rule document broken: nothing to evaluate, everything admitted.
    await corruptRules(n);
    expect(await n.policy.evaluate(req({ operation: 'destroy' }))).toEqual({ allow: true, failOpen: true, skipped: ['*'] });

    // The clock passes the window (the real timer is still 5 minutes away): reverted on the next evaluation.
    n.clock.t = start + DEFAULT_FAIL_OPEN_MS - 1;
    expect((await n.policy.evaluate(req())).allow).toBe(true);
    n.clock.t = start + DEFAULT_FAIL_OPEN_MS;
    expect(n.policy.failOpenStatus()).toEqual({ active: false });
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);

    const entries = (await auditEntries(n)).filter((e) => e.operation.startsWith('policy.fail-open'));
    expect(entries.map((e) => [e.operation, e.severity, e.actor, e.outcome, e.reason])).toEqual([
      ['policy.fail-open.enable', 'critical', 'ops-admin', 'ok', `emergency fail-open for ${DEFAULT_FAIL_OPEN_MS} ms`],
      ['policy.fail-open.revert', 'critical', 'system', 'ok', `automatic revert after ${DEFAULT_FAIL_OPEN_MS} ms`],
    ]);
    expect(entries[1]!.time).toBe(start + DEFAULT_FAIL_OPEN_MS);
    // And the log with them verifies.
    expect(verifyAuditLog(await n.audit.exportLog(), identity.publicKey).complete).toBe(true);
  });

  it('reverts on its own by the engine timer (real clock, short window), with the critical entry, no evaluation needed', async () => {
    const n = await openNode({ now: Date.now });
    await corruptRules(n);
    await n.policy.enableFailOpen({ actor: 'ops-admin', durationMs: 60 });
    expect(await n.policy.evaluate(req())).toMatchObject({ allow: true, failOpen: true });
    const deadline = Date.now() + 3000;
    let reverted: AuditEntry | undefined;
    while (!reverted && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      reverted = (await auditEntries(n)).find((e) => e.operation === 'policy.fail-open.revert');
    }
    expect(reverted).toMatchObject({ severity: 'critical', actor: 'system', reason: 'automatic revert after 60 ms' });
    expect(n.policy.failOpenStatus()).toEqual({ active: false });
    expect(await codeOf(n.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
  });

  it('manual disable is audited; bad durations refused; not enabled when the entry cannot be written; close ends it', async () => {
    const n = await openNode();
    expect(await codeOf(n.policy.enableFailOpen({ actor: 'ops-admin', durationMs: 0 }))).toBe(ErrorCode.BadInput);
    expect(await codeOf(n.policy.enableFailOpen({ actor: 'ops-admin', durationMs: 2 * HOUR }))).toBe(ErrorCode.BadInput);
    expect(await codeOf(n.policy.enableFailOpen({ actor: 'not an id' }))).toBe(ErrorCode.BadInput);
    await n.policy.enableFailOpen({ actor: 'ops-admin', durationMs: 60_000 });
    n.clock.t += 1000;
    expect(await n.policy.disableFailOpen('ops-admin')).toEqual({ active: false });
    expect(await n.policy.disableFailOpen('ops-admin')).toEqual({ active: false }); // no-op, not audited twice
    let ops = (await auditEntries(n)).map((e) => [e.operation, e.severity, e.reason]);
    expect(ops).toEqual([
      ['policy.fail-open.enable', 'critical', 'emergency fail-open for 60000 ms'],
      ['policy.fail-open.disable', 'critical', 'switched off after 1000 of 60000 ms'],
    ]);

    // Closing the engine while on: reverted and audited.
    await n.policy.enableFailOpen({ actor: 'ops-admin', durationMs: 60_000 });
    await n.policy.close();
    ops = (await auditEntries(n)).map((e) => [e.operation, e.reason]);
    expect(ops.at(-1)).toEqual(['policy.fail-open.revert', 'reverted: node shutting down']);

    // The audit log cannot be written: fail-open is not switched on.
    await closeNode(n);
    const m = await openNode();
    await corruptRules(m);
    await m.audit.close();
    expect(await codeOf(m.policy.enableFailOpen({ actor: 'ops-admin' }))).toBe(ErrorCode.Unavailable);
    expect(m.policy.failOpenStatus()).toEqual({ active: false });
    expect(await codeOf(m.policy.evaluate(req()))).toBe(ErrorCode.Unavailable);
  });
});
