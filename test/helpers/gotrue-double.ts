/**
 * A local HTTP double of Supabase Auth (GoTrue), shaped like its REST API as supabase-js calls it,
 * for browser tests of the dashboard's sign-in:
 *
 * - `POST /auth/v1/token?grant_type=password` `{email, password}` → 200 the session
 *   `{access_token, token_type: 'bearer', expires_in, expires_at, refresh_token, user}`;
 *   wrong credentials → 400 `invalid_credentials` "Invalid login credentials".
 * - `POST /auth/v1/token?grant_type=refresh_token` `{refresh_token}` → a new session (the refresh
 *   token is rotated); unknown or revoked → 400 `refresh_token_not_found`.
 * - `POST /auth/v1/otp` `{email, create_user}` (`?redirect_to=`) → 200 `{}`; the link the mail
 *   would carry is recorded in {@link GoTrueDouble.magicLinks}. An unknown email with
 *   `create_user: false` → 422 `otp_disabled` "Signups not allowed for otp".
 * - `GET /auth/v1/verify?token=…&type=magiclink&redirect_to=…` → 303 to `redirect_to` with the
 *   session in the URL fragment (`#access_token=…&expires_at=…&expires_in=…&refresh_token=…&
 *   token_type=bearer&type=magiclink`), or with `#error=access_denied&error_code=otp_expired&
 *   error_description=…` for a used or unknown token.
 * - `GET /auth/v1/user` (Bearer) → the user; a bad or expired JWT → 403 `bad_jwt`.
 * - `POST /auth/v1/logout?scope=global|local|others` (Bearer) → 204, revoking the session's
 *   refresh tokens.
 *
 * Errors are GoTrue's JSON: with the request header `X-Supabase-Api-Version: 2024-01-01` (which
 * supabase-js sends) `{"code":"invalid_credentials","message":"…"}` and the same header on the
 * response; without it the older `{"code":400,"error_code":"invalid_credentials","msg":"…"}`.
 * Every request must carry the project's `apikey` (the anon key), as the Supabase gateway
 * requires. CORS is answered as the hosted gateway does, so a page on another origin can call it.
 *
 * Access tokens are HS256 JWTs signed with the project's JWT secret: `aud` and `role`
 * `authenticated`, `iss` `<url>/auth/v1`, `sub`, `email`, `exp`, `iat`, `app_metadata.role`,
 * `session_id` (the claims the guardian verifies).
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { signJwt } from './postgrest-double.ts';

/** A user of the double's project. */
export interface GoTrueUser {
  readonly email: string;
  readonly password: string;
  /** `app_metadata.role`: the guardian role (viewer, editor, admin). */
  readonly role: string;
}

/** A sign-in link the double "mailed". */
export interface MagicLink {
  readonly email: string;
  readonly url: string;
  readonly redirectTo: string | null;
}

export interface GoTrueDouble {
  /** The project URL (SUPABASE_URL), e.g. `http://127.0.0.1:54321`. */
  readonly url: string;
  readonly anonKey: string;
  /** The links sent by `POST /otp`, oldest first. */
  readonly magicLinks: MagicLink[];
  /** Every request, as `METHOD /path?query`. */
  readonly requests: string[];
  /** Seconds an access token issued from now on is valid (default 3600). */
  accessTokenTtl: number;
  /** Signs an access token for `email` as the double would, with `exp` `ttl` seconds from now (may be negative). */
  accessToken(email: string, ttl?: number): string;
  /** Revokes every refresh token (as an admin signing every user out would). */
  revokeAllSessions(): void;
  close(): Promise<void>;
}

interface UserRecord extends GoTrueUser {
  readonly id: string;
  readonly createdAt: string;
  lastSignInAt: string | null;
}

function verify(secret: string, token: string): Record<string, unknown> | 'bad' | 'expired' {
  const parts = token.split('.');
  if (parts.length !== 3) return 'bad';
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest('base64url');
  if (expected !== parts[2]) return 'bad';
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof claims['exp'] !== 'number' || claims['exp'] * 1000 <= Date.now()) return 'expired';
    return claims;
  } catch {
    return 'bad';
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  const v = JSON.parse(text) as unknown;
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}

/**
 * Starts the double on a free port of 127.0.0.1.
 *
 * @example
 * const auth = await startGoTrueDouble({ jwtSecret, users: [{ email: 'eddie@example.com', password: 'pw', role: 'editor' }] });
 * // guardian env: SUPABASE_URL=auth.url, SUPABASE_ANON_KEY=auth.anonKey, SUPABASE_JWT_SECRET=jwtSecret
 */
export async function startGoTrueDouble(opts: { jwtSecret: string; users: readonly GoTrueUser[]; anonKey?: string }): Promise<GoTrueDouble> {
  const anonKey = opts.anonKey ?? signJwt({ iss: 'supabase-demo', role: 'anon', exp: Math.floor(Date.now() / 1000) + 10 * 365 * 86_400 }, opts.jwtSecret);
  const users = new Map<string, UserRecord>(opts.users.map((u) => [u.email, { ...u, id: randomUUID(), createdAt: new Date().toISOString(), lastSignInAt: null }]));
  const refreshTokens = new Map<string, { email: string; sessionId: string }>();
  const otps = new Map<string, string>();
  const magicLinks: MagicLink[] = [];
  const requests: string[] = [];
  let url = '';

  const userJson = (u: UserRecord) => ({
    id: u.id,
    aud: 'authenticated',
    role: 'authenticated',
    email: u.email,
    email_confirmed_at: u.createdAt,
    phone: '',
    confirmed_at: u.createdAt,
    last_sign_in_at: u.lastSignInAt,
    app_metadata: { provider: 'email', providers: ['email'], role: u.role },
    user_metadata: {},
    identities: [],
    created_at: u.createdAt,
    updated_at: u.lastSignInAt ?? u.createdAt,
    is_anonymous: false,
  });

  const accessToken = (u: UserRecord, sessionId: string, ttl: number, method: string): string => {
    const now = Math.floor(Date.now() / 1000);
    return signJwt({
      aud: 'authenticated',
      exp: now + ttl,
      iat: now,
      iss: `${url}/auth/v1`,
      sub: u.id,
      email: u.email,
      phone: '',
      app_metadata: { provider: 'email', providers: ['email'], role: u.role },
      user_metadata: {},
      role: 'authenticated',
      aal: 'aal1',
      amr: [{ method, timestamp: now }],
      session_id: sessionId,
      is_anonymous: false,
    }, opts.jwtSecret);
  };

  const double: GoTrueDouble = {
    get url() {
      return url;
    },
    anonKey,
    magicLinks,
    requests,
    accessTokenTtl: 3600,
    accessToken(email, ttl = double.accessTokenTtl) {
      const u = users.get(email);
      if (!u) throw new Error(`no user ${email} in the GoTrue double`);
      return accessToken(u, randomUUID(), ttl, 'password');
    },
    revokeAllSessions() {
      refreshTokens.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const session = (u: UserRecord, method: string, sessionId: string = randomUUID()) => {
    const refresh = randomBytes(9).toString('base64url');
    refreshTokens.set(refresh, { email: u.email, sessionId });
    u.lastSignInAt = new Date().toISOString();
    const ttl = double.accessTokenTtl;
    return { access_token: accessToken(u, sessionId, ttl, method), token_type: 'bearer', expires_in: ttl, expires_at: Math.floor(Date.now() / 1000) + ttl, refresh_token: refresh, user: userJson(u) };
  };

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) fail(req, res, 500, 'unexpected_failure', (err as Error).message);
    });
  });

  function cors(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Access-Control-Allow-Origin', req.headers.origin ?? '*');
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'authorization, apikey, content-type, x-client-info, x-supabase-api-version');
    res.setHeader('Access-Control-Expose-Headers', 'x-supabase-api-version');
  }

  function send(res: ServerResponse, status: number, body: unknown): void {
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(body));
  }

  /** A GoTrue error body, in the shape the request's API version asks for. */
  function fail(req: IncomingMessage, res: ServerResponse, status: number, code: string, msg: string): void {
    if (req.headers['x-supabase-api-version'] === '2024-01-01') {
      res.setHeader('X-Supabase-Api-Version', '2024-01-01');
      send(res, status, { code, message: msg });
    } else send(res, status, { code: status, error_code: code, msg });
  }

  function bearerClaims(req: IncomingMessage, res: ServerResponse): Record<string, unknown> | null {
    const m = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    if (!m) {
      fail(req, res, 401, 'no_authorization', 'This endpoint requires a Bearer token');
      return null;
    }
    const claims = verify(opts.jwtSecret, m[1]!);
    if (claims === 'bad') fail(req, res, 403, 'bad_jwt', 'invalid JWT: unable to parse or verify signature, signature is invalid');
    else if (claims === 'expired') fail(req, res, 403, 'bad_jwt', 'invalid JWT: unable to parse or verify signature, token has invalid claims: token is expired');
    else return claims;
    return null;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', url);
    requests.push(`${req.method} ${u.pathname}${u.search}`);
    cors(req, res);
    if (req.method === 'OPTIONS') {
      res.statusCode = 204;
      res.end();
      return;
    }
    // The verify link is opened by a person's browser: no apikey, as in a mail.
    if (req.method === 'GET' && u.pathname === '/auth/v1/verify') {
      const token = u.searchParams.get('token') ?? '';
      const redirectTo = u.searchParams.get('redirect_to') ?? url;
      const email = otps.get(token);
      otps.delete(token);
      const user = email ? users.get(email) : undefined;
      const fragment = user
        ? new URLSearchParams(Object.entries(session(user, 'otp')).filter(([k]) => k !== 'user').map(([k, v]) => [k, String(v)]))
        : new URLSearchParams({ error: 'access_denied', error_code: 'otp_expired', error_description: 'Email link is invalid or has expired' });
      if (user) fragment.set('type', u.searchParams.get('type') ?? 'magiclink');
      res.statusCode = 303;
      res.setHeader('Location', `${redirectTo}#${fragment.toString()}`);
      res.end();
      return;
    }
    if (req.headers.apikey !== anonKey) {
      send(res, 401, { message: 'Invalid API key', hint: 'Double check your Supabase `anon` or `service_role` API key.' });
      return;
    }
    if (req.method === 'POST' && u.pathname === '/auth/v1/token') {
      const body = await readJson(req);
      const grant = u.searchParams.get('grant_type');
      if (grant === 'password') {
        const user = typeof body['email'] === 'string' ? users.get(body['email']) : undefined;
        if (!user || user.password !== body['password']) return fail(req, res, 400, 'invalid_credentials', 'Invalid login credentials');
        return send(res, 200, session(user, 'password'));
      }
      if (grant === 'refresh_token') {
        const token = typeof body['refresh_token'] === 'string' ? body['refresh_token'] : '';
        const held = refreshTokens.get(token);
        if (!held) return fail(req, res, 400, 'refresh_token_not_found', 'Invalid Refresh Token: Refresh Token Not Found');
        refreshTokens.delete(token);
        return send(res, 200, session(users.get(held.email)!, 'token_refresh', held.sessionId));
      }
      return fail(req, res, 400, 'validation_failed', 'unsupported_grant_type');
    }
    if (req.method === 'POST' && u.pathname === '/auth/v1/otp') {
      const body = await readJson(req);
      const email = typeof body['email'] === 'string' ? body['email'] : '';
      if (email === '') return fail(req, res, 422, 'validation_failed', 'An email address or phone number is required to get a one-time password');
      if (!users.has(email) && body['create_user'] === false) return fail(req, res, 422, 'otp_disabled', 'Signups not allowed for otp');
      const token = randomBytes(16).toString('hex');
      otps.set(token, email);
      const redirectTo = u.searchParams.get('redirect_to');
      const link = new URL(`${url}/auth/v1/verify`);
      link.searchParams.set('token', token);
      link.searchParams.set('type', 'magiclink');
      if (redirectTo) link.searchParams.set('redirect_to', redirectTo);
      magicLinks.push({ email, url: link.toString(), redirectTo });
      return send(res, 200, {});
    }
    if (req.method === 'GET' && u.pathname === '/auth/v1/user') {
      const claims = bearerClaims(req, res);
      if (!claims) return;
      const user = [...users.values()].find((x) => x.id === claims['sub']);
      if (!user) return fail(req, res, 403, 'user_not_found', 'User from sub claim in JWT does not exist');
      return send(res, 200, userJson(user));
    }
    if (req.method === 'POST' && u.pathname === '/auth/v1/logout') {
      const claims = bearerClaims(req, res);
      if (!claims) return;
      const scope = u.searchParams.get('scope') ?? 'global';
      for (const [token, held] of refreshTokens) {
        const mine = held.sessionId === claims['session_id'];
        const sameUser = users.get(held.email)?.id === claims['sub'];
        if ((scope === 'local' && mine) || (scope === 'global' && sameUser) || (scope === 'others' && sameUser && !mine)) refreshTokens.delete(token);
      }
      res.statusCode = 204;
      res.end();
      return;
    }
    send(res, 404, { code: 404, error_code: 'not_found', msg: `No route ${req.method} ${u.pathname} in the GoTrue double` });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return double;
}
