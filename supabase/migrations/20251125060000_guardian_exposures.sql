-- guardian_exposures: what the builtin metric source counts (DESIGN.md §6, "Builtin"): the
-- exposures and errors the SDK reports to the guardian itself (POST /v1/exposures), for setups
-- with neither Sentry nor PostHog. One row per (flag, cohort, user); several guardian replicas
-- share it, so counts live here, not in a process. No raw user id is stored: user_key is the hex
-- SHA-256 of the id, computed by the guardian before the row is written.

-- One row per flag, cohort (the value the user got: true = flag on) and user.
create table public.guardian_exposures (
  flag_name text not null,
  cohort boolean not null,
  user_key text not null,
  first_seen timestamptz not null,
  last_seen timestamptz not null,
  last_error_at timestamptz null,
  constraint guardian_exposures_pkey primary key (flag_name, cohort, user_key),
  constraint guardian_exposures_flag_name_format check (flag_name ~ '^[a-z][a-z0-9_]{1,63}$'),
  constraint guardian_exposures_user_key_sha256 check (user_key ~ '^[0-9a-f]{64}$'),
  constraint guardian_exposures_seen_order check (last_seen >= first_seen)
);

comment on table public.guardian_exposures is
  'Builtin metric source: per flag, cohort (flag value) and user (SHA-256 of the id), when the user was first and last exposed and last hit an error.';
comment on column public.guardian_exposures.user_key is 'Hex SHA-256 of the user id (the raw id is never stored).';
comment on column public.guardian_exposures.last_error_at is 'Latest reported error of this user while exposed to this flag value; null when none.';

-- Serves "users of flag F per cohort with last_seen >= since" (and their errors) as an index-only range scan.
create index guardian_exposures_flag_last_seen_idx
  on public.guardian_exposures (flag_name, last_seen) include (cohort, last_error_at);

-- Supabase's default privileges grant new public tables to the API roles: take them back first.
revoke all on table public.guardian_exposures from public, anon, authenticated, service_role;

-- RLS on every table; only the guardian (service_role) reads and writes exposures.
alter table public.guardian_exposures enable row level security;

-- service_role: read, write and prune (it has BYPASSRLS on Supabase; the policy keeps it working where it does not).
grant select, insert, update, delete on table public.guardian_exposures to service_role;

-- The one policy: service_role only; anon and authenticated have neither rights nor a policy.
create policy guardian_exposures_service_role on public.guardian_exposures for all to service_role using (true) with check (true);

-- p_batch: [{ "flag": text, "cohort": boolean, "user_key": text, "at": timestamptz, "error": boolean }, ...].
-- Upserts the batch in one statement (all or nothing): first_seen kept, last_seen = the greatest,
-- last_error_at = the greatest error time (items with "error": true). Items repeating a
-- (flag, cohort, user_key) are merged first. Returns the number of rows inserted or updated.
create or replace function public.guardian_record_exposures(p_batch jsonb)
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_rows integer;
begin
  if p_batch is null or jsonb_typeof(p_batch) <> 'array' then
    raise exception 'guardian_record_exposures: p_batch must be a JSON array, got %', coalesce(jsonb_typeof(p_batch), 'null') using errcode = '22023';
  end if;
  with items as (
    select x.flag, x.cohort, x.user_key, coalesce(x.at, now()) as at, coalesce(x.error, false) as error
      from jsonb_to_recordset(p_batch) as x(flag text, cohort boolean, user_key text, at timestamptz, error boolean)
  ), merged as (
    select i.flag, i.cohort, i.user_key, min(i.at) as first_at, max(i.at) as last_at, max(i.at) filter (where i.error) as error_at
      from items i
     group by i.flag, i.cohort, i.user_key
  ), written as (
    insert into public.guardian_exposures as e (flag_name, cohort, user_key, first_seen, last_seen, last_error_at)
    select m.flag, m.cohort, m.user_key, m.first_at, m.last_at, m.error_at
      from merged m
    on conflict (flag_name, cohort, user_key) do update
      set last_seen = greatest(e.last_seen, excluded.last_seen),
          last_error_at = greatest(e.last_error_at, excluded.last_error_at)
    returning 1
  )
  select count(*)::integer into v_rows from written;
  return v_rows;
end
$$;

comment on function public.guardian_record_exposures(jsonb) is
  'Builtin source: upserts a batch of exposures atomically (first_seen kept, last_seen and last_error_at the greatest); returns the rows touched.';

-- p_queries: [{ "flag": text, "since": timestamptz, "exclude": [user_key, ...] }, ...] ("exclude"
-- optional). Returns per flag and cohort: users with last_seen >= since, and of those the users
-- with last_error_at >= since, leaving out the "exclude" keys: the flag's target list, users who
-- get it because they were picked (staff, testers), not by the rollout percentage, whom a relative
-- rule must not compare with randomised flag-off users. A repeated flag counts once, from its
-- earliest since, leaving out every key given for it. A flag and cohort nobody was exposed to has
-- no row.
create or replace function public.guardian_exposure_counts(p_queries jsonb)
returns table (flag_name text, cohort boolean, users bigint, error_users bigint)
language sql
stable
set search_path = public, pg_temp
as $$
  with raw as (
    select x.flag, x.since, x.exclude
      from jsonb_to_recordset(coalesce(p_queries, '[]'::jsonb)) as x(flag text, since timestamptz, exclude jsonb)
     where x.flag is not null and x.since is not null
  ), q as (
    select r.flag, min(r.since) as since,
           coalesce(array_agg(distinct k.key) filter (where k.key is not null), '{}'::text[]) as exclude
      from raw r
      left join lateral jsonb_array_elements_text(case when jsonb_typeof(r.exclude) = 'array' then r.exclude else '[]'::jsonb end) as k(key) on true
     group by r.flag
  )
  select q.flag, e.cohort, count(*)::bigint, (count(*) filter (where e.last_error_at >= q.since))::bigint
    from q
    join public.guardian_exposures e
      on e.flag_name = q.flag and e.last_seen >= q.since and e.user_key <> all (q.exclude)
   group by q.flag, e.cohort
   order by q.flag, e.cohort
$$;

comment on function public.guardian_exposure_counts(jsonb) is
  'Builtin source: per flag and cohort, the users exposed since the given time and those of them with an error since then, leaving out the given user keys (the target list).';

-- Only the guardian (service_role) records and counts exposures.
revoke all on function public.guardian_record_exposures(jsonb) from public, anon, authenticated;
grant execute on function public.guardian_record_exposures(jsonb) to service_role;
revoke all on function public.guardian_exposure_counts(jsonb) from public, anon, authenticated;
grant execute on function public.guardian_exposure_counts(jsonb) to service_role;
