/**
 * The gate every node operation goes through (node/governance/gate.ts), on a real NodeService over a real store,
 * audit log and policy engine, with a coordinator link that records what the node asks of it:
 * - fail closed on the audit log: if the 'started' entry cannot be written the node never joins the
 *   session, declines it, stores nothing, and the API answers 503;
 * - policy: a deny is audited as 'denied' and the session declined; a broken rule store is 503;
 * - state: a retired version refuses to sign and an archived one refuses everything, before joining;
 *   the default version is the newest active one;
 * - audit reasons never carry long encoded runs.
 */
import { LiveMembership } from '../../node/governance/membership.js';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { x25519 } from '@noble/curves/ed25519.js';
import { toHex } from '../../core/bytes.js';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { generateWrappingKeyPair, type WrappingKeyPair } from '../../core/wrap.js';
import { NodeAdmin } from '../../node/governance/admin.js';
import { buildApi } from '../../node/http/api.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/governance/audit.js';
import { OperationGate, auditReason } from '../../node/governance/gate.js';
import { POLICY_NAMESPACE, PolicyEngine } from '../../node/governance/policy.js';
import { NodeService } from '../../node/service.js';
import { ShareStore } from '../../node/store/storage.js';
import { TENANTS_NAMESPACE, TenantStore, type Principal } from '../../node/governance/tenants.js';
import { runDkg } from '../helpers/run-dkg.js';

let identity: IdentityKeyPair;
let importKey: WrappingKeyPair;
beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
  importKey = await generateWrappingKeyPair('ml-kem-768');
});

const principal: Principal = { tenant: 'acme', apiKeyId: 'ak_ops', role: 'tenant' };
const admin: Principal = { tenant: 'acme', apiKeyId: 'ak_admin', role: 'admin' };
const sid = () => toHex(randomBytes(16));

interface Node {
  store: ShareStore;
  audit: AuditLog;
  policy: PolicyEngine;
  service: NodeService;
  link: { join: ReturnType<typeof vi.fn>; fail: ReturnType<typeof vi.fn>; done: ReturnType<typeof vi.fn>; connected: boolean; online: () => number[] };
  entries(): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

let dir: string;
let node: Node;

async function makeNode(): Promise<Node> {
  const store = await ShareStore.open({ dataDir: join(dir, 'data'), kek: Uint8Array.from(randomBytes(32)), nodeIndex: 1 });
  const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0 });
  const policy = await PolicyEngine.open({ records: store.namespace(POLICY_NAMESPACE), audit });
  // The coordinator link: joining must never happen in these tests (the refusals come first).
  const link = {
    connected: true,
    online: () => [1, 2, 3],
    join: vi.fn(async () => {
      throw new Error('the node joined a session it should have refused');
    }),
    fail: vi.fn(),
    done: vi.fn(),
  };
  const logger = pino({ level: 'silent' });
  const gate = new OperationGate({ audit, policy, decline: (s, r) => link.fail(s, 'POLICY_DENIED', r, []), logger });
  const service = new NodeService({
    index: 1,
    identity,
    importKey,
    // Every player a member (the session channel checks that before the node joins); the keys do not
    // matter here, since no session ever starts.
    live: new LiveMembership({ epoch: 0, members: [1, 2, 3].map((index) => ({ index, identityPublicKey: identity.publicKey })) }),
    store,
    link: link as never,
    logger,
    gate,
  });
  return {
    store,
    audit,
    policy,
    service,
    link,
    entries: async () => (await audit.exportLog({ checkpoint: false })).entries as unknown as Record<string, unknown>[],
    async close() {
      await policy.close();
      await audit.close();
      await store.close();
    },
  };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-gate-'));
  node = await makeNode();
});
afterEach(async () => {
  await node.close();
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('the gate fails closed on the audit log', () => {
  it('an operation whose audit entry cannot be written never joins, is declined, stores nothing, and answers 503', async () => {
    await node.audit.close(); // appends now fail, as if the log's store were gone
    const sessionId = sid();
    const err = await rejection(node.service.keygen(principal, { sessionId, keyId: 'k1', suite: 'ed25519', threshold: 2 }));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/audit/);
    expect(node.link.join).not.toHaveBeenCalled();
    expect(node.link.fail).toHaveBeenCalledWith(expect.any(Uint8Array), 'POLICY_DENIED', expect.any(String), []);
    expect(toHex(node.link.fail.mock.calls[0]![0] as Uint8Array)).toBe(sessionId);
    expect(await node.store.get('acme', 'k1')).toBeUndefined();

    // Through the HTTP API: 503 with the error shape.
    const app = await buildApi({
      service: node.service,
      admin: new NodeAdmin({
        tenants: await TenantStore.open({ records: node.store.namespace(TENANTS_NAMESPACE) }),
        policy: node.policy,
        audit: node.audit,
        gate: new OperationGate({ audit: node.audit, policy: node.policy, decline: () => undefined, logger: pino({ level: 'silent' }) }),
        failOpen: { defaultMs: 300_000, maxMs: 3_600_000 },
        logger: pino({ level: 'silent' }),
      }),
      authenticate: (k) => (k === 'tsk_test_key_1' ? principal : undefined),
      logger: pino({ level: 'silent' }),
    });
    try {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/keys',
        headers: { authorization: 'Bearer tsk_test_key_1', 'content-type': 'application/json' },
        payload: JSON.stringify({ sessionId: sid(), keyId: 'k2', suite: 'ed25519', threshold: 2 }),
      });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/audit/) });
    } finally {
      await app.close();
    }
    expect(node.link.join).not.toHaveBeenCalled();
  });

  it('a one-shot local operation writes one entry, its outcome, and returns nothing when that entry cannot be written', async () => {
    const gate = new OperationGate({ audit: node.audit, policy: node.policy, decline: () => undefined, logger: pino({ level: 'silent' }) });
    const req = { principal, operation: 'sign' as const, authorize: 'policy' as const, keyId: 'k-local', version: 1, local: true };
    expect(await gate.run(req, async () => ({ version: 1 }), async () => 'share')).toBe('share');
    const mine = (await node.entries()).filter((e) => e.keyId === 'k-local');
    expect(mine.map((e) => e.outcome)).toEqual(['ok']);
    // Batches too: one entry per item.
    expect(await gate.runBatch(req, [undefined, undefined], async () => ({ version: 1 }), async () => 'shares')).toBe('shares');
    expect((await node.entries()).filter((e) => e.keyId === 'k-local').map((e) => e.outcome)).toEqual(['ok', 'ok', 'ok']);
    // The work ran, but its result never leaves the gate unaudited.
    let ran = false;
    await node.audit.close();
    const err = await rejection(gate.run(req, async () => ({ version: 1 }), async () => {
      ran = true;
      return 'share';
    }));
    expect(ran).toBe(true);
    expect(err.code).toBe('UNAVAILABLE');
  });

  it('an admin change whose audit entry cannot be written does not happen', async () => {
    const tenants = await TenantStore.open({ records: node.store.namespace(TENANTS_NAMESPACE) });
    const gate = new OperationGate({ audit: node.audit, policy: node.policy, decline: () => undefined, logger: pino({ level: 'silent' }) });
    const a = new NodeAdmin({ tenants, policy: node.policy, audit: node.audit, gate, failOpen: { defaultMs: 1000, maxMs: 2000 }, logger: pino({ level: 'silent' }) });
    await node.audit.close();
    expect((await rejection(a.createTenant(admin, 'globex'))).code).toBe('UNAVAILABLE');
    expect(await tenants.getTenant('globex')).toBeUndefined();
  });
});

describe('the gate: policy, state and audit before any session', () => {
  it('a policy deny is audited as denied, declines the session and never joins', async () => {
    await node.policy.setRules([{ id: 'no-keygen', type: 'deny', operations: ['keygen'], scope: { tenant: 'acme' } }], 'ak_admin');
    const sessionId = sid();
    const err = await rejection(node.service.keygen(principal, { sessionId, keyId: 'k1', suite: 'ed25519', threshold: 2 }));
    expect(err.code).toBe('POLICY_DENIED');
    expect(err.message).toMatch(/no-keygen/);
    expect(node.link.join).not.toHaveBeenCalled();
    expect(node.link.fail).toHaveBeenCalledTimes(1);
    const last = (await node.entries()).at(-1)!;
    expect(last).toMatchObject({ tenant: 'acme', actor: 'ak_ops', operation: 'keygen', keyId: 'k1', sessionId, outcome: 'denied', severity: 'warning' });
  });

  it('a rule store that cannot be read is UNAVAILABLE (fail closed), audited as failed', async () => {
    await node.store.namespace(POLICY_NAMESPACE).put('rules', Uint8Array.of(0xc1, 0xff, 0x00));
    const err = await rejection(node.service.keygen(principal, { sessionId: sid(), keyId: 'k1', suite: 'ed25519', threshold: 2 }));
    expect(err.code).toBe('UNAVAILABLE');
    expect(node.link.join).not.toHaveBeenCalled();
    expect((await node.entries()).at(-1)).toMatchObject({ operation: 'keygen', outcome: 'failed' });
    // Emergency fail-open lets it through to the next check (here: joining, which the fake link refuses).
    await node.policy.enableFailOpen({ actor: 'ak_admin', durationMs: 60_000 });
    await rejection(node.service.keygen(principal, { sessionId: sid(), keyId: 'k1', suite: 'ed25519', threshold: 2 }));
    expect(node.link.join).toHaveBeenCalledTimes(1);
    const started = (await node.entries()).filter((e) => e.outcome === 'started');
    expect(started.at(-1)).toMatchObject({ operation: 'keygen', severity: 'warning', reason: expect.stringMatching(/fail-open/) });
  });

  it('state: the default is the newest active version; retired refuses sign, archived refuses everything; all before joining', async () => {
    const sign = [...runDkg('ed25519', 2, 3)];
    const sign2 = [...runDkg('ed25519', 2, 3)];
    const kem = [...runDkg('hpke-x25519', 2, 3)];
    await node.store.put({ tenant: 'acme', keyId: 'sig', version: 1, share: sign[0]!, exportable: false });
    await node.store.put({ tenant: 'acme', keyId: 'sig', version: 2, share: sign2[0]!, exportable: false });
    await node.store.put({ tenant: 'acme', keyId: 'kem', version: 1, share: kem[0]!, exportable: false });
    await node.store.setState('acme', 'sig', 1, 'retired');
    await node.store.setState('acme', 'kem', 1, 'retired');

    // Default version: the newest active one (2), which would join.
    await rejection(node.service.sign(principal, 'sig', { sessionId: sid(), message: '00', players: [1, 2] }));
    expect(node.link.join).toHaveBeenCalledTimes(1);
    expect((await node.entries()).filter((e) => e.outcome === 'started').at(-1)).toMatchObject({ operation: 'sign', keyId: 'sig', version: 2 });

    // Retired: no signature, before joining; decapsulation still goes ahead (one round: no session to join).
    const retired = await rejection(node.service.sign(principal, 'sig', { sessionId: sid(), message: '00', players: [1, 2], version: 1 }));
    expect(retired.code).toBe('BAD_STATE');
    expect(retired.message).toMatch(/retired: sign is not allowed/);
    expect(node.link.join).toHaveBeenCalledTimes(1);
    expect((await node.entries()).at(-1)).toMatchObject({ operation: 'sign', version: 1, outcome: 'denied' });
    const receiverPublicKey = toHex((await generateWrappingKeyPair('ml-kem-768')).publicKey);
    const enc = toHex(x25519.getPublicKey(x25519.utils.randomSecretKey())); // a sender's ephemeral key
    const partial = await node.service.decapsulate(principal, 'kem', { sessionId: sid(), enc, players: [1, 2], receiverPublicKey, version: 1 });
    expect(partial).toMatchObject({ keyId: 'kem', version: 1, index: 1 });
    expect(node.link.join).toHaveBeenCalledTimes(1);
    // No active version left: naming none is refused.
    expect((await rejection(node.service.decapsulate(principal, 'kem', { sessionId: sid(), enc, players: [1, 2], receiverPublicKey }))).code).toBe('BAD_STATE');

    // Archived: nothing, not even decapsulate or verify.
    await node.store.setState('acme', 'kem', 1, 'archived');
    await node.store.setState('acme', 'sig', 1, 'archived');
    expect((await rejection(node.service.decapsulate(principal, 'kem', { sessionId: sid(), enc, players: [1, 2], receiverPublicKey, version: 1 }))).code).toBe('BAD_STATE');
    expect((await rejection(node.service.verify(principal, 'sig', { message: '00', signature: '00'.repeat(64), version: 1 }))).code).toBe('BAD_STATE');
    expect((await rejection(node.service.refresh(principal, 'sig', { sessionId: sid(), version: 1 }))).code).toBe('BAD_STATE');
    expect(node.link.join).toHaveBeenCalledTimes(1);
    // Its public record stays readable.
    expect(await node.service.getKey(principal, 'sig', 1)).toMatchObject({ version: 1, state: 'archived' });

    // Another tenant: exactly like a missing key.
    const other: Principal = { tenant: 'globex', apiKeyId: 'ak_g', role: 'tenant' };
    const foreign = await rejection(node.service.getKey(other, 'sig'));
    const missing = await rejection(node.service.getKey(principal, 'nope'));
    expect({ code: foreign.code, message: foreign.message.replace('sig', 'ID') }).toEqual({ code: missing.code, message: missing.message.replace('nope', 'ID') });
  });

  it('audit reasons are printable, short and never carry long encoded runs', () => {
    const hex = 'ab'.repeat(40);
    expect(auditReason(`bad share ${hex} from node 2`)).toBe('bad share [..] from node 2');
    expect(auditReason('word '.repeat(100))).toHaveLength(200);
    expect(auditReason('tab\there\u00e9')).toBe('tab?here?');
    expect(auditReason('')).toBe('no reason given');
  });
});
