-- Writes one notification_outbox row per channel for a rollback event, in the caller's
-- transaction (so the flip, the event and its notifications commit or fail together).
-- dedupe_key = '<event_id>:<channel>' makes a second enqueue of the same event a no-op.

-- Enqueue the event's notifications; returns how many rows were written (0 on a repeat).
create or replace function public.guardian_enqueue_notifications(p_event public.rollback_events, p_channels text[])
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_channel text;
  v_written integer := 0;
  v_count integer;
  v_payload jsonb;
begin
  if p_channels is null then
    return 0;
  end if;
  -- The payload carries everything a notifier renders, so delivery never needs to re-read state.
  v_payload := jsonb_build_object(
    'event_id', p_event.id,
    'flag', p_event.flag_name,
    'kind', p_event.kind,
    'rule_id', p_event.rule_id,
    'source', p_event.source,
    'action', p_event.action,
    'reason', p_event.reason,
    'evidence', p_event.evidence,
    'previous_state', p_event.previous_state,
    'new_state', p_event.new_state,
    'actor', p_event.actor,
    'restores_event_id', p_event.restores_event_id,
    'created_at', p_event.created_at);
  foreach v_channel in array coalesce((select array_agg(distinct c) from unnest(p_channels) as c where c is not null), '{}'::text[]) loop
    if v_channel not in ('slack', 'email') then
      raise exception 'guardian: unknown notification channel "%" (expected slack or email)', v_channel
        using errcode = '22023';
    end if;
    insert into public.notification_outbox (event_id, topic, payload, channel, dedupe_key)
    values (p_event.id, 'rollback_event', v_payload, v_channel, p_event.id::text || ':' || v_channel)
    on conflict (dedupe_key) do nothing;
    get diagnostics v_count = row_count;
    v_written := v_written + v_count;
  end loop;
  return v_written;
end
$$;

comment on function public.guardian_enqueue_notifications(public.rollback_events, text[]) is
  'One notification_outbox row per distinct channel (slack|email) for a rollback event; dedupe_key <event_id>:<channel>.';

-- Internal to the guardian's functions: only the service role may call it.
revoke all on function public.guardian_enqueue_notifications(public.rollback_events, text[]) from public, anon, authenticated;
grant execute on function public.guardian_enqueue_notifications(public.rollback_events, text[]) to service_role;
