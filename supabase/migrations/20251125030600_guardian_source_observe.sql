-- guardian_source_observe: feeds one poll of a metric source into guardian_source_health and
-- raises the blindness alerts, atomically (the source's row is locked for the call), so several
-- replicas still send ONE 'blindness' alert when a source has given no data for longer than
-- p_blind_after_seconds, and ONE 'recovery' when data returns. Dedupe keys are
-- 'blindness:<source>:<blind_since epoch ms>:<channel>' and 'recovery:<same>:<channel>'.
-- A recovery is owed for every blindness alert of the source that has none yet (read from the
-- outbox itself), so it is sent even if something else reset the health row meanwhile.

-- Finds a source's blindness alerts and their recoveries quickly.
create index if not exists notification_outbox_source_alerts_idx
  on public.notification_outbox ((payload ->> 'source'), (payload ->> 'blind_since'))
  where topic in ('blindness', 'recovery');

-- Record a poll (ok or not) at p_at; returns the transition: 'blind' (alert enqueued),
-- 'recovered' (recovery enqueued), 'ok', 'failing' (no data, not yet blind long enough) or
-- 'still_blind' (already alerted).
create or replace function public.guardian_source_observe(
  p_source text,
  p_at timestamptz,
  p_ok boolean,
  p_error text,
  p_blind_after_seconds double precision,
  p_channels text[]
)
returns table (transition text, blind_since timestamptz, last_ok_at timestamptz, alerts_written integer)
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_row public.guardian_source_health;
  v_since timestamptz;
  v_written integer := 0;
  v_alert record;
begin
  if p_source is null or length(btrim(p_source)) = 0 then
    raise exception 'guardian_source_observe: p_source is required' using errcode = '22023';
  end if;
  if p_at is null then
    raise exception 'guardian_source_observe: p_at is required' using errcode = '22023';
  end if;
  if p_blind_after_seconds is null or p_blind_after_seconds <= 0 then
    raise exception 'guardian_source_observe: p_blind_after_seconds must be positive, got %', p_blind_after_seconds using errcode = '22023';
  end if;

  insert into public.guardian_source_health (source) values (p_source) on conflict (source) do nothing;
  select * into v_row from public.guardian_source_health h where h.source = p_source for update;

  if coalesce(p_ok, false) then
    update public.guardian_source_health h
       set last_ok_at = greatest(coalesce(h.last_ok_at, p_at), p_at),
           blind_since = null,
           blind_alerted = false,
           last_error = null
     where h.source = p_source;
    -- Every blindness alert of this source that has no recovery yet gets one.
    for v_alert in
      select distinct b.payload ->> 'blind_since' as since_text
        from public.notification_outbox b
       where b.topic = 'blindness'
         and b.payload ->> 'source' = p_source
         and b.payload ->> 'blind_since' is not null
         and not exists (
           select 1 from public.notification_outbox r
            where r.topic = 'recovery'
              and r.payload ->> 'source' = p_source
              and r.payload ->> 'blind_since' = b.payload ->> 'blind_since')
    loop
      v_since := (v_alert.since_text)::timestamptz;
      v_written := v_written + public.outbox_enqueue(
        'recovery',
        jsonb_build_object(
          'source', p_source,
          'blind_since', v_alert.since_text,
          'recovered_at', p_at,
          'blind_for_seconds', greatest(0, floor(extract(epoch from (p_at - v_since))))::bigint),
        p_channels,
        'recovery:' || p_source || ':' || (floor(extract(epoch from v_since) * 1000))::bigint::text);
    end loop;
    return query select case when v_written > 0 then 'recovered' else 'ok' end,
      null::timestamptz, greatest(coalesce(v_row.last_ok_at, p_at), p_at), v_written;
    return;
  end if;

  v_since := coalesce(v_row.blind_since, p_at);
  update public.guardian_source_health h
     set blind_since = v_since,
         last_error = left(p_error, 2000)
   where h.source = p_source;

  if v_row.blind_alerted then
    return query select 'still_blind'::text, v_since, v_row.last_ok_at, 0;
    return;
  end if;
  if p_at - v_since < make_interval(secs => p_blind_after_seconds) then
    return query select 'failing'::text, v_since, v_row.last_ok_at, 0;
    return;
  end if;

  v_written := public.outbox_enqueue(
    'blindness',
    jsonb_build_object(
      'source', p_source,
      'blind_since', v_since,
      'last_ok_at', v_row.last_ok_at,
      'last_error', left(p_error, 2000),
      'blind_after_seconds', p_blind_after_seconds,
      'detected_at', p_at),
    p_channels,
    'blindness:' || p_source || ':' || (floor(extract(epoch from v_since) * 1000))::bigint::text);
  update public.guardian_source_health h set blind_alerted = true where h.source = p_source;
  return query select 'blind'::text, v_since, v_row.last_ok_at, v_written;
end
$$;

comment on function public.guardian_source_observe(text, timestamptz, boolean, text, double precision, text[]) is
  'Records a source poll in guardian_source_health and enqueues one blindness alert (after p_blind_after_seconds without data) and one recovery.';

-- Only the guardian (service_role) records source health.
revoke all on function public.guardian_source_observe(text, timestamptz, boolean, text, double precision, text[]) from public, anon, authenticated;
grant execute on function public.guardian_source_observe(text, timestamptz, boolean, text, double precision, text[]) to service_role;
