-- outbox_backlog: what is waiting, per channel (for the guardian_outbox_backlog gauge, /readyz
-- details and the CLI): rows not yet delivered, split by status, and the oldest one's age.

-- Undelivered rows per channel and status (pending, delivering, failed).
create or replace function public.outbox_backlog()
returns table (channel text, status text, count bigint, oldest_created_at timestamptz)
language sql
stable
set search_path = public, pg_temp
as $$
  select o.channel, o.status, count(*)::bigint, min(o.created_at)
    from public.notification_outbox o
   where o.status in ('pending', 'delivering', 'failed')
   group by o.channel, o.status
   order by o.channel, o.status
$$;

comment on function public.outbox_backlog() is 'Undelivered outbox rows per channel and status, with the oldest row''s creation time.';

-- Only the guardian (service_role) reads the backlog.
revoke all on function public.outbox_backlog() from public, anon, authenticated;
grant execute on function public.outbox_backlog() to service_role;
