/**
 * The response check (runtime/response-check.ts, TESSERA_CHECK_RESPONSES=1, set for every test by
 * vitest.config.ts): a JSON response that does not match its route's schema for its status code (an
 * extra field, a wrong type, a missing field, a status code with no schema) is answered 500
 * RESPONSE_SCHEMA_MISMATCH naming the route, status and field path, logged without values; a response
 * that matches passes unchanged; without the variable the node answers as before (the serializer drops
 * the extra field).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Type } from 'typebox';
import { errorSchema } from '../../contract/http.js';
import { buildApi } from '../../node/http/api.js';
import { RESPONSE_CHECK_ENV, RESPONSE_SCHEMA_MISMATCH, STRICT_AJV_OPTIONS, addResponseCheck } from '../../runtime/response-check.js';

const SECRET = 'value-that-must-not-appear-0123456789';

/** A logger that keeps its lines (JSON) in memory. */
function memoryLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const item = Type.Object({ id: Type.String(), count: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
const response = { 200: item, '4xx': errorSchema };

async function appWithCheck(log: pino.Logger): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: log, ajv: { customOptions: STRICT_AJV_OPTIONS } } as never) as unknown as FastifyInstance;
  addResponseCheck(app);
  // Answers of the error handler are checked too.
  app.setErrorHandler((_err, _req, reply) => reply.code(403).send({ code: 'DENIED', message: 'refused', detail: SECRET }));
  const route = (url: string, body: () => unknown, status = 200) =>
    app.route({ method: 'GET', url, schema: { response }, handler: async (_req, reply) => reply.code(status).send(body()) });
  route('/good', () => ({ id: 'a', count: 1 }));
  route('/extra', () => ({ id: 'a', count: 1, secret: SECRET }));
  route('/wrong-type', () => ({ id: 'a', count: SECRET }));
  route('/missing', () => ({ id: 'a' }));
  route('/nested-error', () => ({ code: 'BAD_INPUT', message: 'x', nodes: [0] }), 400);
  route('/good-error', () => ({ code: 'BAD_INPUT', message: 'nope' }), 400);
  route('/no-schema-status', () => ({ id: 'a', count: 1 }), 302);
  route('/thrown', () => {
    throw Object.assign(new Error('refused'), { statusCode: 403 });
  });
  app.route({ method: 'GET', url: '/text', schema: { response: { 200: Type.String() } }, handler: async (_req, reply) => reply.type('text/plain').send('not json') });
  await app.ready();
  return app;
}

describe('response check', () => {
  it('is on in every test (vitest.config.ts) and in the processes tests start (nodes, coordinators)', () => {
    expect(process.env[RESPONSE_CHECK_ENV]).toBe('1');
    expect(execFileSync(process.execPath, ['-e', `process.stdout.write(process.env.${RESPONSE_CHECK_ENV} ?? '')`], { encoding: 'utf8' })).toBe('1');
  });

  it('passes responses that match, fails each kind of mismatch with 500 and the field path, never a value', async () => {
    const { logger, lines } = memoryLogger();
    const app = await appWithCheck(logger);
    try {
      const get = async (url: string) => {
        const r = await app.inject({ method: 'GET', url });
        return { status: r.statusCode, body: r.body, json: String(r.headers['content-type'] ?? '').includes('json') ? r.json() : undefined };
      };
      expect(await get('/good')).toMatchObject({ status: 200, json: { id: 'a', count: 1 } });
      expect(await get('/good-error')).toMatchObject({ status: 400, json: { code: 'BAD_INPUT', message: 'nope' } });
      expect(await get('/text')).toMatchObject({ status: 200, body: 'not json' });

      const cases: [string, RegExp][] = [
        ['/extra', /GET \/extra \(status 200\) does not match its schema: \/: additionalProperties "secret"/],
        ['/wrong-type', /\/count: type/],
        ['/missing', /\/: required "count"/],
        ['/nested-error', /\(status 400\) .*\/nodes\/0: minimum/],
        ['/no-schema-status', /\(status 302\) .*no response schema for this status code/],
        ['/thrown', /\(status 403\) .*\/: additionalProperties "detail"/],
      ];
      for (const [url, message] of cases) {
        const r = await get(url);
        expect(r.status, url).toBe(500);
        expect(r.json.code, url).toBe(RESPONSE_SCHEMA_MISMATCH);
        expect(r.json.message, url).toMatch(message);
        expect(r.body, url).not.toContain(SECRET);
      }
      const logged = lines.filter((l) => l.includes('response does not match its schema'));
      expect(logged.length).toBe(cases.length);
      expect(JSON.parse(logged[0]!)).toMatchObject({ route: 'GET /extra', status: 200, where: '/: additionalProperties "secret"' });
      expect(lines.join('\n')).not.toContain(SECRET);
    } finally {
      await app.close();
    }
  });

  it('a node checks its own responses when TESSERA_CHECK_RESPONSES=1, and answers as before without the check', async () => {
    const info = { index: 1, parties: 3, identityPublicKey: 'aa', importPublicKey: 'bb', ready: true, online: [1, 2], groupBackends: { edwards25519: 'x', secp256k1: 'y', 'P-256': 'z' } };
    const build = (checkResponses?: boolean) =>
      buildApi({
        service: { info: () => ({ ...info, extra: SECRET }) } as never,
        admin: {} as never,
        authenticate: () => ({ tenant: 'default', role: 'tenant', apiKeyId: 'ak_1' }),
        logger: pino({ level: 'silent' }),
        ...(checkResponses === undefined ? {} : { checkResponses }),
      });
    const ask = async (checkResponses?: boolean) => {
      const app = await build(checkResponses);
      try {
        return await app.inject({ method: 'GET', url: '/v1/node', headers: { authorization: 'Bearer some-api-key-0123' } });
      } finally {
        await app.close();
      }
    };
    // By default the node follows TESSERA_CHECK_RESPONSES, which vitest.config.ts sets.
    const checked = await ask();
    expect(checked.statusCode).toBe(500);
    expect(checked.json()).toMatchObject({ code: RESPONSE_SCHEMA_MISMATCH });
    expect(checked.json().message).toContain('GET /v1/node (status 200)');
    expect(checked.body).not.toContain(SECRET);
    // Without the check (production): as before, the serializer writes only the schema's fields.
    const plain = await ask(false);
    expect(plain.statusCode).toBe(200);
    expect(plain.json()).toEqual(info);
  });
});
