-- outbox_enqueue: alerts that are not rollback events (a source gone blind, its recovery). One
-- row per channel with dedupe_key '<p_dedupe_key>:<channel>', so enqueuing the same alert twice
-- (two replicas, a retried cycle) writes nothing the second time.

-- Enqueue a blindness/recovery alert; returns how many rows were written (0 on a repeat).
create or replace function public.outbox_enqueue(p_topic text, p_payload jsonb, p_channels text[], p_dedupe_key text)
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_channel text;
  v_count integer;
  v_written integer := 0;
begin
  if p_topic is null or p_topic not in ('blindness', 'recovery') then
    raise exception 'outbox_enqueue: p_topic must be blindness or recovery, got % (rollback events are enqueued by guardian_rollback)', p_topic
      using errcode = '22023';
  end if;
  if p_payload is null or jsonb_typeof(p_payload) <> 'object' then
    raise exception 'outbox_enqueue: p_payload must be a JSON object' using errcode = '22023';
  end if;
  if p_dedupe_key is null or length(btrim(p_dedupe_key)) = 0 then
    raise exception 'outbox_enqueue: p_dedupe_key is required (it makes the alert idempotent)' using errcode = '22023';
  end if;
  foreach v_channel in array coalesce((select array_agg(distinct c order by c) from unnest(p_channels) as c where c is not null), '{}'::text[]) loop
    if v_channel not in ('slack', 'email') then
      raise exception 'outbox_enqueue: unknown notification channel "%" (expected slack or email)', v_channel using errcode = '22023';
    end if;
    insert into public.notification_outbox (event_id, topic, payload, channel, dedupe_key)
    values (null, p_topic, p_payload, v_channel, p_dedupe_key || ':' || v_channel)
    on conflict (dedupe_key) do nothing;
    get diagnostics v_count = row_count;
    v_written := v_written + v_count;
  end loop;
  return v_written;
end
$$;

comment on function public.outbox_enqueue(text, jsonb, text[], text) is
  'Enqueues a blindness/recovery alert, one row per channel, idempotent by p_dedupe_key; returns rows written.';

-- Only the guardian (service_role) enqueues alerts.
revoke all on function public.outbox_enqueue(text, jsonb, text[], text) from public, anon, authenticated;
grant execute on function public.outbox_enqueue(text, jsonb, text[], text) to service_role;
