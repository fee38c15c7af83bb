-- outbox_fail: a delivery attempt failed. The row goes back to 'pending' until p_next_attempt_at
-- (the worker's backoff schedule, persisted so a restart keeps it), or to 'failed' for good when
-- p_give_up. Only the row's current holder can do this.

-- Record a failed attempt; true when the row was still held by p_holder.
create or replace function public.outbox_fail(
  p_id bigint,
  p_holder text,
  p_error text,
  p_next_attempt_at timestamptz,
  p_give_up boolean
)
returns boolean
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_done boolean;
begin
  update public.notification_outbox
     set status = case when coalesce(p_give_up, false) then 'failed' else 'pending' end,
         last_error = left(coalesce(p_error, 'unknown error'), 2000),
         next_attempt_at = coalesce(p_next_attempt_at, clock_timestamp()),
         locked_by = null,
         locked_until = null
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
grant execute on function public.outbox_fail(bigint, text, text, timestamptz, boolean) to service_role;
