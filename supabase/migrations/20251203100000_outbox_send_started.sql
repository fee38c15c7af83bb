-- At most once per channel across a crash. Slack incoming webhooks and SMTP cannot deduplicate a
-- repeated post, so the outbox records that a send BEGAN (send_started_at, set by
-- outbox_mark_sending just before the POST / SMTP transaction) and never resends a row whose
-- worker died after that point: such a row becomes 'unconfirmed' (it may or may not have
-- arrived; shown in the backlog, never sent again). A row whose worker died before the send
-- began is resent as before. A send that failed with an answer (outbox_fail) is retried.

-- When the current attempt's send began (null: not begun, or the last attempt failed with an answer).
alter table public.notification_outbox add column if not exists send_started_at timestamptz null;

comment on column public.notification_outbox.send_started_at is
  'When the current delivery attempt started sending (outbox_mark_sending); a crash after it makes the row unconfirmed instead of resent.';

-- 'unconfirmed': the worker died while sending; the alert may have arrived, it is not resent.
alter table public.notification_outbox drop constraint if exists notification_outbox_status_valid;

-- The statuses, 'unconfirmed' added.
alter table public.notification_outbox add constraint notification_outbox_status_valid
  check (status in ('pending', 'delivering', 'delivered', 'failed', 'unconfirmed'));

-- Record that the held row's send begins now; true when p_holder still holds it.
create or replace function public.outbox_mark_sending(p_id bigint, p_holder text)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_done boolean;
begin
  update public.notification_outbox
     set send_started_at = pg_catalog.clock_timestamp()
   where id = p_id
     and status = 'delivering'
     and locked_by = p_holder
  returning true into v_done;
  return coalesce(v_done, false);
end
$$;

comment on function public.outbox_mark_sending(bigint, text) is
  'Marks that the delivery of a held outbox row begins now (before the POST); a worker that dies after this never gets the row resent.';

-- Only the guardian (service_role) delivers notifications.
revoke all on function public.outbox_mark_sending(bigint, text) from public, anon, authenticated;
-- The guardian's role.
grant execute on function public.outbox_mark_sending(bigint, text) to service_role;

-- Claim due rows. A 'delivering' row whose lock expired is reclaimed only when its send never
-- began; one whose send began is set 'unconfirmed' (with the reason) and not returned.
create or replace function public.outbox_claim(p_holder text, p_limit integer, p_lock_seconds integer)
returns setof public.notification_outbox
language plpgsql
set search_path = ''
as $$
begin
  if p_holder is null or pg_catalog.length(pg_catalog.btrim(p_holder)) = 0 then
    raise exception 'outbox_claim: p_holder is required (a unique worker id)' using errcode = '22023';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception 'outbox_claim: p_limit must be between 1 and 1000, got %', p_limit using errcode = '22023';
  end if;
  if p_lock_seconds is null or p_lock_seconds < 1 then
    raise exception 'outbox_claim: p_lock_seconds must be at least 1, got %', p_lock_seconds using errcode = '22023';
  end if;
  update public.notification_outbox o
     set status = 'unconfirmed',
         last_error = 'the guardian stopped while sending (started ' || o.send_started_at::text
           || '): not resent, since the channel cannot deduplicate; it may or may not have arrived',
         locked_by = null,
         locked_until = null
   where o.status = 'delivering'
     and o.send_started_at is not null
     and (o.locked_until is null or o.locked_until <= pg_catalog.clock_timestamp());
  return query
  with due as (
    select o.id
      from public.notification_outbox o
     where (o.status = 'pending' and o.next_attempt_at <= pg_catalog.clock_timestamp())
        or (o.status = 'delivering' and o.send_started_at is null
            and (o.locked_until is null or o.locked_until <= pg_catalog.clock_timestamp()))
     order by o.next_attempt_at, o.id
     limit p_limit
       for update skip locked
  )
  update public.notification_outbox o
     set status = 'delivering',
         attempts = o.attempts + 1,
         locked_by = p_holder,
         locked_until = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_lock_seconds),
         send_started_at = null
    from due
   where o.id = due.id
  returning o.*;
end
$$;

comment on function public.outbox_claim(text, integer, integer) is
  'Claims up to p_limit due outbox rows (pending and due, or delivering with an expired lock whose send never began) for p_lock_seconds; rows whose worker died while sending become unconfirmed.';

-- Only the guardian (service_role) delivers notifications.
revoke all on function public.outbox_claim(text, integer, integer) from public, anon, authenticated;
-- The guardian's role.
grant execute on function public.outbox_claim(text, integer, integer) to service_role;

-- Record a failed attempt (an answer came back, or nothing was sent): the send is over, so
-- send_started_at is cleared and the row may be retried.
create or replace function public.outbox_fail(
  p_id bigint,
  p_holder text,
  p_error text,
  p_next_attempt_at timestamptz,
  p_give_up boolean
)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_done boolean;
begin
  update public.notification_outbox
     set status = case when coalesce(p_give_up, false) then 'failed' else 'pending' end,
         last_error = pg_catalog.left(coalesce(p_error, 'unknown error'), 2000),
         next_attempt_at = coalesce(p_next_attempt_at, pg_catalog.clock_timestamp()),
         locked_by = null,
         locked_until = null,
         send_started_at = null
   where id = p_id
     and status = 'delivering'
     and locked_by = p_holder
  returning true into v_done;
  return coalesce(v_done, false);
end
$$;

comment on function public.outbox_fail(bigint, text, text, timestamptz, boolean) is
  'Records a failed delivery of a held outbox row: back to pending until p_next_attempt_at, or failed when p_give_up.';

-- Only the guardian (service_role) delivers notifications.
revoke all on function public.outbox_fail(bigint, text, text, timestamptz, boolean) from public, anon, authenticated;
-- The guardian's role.
grant execute on function public.outbox_fail(bigint, text, text, timestamptz, boolean) to service_role;

-- Undelivered rows per channel and status, 'unconfirmed' included.
create or replace function public.outbox_backlog()
returns table (channel text, status text, count bigint, oldest_created_at timestamptz)
language sql
stable
set search_path = ''
as $$
  select o.channel, o.status, count(*)::bigint, min(o.created_at)
    from public.notification_outbox o
   where o.status in ('pending', 'delivering', 'failed', 'unconfirmed')
   group by o.channel, o.status
   order by o.channel, o.status
$$;

comment on function public.outbox_backlog() is 'Undelivered outbox rows per channel and status (unconfirmed included), with the oldest row''s creation time.';

-- Only the guardian (service_role) reads the backlog.
revoke all on function public.outbox_backlog() from public, anon, authenticated;
-- The guardian's role.
grant execute on function public.outbox_backlog() to service_role;
