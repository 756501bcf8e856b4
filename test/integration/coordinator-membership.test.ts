/**
 * The coordinator adopts certified membership changes (issue 13 item 2) over real sockets: a node's
 * `membership` frame (contract/relay.ts) carries its chain of committed changes, and the coordinator
 * adopts the next epoch only when its certificate verifies (coordinator/membership-state.ts). The
 * certificates here are real: votes signed with the voters' ML-DSA-65 identity keys over the
 * 'membership' statement of core/membership.ts. Every test closes what it opened in afterEach.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { toHex } from '../../core/bytes.js';
import { type CommitCertificate, type CommitStatement, encodeCertificate, voteBytes } from '../../core/commit.js';
import { generateIdentity, identitySign, type IdentityKeyPair } from '../../core/identity.js';
import {
  MEMBERSHIP_KEY_ID,
  MEMBERSHIP_TENANT,
  type Membership,
  encodeMembership,
  membershipDigest,
  membershipVoters,
} from '../../core/membership.js';
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '../../coordinator/server.js';
import { ConfigError } from '../../coordinator/config.js';
import { CloseCode, authMessage, decodeCoordinatorFrame, type CoordinatorFrame, type MembershipChangeBytes } from '../../contract/relay.js';
import { CoordinatorLink, SessionAbortedError } from '../../node/sessions/link.js';

const packr = new Packr({ useRecords: false });
/** Node i's first identity; `replacement` is node 3's new one (a repaired node). */
const ids = new Map<number, IdentityKeyPair>();
let replacement: IdentityKeyPair;
/** Identity public key (hex) -> secret key: who signs for a member of any membership. */
const secretOf = new Map<string, Uint8Array>();

beforeAll(() => {
  for (const i of [1, 2, 3, 4, 5]) ids.set(i, generateIdentity());
  replacement = generateIdentity();
  for (const id of [...ids.values(), replacement]) secretOf.set(toHex(id.publicKey), id.secretKey);
});

function membershipOf(epoch: number, members: [number, IdentityKeyPair][]): Membership {
  return { epoch, members: members.map(([index, id]) => ({ index, identityPublicKey: id.publicKey })) };
}
const m = (epoch: number, nodes: number[]) => membershipOf(epoch, nodes.map((i) => [i, ids.get(i)!]));
const base = () => m(0, [1, 2, 3, 4]);
const asMap = (x: Membership) => new Map(x.members.map((y) => [y.index, y.identityPublicKey] as const));

/**
 * A certificate for moving from `from` to `to`, by default with the votes of exactly the members the
 * change keeps (membershipVoters), each signed with that member's identity key in `from`.
 */
function certify(
  from: Membership,
  to: Membership,
  o: { voters?: number[]; statement?: Partial<CommitStatement>; signerKeys?: Membership } = {},
): Uint8Array {
  const statement: CommitStatement = {
    session: new Uint8Array(randomBytes(16)),
    operation: 'membership',
    tenant: MEMBERSHIP_TENANT,
    keyId: MEMBERSHIP_KEY_ID,
    version: to.epoch,
    resultDigest: membershipDigest(to),
    ...o.statement,
  };
  const keys = asMap(o.signerKeys ?? from);
  const voters = o.voters ?? membershipVoters(from, to);
  const votes = new Map(voters.map((v) => [v, identitySign(secretOf.get(toHex(keys.get(v)!))!, voteBytes(statement))] as const));
  const cert: CommitCertificate = { ...statement, votes };
  return encodeCertificate(cert);
}

function change(from: Membership, to: Membership, o: Parameters<typeof certify>[2] = {}): MembershipChangeBytes {
  return { membership: encodeMembership(to), certificate: certify(from, to, o) };
}

const coordinators: Coordinator[] = [];
const links: CoordinatorLink[] = [];
const raws: WebSocket[] = [];
const tmpDirs: string[] = [];

afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
  for (const ws of raws.splice(0)) ws.terminate();
  await Promise.all(coordinators.splice(0).map((c) => c.close()));
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-coord-membership-'));
  tmpDirs.push(d);
  return d;
}

interface LogLine {
  msg: string;
  [k: string]: unknown;
}

async function coordinator(extra: Partial<CoordinatorOptions> = {}): Promise<Coordinator & { logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const c = await startCoordinator({ port: 0, membership: asMap(base()), logger, ...extra });
  coordinators.push(c);
  return Object.assign(c, { logs });
}

async function link(url: string, index: number, secretKey: Uint8Array, membershipChanges?: () => Promise<MembershipChangeBytes[]>): Promise<CoordinatorLink> {
  const l = new CoordinatorLink();
  links.push(l);
  await l.connect({ url, index, identitySecretKey: secretKey, reconnect: { minDelayMs: 20, maxDelayMs: 200 }, connectTimeoutMs: 5000, ...(membershipChanges ? { membershipChanges } : {}) });
  return l;
}

/** Polls `cond` (the coordinator handles frames asynchronously to the test); fails naming `what`. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited > ms) throw new Error(`not reached: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Raw {
  ws: WebSocket;
  next(): Promise<CoordinatorFrame>;
  send(frame: unknown): void;
  closed: Promise<{ code: number; reason: string }>;
}

/** A hand-driven client authenticating as `index` with `secretKey`: it sends frames the link would not. */
function rawHello(url: string, index: number, secretKey: Uint8Array): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    raws.push(ws);
    const frames: CoordinatorFrame[] = [];
    const waiters: ((f: CoordinatorFrame) => void)[] = [];
    ws.on('message', (data) => {
      const f = decodeCoordinatorFrame(data as Buffer);
      if (f.t === 'challenge') {
        ws.send(packr.pack({ t: 'hello', index, signature: identitySign(secretKey, authMessage(f.coordinator, f.nonce, index)) }));
        return;
      }
      const w = waiters.shift();
      if (w) w(f);
      else frames.push(f);
    });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('error', reject);
    ws.on('open', () =>
      resolve({
        ws,
        closed,
        next: () => {
          const f = frames.shift();
          return f ? Promise.resolve(f) : new Promise((r) => waiters.push(r));
        },
        send: (frame) => ws.send(packr.pack(frame)),
      }),
    );
  });
}

/** Whether the coordinator admits `index` with `secretKey` now: 'welcome' or the close code. */
async function admits(url: string, index: number, secretKey: Uint8Array): Promise<'welcome' | number> {
  const r = await rawHello(url, index, secretKey);
  const first = await Promise.race([r.next().then((f) => f.t), r.closed.then((c) => c.code)]);
  r.ws.terminate();
  return first === 'welcome' ? 'welcome' : (first as number);
}

const notAdopted = (c: { logs: LogLine[] }) => c.logs.filter((l) => l.msg === 'membership change not adopted').length;

describe('coordinator: certified membership changes', () => {
  it('adopts a valid add: the new node is refused before and authenticates after', async () => {
    const c = await coordinator();
    expect(await admits(c.url, 5, ids.get(5)!.secretKey)).toBe(CloseCode.AuthFailed);
    const next = m(1, [1, 2, 3, 4, 5]);
    // The chain goes right after the link authenticates (the provider is given at connect).
    await link(c.url, 1, ids.get(1)!.secretKey, async () => [change(base(), next)]);
    await until(() => c.stats().membershipEpoch === 1, 'epoch 1');
    expect(c.stats().membershipChanges).toBe(1);
    expect(await admits(c.url, 5, ids.get(5)!.secretKey)).toBe('welcome');
    const adopted = c.logs.find((l) => l.msg === 'membership adopted');
    expect(adopted).toMatchObject({ epoch: 1, added: [5], removed: [], replaced: [], from: 1 });
    // No key material in the logs: not a public key, not a signature.
    const text = JSON.stringify(c.logs);
    for (const id of ids.values()) expect(text).not.toContain(toHex(id.publicKey).slice(0, 32));
  });

  it('a removal closes the removed node (4005), aborts its sessions, updates online, and refuses its hello after', async () => {
    const c = await coordinator();
    const ls = await Promise.all([1, 2, 3, 4].map((i) => link(c.url, i, ids.get(i)!.secretKey)));
    await Promise.all(ls.map((l) => l.waitForOnline([1, 2, 3, 4], 5000)));
    const [l1, , , l4] = ls as [CoordinatorLink, CoordinatorLink, CoordinatorLink, CoordinatorLink];
    // A session waiting for node 4's join: the removal takes it down like a disconnect.
    const joined = l1.join(new Uint8Array(randomBytes(16)), new Uint8Array(randomBytes(32)), [1, 4]).catch((e: unknown) => e);
    const closed = new Promise<{ code: number; reason: string }>((r) => l4.once('disconnected', r));
    const online = new Promise<number[]>((r) => l1.on('online', (o) => o.length === 3 && r(o)));

    l1.setMembershipChanges(async () => [change(base(), m(1, [1, 2, 3]))]);
    l1.announceMembership();

    const info = await closed;
    expect(info.code).toBe(CloseCode.MembershipChanged);
    expect(info.reason).toMatch(/node 4 removed from the cluster membership \(epoch 1\)/);
    expect(await online).toEqual([1, 2, 3]);
    const err = await joined;
    expect(err).toBeInstanceOf(SessionAbortedError);
    expect((err as SessionAbortedError).reason).toBe('NODE_OFFLINE');
    expect((err as SessionAbortedError).nodes).toEqual([4]);
    expect(await admits(c.url, 4, ids.get(4)!.secretKey)).toBe(CloseCode.AuthFailed);
    expect(c.logs.find((l) => l.msg === 'membership adopted')).toMatchObject({ epoch: 1, added: [], removed: [4], replaced: [] });
    expect(l1.connected).toBe(true);
  });

  it('a replaced identity (same index): the old key is closed and refused, the new one accepted', async () => {
    const c = await coordinator();
    const old3 = await link(c.url, 3, ids.get(3)!.secretKey);
    const l1 = await link(c.url, 1, ids.get(1)!.secretKey);
    const closed = new Promise<{ code: number; reason: string }>((r) => old3.once('disconnected', r));
    const repaired = membershipOf(1, [
      [1, ids.get(1)!],
      [2, ids.get(2)!],
      [3, replacement],
      [4, ids.get(4)!],
    ]);
    l1.setMembershipChanges(async () => [change(base(), repaired)]);
    l1.announceMembership();
    const info = await closed;
    expect(info.code).toBe(CloseCode.MembershipChanged);
    expect(info.reason).toMatch(/node 3 given a new identity/);
    expect(await admits(c.url, 3, ids.get(3)!.secretKey)).toBe(CloseCode.AuthFailed);
    const new3 = await link(c.url, 3, replacement.secretKey);
    await new3.waitForOnline([1, 3], 5000);
    expect(c.logs.find((l) => l.msg === 'membership adopted')).toMatchObject({ epoch: 1, replaced: [3] });
  });

  it('a forged or malformed change changes nothing and crashes nothing', async () => {
    const c = await coordinator();
    const sender = await rawHello(c.url, 1, ids.get(1)!.secretKey);
    expect((await sender.next()).t).toBe('welcome');
    const add5 = m(1, [1, 2, 3, 4, 5]);
    const remove4 = m(1, [1, 2, 3]);
    const forged: [string, MembershipChangeBytes][] = [
      ['a voter missing', change(base(), add5, { voters: [1, 2, 3] })],
      ['the added node voting itself in', change(base(), add5, { voters: [1, 2, 3, 4, 5], signerKeys: add5 })],
      ['only the removed node voting', change(base(), remove4, { voters: [4] })],
      ['votes over another membership', change(base(), add5, { statement: { resultDigest: membershipDigest(m(1, [1, 2, 3, 5])) } })],
      ['a certificate for another epoch', change(base(), add5, { statement: { version: 2 } })],
      ['a certificate for another operation', change(base(), add5, { statement: { operation: 'refresh' } })],
      [
        'votes by keys that are not the members',
        change(base(), add5, { signerKeys: membershipOf(0, [[1, ids.get(5)!], [2, ids.get(4)!], [3, ids.get(3)!], [4, ids.get(2)!]]) }),
      ],
      ['an epoch that skips one', change(base(), m(2, [1, 2, 3, 4, 5]), { voters: [1, 2, 3, 4], statement: { version: 2 } })],
      ['garbage membership bytes', { membership: new Uint8Array(randomBytes(300)), certificate: certify(base(), add5) }],
      ['garbage certificate bytes', { membership: encodeMembership(add5), certificate: new Uint8Array(randomBytes(5000)) }],
    ];
    for (const [what, ch] of forged) {
      const before = notAdopted(c);
      sender.send({ t: 'membership', changes: [ch] });
      await until(() => notAdopted(c) === before + 1, `refusal of ${what}`);
      expect(c.stats().membershipEpoch, what).toBe(0);
    }
    expect(c.stats().membershipChanges).toBe(0);
    expect(c.stats().online).toEqual([1]); // not the sender's fault: it stays connected
    expect(await admits(c.url, 5, ids.get(5)!.secretKey)).toBe(CloseCode.AuthFailed);
    expect(await admits(c.url, 4, ids.get(4)!.secretKey)).toBe('welcome');
    const problems = c.logs.filter((l) => l.msg === 'membership change not adopted').map((l) => String(l.problem));
    expect(problems[0]).toMatch(/votes from nodes 1,2,3, required 1,2,3,4/);
    expect(problems[3]).toMatch(/another membership/);
    expect(problems[7]).toMatch(/epoch 2 does not follow the held epoch 0/);

    // A frame of the wrong shape is a protocol violation: the sender is closed (4002), nothing changes.
    sender.send({ t: 'membership', changes: [{ membership: encodeMembership(add5), certificate: certify(base(), add5), extra: 1 }] });
    expect((await sender.closed).code).toBe(CloseCode.BadFrame);
    expect(c.stats().membershipEpoch).toBe(0);

    // And the coordinator still adopts a good change afterwards.
    const good = await rawHello(c.url, 2, ids.get(2)!.secretKey);
    expect((await good.next()).t).toBe('welcome');
    good.send({ t: 'membership', changes: [change(base(), add5)] });
    await until(() => c.stats().membershipEpoch === 1, 'epoch 1');
  });

  it('a chain of two changes sent at once is adopted in order; links already held are ignored', async () => {
    const c = await coordinator();
    const e1 = m(1, [1, 2, 3, 4, 5]);
    const e2 = m(2, [1, 2, 3, 5]);
    const chain = [change(base(), e1), change(e1, e2)];
    const l4 = await link(c.url, 4, ids.get(4)!.secretKey);
    const closed = new Promise<{ code: number }>((r) => l4.once('disconnected', r));
    const l1 = await link(c.url, 1, ids.get(1)!.secretKey);
    l1.setMembershipChanges(async () => chain);
    l1.announceMembership();
    await until(() => c.stats().membershipEpoch === 2, 'epoch 2');
    expect(c.stats().membershipChanges).toBe(2);
    expect((await closed).code).toBe(CloseCode.MembershipChanged);
    const adopted = c.logs.filter((l) => l.msg === 'membership adopted');
    expect(adopted.map((l) => [l.epoch, l.added, l.removed])).toEqual([
      [1, [5], []],
      [2, [], [4]],
    ]);
    expect(await admits(c.url, 5, ids.get(5)!.secretKey)).toBe('welcome');
    expect(await admits(c.url, 4, ids.get(4)!.secretKey)).toBe(CloseCode.AuthFailed);
    // The same chain again (a node announcing after its next reconnect) changes nothing.
    l1.announceMembership();
    await until(() => c.logs.some((l) => l.msg === 'membership chain holds nothing new'), 'the repeated chain handled');
    expect(c.stats().membershipEpoch).toBe(2);
    expect(c.stats().membershipChanges).toBe(2);
  });

  it('a coordinator restarted without state catches up when the link reconnects and announces', async () => {
    const first = await coordinator();
    const next = m(1, [1, 2, 3, 4, 5]);
    const l1 = await link(first.url, 1, ids.get(1)!.secretKey, async () => [change(base(), next)]);
    await until(() => first.stats().membershipEpoch === 1, 'epoch 1 at the first coordinator');
    const port = first.port;
    await first.close();
    const second = await coordinator({ port });
    expect(second.stats().membershipEpoch).toBe(0);
    await until(() => second.stats().membershipEpoch === 1, 'epoch 1 at the restarted coordinator');
    expect(l1.connected).toBe(true);
    expect(second.logs.some((l) => l.msg === 'coordinator listening')).toBe(true);
    expect(second.logs.some((l) => /kept in memory only/.test(l.msg))).toBe(true);
  });
});

describe('coordinator: the membership state file', () => {
  it('survives a restart; the metrics count adopted changes', async () => {
    const dir = tmp();
    const stateFile = join(dir, 'membership-state.json');
    const token = 'membership-metrics-token-0123456789';
    const first = await coordinator({ membershipStateFile: stateFile, metricsToken: token });
    const sender = await rawHello(first.url, 1, ids.get(1)!.secretKey);
    expect((await sender.next()).t).toBe('welcome');
    const e1 = m(1, [1, 2, 3, 4, 5]);
    sender.send({ t: 'membership', changes: [change(base(), e1)] });
    await until(() => first.stats().membershipEpoch === 1, 'epoch 1');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    expect(state.format).toBe('tessera/coordinator-membership/v1');
    expect(state.changes).toHaveLength(1);
    const scrape = await (await fetch(`${first.httpUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(scrape).toMatch(/^tessera_coordinator_membership_changes_total 1$/m);
    expect(scrape).toMatch(/^tessera_coordinator_membership_epoch 1$/m);
    await first.close();

    const second = await coordinator({ membershipStateFile: stateFile });
    expect(second.stats().membershipEpoch).toBe(1);
    expect(second.stats().membershipChanges).toBe(0);
    expect(await admits(second.url, 5, ids.get(5)!.secretKey)).toBe('welcome');
    // The next change builds on the replayed chain and is appended to the file.
    const e2 = m(2, [1, 2, 3, 5]);
    const s2 = await rawHello(second.url, 2, ids.get(2)!.secretKey);
    expect((await s2.next()).t).toBe('welcome');
    s2.send({ t: 'membership', changes: [change(e1, e2)] });
    await until(() => second.stats().membershipEpoch === 2, 'epoch 2');
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).changes).toHaveLength(2);
  });

  it('a state file that does not follow from the configured membership refuses the start', async () => {
    const dir = tmp();
    const e1 = m(1, [1, 2, 3, 4, 5]);
    const good = { format: 'tessera/coordinator-membership/v1', changes: [{ membership: toHex(encodeMembership(e1)), certificate: toHex(certify(base(), e1)) }] };
    const flip = (hex: string, at: number) => hex.slice(0, at) + (hex[at] === '0' ? '1' : '0') + hex.slice(at + 1);
    const cases: [string, unknown, RegExp][] = [
      ['a vote changed', { ...good, changes: [{ ...good.changes[0], certificate: flip(good.changes[0]!.certificate, good.changes[0]!.certificate.length - 10) }] }, /change 1 \(epoch 1\): membership certificate|vote does not verify/],
      ['the membership changed', { ...good, changes: [{ ...good.changes[0], membership: toHex(encodeMembership(m(1, [1, 2, 3, 5]))) }] }, /another membership|required/],
      ['a link dropped', { ...good, changes: [good.changes[0], { membership: toHex(encodeMembership(m(3, [1, 2, 3]))), certificate: good.changes[0]!.certificate }] }, /epoch 3 does not follow the held epoch 1/],
      ['not JSON', 'nope', /not valid JSON/],
      ['another format', { format: 'x', changes: [] }, /expected \{ "format"/],
    ];
    for (const [what, content, pattern] of cases) {
      const file = join(dir, 'state.json');
      writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
      const err = await startCoordinator({ port: 0, membership: asMap(base()), membershipStateFile: file }).then(
        async (c) => (await c.close(), undefined),
        (e: unknown) => e,
      );
      expect(err, what).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message, what).toContain(`membershipStateFile: ${file}: `);
      expect((err as ConfigError).message, what).toMatch(pattern);
    }

    // Through the process: exit 2, one line naming the file.
    const tampered = { ...good, changes: [{ ...good.changes[0], certificate: flip(good.changes[0]!.certificate, good.changes[0]!.certificate.length - 10) }] };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(tampered));
    writeFileSync(
      join(dir, 'm.json'),
      JSON.stringify({ nodes: base().members.map((x) => ({ index: x.index, identityPublicKey: toHex(x.identityPublicKey) })) }),
    );
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ port: 0, host: '127.0.0.1', membershipFile: 'm.json', membershipStateFile: 'state.json' }));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'coordinator/main.ts', '--config', join(dir, 'c.json')], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tessera-coordinator: config error: membershipStateFile: .*state\.json: change 1 \(epoch 1\)/);

    // The untampered file starts.
    writeFileSync(join(dir, 'state.json'), JSON.stringify(good));
    const c = await coordinator({ membershipStateFile: join(dir, 'state.json') });
    expect(c.stats().membershipEpoch).toBe(1);
  });
});
