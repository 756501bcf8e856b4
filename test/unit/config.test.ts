import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, DEFAULT_COORDINATOR_ID, apiKeyHash, isLoopbackHost, loadNodeConfig } from '../../node/config.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
// Config loading does not parse ML-DSA keys, only their length: random bytes keep the test fast.
const members = [1, 2, 3].map((index) => ({ index, identityPublicKey: hex(randomBytes(1952)) }));
const apiKeyHashHex = hex(apiKeyHash('secret-api-key-1'));

function baseConfig(): Record<string, unknown> {
  return {
    index: 2,
    dataDir: './data/node2',
    api: { host: '127.0.0.1', port: 7102 },
    coordinatorUrl: 'ws://127.0.0.1:7000',
    membership: members,
    kekFile: 'kek.hex',
    apiKeys: [{ id: 'ops', tenant: 'acme', keyHash: apiKeyHashHex }],
    thresholdDefaults: { threshold: 2, parties: 3 },
    logLevel: 'warn',
    wrappingKeyAllowlist: ['AB'.repeat(32)],
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(cfg: unknown, name = 'node.json'): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(cfg));
  return file;
}

/** Load and expect a ConfigError: one line, starting "config: <field>". */
async function expectConfigError(cfg: unknown, field: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  const file = await writeConfig(cfg);
  let err: unknown;
  try {
    loadNodeConfig({ file, env });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const ce = err as ConfigError;
  expect(ce.message).not.toMatch(/[\r\n]/);
  expect(ce.message.startsWith(`config: ${field} `)).toBe(true);
  expect(ce.field).toBe(field);
  return ce;
}

describe('loadNodeConfig: valid configurations', () => {
  it('reads every field, resolves relative paths against the file, lowercases fingerprints', async () => {
    const file = await writeConfig(baseConfig());
    const c = loadNodeConfig({ file, env: {} });
    expect(c.index).toBe(2);
    expect(c.dataDir).toBe(join(dir, 'data/node2'));
    expect(c.api).toEqual({ host: '127.0.0.1', port: 7102 });
    expect(c.coordinatorUrl).toBe('ws://127.0.0.1:7000/');
    expect(c.coordinatorCaFile).toBeUndefined();
    expect(c.membership.map((m) => m.index)).toEqual([1, 2, 3]);
    expect(hex(c.membership[1]!.identityPublicKey)).toBe(members[1]!.identityPublicKey);
    expect(c.kek).toEqual({ kind: 'file', path: join(dir, 'kek.hex') });
    expect(c.apiKeys).toHaveLength(1);
    expect(c.apiKeys[0]!.tenant).toBe('acme');
    expect(hex(c.apiKeys[0]!.keyHash)).toBe(apiKeyHashHex);
    expect(c.thresholdDefaults).toEqual({ threshold: 2, parties: 3 });
    expect(c.logLevel).toBe('warn');
    expect(c.wrappingKeyAllowlist).toEqual(['ab'.repeat(32)]);
  });

  it('applies defaults: host 127.0.0.1, logLevel info, majority threshold of all members, no allowlist, no API keys', async () => {
    const cfg = baseConfig();
    delete cfg.thresholdDefaults;
    delete cfg.logLevel;
    delete cfg.wrappingKeyAllowlist;
    delete cfg.apiKeys;
    cfg.api = { port: 0 };
    const c = loadNodeConfig({ file: await writeConfig(cfg), env: {} });
    expect(c.api).toEqual({ host: '127.0.0.1', port: 0 });
    expect(c.logLevel).toBe('info');
    expect(c.thresholdDefaults).toEqual({ threshold: 2, parties: 3 });
    expect(c.wrappingKeyAllowlist).toBeUndefined();
    expect(c.apiKeys).toEqual([]);
  });

  it('reads membership and API keys from files (array or wrapped object)', async () => {
    await writeFile(join(dir, 'members.json'), JSON.stringify({ membership: [...members].reverse() }));
    await writeFile(join(dir, 'keys.json'), JSON.stringify([{ id: 'k1', tenant: 't1', keyHash: apiKeyHashHex }]));
    const cfg = baseConfig();
    delete cfg.membership;
    delete cfg.apiKeys;
    cfg.membershipFile = 'members.json';
    cfg.apiKeysFile = 'keys.json';
    const c = loadNodeConfig({ file: await writeConfig(cfg), env: {} });
    expect(c.membership.map((m) => m.index)).toEqual([1, 2, 3]);
    expect(c.apiKeys.map((k) => k.id)).toEqual(['k1']);
  });

  it('a membership may have gaps (a removed node leaves one) and an epoch, from the config or the membership file, not both (issue 13)', async () => {
    const gapped = [members[0], { ...members[2], index: 7 }, members[1]];
    const c = loadNodeConfig({ file: await writeConfig({ ...baseConfig(), membership: gapped, thresholdDefaults: { threshold: 2, parties: 3 } }), env: {} });
    expect(c.membership.map((m) => m.index)).toEqual([1, 2, 7]);
    expect(c.membershipEpoch).toBe(0);
    await writeFile(join(dir, 'members.json'), JSON.stringify({ nodes: gapped, epoch: 4 }));
    const cfg = { ...baseConfig(), membershipFile: 'members.json' } as Record<string, unknown>;
    delete cfg.membership;
    expect(loadNodeConfig({ file: await writeConfig(cfg), env: {} }).membershipEpoch).toBe(4);
    await expectConfigError({ ...cfg, membershipEpoch: 4 }, 'membershipEpoch');
    expect(loadNodeConfig({ file: await writeConfig({ ...baseConfig(), membershipEpoch: 2 }), env: {} }).membershipEpoch).toBe(2);
  });

  it('lets every TESSERA_* variable override the file', async () => {
    await writeFile(join(dir, 'm.json'), JSON.stringify(members.slice(0, 2)));
    await writeFile(join(dir, 'k.json'), JSON.stringify({ apiKeys: [{ id: 'env', tenant: 'other', keyHash: hex(apiKeyHash('x')) }] }));
    const kek = randomBytes(32);
    const env: NodeJS.ProcessEnv = {
      TESSERA_NODE_INDEX: '1',
      TESSERA_DATA_DIR: join(dir, 'envdata'),
      TESSERA_API_HOST: '0.0.0.0',
      TESSERA_API_PORT: '8443',
      TESSERA_TLS_CERT: join(dir, 'cert.pem'),
      TESSERA_TLS_KEY: join(dir, 'key.pem'),
      TESSERA_COORDINATOR_URL: 'wss://coord.example.com:7443/ws',
      TESSERA_COORDINATOR_CA: join(dir, 'ca.pem'),
      TESSERA_MEMBERSHIP_FILE: join(dir, 'm.json'),
      TESSERA_KEK: hex(kek),
      TESSERA_API_KEYS_FILE: join(dir, 'k.json'),
      TESSERA_LOG_LEVEL: 'debug',
      TESSERA_WRAPPING_KEY_ALLOWLIST: `${'11'.repeat(32)}, ${'22'.repeat(32)}`,
    };
    const cfg = baseConfig();
    delete cfg.thresholdDefaults; // the file's parties = 3 would not fit the 2-node env membership
    const c = loadNodeConfig({ file: await writeConfig(cfg), env });
    expect(c.index).toBe(1);
    expect(c.dataDir).toBe(join(dir, 'envdata'));
    expect(c.api).toEqual({ host: '0.0.0.0', port: 8443, tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } });
    expect(c.coordinatorUrl).toBe('wss://coord.example.com:7443/ws');
    expect(c.coordinatorCaFile).toBe(join(dir, 'ca.pem'));
    expect(c.membership).toHaveLength(2);
    expect(c.kek.kind).toBe('env');
    expect(c.kek.kind === 'env' && hex(c.kek.key)).toBe(hex(kek));
    expect(c.apiKeys.map((k) => k.tenant)).toEqual(['other']);
    expect(c.logLevel).toBe('debug');
    expect(c.wrappingKeyAllowlist).toEqual(['11'.repeat(32), '22'.repeat(32)]);
    expect(c.thresholdDefaults).toEqual({ threshold: 2, parties: 2 });
  });

  it('works from the environment alone, and never prints the KEK when serialized', () => {
    const kekHex = hex(randomBytes(32));
    const env: NodeJS.ProcessEnv = {
      TESSERA_NODE_INDEX: '3',
      TESSERA_DATA_DIR: join(dir, 'd'),
      TESSERA_API_PORT: '0',
      TESSERA_COORDINATOR_URL: 'ws://localhost:7000',
      TESSERA_MEMBERSHIP_FILE: join(dir, 'm.json'),
      TESSERA_KEK: kekHex,
    };
    return writeFile(join(dir, 'm.json'), JSON.stringify(members)).then(() => {
      const c = loadNodeConfig({ env });
      expect(c.index).toBe(3);
      expect(JSON.stringify(c)).not.toContain(kekHex);
      expect(JSON.stringify(c)).toContain('"kind":"env"');
    });
  });
});

describe('loadNodeConfig: each bad field gives a one-line error naming it', () => {
  const cases: [string, (c: Record<string, unknown>) => void, string][] = [
    ['index 0', (c) => (c.index = 0), 'index'],
    ['index 256', (c) => (c.index = 256), 'index'],
    ['index string', (c) => (c.index = '2'), 'index'],
    ['index not a member', (c) => ((c.index = 4), (c.membership = members)), 'index'],
    ['index missing', (c) => delete c.index, 'index'],
    ['dataDir missing', (c) => delete c.dataDir, 'dataDir'],
    ['dataDir empty', (c) => (c.dataDir = ''), 'dataDir'],
    ['api not an object', (c) => (c.api = 7), 'api'],
    ['api.port too big', (c) => (c.api = { host: '127.0.0.1', port: 70000 }), 'api.port'],
    ['api.port fractional', (c) => (c.api = { host: '127.0.0.1', port: 1.5 }), 'api.port'],
    ['api.port missing', (c) => (c.api = { host: '127.0.0.1' }), 'api.port'],
    ['api.host garbage', (c) => (c.api = { host: 'no spaces allowed', port: 1 }), 'api.host'],
    ['api.tls half', (c) => (c.api = { host: '127.0.0.1', port: 1, tls: { certFile: 'c.pem' } }), 'api.tls.keyFile'],
    ['api unknown field', (c) => (c.api = { host: '127.0.0.1', port: 1, hots: 'x' }), 'api."hots"'],
    ['coordinatorUrl http', (c) => (c.coordinatorUrl = 'http://127.0.0.1:7000'), 'coordinatorUrl'],
    ['coordinatorUrl garbage', (c) => (c.coordinatorUrl = 'not a url'), 'coordinatorUrl'],
    ['coordinatorUrl missing', (c) => delete c.coordinatorUrl, 'coordinatorUrl'],
    ['coordinatorUrl credentials', (c) => (c.coordinatorUrl = 'wss://u:p@coord.example.com'), 'coordinatorUrl'],
    ['coordinatorId empty', (c) => (c.coordinatorId = ''), 'coordinatorId'],
    ['coordinatorId a number', (c) => (c.coordinatorId = 7), 'coordinatorId'],
    ['coordinatorId too long', (c) => (c.coordinatorId = 'c'.repeat(129)), 'coordinatorId'],
    ['coordinatorId with a space', (c) => (c.coordinatorId = 'prod 1'), 'coordinatorId'],
    ['membership missing', (c) => delete c.membership, 'membership'],
    ['membership one node', (c) => (c.membership = members.slice(0, 1)), 'membership'],
    ['membershipEpoch negative', (c) => (c.membershipEpoch = -1), 'membershipEpoch'],
    ['membership duplicate index', (c) => (c.membership = [members[0], members[1], { ...members[2], index: 2 }]), 'membership'],
    ['membership duplicate key', (c) => (c.membership = [members[0], members[1], { ...members[1], index: 3 }]), 'membership'],
    ['membership short key', (c) => (c.membership = [members[0], members[1], { index: 3, identityPublicKey: 'abcd' }]), 'membership[2].identityPublicKey'],
    ['membership bad index', (c) => (c.membership = [members[0], members[1], { ...members[2], index: -1 }]), 'membership[2].index'],
    ['membership and file', (c) => (c.membershipFile = 'x.json'), 'membership'],
    ['membershipFile unreadable', (c) => (delete c.membership, (c.membershipFile = 'nope.json')), 'membershipFile'],
    ['kek missing', (c) => delete c.kekFile, 'kek'],
    ['apiKeys not array', (c) => (c.apiKeys = {}), 'apiKeys'],
    ['apiKeys bad hash', (c) => (c.apiKeys = [{ id: 'a', tenant: 't', keyHash: 'zz' }]), 'apiKeys[0].keyHash'],
    ['apiKeys bad tenant', (c) => (c.apiKeys = [{ id: 'a', tenant: 'a/b', keyHash: apiKeyHashHex }]), 'apiKeys[0].tenant'],
    ['apiKeys bad id', (c) => (c.apiKeys = [{ id: '', tenant: 't', keyHash: apiKeyHashHex }]), 'apiKeys[0].id'],
    [
      'apiKeys duplicate id',
      (c) => (c.apiKeys = [{ id: 'a', tenant: 't', keyHash: apiKeyHashHex }, { id: 'a', tenant: 't', keyHash: hex(apiKeyHash('2')) }]),
      'apiKeys[1].id',
    ],
    [
      'apiKeys duplicate hash',
      (c) => (c.apiKeys = [{ id: 'a', tenant: 't', keyHash: apiKeyHashHex }, { id: 'b', tenant: 'u', keyHash: apiKeyHashHex }]),
      'apiKeys[1].keyHash',
    ],
    ['thresholdDefaults t=1', (c) => (c.thresholdDefaults = { threshold: 1, parties: 3 }), 'thresholdDefaults.threshold'],
    ['thresholdDefaults t>n', (c) => (c.thresholdDefaults = { threshold: 3, parties: 2 }), 'thresholdDefaults.threshold'],
    ['thresholdDefaults n>members', (c) => (c.thresholdDefaults = { threshold: 2, parties: 4 }), 'thresholdDefaults.parties'],
    ['logLevel', (c) => (c.logLevel = 'loud'), 'logLevel'],
    ['wrappingKeyAllowlist not array', (c) => (c.wrappingKeyAllowlist = 'ab'), 'wrappingKeyAllowlist'],
    ['wrappingKeyAllowlist bad entry', (c) => (c.wrappingKeyAllowlist = ['ab'.repeat(31)]), 'wrappingKeyAllowlist[0]'],
    ['unknown top-level field', (c) => (c.coordinatorURL = 'x'), '"coordinatorURL"'],
  ];
  for (const [name, mutate, field] of cases) {
    it(name, async () => {
      const cfg = baseConfig();
      mutate(cfg);
      await expectConfigError(cfg, field);
    });
  }

  it('bad env values name the field they override', async () => {
    await expectConfigError(baseConfig(), 'index', { TESSERA_NODE_INDEX: 'two' });
    await expectConfigError(baseConfig(), 'api.port', { TESSERA_API_PORT: '80a' });
    await expectConfigError(baseConfig(), 'logLevel', { TESSERA_LOG_LEVEL: 'verbose' });
    await expectConfigError(baseConfig(), 'wrappingKeyAllowlist[1]', { TESSERA_WRAPPING_KEY_ALLOWLIST: `${'11'.repeat(32)},xyz` });
    await expectConfigError(baseConfig(), 'membershipFile', { TESSERA_MEMBERSHIP_FILE: join(dir, 'missing.json') });
  });

  it('a malformed TESSERA_KEK is refused without echoing it; both KEK sources at once are refused', async () => {
    const almost = 'ab'.repeat(31) + 'zz';
    const e = await expectConfigError(baseConfig(), 'kek', { TESSERA_KEK: almost });
    expect(e.message).not.toContain(almost);
    await expectConfigError(baseConfig(), 'kek', { TESSERA_KEK: 'ab'.repeat(32), TESSERA_KEK_FILE: '/tmp/k' });
  });

  it('invalid JSON and a non-object file are reported as the file', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, '{"index": 1,\n');
    expect(() => loadNodeConfig({ file, env: {} })).toThrow(/^config: file .* is not valid JSON$/);
    await writeFile(file, '[1,2]');
    expect(() => loadNodeConfig({ file, env: {} })).toThrow(/^config: file .* must hold a JSON object$/);
    expect(() => loadNodeConfig({ file: join(dir, 'absent.json'), env: {} })).toThrow(/^config: file .*absent\.json cannot be read \(ENOENT\)$/);
  });
});

describe('loadNodeConfig: plain TCP only on loopback', () => {
  it('refuses plain HTTP on a non-loopback API host, accepts it with TLS', async () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'node1.example.com']) {
      const cfg = { ...baseConfig(), api: { host, port: 7102 } };
      const e = await expectConfigError(cfg, 'api.host');
      expect(e.message).toMatch(/loopback/);
      const withTls = { ...baseConfig(), api: { host, port: 7102, tls: { certFile: 'c.pem', keyFile: 'k.pem' } } };
      const c = loadNodeConfig({ file: await writeConfig(withTls), env: {} });
      expect(c.api.tls).toEqual({ certFile: join(dir, 'c.pem'), keyFile: join(dir, 'k.pem') });
    }
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) {
      const c = loadNodeConfig({ file: await writeConfig({ ...baseConfig(), api: { host, port: 1 } }), env: {} });
      expect(c.api.tls).toBeUndefined();
    }
  });

  it('refuses ws:// to a non-loopback coordinator, accepts wss:// and loopback ws://', async () => {
    for (const url of ['ws://10.0.0.1:7000', 'ws://coord.example.com', 'ws://0.0.0.0:7000', 'ws://[::]:7000']) {
      const e = await expectConfigError({ ...baseConfig(), coordinatorUrl: url }, 'coordinatorUrl');
      expect(e.message).toMatch(/wss/);
    }
    for (const url of ['wss://10.0.0.1:7000', 'ws://localhost:7000', 'ws://[::1]:7000', 'ws://127.0.0.1']) {
      expect(loadNodeConfig({ file: await writeConfig({ ...baseConfig(), coordinatorUrl: url }), env: {} }).coordinatorUrl).toMatch(/^wss?:\/\//);
    }
    // A CA file only makes sense for TLS.
    await expectConfigError({ ...baseConfig(), coordinatorCaFile: 'ca.pem' }, 'coordinatorCaFile');
    const c = loadNodeConfig({ file: await writeConfig({ ...baseConfig(), coordinatorUrl: 'wss://c.example.com', coordinatorCaFile: 'ca.pem' }), env: {} });
    expect(c.coordinatorCaFile).toBe(join(dir, 'ca.pem'));
  });

  it('isLoopbackHost', () => {
    expect(['localhost', '127.0.0.1', '127.255.0.9', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '128.0.0.1', '10.1.1.1', 'example.com', 'localhost.example.com', '::2'].some(isLoopbackHost)).toBe(false);
  });
});

describe('loadNodeConfig: API key roles, rotation schedule, fail-open and audit checkpoints (issue 6)', () => {
  it('defaults: one-minute minimum rotation period, 60 s checks, 5 min retry window, 5 min fail-open, checkpoints every 100 / 60 s', async () => {
    const c = loadNodeConfig({ file: await writeConfig(baseConfig()), env: {} });
    expect(c.rotation).toEqual({ checkIntervalMs: 60_000, minPeriodMs: 60_000, retryMs: 300_000 });
    expect(c.failOpen).toEqual({ defaultMs: 300_000, maxMs: 3_600_000 });
    expect(c.audit).toEqual({ checkpointEvery: 100, checkpointIntervalMs: 60_000 });
    expect(c.apiKeys[0]!.role).toBeUndefined();
    expect(c.channelRekeyMs).toBe(600_000);
  });

  it('channelRekeyMs (the pairwise channels\' rekey period): file or TESSERA_CHANNEL_REKEY_MS, 1 s to 1 day', async () => {
    const file = await writeConfig({ ...baseConfig(), channelRekeyMs: 120_000 });
    expect(loadNodeConfig({ file, env: {} }).channelRekeyMs).toBe(120_000);
    expect(loadNodeConfig({ file, env: { TESSERA_CHANNEL_REKEY_MS: '5000' } }).channelRekeyMs).toBe(5000);
    await expectConfigError({ ...baseConfig(), channelRekeyMs: 999 }, 'channelRekeyMs');
    await expectConfigError({ ...baseConfig(), channelRekeyMs: '60000' }, 'channelRekeyMs');
  });

  it('reads them from the file and from TESSERA_* env (env wins), and API key roles', async () => {
    const file = await writeConfig({
      ...baseConfig(),
      apiKeys: [{ id: 'ops', tenant: 'acme', keyHash: apiKeyHashHex, role: 'admin' }],
      rotation: { checkIntervalMs: 1000, minPeriodMs: 5000, warnBeforeMs: 2000, retryMs: 10_000 },
      failOpen: { defaultMs: 1000, maxMs: 2000 },
      audit: { checkpointEvery: 5, checkpointIntervalMs: 0 },
    });
    const c = loadNodeConfig({ file, env: { TESSERA_MIN_ROTATION_PERIOD_MS: '1000', TESSERA_ROTATION_CHECK_MS: '200', TESSERA_FAIL_OPEN_MS: '1500' } });
    expect(c.apiKeys[0]!.role).toBe('admin');
    expect(c.rotation).toEqual({ checkIntervalMs: 200, minPeriodMs: 1000, warnBeforeMs: 2000, retryMs: 10_000 });
    expect(c.failOpen).toEqual({ defaultMs: 1500, maxMs: 2000 });
    expect(c.audit).toEqual({ checkpointEvery: 5, checkpointIntervalMs: 0 });
  });

  it('refuses a bad role, a bad period and a fail-open default above its maximum, naming the field', async () => {
    await expectConfigError({ ...baseConfig(), apiKeys: [{ id: 'ops', tenant: 'acme', keyHash: apiKeyHashHex, role: 'root' }] }, 'apiKeys[0].role');
    await expectConfigError({ ...baseConfig(), rotation: { minPeriodMs: 0 } }, 'rotation.minPeriodMs');
    await expectConfigError(baseConfig(), 'rotation.checkIntervalMs', { TESSERA_ROTATION_CHECK_MS: 'soon' });
    await expectConfigError({ ...baseConfig(), rotation: { every: 1 } }, 'rotation."every"');
    await expectConfigError({ ...baseConfig(), failOpen: { defaultMs: 5000, maxMs: 1000 } }, 'failOpen.defaultMs');
    await expectConfigError({ ...baseConfig(), audit: { checkpointEvery: 0 } }, 'audit.checkpointEvery');
  });
});

describe('loadNodeConfig: the cluster scheduling secret (issue 9, item 3)', () => {
  const secret = 'a5'.repeat(32);

  it('reads scheduleSecret from the file or TESSERA_SCHEDULE_SECRET (env wins), never enumerable or serialized; absent when unset', async () => {
    const file = await writeConfig({ ...baseConfig(), scheduleSecret: secret.toUpperCase() });
    const c = loadNodeConfig({ file, env: {} });
    expect(hex(c.scheduleSecret!)).toBe(secret);
    expect(Object.keys(c)).not.toContain('scheduleSecret');
    expect(JSON.stringify(c)).not.toContain(secret);
    const fromEnv = loadNodeConfig({ file, env: { TESSERA_SCHEDULE_SECRET: '5a'.repeat(32) } });
    expect(hex(fromEnv.scheduleSecret!)).toBe('5a'.repeat(32));
    expect(loadNodeConfig({ file: await writeConfig(baseConfig(), 'plain.json'), env: {} }).scheduleSecret).toBeUndefined();
  });

  it('reads it from a file (scheduleSecretFile / TESSERA_SCHEDULE_SECRET_FILE); one source only', async () => {
    await writeFile(join(dir, 'schedule-secret'), secret + '\n');
    const file = await writeConfig({ ...baseConfig(), scheduleSecretFile: 'schedule-secret' });
    expect(hex(loadNodeConfig({ file, env: {} }).scheduleSecret!)).toBe(secret);
    const plain = await writeConfig(baseConfig(), 'plain.json');
    expect(hex(loadNodeConfig({ file: plain, env: { TESSERA_SCHEDULE_SECRET_FILE: join(dir, 'schedule-secret') } }).scheduleSecret!)).toBe(secret);
    await expectConfigError({ ...baseConfig(), scheduleSecretFile: 'missing' }, 'scheduleSecretFile');
    await expectConfigError({ ...baseConfig(), scheduleSecret: secret, scheduleSecretFile: 'schedule-secret' }, 'scheduleSecret');
    await writeFile(join(dir, 'short'), 'a5'.repeat(8));
    const e = await expectConfigError({ ...baseConfig(), scheduleSecretFile: 'short' }, `scheduleSecretFile (${join(dir, 'short')})`);
    expect(e.message).not.toContain('a5a5');
  });

  it('refuses a malformed secret with one line naming the field, without echoing it', async () => {
    for (const bad of ['a5'.repeat(31), 'a5'.repeat(33), 'zz'.repeat(32), 42, null, ['a5'.repeat(32)], '']) {
      const e = await expectConfigError({ ...baseConfig(), scheduleSecret: bad }, 'scheduleSecret');
      expect(e.message).toBe('config: scheduleSecret must be 64 hex characters (32 bytes)');
    }
    const e = await expectConfigError(baseConfig(), 'scheduleSecret (TESSERA_SCHEDULE_SECRET)', { TESSERA_SCHEDULE_SECRET: 'a5'.repeat(16) + 'secretish' });
    expect(e.message).not.toContain('secretish');
  });
});

describe('loadNodeConfig: the pinned coordinator id', () => {
  it('defaults to the coordinator default, so the link always checks one', async () => {
    const c = loadNodeConfig({ file: await writeConfig(baseConfig()), env: {} });
    expect(c.coordinatorId).toBe(DEFAULT_COORDINATOR_ID);
    expect(DEFAULT_COORDINATOR_ID).toBe('tessera-coordinator');
  });

  it('comes from the file, and TESSERA_COORDINATOR_ID overrides it', async () => {
    const file = await writeConfig({ ...baseConfig(), coordinatorId: 'prod-1' });
    expect(loadNodeConfig({ file, env: {} }).coordinatorId).toBe('prod-1');
    expect(loadNodeConfig({ file, env: { TESSERA_COORDINATOR_ID: 'prod-2' } }).coordinatorId).toBe('prod-2');
    expect(loadNodeConfig({ file, env: { TESSERA_COORDINATOR_ID: '' } }).coordinatorId).toBe('prod-1');
  });

  it('refuses a bad id from the environment, naming the field', async () => {
    await expectConfigError(baseConfig(), 'coordinatorId', { TESSERA_COORDINATOR_ID: 'has\nnewline' });
  });
});
