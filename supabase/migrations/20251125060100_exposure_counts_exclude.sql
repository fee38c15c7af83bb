-- guardian_exposure_counts leaves out a flag's target-list users. They get the flag because they
-- were picked (staff, testers), not by the rollout percentage, so a relative rule comparing them
-- with randomised flag-off users would compare groups that differ for reasons other than the flag.
-- The SDK's reporter does not send them; this also covers exposures sent by hand.
--
-- p_queries: [{ "flag": text, "since": timestamptz, "exclude": [user_key, ...] }, ...]
-- ("exclude" optional: hex SHA-256 keys as in guardian_exposures.user_key). A repeated flag counts
-- once, from its earliest since, leaving out every key given for it.
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

revoke all on function public.guardian_exposure_counts(jsonb) from public, anon, authenticated;
grant execute on function public.guardian_exposure_counts(jsonb) to service_role;
