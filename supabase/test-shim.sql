-- Test shim: what a Supabase project already has, created only where it is missing, so the
-- migrations run unchanged on plain PostgreSQL 15+ and on PGlite. Never apply it to Supabase
-- itself (harmless there, everything exists already). Idempotent: safe to run again.

-- The three API roles of Supabase. NOLOGIN: PostgREST switches into them with SET ROLE.
-- service_role bypasses RLS, as on Supabase.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$$;

-- The auth schema with the two helpers policies and functions call.
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

-- auth.jwt(): the request's JWT claims, as PostgREST sets them (one GUC holding JSON).
do $$
begin
  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
      as $fn$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $fn$;
  end if;
end
$$;

-- auth.uid(): the caller's user id (the JWT `sub`), null when anonymous.
do $$
begin
  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
      as $fn$
        select nullif(
          coalesce(
            nullif(current_setting('request.jwt.claim.sub', true), ''),
            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
          ),
          ''
        )::uuid
      $fn$;
  end if;
end
$$;

grant execute on function auth.uid() to anon, authenticated, service_role;
grant execute on function auth.jwt() to anon, authenticated, service_role;

-- The publication Supabase Realtime reads row changes from.
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

-- The API roles reach the public schema (Supabase grants this too; table rights come from
-- the migrations).
grant usage on schema public to anon, authenticated, service_role;
