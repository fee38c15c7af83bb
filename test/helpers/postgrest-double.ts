/**
 * PROTOCOL DOUBLE of PostgREST (Supabase's REST API under `/rest/v1`) for tests. It is NOT
 * PostgREST: it is a small node:http server that speaks the subset of PostgREST's wire protocol
 * that supabase-js v2 (postgrest-js, as pinned in guardian/package.json) sends for the guardian's
 * SupabaseStore and SupabaseOutboxStore, and executes each request as SQL on a REAL PostgreSQL,
 * the way PostgREST does, so row level security, grants and the SQL functions run for real:
 *
 * - Auth: the `Authorization: Bearer <jwt>` (else the `apikey` header) must be an HS256 JWT
 *   signed with the double's secret (`exp`/`nbf`/`iat` checked with PostgREST's 30 s skew); its
 *   `role` claim becomes the database role (no JWT: `anon`). Refusals are 401 `PGRST301` with a
 *   `WWW-Authenticate` header. Like Supabase's gateway, a request without `apikey` is refused.
 * - Every request is one transaction: `begin isolation level read committed [read only]`, then
 *   `set_config('role', <role>, true)`, `set_config('request.jwt.claims', <claims json>, true)`,
 *   `request.method`, `request.path` and `search_path`, then ONE statement, then commit.
 * - Reads: `GET /rest/v1/<table>?select=a,b|*&<col>=<op>.<value>&order=a.asc,b.desc.nullslast
 *   &limit=n&offset=m` with the operators eq, neq, gt, gte, lt, lte, in.(…) (double-quoted items
 *   allowed), is.(null|not_null|true|false|unknown), each optionally negated with `not.`; values
 *   go to PostgreSQL as untyped parameters, as PostgREST sends them. `Prefer: count=exact` gives
 *   `Content-Range: 0-9/42` (206 when partial). `maxRows` (Supabase's default 1000) caps reads.
 * - Writes: `POST` insert (JSON object or array; `columns` param or the object's keys),
 *   upsert (`Prefer: resolution=merge-duplicates|ignore-duplicates`, `on_conflict=a,b`, default the
 *   primary key), `PATCH` update and `DELETE` with the same filters; `Prefer: return=minimal`
 *   (the default) or `return=representation` (with `select=`), `count=exact` (`Content-Range`
 *   `*` slash N). Statuses 201 (insert), 204 or 200 (update/delete).
 * - Functions: `POST /rest/v1/rpc/<fn>` with a JSON object of named arguments, resolved against
 *   the function's argument names (unknown or missing required names: 404 `PGRST202`) and cast to
 *   its argument types through `json_to_record`, as PostgREST does. Bodies as PostgREST builds
 *   them: a scalar (json/jsonb included) as its JSON value, a single composite as an object,
 *   `setof`/`returns table` as an array, `void` as 204.
 * - Errors as PostgREST sends them: `{ code, message, details, hint }` with the HTTP status from
 *   PostgREST's documented SQLSTATE table (docs.postgrest.org, references/errors): 23503/23505
 *   409, 42501 401 for the anon role else 403, P0001 400, other P0xxx 500, 40xxx and 55xxx 500, 42883/42P01
 *   404, 08* 503, PTnnn nnn, anything else 400; the double's own refusals with PGRST codes
 *   (PGRST100 bad query string, PGRST102 bad body, PGRST106 schema, PGRST202 no function,
 *   PGRST204 no column, PGRST205 no table).
 *
 * Identifiers (tables, columns, functions) are checked against the schema cache or a strict
 * pattern and always double-quoted; every value is a query parameter: nothing from a request is
 * spliced into SQL. What PostgREST supports and this double does not (embedding, aliases, casts,
 * JSON paths, `or`/`and`, GET RPC, limited updates, `missing=default`, CSV, …) is refused with
 * 501 and code `PGRST_DOUBLE`, never silently approximated.
 *
 * @example
 * const db = await createTestDatabase();
 * const rest = await PostgrestDouble.start({ databaseUrl: db.url });
 * const supabase = createClient(rest.url, supabaseKey('service_role'));
 * await supabase.rpc('guardian_try_lease', { p_name: 'cycle', p_holder: 'a', p_ttl: '60 seconds' });
 * await rest.stop();
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import pg from 'pg';

/** The JWT secret of the double unless told otherwise (the role keys below are signed with it). */
export const TEST_JWT_SECRET = 'rollback-guardian-postgrest-double-test-secret-0123456789';

/** PostgREST's allowed clock skew for `exp`, `nbf` and `iat`, in seconds. */
const JWT_SKEW_SECONDS = 30;

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/**
 * Signs an HS256 JWT (what Supabase's legacy anon and service_role keys are).
 *
 * @example
 * const token = signJwt({ role: 'authenticated', sub: userId, exp: Math.floor(Date.now() / 1000) + 3600 });
 */
export function signJwt(claims: Readonly<Record<string, unknown>>, secret: string = TEST_JWT_SECRET, header: Readonly<Record<string, unknown>> = { alg: 'HS256', typ: 'JWT' }): string {
  const body = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/**
 * A Supabase-style API key for a role: a JWT `{ iss: 'supabase', ref, role, iat, exp }`.
 *
 * @example
 * const serviceRoleKey = supabaseKey('service_role');
 * const anonKey = supabaseKey('anon');
 * const expired = supabaseKey('service_role', { expiresInSeconds: -3600 });
 */
export function supabaseKey(role: 'anon' | 'service_role' | 'authenticated', opts: { secret?: string; expiresInSeconds?: number } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iss: 'supabase', ref: 'postgrest-double', role, iat: now - 60, exp: now + (opts.expiresInSeconds ?? 10 * 365 * 86_400) }, opts.secret ?? TEST_JWT_SECRET);
}

/**
 * Options of {@link PostgrestDouble.start}.
 *
 * @example
 * await PostgrestDouble.start({ databaseUrl: db.url, maxRows: 50 });
 */
export interface PostgrestDoubleOptions {
  /** The database the requests run on (a superuser connection; roles are switched per request). */
  readonly databaseUrl: string;
  /** HS256 secret the JWTs must be signed with. Default {@link TEST_JWT_SECRET}. */
  readonly jwtSecret?: string;
  /** Exposed schemas (`db-schemas`); the first is the default. Default `['public']`. */
  readonly schemas?: readonly string[];
  /** Role for requests without a JWT (`db-anon-role`). Default `anon`. */
  readonly anonRole?: string;
  /** `db-max-rows`: rows a read returns at most. Default 1000, Supabase's default; null: unlimited. */
  readonly maxRows?: number | null;
  /** Connections to the database (PostgREST's `db-pool`). Default 10. */
  readonly poolSize?: number;
}

/** One request as the double saw it (for assertions). */
export interface DoubleRequest {
  readonly method: string;
  /** Path and query string. */
  readonly url: string;
  /** The database role it ran as (undefined when refused before). */
  readonly role: string | undefined;
  readonly status: number;
}

interface Column {
  readonly name: string;
  /** `format_type` of the column, usable in a column definition list. */
  readonly type: string;
}

interface Table {
  readonly schema: string;
  readonly name: string;
  readonly columns: ReadonlyMap<string, Column>;
  readonly primaryKey: readonly string[];
}

interface RoutineArg {
  readonly name: string;
  readonly type: string;
  readonly hasDefault: boolean;
}

interface Routine {
  readonly schema: string;
  readonly name: string;
  readonly args: readonly RoutineArg[];
  readonly returnsSet: boolean;
  readonly returns: 'scalar' | 'composite' | 'void';
  /** provolatile `v`: runs in a read-write transaction; stable/immutable ones read only. */
  readonly volatile: boolean;
}

interface SchemaCache {
  readonly tables: ReadonlyMap<string, Table>;
  readonly routines: ReadonlyMap<string, readonly Routine[]>;
}

interface Auth {
  readonly role: string;
  readonly claims: Readonly<Record<string, unknown>>;
  /** PostgREST's `authed`: the role is not the anon role (42501 → 403 instead of 401). */
  readonly authed: boolean;
}

/** An error the double answers with (PostgREST's body shape). */
class RestError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: string | null;
  readonly hint: string | null;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, opts: { details?: string | null; hint?: string | null; headers?: Record<string, string> } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = opts.details ?? null;
    this.hint = opts.hint ?? null;
    this.headers = opts.headers ?? {};
  }
}

const unsupported = (what: string): RestError =>
  new RestError(501, 'PGRST_DOUBLE', `postgrest double: ${what} is not implemented by this protocol double`, {
    hint: 'Extend test/helpers/postgrest-double.ts (matching PostgREST) if the code under test needs it.',
  });

/**
 * PostgREST's HTTP status for a SQLSTATE (docs.postgrest.org, references/errors, "HTTP Status
 * Codes"; `authed` is "the role is not the anon role", as PostgREST's App.hs passes it).
 *
 * @example
 * statusForSqlState('23505', true); // 409
 */
export function statusForSqlState(code: string, authed: boolean): number {
  const p2 = code.slice(0, 2);
  if (p2 === '08') return 503;
  if (p2 === '09') return 500;
  if (p2 === '0L' || p2 === '0P') return 403;
  if (code === '23503' || code === '23505') return 409;
  if (code === '25006') return 405;
  if (p2 === '25') return 500;
  if (p2 === '28') return 403;
  if (['2D', '38', '39', '3B', '40'].includes(p2)) return 500;
  if (code === '53400') return 500;
  if (p2 === '53') return 503;
  if (['54', '55', '57', '58', 'F0', 'HV'].includes(p2)) return 500;
  if (code === 'P0001') return 400;
  if (p2 === 'P0' || p2 === 'XX') return 500;
  if (code === '42883' || code === '42P01') return 404;
  if (code === '42P17') return 500;
  if (code === '42501') return authed ? 403 : 401;
  if (/^PT\d{3}$/.test(code)) return Number(code.slice(2));
  return 400;
}

/** Identifiers the double accepts from a request (then always double-quoted). */
const IDENT = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/** Double-quotes an identifier (`"` doubled), as PostgREST's pgFmtIdent. */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function checkIdent(name: string, where: string): string {
  if (!IDENT.test(name)) throw unsupported(`the identifier ${JSON.stringify(name)} in ${where} (the double accepts plain identifiers only)`);
  return name;
}

/** A PostgreSQL array literal of text items (each double-quoted, `\` and `"` escaped). */
function arrayLiteral(items: readonly string[]): string {
  return `{${items.map((v) => `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')}}`;
}

/** Splits `in.(a,"b,c",d)`'s list as PostgREST's parser does (double quotes with `\` escapes). */
function parseInList(raw: string, param: string): string[] {
  if (!raw.startsWith('(') || !raw.endsWith(')')) throw new RestError(400, 'PGRST100', `"failed to parse filter (in.${raw})" (line 1, column 4)`, { details: `unexpected "${raw.charAt(0)}" expecting "("` });
  const inner = raw.slice(1, -1);
  if (inner === '') return [];
  const out: string[] = [];
  let i = 0;
  while (i <= inner.length) {
    if (inner[i] === '"') {
      let v = '';
      i++;
      while (i < inner.length && inner[i] !== '"') {
        if (inner[i] === '\\' && i + 1 < inner.length) i++;
        v += inner[i];
        i++;
      }
      if (inner[i] !== '"') throw new RestError(400, 'PGRST100', `"failed to parse filter (${param})"`, { details: 'unterminated quoted value' });
      i++;
      out.push(v);
    } else {
      const end = inner.indexOf(',', i);
      const stop = end === -1 ? inner.length : end;
      out.push(inner.slice(i, stop));
      i = stop;
    }
    if (i >= inner.length) break;
    if (inner[i] !== ',') throw new RestError(400, 'PGRST100', `"failed to parse filter (${param})"`, { details: `unexpected "${inner[i]}" expecting ","` });
    i++;
  }
  return out;
}

const SIMPLE_OPS: Readonly<Record<string, string>> = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' };
const IS_VALUES: Readonly<Record<string, string>> = { null: 'NULL', not_null: 'NOT NULL', true: 'TRUE', false: 'FALSE', unknown: 'UNKNOWN' };
/** Query-string keys that are not filters. */
const RESERVED = new Set(['select', 'order', 'limit', 'offset', 'columns', 'on_conflict']);

/** Builds `$n` placeholders while collecting their values. */
class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

interface Prefer {
  readonly representation: boolean;
  readonly count: boolean;
  readonly resolution: 'merge-duplicates' | 'ignore-duplicates' | undefined;
}

function parsePrefer(header: string | string[] | undefined): Prefer {
  const items = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').map((s) => s.trim()).filter(Boolean);
  let representation = false;
  let count = false;
  let resolution: Prefer['resolution'];
  for (const item of items) {
    const [key, value] = item.split('=', 2).map((s) => s.trim());
    if (key === 'return') {
      if (value === 'representation') representation = true;
      else if (value !== 'minimal') throw unsupported(`Prefer: return=${value ?? ''}`);
    } else if (key === 'count') {
      if (value !== 'exact') throw unsupported(`Prefer: count=${value ?? ''} (only count=exact)`);
      count = true;
    } else if (key === 'resolution') {
      if (value !== 'merge-duplicates' && value !== 'ignore-duplicates') throw unsupported(`Prefer: resolution=${value ?? ''}`);
      resolution = value;
    } else if (key === 'missing' || key === 'tx' || key === 'handling' || key === 'params' || key === 'max-affected') {
      throw unsupported(`Prefer: ${item}`);
    }
    // Other preferences: ignored, as PostgREST ignores unknown ones without handling=strict.
  }
  return { representation, count, resolution };
}

function verifyJwt(token: string, secret: string): Record<string, unknown> {
  const fail = (message: string): RestError =>
    new RestError(401, 'PGRST301', message, { headers: { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${message}"` } });
  const parts = token.split('.');
  if (parts.length !== 3) throw fail(`Expected 3 parts in JWT; got ${parts.length}`);
  const [h, p, s] = parts as [string, string, string];
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    throw fail('JWSError (CompactDecodeError Invalid number of parts: Expected 3 parts; got 1)');
  }
  if (header === null || typeof header !== 'object' || (header as Record<string, unknown>)['alg'] !== 'HS256') throw fail('JWSError JWSInvalidSignature');
  const expected = createHmac('sha256', secret).update(`${h}.${p}`).digest();
  const given = Buffer.from(s, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw fail('JWSError JWSInvalidSignature');
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) throw fail('Parsing JWT claims failed');
  const c = claims as Record<string, unknown>;
  const now = Math.floor(Date.now() / 1000);
  if (typeof c['exp'] === 'number' && now - JWT_SKEW_SECONDS > c['exp']) throw fail('JWT expired');
  if (typeof c['nbf'] === 'number' && now + JWT_SKEW_SECONDS < c['nbf']) throw fail('JWT not yet valid');
  if (typeof c['iat'] === 'number' && now + JWT_SKEW_SECONDS < c['iat']) throw fail('JWT issued at future');
  return c;
}

function readBody(req: IncomingMessage, limit = 10 * 1024 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new RestError(413, 'PGRST_DOUBLE', 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** An HTTP answer: status, headers, JSON body text (null: no body). */
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string | null;
}

/** What one planned request runs and how its single result row becomes the HTTP answer. */
interface Plan {
  readonly sql: string;
  readonly params: readonly unknown[];
  readonly readOnly: boolean;
  readonly respond: (row: Record<string, unknown>) => Answer;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The PostgREST protocol double (see the module comment).
 *
 * @example
 * const rest = await PostgrestDouble.start({ databaseUrl: db.url });
 * const store = new SupabaseStore({ url: rest.url, serviceRoleKey: supabaseKey('service_role') });
 */
export class PostgrestDouble {
  /** The project URL to give supabase-js (`/rest/v1` is appended by it). */
  readonly url: string;
  /** Every request answered, in order. */
  readonly requests: DoubleRequest[] = [];
  readonly #server: Server;
  readonly #pool: pg.Pool;
  readonly #secret: string;
  readonly #schemas: readonly string[];
  readonly #anonRole: string;
  readonly #maxRows: number | null;
  #cache: Promise<SchemaCache> | undefined;

  private constructor(server: Server, pool: pg.Pool, opts: PostgrestDoubleOptions) {
    this.#server = server;
    this.#pool = pool;
    this.#secret = opts.jwtSecret ?? TEST_JWT_SECRET;
    this.#schemas = opts.schemas ?? ['public'];
    this.#anonRole = opts.anonRole ?? 'anon';
    this.#maxRows = opts.maxRows === undefined ? 1000 : opts.maxRows;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /**
   * Starts the double on a free local port and loads its schema cache.
   *
   * @example
   * const rest = await PostgrestDouble.start({ databaseUrl: db.url });
   */
  static async start(opts: PostgrestDoubleOptions): Promise<PostgrestDouble> {
    for (const s of opts.schemas ?? []) checkIdent(s, 'schemas');
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 10 });
    pool.on('error', () => {});
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const double = new PostgrestDouble(server, pool, opts);
    server.on('request', (req, res) => {
      void double.#handle(req, res);
    });
    await double.reloadSchemaCache();
    return double;
  }

  /** The HTTP server underneath (a Realtime double attaches to its `upgrade` requests: one project URL). */
  get httpServer(): Server {
    return this.#server;
  }

  /** Re-reads tables, columns and functions (PostgREST's `NOTIFY pgrst, 'reload schema'`). */
  async reloadSchemaCache(): Promise<void> {
    this.#cache = this.#loadSchemaCache();
    await this.#cache;
  }

  /** Stops listening, cuts open connections and closes the database pool. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    await this.#pool.end();
  }

  async #loadSchemaCache(): Promise<SchemaCache> {
    const schemas = [...this.#schemas];
    const cols = await this.#pool.query<{ schema: string; table: string; column: string; type: string }>(
      `select n.nspname as schema, c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.relkind in ('r', 'v', 'm', 'f', 'p') and n.nspname = any($1)
        order by 1, 2, a.attnum`,
      [schemas],
    );
    const pks = await this.#pool.query<{ schema: string; table: string; columns: string[] }>(
      `select n.nspname as schema, c.relname as table, array_agg(a.attname::text order by k.ord) as columns
         from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
         cross join lateral unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
         join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
        where i.indisprimary and n.nspname = any($1)
        group by 1, 2`,
      [schemas],
    );
    const procs = await this.#pool.query<{
      schema: string;
      name: string;
      nargs: number;
      ndefaults: number;
      retset: boolean;
      volatile: string;
      typtype: string;
      is_record: boolean;
      is_void: boolean;
      argtypes: string[];
      argnames: string[] | null;
      argmodes: string[] | null;
    }>(
      `select n.nspname as schema, p.proname as name, p.pronargs::int as nargs, p.pronargdefaults::int as ndefaults,
              p.proretset as retset, p.provolatile::text as volatile, t.typtype::text as typtype,
              p.prorettype = 'pg_catalog.record'::regtype as is_record, p.prorettype = 'pg_catalog.void'::regtype as is_void,
              coalesce((select array_agg(format_type(x.oid, null) order by x.ord) from unnest(p.proargtypes::oid[]) with ordinality as x(oid, ord)), '{}') as argtypes,
              p.proargnames::text[] as argnames, p.proargmodes::text[] as argmodes
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_type t on t.oid = p.prorettype
        where p.prokind = 'f' and n.nspname = any($1)`,
      [schemas],
    );
    const tables = new Map<string, Table>();
    const pkOf = new Map(pks.rows.map((r) => [`${r.schema}.${r.table}`, r.columns]));
    for (const r of cols.rows) {
      const key = `${r.schema}.${r.table}`;
      let t = tables.get(key);
      if (!t) {
        t = { schema: r.schema, name: r.table, columns: new Map(), primaryKey: pkOf.get(key) ?? [] };
        tables.set(key, t);
      }
      (t.columns as Map<string, Column>).set(r.column, { name: r.column, type: r.type });
    }
    const routines = new Map<string, Routine[]>();
    for (const r of procs.rows) {
      // Input argument names: all names when there are no modes, else those of IN/INOUT/VARIADIC.
      const names = r.argmodes === null ? (r.argnames ?? []).slice(0, r.nargs) : (r.argnames ?? []).filter((_, i) => ['i', 'b', 'v'].includes(r.argmodes?.[i] ?? 'i'));
      const args = r.argtypes.map((type, i) => ({ name: names[i] ?? '', type, hasDefault: i >= r.nargs - r.ndefaults }));
      const hasOutArgs = r.argmodes !== null && r.argmodes.some((m) => m === 'o' || m === 't' || m === 'b');
      const returns: Routine['returns'] = r.is_void ? 'void' : r.typtype === 'c' || (r.is_record && hasOutArgs) ? 'composite' : 'scalar';
      const key = `${r.schema}.${r.name}`;
      routines.set(key, [...(routines.get(key) ?? []), { schema: r.schema, name: r.name, args, returnsSet: r.retset, returns, volatile: r.volatile === 'v' }]);
    }
    return { tables, routines };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let role: string | undefined;
    const send = (status: number, headers: Record<string, string>, body: string | null): void => {
      this.requests.push({ method, url: req.url ?? '/', role, status });
      res.writeHead(status, body === null ? headers : { 'Content-Type': JSON_TYPE, ...headers });
      res.end(body ?? undefined);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://double.invalid');
      const raw = await readBody(req);
      if (!url.pathname.startsWith('/rest/v1/')) {
        send(404, {}, JSON.stringify({ message: 'no Route matched with those values' }));
        return;
      }
      const apikey = req.headers['apikey'];
      if (typeof apikey !== 'string' || apikey === '') {
        send(401, {}, JSON.stringify({ message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.' }));
        return;
      }
      const auth = this.#auth(req, apikey);
      role = auth.role;
      const cache = await (this.#cache ?? this.#loadSchemaCache());
      const plan = this.#plan(method, url, req, raw, cache);
      const row = await this.#execute(auth, method, url.pathname, plan);
      const out = plan.respond(row);
      send(out.status, out.headers, out.body);
    } catch (err) {
      const e = this.#toRestError(err, role);
      send(e.status, e.headers, JSON.stringify({ code: e.code, details: e.details, hint: e.hint, message: e.message }));
    }
  }

  #toRestError(err: unknown, role: string | undefined): RestError {
    if (err instanceof RestError) return err;
    if (err instanceof pg.DatabaseError && typeof err.code === 'string') {
      const authed = role !== undefined && role !== this.#anonRole;
      const status = statusForSqlState(err.code, authed);
      return new RestError(status, err.code, err.message, {
        details: err.detail ?? null,
        hint: err.hint ?? null,
        headers: status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {},
      });
    }
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+/.test(code)) {
      return new RestError(503, 'PGRST000', 'Database connection error. Retrying the connection.', { details: String((err as Error).message) });
    }
    return new RestError(500, 'PGRST_DOUBLE', `postgrest double: ${(err as Error).message ?? String(err)}`);
  }

  #auth(req: IncomingMessage, apikey: string): Auth {
    const header = req.headers.authorization;
    const bearer = typeof header === 'string' && /^bearer /i.test(header) ? header.slice(7).trim() : undefined;
    const token = bearer ?? apikey;
    const claims = verifyJwt(token, this.#secret);
    const role = typeof claims['role'] === 'string' && claims['role'] !== '' ? claims['role'] : this.#anonRole;
    return { role, claims, authed: role !== this.#anonRole };
  }

  #schemaFor(req: IncomingMessage, method: string): string {
    const header = method === 'GET' || method === 'HEAD' ? req.headers['accept-profile'] : req.headers['content-profile'];
    const schema = typeof header === 'string' && header !== '' ? header : this.#schemas[0]!;
    if (!this.#schemas.includes(schema)) {
      throw new RestError(406, 'PGRST106', `The schema must be one of the following: ${this.#schemas.join(', ')}`, { details: null, hint: null });
    }
    return schema;
  }

  #plan(method: string, url: URL, req: IncomingMessage, raw: string, cache: SchemaCache): Plan {
    const schema = this.#schemaFor(req, method);
    const rest = url.pathname.slice('/rest/v1/'.length);
    const rpc = /^rpc\/([^/]+)$/.exec(rest);
    if (rpc) {
      if (method !== 'POST') {
        if (method === 'GET' || method === 'HEAD') throw unsupported('GET/HEAD calls of functions');
        throw new RestError(405, 'PGRST101', 'Only GET, HEAD or POST requests are allowed for functions');
      }
      return this.#planRpc(schema, decodeURIComponent(rpc[1]!), url, req, raw, cache);
    }
    if (!/^[^/]+$/.test(rest)) throw new RestError(404, 'PGRST125', 'Invalid path specified in request URL');
    const name = decodeURIComponent(rest);
    const table = cache.tables.get(`${schema}.${name}`);
    if (!table) {
      throw new RestError(404, 'PGRST205', `Could not find the table '${schema}.${name}' in the schema cache`, { hint: null });
    }
    const prefer = parsePrefer(req.headers['prefer']);
    switch (method) {
      case 'GET':
        return this.#planRead(table, url, prefer);
      case 'POST':
        return this.#planInsert(table, url, prefer, raw);
      case 'PATCH':
        return this.#planUpdate(table, url, prefer, raw);
      case 'DELETE':
        return this.#planDelete(table, url, prefer);
      default:
        throw unsupported(`the ${method} method`);
    }
  }

  /** `select=` → a column list (`*` or plain identifiers), table-qualified. */
  #selectList(table: Table, url: URL): string {
    const raw = url.searchParams.get('select') ?? '*';
    const items = raw.split(',').map((s) => s.trim());
    if (items.some((i) => i === '')) throw new RestError(400, 'PGRST100', `"failed to parse select parameter (${raw})"`, { details: 'unexpected empty item' });
    return items.map((i) => (i === '*' ? `${this.#qt(table)}.*` : `${this.#qt(table)}.${quoteIdent(checkIdent(i, 'select'))}`)).join(', ');
  }

  #qt(table: Table): string {
    return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
  }

  /** Horizontal filters: every query-string key that is not reserved. */
  #where(table: Table, url: URL, params: Params): string {
    const conds: string[] = [];
    for (const [key, value] of url.searchParams) {
      if (RESERVED.has(key)) continue;
      if (key === 'or' || key === 'and' || key === 'not.or' || key === 'not.and' || key.includes('.')) throw unsupported(`the query parameter "${key}" (logic trees, embedded filters)`);
      const col = `${this.#qt(table)}.${quoteIdent(checkIdent(key, 'a filter'))}`;
      let rest = value;
      let negate = false;
      if (rest.startsWith('not.')) {
        negate = true;
        rest = rest.slice(4);
      }
      const dot = rest.indexOf('.');
      const op = dot === -1 ? rest : rest.slice(0, dot);
      const operand = dot === -1 ? '' : rest.slice(dot + 1);
      let cond: string;
      if (op in SIMPLE_OPS && dot !== -1) {
        cond = `${col} ${SIMPLE_OPS[op]} ${params.add(operand)}`;
      } else if (op === 'in' && dot !== -1) {
        const items = parseInList(operand, `${key}=${value}`);
        cond = items.length === 0 ? `${col} = ANY('{}')` : `${col} = ANY (${params.add(arrayLiteral(items))})`;
      } else if (op === 'is' && dot !== -1) {
        const v = IS_VALUES[operand];
        if (v === undefined) throw new RestError(400, 'PGRST100', `"failed to parse filter (${value})"`, { details: 'unexpected value for is: expecting null, not_null, true, false or unknown' });
        cond = `${col} IS ${v}`;
      } else if (['like', 'ilike', 'match', 'imatch', 'fts', 'plfts', 'phfts', 'wfts', 'cs', 'cd', 'ov', 'sl', 'sr', 'nxr', 'nxl', 'adj', 'isdistinct'].includes(op)) {
        throw unsupported(`the filter operator "${op}"`);
      } else {
        throw new RestError(400, 'PGRST100', `"failed to parse filter (${value})" (line 1, column ${negate ? 5 : 1})`, { details: `unexpected "${op.charAt(0)}" expecting operator (eq, gt, ...)` });
      }
      conds.push(negate ? `NOT ${cond}` : cond);
    }
    return conds.length === 0 ? '' : ` WHERE ${conds.join(' AND ')}`;
  }

  #orderBy(table: Table, url: URL): string {
    const raw = url.searchParams.get('order');
    if (raw === null || raw === '') return '';
    const terms = raw.split(',').map((term) => {
      const [col, ...mods] = term.split('.');
      let dir = '';
      let nulls = '';
      for (const m of mods) {
        if (m === 'asc' || m === 'desc') dir = ` ${m.toUpperCase()}`;
        else if (m === 'nullsfirst') nulls = ' NULLS FIRST';
        else if (m === 'nullslast') nulls = ' NULLS LAST';
        else throw new RestError(400, 'PGRST100', `"failed to parse order (${raw})"`, { details: `unexpected "${m}" expecting "asc", "desc", "nullsfirst" or "nullslast"` });
      }
      return `${this.#qt(table)}.${quoteIdent(checkIdent(col ?? '', 'order'))}${dir}${nulls}`;
    });
    return ` ORDER BY ${terms.join(', ')}`;
  }

  #nonNegativeInt(url: URL, key: string): number | undefined {
    const raw = url.searchParams.get(key);
    if (raw === null) return undefined;
    if (!/^\d{1,15}$/.test(raw)) throw new RestError(400, 'PGRST100', `"failed to parse ${key} parameter (${raw})"`, { details: 'expecting a non-negative integer' });
    return Number(raw);
  }

  #planRead(table: Table, url: URL, prefer: Prefer): Plan {
    if (prefer.resolution) throw unsupported('Prefer: resolution on a read');
    const params = new Params();
    const where = this.#where(table, url, params);
    const limitAsked = this.#nonNegativeInt(url, 'limit');
    const offset = this.#nonNegativeInt(url, 'offset') ?? 0;
    const limit = this.#maxRows === null ? limitAsked : Math.min(limitAsked ?? this.#maxRows, this.#maxRows);
    const source = `SELECT ${this.#selectList(table, url)} FROM ${this.#qt(table)}${where}${this.#orderBy(table, url)}${limit === undefined ? '' : ` LIMIT ${limit}`}${offset ? ` OFFSET ${offset}` : ''}`;
    const total = prefer.count ? `(SELECT pg_catalog.count(*) FROM ${this.#qt(table)}${where})` : 'null';
    return {
      sql: `WITH pgrst_source AS (${source})
            SELECT ${total}::bigint AS total, pg_catalog.count(_postgrest_t)::bigint AS page_total,
                   coalesce(json_agg(_postgrest_t), '[]')::text AS body
              FROM (SELECT * FROM pgrst_source) _postgrest_t`,
      params: params.values,
      readOnly: true,
      respond: (row) => {
        const n = Number(row['page_total']);
        const totalN = row['total'] === null ? null : Number(row['total']);
        const range = n > 0 ? `${offset}-${offset + n - 1}` : '*';
        const status = totalN !== null && n < totalN && n > 0 ? 206 : 200;
        return { status, headers: { 'Content-Range': `${range}/${totalN ?? '*'}` }, body: String(row['body']) };
      },
    };
  }

  /** Columns of a write: the `columns` param (quoted or not) or the payload's keys, each known to the table. */
  #writeColumns(table: Table, url: URL, rows: readonly Record<string, unknown>[]): Column[] {
    const param = url.searchParams.get('columns');
    let names: string[];
    if (param !== null) {
      names = param.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
    } else {
      const first = Object.keys(rows[0] ?? {});
      for (const r of rows) {
        const keys = Object.keys(r);
        if (keys.length !== first.length || keys.some((k) => !first.includes(k))) {
          throw new RestError(400, 'PGRST102', 'All object keys must match', { details: null, hint: null });
        }
      }
      names = first;
    }
    return names.map((n) => {
      const col = table.columns.get(n);
      if (!col) throw new RestError(400, 'PGRST204', `Could not find the '${n}' column of '${table.name}' in the schema cache`);
      checkIdent(col.name, 'columns');
      return col;
    });
  }

  #payload(raw: string): unknown {
    if (raw.trim() === '') throw new RestError(400, 'PGRST102', 'Empty or invalid json');
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      throw new RestError(400, 'PGRST102', 'Empty or invalid json');
    }
  }

  /** Wraps a mutation: count of affected rows, and the rows as JSON when representation is asked. */
  #mutation(statement: string, params: Params, prefer: Prefer, status: (n: number) => number, extraHeaders: Record<string, string> = {}): Plan {
    return {
      sql: `WITH pgrst_source AS (${statement})
            SELECT pg_catalog.count(_postgrest_t)::bigint AS page_total,
                   ${prefer.representation ? `coalesce(json_agg(_postgrest_t), '[]')::text` : 'null::text'} AS body
              FROM (SELECT * FROM pgrst_source) _postgrest_t`,
      params: params.values,
      readOnly: false,
      respond: (row) => {
        const n = Number(row['page_total']);
        const headers = { 'Content-Range': `*/${prefer.count ? n : '*'}`, ...extraHeaders };
        return prefer.representation ? { status: status(n), headers, body: String(row['body']) } : { status: status(n), headers, body: null };
      },
    };
  }

  #returning(table: Table, url: URL, prefer: Prefer): string {
    return prefer.representation ? ` RETURNING ${this.#selectList(table, url)}` : ' RETURNING 1';
  }

  #planInsert(table: Table, url: URL, prefer: Prefer, raw: string): Plan {
    for (const key of url.searchParams.keys()) {
      if (key !== 'columns' && key !== 'on_conflict' && key !== 'select') throw unsupported(`the query parameter "${key}" on an insert`);
    }
    const body = this.#payload(raw);
    const rows = (Array.isArray(body) ? body : [body]) as unknown[];
    if (rows.some((r) => r === null || typeof r !== 'object' || Array.isArray(r))) throw new RestError(400, 'PGRST102', 'Empty or invalid json', { details: 'expected a JSON object or an array of objects' });
    const objects = rows as Record<string, unknown>[];
    const cols = this.#writeColumns(table, url, objects);
    if (cols.length === 0) throw unsupported('an insert without columns');
    const params = new Params();
    const names = cols.map((c) => quoteIdent(c.name)).join(', ');
    const defs = cols.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
    let conflict = '';
    const headers: Record<string, string> = {};
    if (prefer.resolution) {
      const onConflictRaw = url.searchParams.get('on_conflict');
      const target = onConflictRaw === null ? [...table.primaryKey] : onConflictRaw.split(',').map((c) => c.trim());
      if (target.length > 0) {
        for (const c of target) {
          if (!table.columns.has(c)) throw new RestError(400, '42703', `column "${c}" does not exist`);
          checkIdent(c, 'on_conflict');
        }
        const action =
          prefer.resolution === 'ignore-duplicates' ? 'DO NOTHING' : `DO UPDATE SET ${cols.map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`).join(', ')}`;
        conflict = ` ON CONFLICT (${target.map(quoteIdent).join(', ')}) ${action}`;
        headers['Preference-Applied'] = `resolution=${prefer.resolution}`;
      }
    }
    const statement = `INSERT INTO ${this.#qt(table)} (${names})
      SELECT ${names} FROM json_to_recordset(${params.add(JSON.stringify(objects))}::json) AS pgrst_body(${defs})${conflict}${this.#returning(table, url, prefer)}`;
    return this.#mutation(statement, params, prefer, () => 201, headers);
  }

  #planUpdate(table: Table, url: URL, prefer: Prefer, raw: string): Plan {
    for (const key of ['limit', 'offset', 'order', 'on_conflict']) if (url.searchParams.has(key)) throw unsupported(`"${key}" on an update (limited updates)`);
    const body = this.#payload(raw);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw unsupported('an update with a body that is not one JSON object');
    const obj = body as Record<string, unknown>;
    const cols = this.#writeColumns(table, url, [obj]);
    const params = new Params();
    if (cols.length === 0) {
      // PostgREST answers an empty patch without touching the table.
      return { sql: 'SELECT 0::bigint AS page_total, $1::text AS body', params: ['[]'], readOnly: true, respond: () => (prefer.representation ? { status: 200, headers: { 'Content-Range': '*/*' }, body: '[]' } : { status: 204, headers: { 'Content-Range': '*/*' }, body: null }) };
    }
    const defs = cols.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
    const payload = params.add(JSON.stringify(obj));
    const where = this.#where(table, url, params);
    const statement = `UPDATE ${this.#qt(table)} SET ${cols.map((c) => `${quoteIdent(c.name)} = pgrst_body.${quoteIdent(c.name)}`).join(', ')}
      FROM (SELECT * FROM json_to_record(${payload}::json) AS _(${defs})) pgrst_body${where}${this.#returning(table, url, prefer)}`;
    return this.#mutation(statement, params, prefer, () => (prefer.representation ? 200 : 204));
  }

  #planDelete(table: Table, url: URL, prefer: Prefer): Plan {
    for (const key of ['limit', 'offset', 'order', 'columns', 'on_conflict']) if (url.searchParams.has(key)) throw unsupported(`"${key}" on a delete`);
    const params = new Params();
    const where = this.#where(table, url, params);
    return this.#mutation(`DELETE FROM ${this.#qt(table)}${where}${this.#returning(table, url, prefer)}`, params, prefer, () => (prefer.representation ? 200 : 204));
  }

  #planRpc(schema: string, name: string, url: URL, req: IncomingMessage, raw: string, cache: SchemaCache): Plan {
    // limit/offset page a set-returning function's rows (supabase-js `.rpc(...).range()`); filters, select and order are not doubled.
    const pageKeys = new Set(['limit', 'offset']);
    const other = [...url.searchParams.keys()].filter((k) => !pageKeys.has(k));
    if (other.length > 0) throw unsupported('query parameters other than limit/offset (filters, select, order) on a function call');
    const pageParam = (key: string): number | undefined => {
      const v = url.searchParams.get(key);
      if (v === null) return undefined;
      if (!/^\d+$/.test(v)) throw new RestError(400, 'PGRST103', `"${key}" must be a non-negative integer, got "${v}"`);
      return Number(v);
    };
    const limit = pageParam('limit');
    const offset = pageParam('offset') ?? 0;
    const prefer = parsePrefer(req.headers['prefer']);
    if (prefer.resolution || prefer.count) throw unsupported('Prefer: resolution/count on a function call');
    const body = raw.trim() === '' ? {} : this.#payload(raw);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw unsupported('a function call whose body is not one JSON object');
    const args = body as Record<string, unknown>;
    const keys = Object.keys(args).sort();
    const qualified = `${schema}.${name}`;
    const candidates = (cache.routines.get(qualified) ?? []).filter((r) => {
      const argNames = new Set(r.args.map((a) => a.name));
      return keys.every((k) => argNames.has(k)) && r.args.every((a) => a.hasDefault || keys.includes(a.name));
    });
    if (candidates.length === 0) {
      const others = [...cache.routines.keys()].filter((k) => k.startsWith(`${schema}.`) && k !== qualified);
      const similar = others.find((k) => k.includes(name) || name.includes(k.slice(schema.length + 1)));
      throw new RestError(404, 'PGRST202', `Could not find the function ${qualified}(${keys.join(', ')}) in the schema cache`, {
        details: `Searched for the function ${qualified} with parameter${keys.length === 1 ? '' : 's'} ${keys.join(', ') || '(none)'} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.`,
        hint: similar ? `Perhaps you meant to call the function ${similar}` : null,
      });
    }
    if (candidates.length > 1) {
      throw new RestError(300, 'PGRST203', `Could not choose the best candidate function between: ${candidates.map((c) => `${qualified}(${c.args.map((a) => `${a.name} => ${a.type}`).join(', ')})`).join(', ')}`, {
        hint: 'Try renaming the parameters or the function itself in the database so function overloading can be resolved',
      });
    }
    const routine = candidates[0]!;
    checkIdent(routine.name, 'the function name');
    const used = routine.args.filter((a) => keys.includes(a.name));
    for (const a of used) checkIdent(a.name, 'a function argument');
    const params = new Params();
    const fn = `${quoteIdent(routine.schema)}.${quoteIdent(routine.name)}`;
    const callArgs = used.map((a) => `${quoteIdent(a.name)} := pgrst_args.${quoteIdent(a.name)}`).join(', ');
    const from =
      used.length === 0 ? '(SELECT 1) pgrst_args' : `json_to_record(${params.add(JSON.stringify(args))}::json) AS pgrst_args(${used.map((a) => `${quoteIdent(a.name)} ${a.type}`).join(', ')})`;
    let call: string;
    let bodyExpr: string;
    if (routine.returns === 'composite') {
      call = `SELECT pgrst_call.* FROM ${from}, LATERAL ${fn}(${callArgs}) pgrst_call`;
      bodyExpr = routine.returnsSet ? `coalesce(json_agg(_postgrest_t), '[]')` : `coalesce(json_agg(_postgrest_t)->0, 'null')`;
    } else if (routine.returnsSet) {
      call = `SELECT pgrst_call.pgrst_scalar FROM ${from}, LATERAL ${fn}(${callArgs}) pgrst_call(pgrst_scalar)`;
      bodyExpr = `coalesce(json_agg(_postgrest_t.pgrst_scalar), '[]')`;
    } else {
      call = `SELECT ${fn}(${callArgs}) AS pgrst_scalar FROM ${from}`;
      bodyExpr = routine.returns === 'void' ? `'null'::json` : `coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')`;
    }
    if (!routine.returnsSet && (limit !== undefined || offset > 0)) throw unsupported('limit/offset on a function that returns one value');
    const rowCap = [limit, this.#maxRows ?? undefined].filter((x): x is number => x !== undefined);
    const cap = routine.returnsSet ? `${rowCap.length > 0 ? ` LIMIT ${Math.min(...rowCap)}` : ''}${offset > 0 ? ` OFFSET ${offset}` : ''}` : '';
    return {
      sql: `WITH pgrst_source AS (${call})
            SELECT pg_catalog.count(_postgrest_t)::bigint AS page_total, ${bodyExpr}::text AS body
              FROM (SELECT * FROM pgrst_source${cap}) _postgrest_t`,
      params: params.values,
      readOnly: !routine.volatile,
      respond: (row): Answer => {
        if (routine.returns === 'void') return { status: 204, headers: {}, body: null };
        const n = Number(row['page_total']);
        return { status: 200, headers: { 'Content-Range': n > 0 ? `${offset}-${offset + n - 1}/*` : '*/*' }, body: String(row['body']) };
      },
    };
  }

  async #execute(auth: Auth, method: string, path: string, plan: Plan): Promise<Record<string, unknown>> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query(plan.readOnly ? 'BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY' : 'BEGIN ISOLATION LEVEL READ COMMITTED');
      try {
        await client.query(
          `SELECT set_config('search_path', $1, true), set_config('role', $2, true), set_config('request.jwt.claims', $3, true),
                  set_config('request.method', $4, true), set_config('request.path', $5, true)`,
          [this.#schemas.map(quoteIdent).join(', '), auth.role, JSON.stringify(auth.claims), method, path],
        );
        const { rows } = await client.query<Record<string, unknown>>(plan.sql, [...plan.params]);
        await client.query('COMMIT');
        return rows[0] ?? {};
      } catch (err) {
        await client.query('ROLLBACK').catch((e: unknown) => {
          broken = e instanceof Error ? e : new Error(String(e));
        });
        throw err;
      }
    } finally {
      client.release(broken);
    }
  }
}
