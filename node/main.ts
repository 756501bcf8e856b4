/**
 * The node process: config -> KEK -> encrypted LevelDB -> identity -> audit log, tenants, policy ->
 * coordinator link -> HTTP API -> rotation scheduler.
 *
 * Usage: node dist/node/main.js --config FILE   (from source: tsx node/main.ts; every field can also
 * come from TESSERA_* env). A bad option exits 2, a bad config exits 2 and a membership that does not
 * list this node's identity exits 1, each with one line on stderr that names the field, never a stack.
 */
import { checkMembership, membershipDigest } from '../core/membership.js';
import { LiveMembership } from './governance/membership.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { equalBytes, toHex } from '../core/bytes.js';
import { ErrorCode } from '../core/errors.js';
import { loadIdentityEngine } from '../core/identity.js';
import { selectGroupBackends } from '../runtime/group-backend.js';
import { watchParent } from '../runtime/parent-watch.js';
import { NodeAdmin } from './governance/admin.js';
import { buildApi } from './http/api.js';
import { AUDIT_NAMESPACE, AuditLog } from './governance/audit.js';
import { OperationGate } from './governance/gate.js';
import { POLICY_NAMESPACE, PolicyEngine } from './governance/policy.js';
import { RotationAttempts, RotationScheduler, SCHEDULER_NAMESPACE } from './governance/scheduler.js';
import { TENANTS_NAMESPACE, TenantStore } from './governance/tenants.js';
import { ConfigError, loadNodeConfig, type NodeConfig } from './config.js';
import { loadOrCreateIdentity } from './store/identity-store.js';
import { atRestProtection } from './store/kek.js';
import { openNodeKeks, type NodeKeks } from './store/kek-provider.js';
import { SealedNode, prepareKekRotation } from './sealed.js';
import type { KekRotatePrepareRequest } from '../contract/http.js';
import { notSealable, type UnsealApi } from './http/unseal.js';
import { kekRotationSteps, resumeKekRotation, rotateKek } from './store/kek-rotation.js';
import { CoordinatorLink } from './sessions/link.js';
import { NodeMetrics } from './metrics.js';
import { FAULT_POINTS, NodeService } from './service.js';
import { PresignPools } from './presign/pools.js';
import { PairKeys } from './sessions/pair-keys.js';
import { parseDeviations } from './sessions/deviations.js';
import { ShareStore } from './store/storage.js';
import { STORAGE_FAILED_MESSAGE } from './store/record-auth.js';

/**
 * Log redaction: nothing under these paths ever reaches a log line (top level and one level down).
 * The code does not log these values at all; this is the second line of defence.
 */
const SECRET_FIELDS = [
  'apiKey',
  'secretKey',
  'identitySecretKey',
  'privateKey',
  'secret',
  'share',
  'shares',
  'nonce',
  'nonces',
  'kek',
  'key',
  'signingShare',
  'value',
  'seed',
  'sharedSecret',
  'plaintext',
];
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
];

export function makeLogger(level: string, name: string): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

/** Test-only crash points (node/service.ts FAULT_POINTS); unknown names are refused. */
function faultPointsFromEnv(v: string | undefined): ReadonlySet<string> | undefined {
  if (!v) return undefined;
  const points = v.split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of points) {
    if (!(FAULT_POINTS as readonly string[]).includes(p)) throw new ConfigError('TESSERA_FAULT_POINTS', `unknown fault point ${p}`);
  }
  return new Set(points);
}

/**
 * TEST ONLY (like TESSERA_FAULT_POINTS): TESSERA_TEST_CLOCK_OFFSET_MS=<integer ms> runs this node
 * process with its clock off by that much (Date.now shifted for the whole process: stored times, audit
 * times, log times, the rotation scheduler), to show that clock skew between nodes is survived. Never
 * set it in production. Anything but an integer within +-1 year is refused.
 */
export function applyTestClockOffset(v: string | undefined): number {
  if (v === undefined || v === '') return 0;
  const offset = /^-?\d{1,12}$/.test(v.trim()) ? Number(v.trim()) : NaN;
  if (!Number.isSafeInteger(offset) || Math.abs(offset) > 366 * 24 * 3600_000) {
    throw new ConfigError('TESSERA_TEST_CLOCK_OFFSET_MS', 'must be an integer number of milliseconds within one year');
  }
  if (offset !== 0) {
    const realNow = Date.now.bind(Date);
    Date.now = () => realNow() + offset;
  }
  return offset;
}

export interface RunningNode {
  url: string;
  close(): Promise<void>;
}

/** How a sealed node (node/sealed.ts) starts the full node once unsealed; other nodes pass nothing. */
export interface StartOptions {
  /** The KEKs, instead of opening the configured provider's (a shamir-unseal KEK rebuilt from shares). */
  keks?: NodeKeks;
  /** The unseal routes' node (node/http/unseal.ts); default: a node that has no seal. */
  unseal?: UnsealApi;
  /** Called once the audit log is open (a sealed node copies in the unseal attempts it recorded). */
  onAuditOpen?: (audit: AuditLog) => Promise<void>;
  /** Called right before the API binds its port (the sealed front end releases it). */
  beforeListen?: () => Promise<void>;
}

export async function startNode(config: NodeConfig, logger: Logger, o: StartOptions = {}): Promise<RunningNode> {
  await loadIdentityEngine();
  const keks = o.keks ?? (await openNodeKeks(config.kek, config.index));
  let store: ShareStore;
  try {
    store = await ShareStore.open({ dataDir: config.dataDir, kek: keks.current, otherKeks: keks.others, nodeIndex: config.index, minRotationPeriodMs: config.rotation.minPeriodMs });
  } catch (e) {
    for (const k of [keks.current, ...keks.others]) k.close();
    throw e;
  }
  // Start-up integrity check (issue 9, item 7): every record's MAC. A key with a record that fails is
  // refused from now on (the store quarantines it), named here with the command that repairs it.
  // Secrets and the meta record are checked where they are read: identity loading fails on its own.
  try {
    const integrity = await store.checkIntegrity();
    const refusedKeys = new Set<string>();
    for (const bad of integrity.unauthentic) {
      if (bad.key) {
        refusedKeys.add(`${bad.key.tenant}/${bad.key.keyId}`);
        logger.error(
          { tenant: bad.key.tenant, keyId: bad.key.keyId, record: bad.name },
          `integrity: ${bad.name} fails its MAC; key ${bad.key.keyId} is refused until repaired: run \`tessera repair --key-id ${bad.key.keyId}\``,
        );
      } else {
        logger.error({ record: bad.name }, `integrity: ${bad.name} fails its MAC; this node will not use it`);
      }
    }
    logger.info({ records: integrity.checked, unauthentic: integrity.unauthentic.length, refusedKeys: refusedKeys.size }, 'integrity check done');
  } catch (e) {
    await store.close();
    throw e;
  }
  // A KEK rotation that a crash interrupted is finished before the node serves (node/store/kek-rotation.ts).
  const faultPoints = faultPointsFromEnv(process.env.TESSERA_FAULT_POINTS);
  const kekCrashPoint = (point: string): void => {
    if (faultPoints?.has(point)) {
      logger.warn({ point }, 'fault injection: crashing');
      process.kill(process.pid, 'SIGKILL');
    }
  };
  try {
    const resumed = await resumeKekRotation(store, config.kek, config.dataDir, { crashPoint: kekCrashPoint });
    if (resumed) logger.warn({ from: resumed.from, to: resumed.to, records: resumed.records, moved: resumed.moved }, 'finished an interrupted KEK rotation; the old KEK is destroyed');
  } catch (e) {
    await store.close();
    throw e;
  }
  // Fail closed and never silently: the first refused write latches the store (every call UNAVAILABLE).
  store.onFailure((cause) => logger.fatal({ cause }, 'node storage failed: every operation is refused until the node is restarted'));
  const keys = await loadOrCreateIdentity(store);
  // The membership: the one committed by the newest certified change this node holds, else the config's
  // (node/governance/membership.ts). The config may name a newer one (the node a change added or
  // repaired starts with the new membership); at the same epoch they must agree.
  const configured = checkMembership({ epoch: config.membershipEpoch, members: config.membership });
  const committed = await store.getMembership();
  if (committed && committed.epoch === configured.epoch && !equalBytes(membershipDigest(committed), membershipDigest(configured))) {
    await store.close();
    throw new ConfigError('membership', `differs from the membership this node committed at epoch ${committed.epoch}; give the committed one (GET /v1/admin/membership of a peer) or a newer epoch`);
  }
  const live = new LiveMembership(committed && committed.epoch >= configured.epoch ? committed : configured);
  if (committed && committed.epoch > configured.epoch) {
    logger.info({ epoch: committed.epoch, configEpoch: configured.epoch, members: live.indices }, 'membership: using the committed membership, newer than the config file\'s');
  }
  const mine = live.map.get(config.index);
  if (!mine || !equalBytes(mine, keys.identity.publicKey)) {
    await store.close();
    const removed = committed && !live.map.has(config.index);
    throw new ConfigError(
      'membership',
      removed
        ? `node ${config.index} was removed from the cluster by membership epoch ${committed.epoch} (this node committed that change); it no longer starts`
        : `does not list this node's identity for index ${config.index} (its public key fingerprint is ${toHex(keys.identity.publicKey).slice(0, 16)})`,
    );
  }

  // Audit log, tenants and policy live in the same LevelDB (namespaced records).
  const audit = await AuditLog.open({
    records: store.namespace(AUDIT_NAMESPACE),
    identity: keys.identity,
    checkpointEvery: config.audit.checkpointEvery,
    checkpointIntervalMs: config.audit.checkpointIntervalMs,
    onError: (e) => logger.error({ code: e.code, err: { message: e.message } }, 'audit checkpoint failed'),
  });
  if (audit.broken) {
    // A head the node cannot vouch for (an edited newest entry, a dropped tail): refuse to start.
    await audit.close();
    await store.close();
    throw new Error(`the audit log does not check out: ${audit.broken}; refusing to start (investigate the data dir, e.g. restore it, before starting this node again)`);
  }
  const tenants = await TenantStore.open({
    records: store.namespace(TENANTS_NAMESPACE),
    configKeys: config.apiKeys.map((k) => ({ id: k.id, tenant: k.tenant, keyHash: k.keyHash, ...(k.role ? { role: k.role } : {}) })),
  });
  const policy = await PolicyEngine.open({
    records: store.namespace(POLICY_NAMESPACE),
    audit,
    maxFailOpenMs: config.failOpen.maxMs,
    onError: (e) => logger.error({ code: e.code, err: { message: e.message } }, 'policy: cannot audit the fail-open revert (retried on the next request)'),
  });
  await audit
    .append({ actor: 'system.node', operation: 'node.start', outcome: 'ok' })
    .catch((e: Error) => logger.error({ err: { message: e.message } }, 'cannot audit the node start'));
  await o.onAuditOpen?.(audit);

  const link = new CoordinatorLink();
  // Metrics (node/metrics.ts): the gate counts operations inline; the rest is read at scrape time only
  // (so `presign`, made below, is not read before it exists).
  const metrics = new NodeMetrics({
    presign: () => presign.stats(),
    audit: () => ({ queueDepth: audit.pendingAppends, headSeq: audit.headSeq, lastCheckpointTime: audit.lastCheckpointTime }),
    link: () => ({ connected: link.connected, online: link.online().length, sessions: link.liveSessions }),
    keyStates: async () => (await store.listAll()).map((r) => r.state),
    storageFailed: () => store.failure !== undefined,
  });
  // A failed store fails every session in progress at once; its peers are told through the coordinator.
  store.onFailure(() => link.failAll(ErrorCode.Unavailable, STORAGE_FAILED_MESSAGE));
  const gate = new OperationGate({
    audit,
    policy,
    decline: (session, reason, scope) => {
      if (link.connected) link.fail(session, 'POLICY_DENIED', reason, [], scope);
    },
    logger: logger.child({ component: 'gate' }),
    storageFailure: () => store.failure,
    metrics,
  });
  const rotationAttempts = new RotationAttempts();
  // Test only: the malicious-node harness (node/sessions/deviations.ts).
  const deviations = parseDeviations(process.env.TESSERA_TEST_DEVIATIONS);
  if (deviations) logger.warn({ deviations }, 'TESSERA_TEST_DEVIATIONS is set: this node misbehaves on purpose (tests only)');
  // Presignature pools (one-round signing): in memory only, never on disk (node/presign/pools.ts).
  const presign = new PresignPools({
    node: config.index,
    identity: keys.identity,
    loadShare: (tenant, keyId, version) => store.getShare(tenant, keyId, version),
    logger: logger.child({ component: 'presign' }),
  });
  // Long-lived pairwise channel keys: in memory only, rekeyed every period (node/sessions/pair-keys.ts).
  const pairKeys = new PairKeys({ self: config.index, rekeyPeriodMs: config.channelRekeyMs });
  const service = new NodeService({
    presign,
    pairKeys,
    index: config.index,
    identity: keys.identity,
    importKey: keys.kem,
    atRest: atRestProtection(config.kek),
    ...(config.wrappingKeyAllowlist !== undefined ? { wrappingKeyAllowlist: config.wrappingKeyAllowlist } : {}),
    live,
    store,
    link,
    logger: logger.child({ component: 'service' }),
    faultPoints,
    ...(deviations ? { deviations } : {}),
    gate,
    rotation: {
      minPeriodMs: config.rotation.minPeriodMs,
      ...(config.rotation.warnBeforeMs !== undefined ? { warnBeforeMs: config.rotation.warnBeforeMs } : {}),
      attempts: rotationAttempts,
    },
  });
  // The coordinator learns membership changes from the nodes' certificate chains, checked there
  // (node/sessions/link.ts announces it after every authentication and after each committed change).
  link.setMembershipChanges(() => service.membership.chain());
  // Commit certificates (node/sessions/commit.ts): finish any erasure a crash interrupted, and say which
  // staged changes await `tessera repair` (whether they commit or drop depends on the other nodes).
  await store.finishErasures();
  const staged = await service.resolveStagedAtStart();
  if (staged.waiting > 0) logger.warn(staged, 'staged changes await `tessera repair`');
  const admin = new NodeAdmin({
    tenants,
    policy,
    audit,
    gate,
    failOpen: config.failOpen,
    logger: logger.child({ component: 'admin' }),
    rotateKek: async () => rotateKek(store, await kekRotationSteps(config.kek, { dataDir: config.dataDir, currentKek: store.keks()[0]! }), { crashPoint: kekCrashPoint }),
    ...(config.kek.kind === 'shamir-unseal' ? { prepareKekRotation: (body: KekRotatePrepareRequest) => prepareKekRotation(config, store.keks()[0]!, body) } : {}),
  });
  const tls = config.api.tls && { cert: readFileSync(config.api.tls.certFile), key: readFileSync(config.api.tls.keyFile) };
  const app = await buildApi({
    service,
    admin,
    authenticate: (presented) => tenants.authenticate(presented),
    unavailable: () => store.failure,
    logger,
    ...(tls ? { tls } : {}),
    metrics,
    ...(config.metricsToken !== undefined ? { metricsToken: config.metricsToken } : {}),
    unseal: o.unseal ?? notSealable(config.index, config.kek.kind),
  });
  await o.beforeListen?.();
  const address = await app.listen({ host: config.api.host, port: config.api.port });
  // Connect in the background: the link reconnects with backoff, and /ready says when it is up.
  link
    .connect({
      url: config.coordinatorUrl,
      index: config.index,
      identitySecretKey: keys.identity.secretKey,
      // Pinned: the link refuses (signs nothing for) a challenge naming any other coordinator.
      coordinatorId: config.coordinatorId,
      logger,
      connectTimeoutMs: 2 ** 31 - 1, // keep retrying (the largest timer Node allows)
      // A node being added or repaired is admitted only once its membership change is committed.
      retryRefusedAuthentication: true,
      ...(config.coordinatorCaFile ? { ca: readFileSync(config.coordinatorCaFile) } : {}),
    })
    .catch((e: Error) => logger.warn({ err: { message: e.message } }, 'coordinator not reachable yet; retrying'));
  const scheduler = new RotationScheduler({
    store,
    records: store.namespace(SCHEDULER_NAMESPACE),
    service,
    attempts: rotationAttempts,
    ...(config.scheduleSecret !== undefined ? { scheduleSecret: config.scheduleSecret } : {}),
    audit,
    logger: logger.child({ component: 'rotation' }),
    checkIntervalMs: config.rotation.checkIntervalMs,
    retryMs: config.rotation.retryMs,
    ...(config.rotation.warnBeforeMs !== undefined ? { warnBeforeMs: config.rotation.warnBeforeMs } : {}),
  });
  scheduler.start();
  logger.info({ index: config.index, api: address }, 'node listening');
  return {
    url: address,
    async close() {
      await app.close();
      presign.close(); // stops refills and wipes every nonce
      service.ecdsaPresign.close(); // wipes every ECDSA presignature
      pairKeys.close(); // wipes every period and pair key
      await link.close();
      await scheduler.stop();
      await policy.close();
      await audit.close();
      const keks = store.keks();
      await store.close();
      for (const k of keks) k.close(); // the KEKs are the provider's (a token session for pkcs11), not the store's
    },
  };
}

/** How long a stop may take before the process exits anyway. */
const STOP_GRACE_MS = 10_000;

export const NODE_USAGE = `usage: tessera-node [--config FILE]
  (compiled: node dist/node/main.js; from source: tsx node/main.ts)
  --config FILE   the node's JSON config file; every field can also come from TESSERA_* environment
                  variables, which override the file (node/config.ts names them)
  -h, --help      print this help and exit
A bad option or config exits 2 with one line on stderr; a node that cannot start exits 1.`;

async function main(): Promise<void> {
  let values: { config?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({ options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (e) {
    // parseArgs names the bad option in its message's first line (e.g. "Unknown option '--x'").
    process.stderr.write(`tessera-node: ${(e as Error).message.split('\n')[0]} (try --help)\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`${NODE_USAGE}\n`);
    process.exit(0);
  }
  let config: NodeConfig;
  try {
    config = loadNodeConfig({ file: values.config, env: process.env });
  } catch (e) {
    process.stderr.write(`tessera-node: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const logger = makeLogger(config.logLevel, `node-${config.index}`);
  try {
    const offset = applyTestClockOffset(process.env.TESSERA_TEST_CLOCK_OFFSET_MS);
    if (offset !== 0) logger.warn({ offsetMs: offset }, 'TEST ONLY: this node runs with its clock shifted (TESSERA_TEST_CLOCK_OFFSET_MS)');
  } catch (e) {
    process.stderr.write(`tessera-node: ${(e as Error).message}\n`);
    process.exit(2);
  }
  // Group backends (runtime/group-backend.ts, TESSERA_GROUP_BACKEND): chosen once, before any point
  // exists; a backend that does not load is a warning here, and GET /v1/node shows the choice.
  try {
    const choice = selectGroupBackends({ warn: (m) => logger.warn(m) });
    logger.info({ groupBackends: choice.names, prefer: choice.prefer }, 'group backends selected');
  } catch (e) {
    process.stderr.write(`tessera-node: ${(e as Error).message}\n`);
    process.exit(2);
  }
  let node: RunningNode;
  try {
    // A shamir-unseal node starts sealed, every time (node/sealed.ts); it starts the full node once unsealed.
    node =
      config.kek.kind === 'shamir-unseal'
        ? await SealedNode.start(config, logger, {
            startFull: startNode,
            onFatal: (e) => {
              process.stderr.write(`tessera-node: ${e.message.split('\n')[0]}\n`);
              process.exit(1);
            },
          })
        : await startNode(config, logger);
  } catch (e) {
    process.stderr.write(`tessera-node: ${(e as Error).message.split('\n')[0]}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    // A close that does not finish in time still ends the process: never linger with the port open.
    setTimeout(() => process.exit(1), STOP_GRACE_MS).unref();
    await node.close().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  watchParent(() => void stop());
}

// Run only as the entry point (tests import startNode from this module). Anything main() did not
// catch still ends as one line on stderr, never a stack trace.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`tessera-node: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}\n`);
    process.exit(1);
  });
}
