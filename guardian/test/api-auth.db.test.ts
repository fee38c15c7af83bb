/**
 * Admin API authentication over real HTTP (PGlite): the admin token, Supabase HS256 tokens and
 * tokens signed by a key served from a local JWKS endpoint (as Supabase's asymmetric keys are),
 * every bad token (expired, wrong signature, wrong audience, wrong issuer, `alg: none`, the anon
 * role, no guardian role, not Bearer) refused with a JSON body saying what is needed, roles
 * enforced, failed attempts rate-limited per address, and CORS only for the allowed origins.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createAdminApi } from '../src/api/app.ts';
import { FailureLimiter } from '../src/api/auth.ts';
import { ADMIN_TOKEN, caller, startApi, supabaseToken, type ApiHarness } from './api-helpers.ts';

describe('admin API authentication', () => {
  let api: ApiHarness;
  const call = caller(() => api.base);
  beforeAll(async () => {
    api = await startApi('pglite');
  });
  afterAll(() => api?.close());

  it('answers 401 with a JSON body saying what is needed, for no token and for each bad token', async () => {
    const none = await call('GET', '/flags', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(none.body.error).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/Authorization: Bearer/) });

    const nowS = Math.floor(Date.now() / 1000);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(
      JSON.stringify({ sub: 'x', role: 'authenticated', aud: 'authenticated', iss: 'http://127.0.0.1:54321/auth/v1', exp: nowS + 3600, app_metadata: { guardian_role: 'admin' } }),
    ).toString('base64url')}.`;
    const bad: [string, string, RegExp][] = [
      ['expired', await supabaseToken({ role: 'admin', expiresIn: -60 }), /expired/],
      ['wrong signature', await supabaseToken({ role: 'admin', secret: 'another-secret-of-at-least-thirty-two-chars!' }), /signature/],
      ['wrong audience', await supabaseToken({ role: 'admin', aud: 'someone-else' }), /"aud"/],
      ['wrong issuer', await supabaseToken({ role: 'admin', iss: 'https://evil.example.com/auth/v1' }), /"iss"/],
      ['alg none', unsigned, /algorithm/],
      ['anon role', await supabaseToken({ role: 'admin', topRole: 'anon' }), /"anon"/],
      ['garbage', 'not-a-token', /not the admin token/],
      ['admin token with a typo', `${ADMIN_TOKEN}x`, /not the admin token/],
    ];
    for (const [what, token, words] of bad) {
      const res = await call('GET', '/flags', { token });
      expect(res.status, what).toBe(401);
      expect(res.body.error?.code, what).toBe('unauthorized');
      expect(res.body.error?.message, what).toMatch(words);
      expect(res.text, what).not.toContain(token);
    }
    const basic = await fetch(`${api.base}/flags`, { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    expect(basic.status).toBe(401);
    expect(((await basic.json()) as { error: { message: string } }).error.message).toMatch(/only Bearer/);
  });

  it('refuses a signed-in user without a guardian role (403 saying how to get one)', async () => {
    const res = await call('GET', '/flags', { token: await supabaseToken({ role: undefined, email: 'new@example.com' }) });
    expect(res.status).toBe(403);
    expect(res.body.error?.message).toMatch(/new@example.com has no guardian role.*app_metadata.guardian_role/);
    const unknownRole = await call('GET', '/flags', { token: await supabaseToken({ role: 'superuser' }) });
    expect(unknownRole.status).toBe(403);
  });

  it('takes the role from app_metadata.role too, and enforces viewer < editor < admin', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const viaRole = await new SignJWT({ email: 'r@example.com', role: 'authenticated', app_metadata: { role: 'editor' } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setAudience('authenticated')
      .setIssuer('http://127.0.0.1:54321/auth/v1')
      .setExpirationTime(nowS + 60)
      .sign(new TextEncoder().encode('super-secret-jwt-token-with-at-least-32-characters-long'));
    expect((await call('GET', '/me', { token: viaRole })).body).toMatchObject({ role: 'editor', actor: 'r@example.com' });
    const viewer = await supabaseToken({ role: 'viewer' });
    expect((await call('GET', '/flags', { token: viewer })).status).toBe(200);
    const f = (await call('GET', '/flags/ai_beta_users', { token: viewer })).body['flag'] as { version: number };
    const denied = await call('PATCH', '/flags/ai_beta_users', { token: viewer, body: { rolloutPercentage: 1 }, ifMatch: f.version });
    expect(denied.status).toBe(403);
    expect(denied.body.error?.message).toMatch(/needs the editor role or higher; viewer@example.com is a viewer/);
    expect((await call('POST', '/flags/ai_beta_users/rollback', { token: viewer, body: { reason: 'x' } })).status).toBe(403);
    expect((await call('POST', '/flags', { token: viaRole, body: { name: 'x_flag' } })).status).toBe(403);
  });

  it('allows CORS only for the listed origins', async () => {
    const pre = await fetch(`${api.base}/flags`, {
      method: 'OPTIONS',
      headers: { origin: 'https://admin.example.com', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization,if-match,content-type' },
    });
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('if-match');
    expect(pre.headers.get('access-control-allow-credentials')).toBeNull();
    const other = await fetch(`${api.base}/flags`, { headers: { origin: 'https://evil.example.com', authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('JWKS and the failed-auth limiter', () => {
  let jwks: Server;
  let apiServer: ServerType;
  let base = '';
  let privateKey: CryptoKey;
  let issuer = '';
  let jwksHits = 0;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' };
    jwks = createServer((req, res) => {
      if (req.url === '/auth/v1/.well-known/jwks.json') {
        jwksHits++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
      } else res.writeHead(404).end();
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    const supabaseUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;
    issuer = `${supabaseUrl}/auth/v1`;
    const { SqlStore } = await import('../src/store/sql-store.ts');
    const { createTestPglite } = await import('../../test/helpers/db.ts');
    const db = await createTestPglite();
    const store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
    const app = new Hono().route('/api/v1', createAdminApi({ store, auth: { supabaseUrl }, limiter: new FailureLimiter({ perWindow: 5, windowMs: 60_000 }), clientAddress: (c) => c.req.header('x-test-client') ?? 'default' }));
    apiServer = await new Promise((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(apiServer.address() as AddressInfo).port}/api/v1`;
    apiServer.on('close', () => void db.drop());
  });
  afterAll(async () => {
    await new Promise<void>((r) => apiServer.close(() => r()));
    await new Promise<void>((r) => jwks.close(() => r()));
  });

  const sign = (claims: Record<string, unknown>, key: CryptoKey = privateKey) =>
    new SignJWT({ role: 'authenticated', email: 'k@example.com', app_metadata: { guardian_role: 'viewer' }, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'test-key' })
      .setSubject('u-1')
      .setAudience('authenticated')
      .setIssuer(issuer)
      .setExpirationTime('5m')
      .sign(key);

  it('verifies tokens against the project JWKS and refuses other keys and HS256 (no secret configured)', async () => {
    const ok = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${await sign({})}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ actor: 'k@example.com', role: 'viewer', via: 'supabase' });
    expect(jwksHits).toBeGreaterThanOrEqual(1);
    const stranger = (await generateKeyPair('ES256')).privateKey;
    const wrong = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${await sign({}, stranger)}` } });
    expect(wrong.status).toBe(401);
    const hs = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${await supabaseToken({ role: 'admin', iss: issuer })}` } });
    expect(hs.status).toBe(401);
    expect(((await hs.json()) as { error: { message: string } }).error.message).toMatch(/HS256 is not accepted/);
  });

  it('rate-limits failed authentication per address (429 with Retry-After), and a good token is then refused too', async () => {
    const statuses: number[] = [];
    const from = (client: string, token: string) => fetch(`${base}/me`, { headers: { authorization: `Bearer ${token}`, 'x-test-client': client } });
    for (let i = 0; i < 5; i++) statuses.push((await from('mallory', 'nope')).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
    // Another address is not affected.
    expect((await from('alice', await sign({}))).status).toBe(200);
    const limited = await from('mallory', await sign({}));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
  });
});
