/**
 * Who is calling the admin API and what they may do. Two ways in (Bearer headers only, no
 * cookies, so there is no CSRF surface):
 * - `GUARDIAN_ADMIN_TOKEN`: role admin, actor `admin-token` (compared in constant time);
 * - a Supabase Auth access token, verified with `jose` against `SUPABASE_JWT_SECRET` (HS256) or
 *   the project's JWKS (`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`, asymmetric keys): expiry,
 *   audience `authenticated`, issuer `<SUPABASE_URL>/auth/v1`, top-level role `authenticated`.
 *   The guardian role comes from `app_metadata.guardian_role` or `app_metadata.role`.
 *
 * Decision: a valid Supabase user WITHOUT a guardian role is refused (403), not made a viewer:
 * viewers read target lists (other people's user ids), and every sign-up of the project would
 * otherwise get them. An admin grants a role explicitly (README: "Admin API roles").
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';

import { HttpError } from '../http/errors.ts';

/** Roles, weakest first. */
export const ROLES = ['viewer', 'editor', 'admin'] as const;
/** A guardian role. */
export type Role = (typeof ROLES)[number];

/**
 * The authenticated caller.
 *
 * @example
 * const p: Principal = { actor: 'alice@example.com', role: 'editor', via: 'supabase' };
 */
export interface Principal {
  readonly actor: string;
  readonly role: Role;
  readonly via: 'supabase' | 'admin_token';
}

/**
 * How tokens are checked. With neither `jwtSecret` nor `supabaseUrl` only the admin token works.
 *
 * @example
 * const auth = createAuthenticator({ adminToken: process.env.GUARDIAN_ADMIN_TOKEN, supabaseUrl: 'https://abc.supabase.co' });
 */
export interface AuthOptions {
  readonly adminToken?: string | undefined;
  /** HS256 secret of the Supabase project (`SUPABASE_JWT_SECRET`). */
  readonly jwtSecret?: string | undefined;
  /** The Supabase project URL: the issuer is `<url>/auth/v1`, the JWKS `<url>/auth/v1/.well-known/jwks.json`. */
  readonly supabaseUrl?: string | undefined;
  /** Injected clock (seconds are taken from it for `exp`/`nbf`). */
  readonly now?: () => Date;
}

/** True when `a` equals `b`, in time that does not depend on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

const NEED = 'Send "Authorization: Bearer <token>" with GUARDIAN_ADMIN_TOKEN or a Supabase Auth access token.';

function unauthorized(message: string, cause?: unknown): HttpError {
  return new HttpError('unauthorized', `${message} ${NEED}`, { headers: { 'WWW-Authenticate': 'Bearer realm="guardian"' }, cause });
}

/** The role in a token's app_metadata (`guardian_role` wins over `role`), if it names one. */
function roleOf(payload: JWTPayload): Role | undefined {
  const meta = payload['app_metadata'];
  if (meta === null || typeof meta !== 'object') return undefined;
  const m = meta as Record<string, unknown>;
  for (const key of ['guardian_role', 'role']) {
    const v = m[key];
    if (typeof v === 'string' && (ROLES as readonly string[]).includes(v)) return v as Role;
  }
  return undefined;
}

/**
 * A function from the Authorization header to the caller; throws 401/403 HttpErrors.
 *
 * @example
 * const principal = await authenticate(c.req.header('authorization'));
 */
export type Authenticator = (authorization: string | undefined) => Promise<Principal>;

/**
 * Builds the {@link Authenticator} of the admin API.
 *
 * @example
 * const authenticate = createAuthenticator({ adminToken: 'x'.repeat(32), jwtSecret: process.env.SUPABASE_JWT_SECRET });
 */
export function createAuthenticator(opts: AuthOptions): Authenticator {
  const issuer = opts.supabaseUrl ? `${opts.supabaseUrl.replace(/\/+$/, '')}/auth/v1` : undefined;
  const secret = opts.jwtSecret ? new TextEncoder().encode(opts.jwtSecret) : undefined;
  const jwks: JWTVerifyGetKey | undefined = issuer ? createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`), { timeoutDuration: 5000, cooldownDuration: 30_000 }) : undefined;
  const now = opts.now ?? (() => new Date());

  return async (authorization) => {
    if (authorization === undefined || authorization.trim() === '') throw unauthorized('No credentials.');
    const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization);
    if (!m?.[1]) throw unauthorized('The Authorization header is not "Bearer <token>" (only Bearer tokens are accepted).');
    const token = m[1];
    if (opts.adminToken !== undefined && constantTimeEqual(token, opts.adminToken)) return { actor: 'admin-token', role: 'admin', via: 'admin_token' };
    if (!token.includes('.')) throw unauthorized('The token is not the admin token and not a JWT.');
    if (!secret && !jwks) throw unauthorized('The token is a JWT but Supabase Auth is not configured on the guardian (set SUPABASE_JWT_SECRET or SUPABASE_URL).');
    let payload: JWTPayload;
    try {
      const common = { audience: 'authenticated', ...(issuer ? { issuer } : {}), currentDate: now(), requiredClaims: ['exp', 'sub'] };
      const alg = headerAlg(token);
      if (alg === 'HS256' && secret) payload = (await jwtVerify(token, secret, { ...common, algorithms: ['HS256'] })).payload;
      else if (jwks && alg !== 'HS256') payload = (await jwtVerify(token, jwks, { ...common, algorithms: ['RS256', 'ES256', 'EdDSA'] })).payload;
      else throw unauthorized(`The token's algorithm ${alg ?? '(none)'} is not accepted here (${secret ? 'HS256' : ''}${secret && jwks ? ', ' : ''}${jwks ? 'RS256/ES256/EdDSA via JWKS' : ''}).`);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw unauthorized(`The token was refused: ${tokenProblem(err)}.`, err);
    }
    if (payload['role'] !== 'authenticated') throw unauthorized(`The token's role is "${String(payload['role'])}", not "authenticated": sign in as a user (an anon or service key is not a person).`);
    const role = roleOf(payload);
    const email = typeof payload['email'] === 'string' && payload['email'] !== '' ? payload['email'] : undefined;
    const actor = email ?? payload.sub ?? 'unknown';
    if (!role) {
      throw new HttpError(
        'forbidden',
        `${actor} has no guardian role. An admin must set app_metadata.guardian_role to viewer, editor or admin for this user (see the README, "Admin API roles").`,
      );
    }
    return { actor, role, via: 'supabase' };
  };
}

/** The `alg` of a JWT's protected header, without trusting it for anything else. */
function headerAlg(token: string): string | undefined {
  try {
    const head = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as unknown;
    return head !== null && typeof head === 'object' && typeof (head as Record<string, unknown>)['alg'] === 'string' ? String((head as Record<string, unknown>)['alg']) : undefined;
  } catch {
    return undefined;
  }
}

/** Words for a jose failure (never the token itself). */
function tokenProblem(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'it has expired; sign in again';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `its "${err.claim}" claim is wrong (${err.reason})`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not verify';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'its algorithm is not accepted';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the project JWKS matches it';
  if (err instanceof joseErrors.JWKSTimeout) return 'the project JWKS did not answer in time';
  if (err instanceof joseErrors.JOSEError) return `${err.code}`;
  return 'it could not be verified';
}

/**
 * 403 unless `p` has at least `need`.
 *
 * @example
 * requireRole(principal, 'editor', 'changing a flag');
 */
export function requireRole(p: Principal, need: Role, what: string): void {
  if (ROLES.indexOf(p.role) < ROLES.indexOf(need)) {
    throw new HttpError('forbidden', `${what} needs the ${need} role${need === 'admin' ? '' : ' or higher'}; ${p.actor} is ${p.role === 'admin' ? 'an' : 'a'} ${p.role}.`);
  }
}

/**
 * Failed authentications per client address in a sliding minute; over the limit → 429 until it
 * ages out. Bounded: at most `maxClients` addresses are remembered (oldest forgotten first).
 *
 * @example
 * const limiter = new FailureLimiter({ perMinute: 20 });
 * limiter.check(addr); // throws 429 when over
 */
export class FailureLimiter {
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #hits = new Map<string, number[]>();

  constructor(opts: { perWindow?: number; windowMs?: number; maxClients?: number; now?: () => number } = {}) {
    this.#perWindow = opts.perWindow ?? 20;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#max = opts.maxClients ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  #recent(addr: string): number[] {
    const cut = this.#now() - this.#windowMs;
    const list = (this.#hits.get(addr) ?? []).filter((t) => t > cut);
    if (list.length) this.#hits.set(addr, list);
    else this.#hits.delete(addr);
    return list;
  }

  /** Throws 429 when `addr` failed too often lately. */
  check(addr: string): void {
    const list = this.#recent(addr);
    if (list.length >= this.#perWindow) {
      const retry = Math.max(1, Math.ceil(((list[0] ?? 0) + this.#windowMs - this.#now()) / 1000));
      throw new HttpError('rate_limited', `Too many failed authentications from this address; try again in ${retry} s.`, { headers: { 'Retry-After': String(retry) } });
    }
  }

  /** Records one failure of `addr`. */
  fail(addr: string): void {
    const list = this.#recent(addr);
    list.push(this.#now());
    this.#hits.delete(addr);
    this.#hits.set(addr, list);
    while (this.#hits.size > this.#max) {
      const oldest = this.#hits.keys().next().value;
      if (oldest === undefined) break;
      this.#hits.delete(oldest);
    }
  }
}
