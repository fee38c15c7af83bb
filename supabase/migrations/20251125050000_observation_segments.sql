-- Segments. A stage older than its rules' window is counted in segments: segment k starts at
-- stage start + k × window, and a source is asked for counts since the start of the current
-- segment, never for more than one window at once. decide() combines the segments into one
-- test over the whole stage (guardian/src/decide/decide.ts), which needs, per flag: every poll
-- of the current segment and the last poll of each earlier one.

alter table public.guardian_observations add column if not exists since timestamptz null;

comment on column public.guardian_observations.since is
  'Start of the span the counts cover: the start of their segment of the stage. Null on rows written before segments existed.';

-- p_queries: [{ "flag": text, "stage": timestamptz, "segment_since": timestamptz }, ...].
-- Returns, oldest first per flag, the polls of the flag's stage that are at or after
-- segment_since, and the last poll of every earlier span (grouped by since).
create or replace function public.guardian_observation_history(p_source text, p_queries jsonb)
returns table (
  flag_name text,
  since timestamptz,
  at timestamptz,
  unit text,
  treatment_total bigint,
  treatment_errors bigint,
  control_total bigint,
  control_errors bigint
)
language sql
stable
set search_path = public, pg_temp
as $$
  with q as (
    select x.flag, x.stage, x.segment_since
      from jsonb_to_recordset(coalesce(p_queries, '[]'::jsonb)) as x(flag text, stage timestamptz, segment_since timestamptz)
  ), stage_rows as (
    select o.id, o.flag_name, o.since, o.at, o.unit, o.treatment_total, o.treatment_errors, o.control_total, o.control_errors,
           q.segment_since,
           row_number() over (partition by o.flag_name, o.since order by o.at desc, o.id desc) as newest
      from public.guardian_observations o
      join q on o.flag_name = q.flag and o.stage_started_at = q.stage
     where o.source = p_source
  )
  select r.flag_name, r.since, r.at, r.unit, r.treatment_total, r.treatment_errors, r.control_total, r.control_errors
    from stage_rows r
   where r.at >= r.segment_since or r.newest = 1
   order by r.flag_name, r.at, r.id
$$;

comment on function public.guardian_observation_history(text, jsonb) is
  'The observations decide() needs per flag: every poll of the current segment, and the last poll of each earlier segment of the stage.';

revoke all on function public.guardian_observation_history(text, jsonb) from public, anon, authenticated;
grant execute on function public.guardian_observation_history(text, jsonb) to service_role;
