/**
 * The PostgREST protocol double itself (test/helpers/postgrest-double.ts), checked on a real
 * PostgreSQL against what PostgREST documents: the SQLSTATE → HTTP status table, the error body,
 * JWT refusals, RPC body shapes per return type, read/write preferences and headers, Supabase's
 * row cap, and that nothing in a request reaches SQL except as a quoted identifier or a parameter.
 */
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { PostgrestDouble, signJwt, statusForSqlState, supabaseKey } from '../../test/helpers/postgrest-double.ts';

const client = (url: string, key: string): SupabaseClient => createClient(url, key, { auth: { persistSession: false, autoRefreshToken: false }, db: { retry: false } });

describe('PostgREST protocol double', () => {
  let db: TestDatabase;
  let rest: PostgrestDouble;
  let service: SupabaseClient;
  const key = supabaseKey('service_role');

  const raw = (path: string, init: RequestInit & { token?: string | null } = {}): Promise<Response> => {
    const token = init.token === undefined ? key : init.token;
    const headers = new Headers(init.headers);
    if (token !== null) {
      headers.set('apikey', token);
      headers.set('Authorization', `Bearer ${token}`);
    }
    return fetch(`${rest.url}${path}`, { ...init, headers });
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.exec(`
      create function public.rg_add(a integer, b integer default 1) returns integer language sql immutable as 'select a + b';
      create function public.rg_json() returns jsonb language sql stable as $$ select '{"x": [1, 2]}'::jsonb $$;
      create function public.rg_ints(n integer) returns setof integer language sql stable as 'select generate_series(1, n)';
      create function public.rg_flag(p_name text) returns public.feature_flags language sql stable as 'select * from public.feature_flags where name = p_name';
      create function public.rg_table() returns table (k text, v bigint) language sql stable as $$ values ('a', 1::bigint), ('b', 2) $$;
      create function public.rg_void() returns void language sql volatile as 'select 1';
      create function public.rg_raise() returns void language plpgsql as $$ begin raise exception 'I refuse!' using detail = 'Pretty simple', hint = 'There is nothing you can do.'; end $$;
      create function public.rg_whoami() returns jsonb language sql stable as $$ select jsonb_build_object('role', current_user, 'claims', auth.jwt(), 'method', current_setting('request.method', true)) $$;
      create function public.rg_write() returns integer language plpgsql volatile as $$ begin insert into public.guardian_leases values ('x', 'y', now(), now()); return 1; end $$;
      create function public.rg_write_in_stable() returns integer language plpgsql stable as $$ begin return public.rg_write(); end $$;
      create function public.rg_private() returns integer language sql as 'select 1';
      revoke all on function public.rg_private() from public, anon, authenticated, service_role;
      grant execute on function public.rg_add(integer, integer), public.rg_json(), public.rg_ints(integer), public.rg_flag(text), public.rg_table(),
        public.rg_void(), public.rg_raise(), public.rg_whoami(), public.rg_write(), public.rg_write_in_stable() to anon, authenticated, service_role;
    `);
    rest = await PostgrestDouble.start({ databaseUrl: db.url, maxRows: 5 });
    service = client(rest.url, key);
  });
  afterAll(async () => {
    await rest?.stop();
    await db?.drop();
  });

  it('maps SQLSTATEs to HTTP statuses as PostgREST documents', () => {
    const table: [string, boolean, number][] = [
      ['08006', true, 503], ['09000', true, 500], ['0L000', true, 403], ['0P000', true, 403], ['23503', true, 409], ['23505', true, 409],
      ['25006', true, 405], ['25001', true, 500], ['28P01', true, 403], ['2D000', true, 500], ['38000', true, 500], ['39000', true, 500],
      ['3B000', true, 500], ['40001', true, 500], ['40P01', true, 500], ['53400', true, 500], ['53100', true, 503], ['54000', true, 500],
      ['55000', true, 500], ['57014', true, 500], ['58000', true, 500], ['F0000', true, 500], ['HV000', true, 500], ['P0001', true, 400],
      ['P0002', true, 500], ['XX000', true, 500], ['42883', true, 404], ['42P01', true, 404], ['42P17', true, 500], ['42501', true, 403],
      ['42501', false, 401], ['PT402', true, 402], ['23514', true, 400], ['22P02', true, 400], ['22023', true, 400], ['23502', true, 400],
    ];
    for (const [code, authed, status] of table) expect([code, authed, statusForSqlState(code, authed)]).toEqual([code, authed, status]);
  });

  it('refuses requests without an apikey, with a forged, expired or malformed JWT', async () => {
    const none = await raw('/rest/v1/feature_flags', { token: null });
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.' });
    const forged = await raw('/rest/v1/feature_flags', { token: signJwt({ role: 'service_role' }, 'some-other-secret-0123456789abcdefghij') });
    expect(forged.status).toBe(401);
    expect(forged.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
    expect(await forged.json()).toEqual({ code: 'PGRST301', details: null, hint: null, message: 'JWSError JWSInvalidSignature' });
    const expired = await raw('/rest/v1/feature_flags', { token: supabaseKey('service_role', { expiresInSeconds: -120 }) });
    expect(await expired.json()).toMatchObject({ code: 'PGRST301', message: 'JWT expired' });
    const none256 = await raw('/rest/v1/feature_flags', { token: signJwt({ role: 'service_role' }, undefined, { alg: 'none' }) });
    expect(none256.status).toBe(401);
    const garbage = await raw('/rest/v1/feature_flags', { token: 'not-a-jwt' });
    expect(await garbage.json()).toMatchObject({ code: 'PGRST301', message: 'Expected 3 parts in JWT; got 1' });
    expect((await raw('/auth/v1/user')).status).toBe(404);
  });

  it('runs as the JWT’s role with request.jwt.claims set; no role claim means anon; a stable function runs read-only', async () => {
    const user = client(rest.url, signJwt({ role: 'authenticated', sub: '11111111-2222-4333-8444-555555555555', exp: Math.floor(Date.now() / 1000) + 60 }));
    const who = await user.rpc('rg_whoami');
    expect(who.data).toMatchObject({ role: 'authenticated', method: 'POST', claims: { role: 'authenticated', sub: '11111111-2222-4333-8444-555555555555' } });
    const nobody = await client(rest.url, signJwt({ iss: 'x', exp: Math.floor(Date.now() / 1000) + 60 })).rpc('rg_whoami');
    expect(nobody.data).toMatchObject({ role: 'anon' });
    const ro = await service.rpc('rg_write_in_stable');
    expect(ro.status).toBe(405);
    expect(ro.error?.code).toBe('25006');
    expect(await service.rpc('rg_write')).toMatchObject({ status: 200, data: 1 });
  });

  it('answers function calls the way PostgREST shapes them per return type', async () => {
    expect(await service.rpc('rg_add', { a: 2, b: 3 })).toMatchObject({ status: 200, data: 5 });
    expect((await service.rpc('rg_add', { a: '40' })).data).toBe(41);
    expect((await service.rpc('rg_json')).data).toEqual({ x: [1, 2] });
    expect((await service.rpc('rg_ints', { n: 3 })).data).toEqual([1, 2, 3]);
    expect((await service.rpc('rg_ints', { n: 50 })).data).toHaveLength(5); // max rows
    expect((await service.rpc('rg_flag', { p_name: 'ai_ga_enabled' })).data).toMatchObject({ name: 'ai_ga_enabled', rollout_percentage: 100, enabled: true });
    expect((await service.rpc('rg_flag', { p_name: 'nope' })).data).toMatchObject({ name: null });
    expect((await service.rpc('rg_table')).data).toEqual([
      { k: 'a', v: 1 },
      { k: 'b', v: 2 },
    ]);
    expect(await service.rpc('rg_void')).toMatchObject({ status: 204, data: null, error: null });
    const raised = await service.rpc('rg_raise');
    expect(raised.status).toBe(400);
    expect(raised.error).toEqual({ code: 'P0001', message: 'I refuse!', details: 'Pretty simple', hint: 'There is nothing you can do.' });
    const missing = await service.rpc('rg_add', { a: 1, c: 2 });
    expect(missing.status).toBe(404);
    expect(missing.error).toMatchObject({ code: 'PGRST202', message: 'Could not find the function public.rg_add(a, c) in the schema cache' });
    expect((await service.rpc('rg_add', {})).error?.code).toBe('PGRST202');
    const bad = await service.rpc('rg_add', { a: 'x' });
    expect(bad).toMatchObject({ status: 400, error: { code: '22P02' } });
    const denied = await service.rpc('rg_private');
    expect(denied).toMatchObject({ status: 403, error: { code: '42501', message: 'permission denied for function rg_private' } });
    expect((await client(rest.url, supabaseKey('anon')).rpc('rg_private')).status).toBe(401);
  });

  it('reads with filters, order, limit/offset, count and Supabase’s row cap', async () => {
    const all = await service.from('feature_flags').select('name', { count: 'exact' }).order('name');
    expect(all.status).toBe(206);
    expect(all.count).toBe(7);
    expect(all.data).toHaveLength(5);
    const page = await raw('/rest/v1/feature_flags?select=name&order=name.desc&limit=2&offset=1', { headers: { Prefer: 'count=exact' } });
    expect(page.headers.get('content-range')).toBe('1-2/7');
    expect(await page.json()).toEqual([{ name: 'insights_agent_enabled' }, { name: 'followup_agent_enabled' }]);
    const some = await service.from('feature_flags').select('name,bucket_group').in('name', ['ai_alpha_users', 'booking_agent_enabled', 'a,b(c)', 'x y']).order('name');
    expect(some.data).toEqual([
      { name: 'ai_alpha_users', bucket_group: 'ai_rollout' },
      { name: 'booking_agent_enabled', bucket_group: null },
    ]);
    expect((await service.from('feature_flags').select('name').is('bucket_group', null).gte('rollout_percentage', 25).order('name')).data).toEqual([
      { name: 'booking_agent_enabled' },
      { name: 'insights_agent_enabled' },
    ]);
    expect((await service.from('feature_flags').select('name').not('name', 'lt', 'f').lte('rollout_percentage', 25).order('name')).data).toEqual([
      { name: 'followup_agent_enabled' },
      { name: 'session_agent_enabled' },
    ]);
    expect((await service.from('feature_flags').select('name').in('name', [])).data).toEqual([]);
    const typed = await service.from('rollback_events').select('id').eq('id', 'abc');
    expect(typed).toMatchObject({ status: 400, error: { code: '22P02' } });
    const noTable = await service.from('no_such_table').select('*');
    expect(noTable).toMatchObject({ status: 404, error: { code: 'PGRST205', message: "Could not find the table 'public.no_such_table' in the schema cache" } });
    const badCol = await service.from('feature_flags').select('nope');
    expect(badCol).toMatchObject({ status: 400, error: { code: '42703' } });
    const badOp = await raw('/rest/v1/feature_flags?name=foo.bar');
    expect(badOp.status).toBe(400);
    expect(((await badOp.json()) as { code: string }).code).toBe('PGRST100');
    const embed = await service.from('feature_flags').select('name,flag_targets(user_id)');
    expect(embed).toMatchObject({ status: 501, error: { code: 'PGRST_DOUBLE' } });
    const profile = await raw('/rest/v1/feature_flags', { headers: { 'Accept-Profile': 'auth' } });
    expect(profile.status).toBe(406);
    expect(((await profile.json()) as { code: string }).code).toBe('PGRST106');
  });

  it('writes: insert (minimal / representation), conflicts, checks, upsert, update, delete with count', async () => {
    const ins = await service.from('guardian_rule_state').insert([{ rule_id: 'r', flag_name: 'a', consecutive_breaches: 1 }, { rule_id: 'r', flag_name: 'b', consecutive_breaches: 0 }]);
    expect(ins).toMatchObject({ status: 201, data: null, error: null });
    // A key missing from one object of an array is NULL, not the column default (no Prefer: missing=default).
    const missingKey = await service.from('guardian_rule_state').insert([{ rule_id: 'r', flag_name: 'm', consecutive_breaches: 0 }, { rule_id: 'r', flag_name: 'n' }]);
    expect(missingKey).toMatchObject({ status: 400, error: { code: '23502' } });
    const dup = await service.from('guardian_rule_state').insert({ rule_id: 'r', flag_name: 'a' });
    expect(dup).toMatchObject({ status: 409, error: { code: '23505', details: 'Key (rule_id, flag_name)=(r, a) already exists.' } });
    const check = await service.from('guardian_rule_state').insert({ rule_id: 'r', flag_name: 'c', consecutive_breaches: -1 });
    expect(check).toMatchObject({ status: 400, error: { code: '23514' } });
    const notNull = await service.from('guardian_rule_state').insert({ rule_id: 'r', flag_name: null });
    expect(notNull).toMatchObject({ status: 400, error: { code: '23502' } });
    const noCol = await service.from('guardian_rule_state').insert({ rule_id: 'r', nope: 1 });
    expect(noCol).toMatchObject({ status: 400, error: { code: 'PGRST204', message: "Could not find the 'nope' column of 'guardian_rule_state' in the schema cache" } });
    // One object: its own keys are the columns, so the others keep their defaults.
    const rep = await service.from('guardian_rule_state').insert({ rule_id: 'r', flag_name: 'c', last_evidence: { a: [1] } }).select('rule_id,flag_name,last_evidence,consecutive_breaches');
    expect(rep).toMatchObject({ status: 201, data: [{ rule_id: 'r', flag_name: 'c', last_evidence: { a: [1] }, consecutive_breaches: 0 }] });
    const up = await service.from('guardian_rule_state').upsert([{ rule_id: 'r', flag_name: 'a', consecutive_breaches: 7 }, { rule_id: 'r', flag_name: 'd', consecutive_breaches: 1 }], { onConflict: 'rule_id,flag_name' }).select('flag_name,consecutive_breaches');
    expect(up.status).toBe(201);
    expect(up.data).toEqual([
      { flag_name: 'a', consecutive_breaches: 7 },
      { flag_name: 'd', consecutive_breaches: 1 },
    ]);
    const ignore = await service.from('guardian_rule_state').upsert({ rule_id: 'r', flag_name: 'a', consecutive_breaches: 99 }, { ignoreDuplicates: true }).select('flag_name');
    expect(ignore.data).toEqual([]);
    const patch = await service.from('guardian_rule_state').update({ last_verdict: 'breach' }, { count: 'exact' }).eq('rule_id', 'r').in('flag_name', ['a', 'b']);
    expect(patch).toMatchObject({ status: 204, count: 2, error: null });
    const patched = await service.from('guardian_rule_state').update({ last_verdict: 'ok' }).eq('flag_name', 'c').select('flag_name,last_verdict');
    expect(patched).toMatchObject({ status: 200, data: [{ flag_name: 'c', last_verdict: 'ok' }] });
    const del = await service.from('guardian_rule_state').delete({ count: 'exact' }).eq('rule_id', 'r').neq('flag_name', 'd');
    expect(del).toMatchObject({ status: 204, count: 3, error: null });
    const delRaw = await raw('/rest/v1/guardian_rule_state?rule_id=eq.r', { method: 'DELETE', headers: { Prefer: 'count=exact' } });
    expect(delRaw.status).toBe(204);
    expect(delRaw.headers.get('content-range')).toBe('*/1');
    // The service role has no DELETE right on the append-only log: 42501, and 403 since it is not anon.
    const appendOnly = await service.from('rollback_events').delete().eq('id', 1);
    expect(appendOnly).toMatchObject({ status: 403, error: { code: '42501', message: 'permission denied for table rollback_events' } });
    const badJson = await raw('/rest/v1/guardian_rule_state', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{nope' });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { code: string }).code).toBe('PGRST102');
  });

  it('nothing in a request reaches SQL except as a quoted identifier or a parameter', async () => {
    const attempts = [
      '/rest/v1/feature_flags?select=name;drop%20table%20public.flag_targets',
      '/rest/v1/feature_flags?select=name%22%20from%20public.flag_targets--',
      '/rest/v1/feature_flags?order=name;drop%20table%20public.flag_targets',
      '/rest/v1/feature_flags?order=name.asc%3Bdelete',
      '/rest/v1/feature_flags?name%3Bdrop%20table%20public.flag_targets=eq.x',
      '/rest/v1/feature_flags?name=eq.x%27%3B%20drop%20table%20public.flag_targets%3B--',
      "/rest/v1/feature_flags?name=in.(x')%3Bdrop%20table%20public.flag_targets%3B--)",
      '/rest/v1/feature_flags?name=is.null%3Bdrop',
      '/rest/v1/feature_flags%3Bdrop%20table%20public.flag_targets',
      '/rest/v1/feature_flags?limit=1%3Bdrop',
      '/rest/v1/rpc/rg_add%3Bdrop',
    ];
    for (const path of attempts) {
      const res = await raw(path);
      expect([200, 400, 404, 405, 501], path).toContain(res.status);
      if (res.status === 200) expect(await res.json(), path).toEqual([]);
    }
    const inject = await service.rpc('rg_add', { 'a := 1) ; drop table public.flag_targets; --': 1 });
    expect(inject.error?.code).toBe('PGRST202');
    const upsertInject = await raw('/rest/v1/guardian_rule_state?on_conflict=rule_id)%20do%20nothing%3Bdrop%20table%20public.flag_targets--', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Prefer: 'resolution=merge-duplicates' },
      body: JSON.stringify({ rule_id: 'z', flag_name: 'z' }),
    });
    expect(upsertInject.status).toBe(400);
    const { rows } = await db.sql.query<{ n: number }>('select count(*)::int as n from public.flag_targets');
    expect(rows[0]!.n).toBe(3);
  });
});
