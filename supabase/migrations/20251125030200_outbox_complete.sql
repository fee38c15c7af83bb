-- outbox_complete: a channel acknowledged the notification. Only the row's current holder can
-- complete it; once 'delivered' a row is never claimed again (at most once per channel).

-- Mark a held row delivered; true when it was (false: not held by p_holder any more).
create or replace function public.outbox_complete(p_id bigint, p_holder text)
returns boolean
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_done boolean;
begin
  update public.notification_outbox
     set status = 'delivered',
         delivered_at = clock_timestamp(),
         locked_by = null,
         locked_until = null,
         last_error = null
   where id = p_id
     and status = 'delivering'
     and locked_by = p_holder
  returning true into v_done;
  return coalesce(v_done, false);
end
$$;

comment on function public.outbox_complete(bigint, text) is
  'Marks a delivering outbox row delivered, only if p_holder still holds it; true when it did.';

-- Only the guardian (service_role) delivers notifications.
revoke all on function public.outbox_complete(bigint, text) from public, anon, authenticated;
grant execute on function public.outbox_complete(bigint, text) to service_role;
