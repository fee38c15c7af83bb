-- The history a cycle reads, bounded by what decide needs at scale (issue 13).
--
-- guardian_observation_history returns every poll of the current segment: at a 30 s interval and
-- a 1 h window that is up to 120 rows per flag and source, 1.2 million rows a cycle at 10,000
-- flags, read and parsed every cycle. decide looks at the last poll, the last `consecutive` polls
-- (the breach run), the last poll of each earlier segment and how many polls there are (the
-- evidence's `polls`). This function returns exactly that: the last p_tail polls of the current
-- segment, the finals of the earlier segments (as guardian_observation_history), and per row how
-- many polls of the current segment were left out. A flag whose current segment holds a poll
-- counted under another segmentation (a rules reload changed the window, or a row from before
-- segments) gets every poll of its current segment, as guardian_observation_history gives it:
-- such a poll can be an earlier segment's final for decide.

-- Same arguments as guardian_observation_history, plus the polls of the current segment to return.
create function public.guardian_observation_tail(p_source text, p_queries jsonb, p_tail integer)
returns table (
  flag_name text,
  since timestamptz,
  at timestamptz,
  unit text,
  treatment_total bigint,
  treatment_errors bigint,
  control_total bigint,
  control_errors bigint,
  omitted bigint
)
language sql
stable
set search_path = ''
as $$
  with q as (
    select x.flag, x.stage, x.segment_since
      from jsonb_to_recordset(coalesce(p_queries, '[]'::jsonb)) as x(flag text, stage timestamptz, segment_since timestamptz)
  ), cur as (
    -- Per flag: the polls of its current segment, and those counted under another segmentation.
    select q.flag, q.stage, q.segment_since, c.n, c.odd,
           case when c.odd > 0 then c.n else least(c.n, greatest(p_tail, 1)) end as keep
      from q
      cross join lateral (
        select count(*) as n, count(*) filter (where o.since is distinct from q.segment_since) as odd
          from public.guardian_observations o
         where o.source = p_source and o.flag_name = q.flag and o.stage_started_at = q.stage and o.at >= q.segment_since
      ) c
  ), wanted as (
    select t.id
      from cur
      cross join lateral (
        select o.id
          from public.guardian_observations o
         where o.source = p_source and o.flag_name = cur.flag and o.stage_started_at = cur.stage and o.at >= cur.segment_since
         order by o.at desc, o.id desc
         limit cur.keep
      ) t
    union
    select f.observation_id
      from q
      join public.guardian_observation_finals f
        on f.source = p_source and f.flag_name = q.flag and f.stage_started_at = q.stage and f.at < q.segment_since
  )
  select o.flag_name, o.since, o.at, o.unit, o.treatment_total, o.treatment_errors, o.control_total, o.control_errors,
         coalesce(c.omitted, 0) as omitted
    from wanted w
    join public.guardian_observations o on o.id = w.id
    left join (select distinct on (cur.flag) cur.flag, cur.n - cur.keep as omitted from cur order by cur.flag) c on c.flag = o.flag_name
   order by o.flag_name, o.at, o.id
$$;

-- Describes the function.
comment on function public.guardian_observation_tail(text, jsonb, integer) is
  'The observations decide() needs per flag: the last p_tail polls of the current segment (every one when a poll there was counted under another segmentation), the last poll of each earlier segment, and per row how many polls of the current segment were left out.';

-- Only the guardian reads it.
revoke all on function public.guardian_observation_tail(text, jsonb, integer) from public, anon, authenticated;

-- The guardian's role.
grant execute on function public.guardian_observation_tail(text, jsonb, integer) to service_role;
