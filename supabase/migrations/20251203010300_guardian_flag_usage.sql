-- guardian_flag_usage: the admin API's usage analytics for one flag over [p_since, p_until) in
-- buckets of a minute, an hour or a day, as one JSON document:
--   series:  per bucket and cohort (flag on / off), the users exposed in it (first seen before its
--            end and last seen at or after its start: guardian_exposures keeps one span per user,
--            so a user counts in every bucket their span overlaps) and those whose latest error fell in it;
--   judged:  the counts the guardian stored per poll (guardian_observations), oldest first;
--   changes: when the flag's enabled/percentage changed, by whom, and whether a rollback,
--            restore or promote event did it (its flag_changes row shares the event's transaction time).
-- At most 5000 buckets (22023 otherwise).

-- One flag's usage, judged counts and rollout changes over a time range.
create or replace function public.guardian_flag_usage(p_flag text, p_bucket text, p_since timestamptz, p_until timestamptz)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_step interval;
  v_start timestamptz;
  v_series jsonb;
  v_judged jsonb;
  v_changes jsonb;
begin
  if p_bucket not in ('minute', 'hour', 'day') then
    raise exception 'guardian_flag_usage: bucket must be minute, hour or day, got %', p_bucket using errcode = '22023';
  end if;
  if p_since is null or p_until is null or p_until <= p_since then
    raise exception 'guardian_flag_usage: since must be before until' using errcode = '22023';
  end if;
  v_step := ('1 ' || p_bucket)::interval;
  v_start := date_trunc(p_bucket, p_since);
  if (extract(epoch from (p_until - v_start)) / extract(epoch from v_step)) > 5000 then
    raise exception 'guardian_flag_usage: more than 5000 % buckets between % and %; use a larger bucket or a shorter range', p_bucket, p_since, p_until
      using errcode = '22023';
  end if;
  if not exists (select 1 from public.feature_flags where name = p_flag)
     and not exists (select 1 from public.flag_changes where flag_name = p_flag) then
    raise exception 'guardian_flag_usage: flag "%" does not exist', p_flag using errcode = 'P0002';
  end if;

  select coalesce(jsonb_agg(jsonb_build_object(
           't', b.t,
           'on', jsonb_build_object('users', b.on_users, 'errorUsers', b.on_errors),
           'off', jsonb_build_object('users', b.off_users, 'errorUsers', b.off_errors)) order by b.t), '[]'::jsonb)
    into v_series
    from (
      select g.t,
             count(*) filter (where e.cohort and e.first_seen < g.t + v_step and e.last_seen >= g.t) as on_users,
             count(*) filter (where e.cohort and e.last_error_at >= g.t and e.last_error_at < g.t + v_step) as on_errors,
             count(*) filter (where not e.cohort and e.first_seen < g.t + v_step and e.last_seen >= g.t) as off_users,
             count(*) filter (where not e.cohort and e.last_error_at >= g.t and e.last_error_at < g.t + v_step) as off_errors
        from generate_series(v_start, p_until - interval '1 microsecond', v_step) as g(t)
        left join public.guardian_exposures e
          on e.flag_name = p_flag and e.last_seen >= g.t and e.first_seen < g.t + v_step
       group by g.t
    ) b;

  select coalesce(jsonb_agg(jsonb_build_object(
           't', o.at, 'source', o.source, 'unit', o.unit, 'stageStartedAt', o.stage_started_at, 'since', coalesce(o.since, o.stage_started_at),
           'treatment', jsonb_build_object('errors', o.treatment_errors, 'total', o.treatment_total, 'unit', o.unit),
           'control', case when o.control_total is null then null
                           else jsonb_build_object('errors', o.control_errors, 'total', o.control_total, 'unit', o.unit) end)
           order by o.at, o.id), '[]'::jsonb)
    into v_judged
    from public.guardian_observations o
   where o.flag_name = p_flag and o.at >= p_since and o.at < p_until;

  select coalesce(jsonb_agg(jsonb_build_object(
           'at', c.at, 'kind', coalesce(ev.kind, 'change'), 'enabled', (c.new_row ->> 'enabled')::boolean,
           'rolloutPercentage', (c.new_row ->> 'rollout_percentage')::integer, 'actor', c.actor,
           'eventId', ev.id::text) order by c.at, c.id), '[]'::jsonb)
    into v_changes
    from public.flag_changes c
    left join lateral (
      select r.id, r.kind from public.rollback_events r
       where r.flag_name = c.flag_name and r.created_at = c.at and r.kind <> 'dry_run'
       order by r.id desc limit 1
    ) ev on true
   where c.flag_name = p_flag and c.at >= p_since and c.at < p_until
     and (c.op = 'insert'
          or (c.op = 'update' and ((c.new_row -> 'enabled') is distinct from (c.old_row -> 'enabled')
                                   or (c.new_row -> 'rollout_percentage') is distinct from (c.old_row -> 'rollout_percentage'))));

  return jsonb_build_object('series', v_series, 'judged', v_judged, 'changes', v_changes);
end
$$;

comment on function public.guardian_flag_usage(text, text, timestamptz, timestamptz) is
  'Admin API usage analytics of one flag: exposures per bucket and cohort, judged counts, rollout changes.';

-- Only the service role (the guardian) reads it.
revoke all on function public.guardian_flag_usage(text, text, timestamptz, timestamptz) from public, anon, authenticated;
grant execute on function public.guardian_flag_usage(text, text, timestamptz, timestamptz) to service_role;
