/**
 * The single-key baseline of `npm run bench` (issue 10): one Ed25519 key in node:crypto behind the same
 * HTTP stack as a Tessera node, so that the cluster's threshold overhead reads as a ratio.
 *
 * What is the same as a node (node/main.ts): the fastify app of node/http/api.ts buildApi (its options,
 * API-key check in onRequest, JSON schemas of contract/http.ts, error handler), TLS when asked, the
 * node's governance path for every request (node/governance/gate.ts: policy evaluation, a synced audit
 * 'started' entry, the work, a synced audit 'ok' entry) on a real encrypted LevelDB (node/store/storage.ts)
 * with a real audit log (node/governance/audit.ts, ML-DSA-65 signed checkpoints), and the route
 * POST /v1/keys/:keyId/sign with the node's request and response shape.
 * What differs: the work is one node:crypto Ed25519 signature with a key held in memory (no session,
 * no coordinator, no peers) — which is the point of the comparison. Only that route (and /health,
 * /ready, /v1/node) answers.
 *
 * Run as its own process (bench/single-key.ts starts it): `node --import tsx bench/single-key-server.ts`
 * with TESSERA_BENCH_DIR (an empty temp dir), optional TESSERA_BENCH_TLS_CERT / _KEY (PEM files).
 * Prints one JSON line {url, apiKey, keyId, publicKey} on stdout once listening; SIGTERM stops it.
 */
import { generateKeyPairSync, randomBytes, sign as edSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { toHex } from '../core/bytes.js';
import { ErrorCode, TesseraError } from '../core/errors.js';
import { loadIdentityEngine } from '../core/identity.js';
import type { SignRequest, SignResponse } from '../contract/http.js';
import { apiKeyHash } from '../node/config.js';
import { NodeAdmin } from '../node/governance/admin.js';
import { AUDIT_NAMESPACE, AuditLog } from '../node/governance/audit.js';
import { OperationGate } from '../node/governance/gate.js';
import { POLICY_NAMESPACE, PolicyEngine } from '../node/governance/policy.js';
import { TENANTS_NAMESPACE, TenantStore, type Principal } from '../node/governance/tenants.js';
import { buildApi } from '../node/http/api.js';
import type { NodeService } from '../node/service.js';
import { loadOrCreateIdentity } from '../node/store/identity-store.js';
import { createKekFile, readKekFile } from '../node/store/kek.js';
import { ShareStore } from '../node/store/storage.js';
import { watchParent } from '../runtime/parent-watch.js';

const KEY_ID = 'single-key';

async function main(): Promise<void> {
  const dir = process.env.TESSERA_BENCH_DIR;
  if (!dir) throw new Error('TESSERA_BENCH_DIR is not set');
  const logger = pino({ level: 'warn' });
  await loadIdentityEngine();
  const kekPath = join(dir, 'single-key.kek');
  await createKekFile(kekPath);
  const kek = await readKekFile(kekPath);
  let store: ShareStore;
  try {
    store = await ShareStore.open({ dataDir: join(dir, 'single-key-store'), kek, nodeIndex: 1 });
  } finally {
    kek.fill(0);
  }
  const keys = await loadOrCreateIdentity(store);
  const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity: keys.identity });
  const apiKey = `tsk_bench_${randomBytes(24).toString('hex')}`;
  const tenants = await TenantStore.open({
    records: store.namespace(TENANTS_NAMESPACE),
    configKeys: [{ id: 'bench', tenant: 'default', keyHash: apiKeyHash(apiKey), role: 'admin' }],
  });
  const policy = await PolicyEngine.open({ records: store.namespace(POLICY_NAMESPACE), audit });
  const gate = new OperationGate({ audit, policy, decline: () => undefined, logger, storageFailure: () => store.failure });
  const admin = new NodeAdmin({ tenants, policy, audit, gate, failOpen: { defaultMs: 60_000, maxMs: 3_600_000 }, logger });

  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const rawPublic = publicKey.export({ format: 'jwk' }).x!;
  const service = {
    info: () => ({ index: 1, parties: 1, identityPublicKey: toHex(keys.identity.publicKey), importPublicKey: '', ready: true, online: [] }),
    async sign(p: Principal, keyId: string, req: SignRequest): Promise<SignResponse> {
      return gate.run(
        { principal: p, operation: 'sign', authorize: 'policy', keyId, ...(req.version !== undefined ? { version: req.version } : {}), session: Buffer.from(req.sessionId, 'hex') },
        async () => {
          if (keyId !== KEY_ID || (req.version !== undefined && req.version !== 1)) throw new TesseraError(ErrorCode.NotFound, `no key ${keyId}`);
          return { version: 1, message: Buffer.from(req.message, 'hex') };
        },
        async ({ message }) => ({ keyId, version: 1, signature: toHex(edSign(null, message, privateKey)) }),
      );
    },
  } as unknown as NodeService;

  const certFile = process.env.TESSERA_BENCH_TLS_CERT;
  const keyFile = process.env.TESSERA_BENCH_TLS_KEY;
  const tls = certFile && keyFile ? { cert: readFileSync(certFile), key: readFileSync(keyFile) } : undefined;
  const app = await buildApi({ service, admin, authenticate: (k) => tenants.authenticate(k), unavailable: () => store.failure, logger, ...(tls ? { tls } : {}) });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await app.close().catch(() => undefined);
      await audit.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      process.exit(0);
    })();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  watchParent(stop);
  process.stdout.write(JSON.stringify({ url: address, apiKey, keyId: KEY_ID, publicKey: Buffer.from(rawPublic, 'base64url').toString('hex') }) + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`single-key server: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
