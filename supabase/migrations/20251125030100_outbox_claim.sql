-- outbox_claim: the deliverer takes up to p_limit due rows for p_lock_seconds. A row is due when
-- it is 'pending' and next_attempt_at has come, or when it is 'delivering' but its lock expired
-- (the worker that held it died mid-delivery). Rows are taken with FOR UPDATE SKIP LOCKED, so
-- several workers never take the same row. Each claim counts as one attempt.

-- Claim due rows; returns them as they are after the claim (status 'delivering', attempts + 1).
create or replace function public.outbox_claim(p_holder text, p_limit integer, p_lock_seconds integer)
returns setof public.notification_outbox
language plpgsql
set search_path = public, pg_temp
as $$
begin
  if p_holder is null or length(btrim(p_holder)) = 0 then
    raise exception 'outbox_claim: p_holder is required (a unique worker id)' using errcode = '22023';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception 'outbox_claim: p_limit must be between 1 and 1000, got %', p_limit using errcode = '22023';
  end if;
  if p_lock_seconds is null or p_lock_seconds < 1 then
    raise exception 'outbox_claim: p_lock_seconds must be at least 1, got %', p_lock_seconds using errcode = '22023';
  end if;
  return query
  with due as (
    select o.id
      from public.notification_outbox o
     where (o.status = 'pending' and o.next_attempt_at <= clock_timestamp())
        or (o.status = 'delivering' and (o.locked_until is null or o.locked_until <= clock_timestamp()))
     order by o.next_attempt_at, o.id
     limit p_limit
       for update skip locked
  )
  update public.notification_outbox o
     set status = 'delivering',
         attempts = o.attempts + 1,
         locked_by = p_holder,
         locked_until = clock_timestamp() + make_interval(secs => p_lock_seconds)
    from due
   where o.id = due.id
  returning o.*;
end
$$;

comment on function public.outbox_claim(text, integer, integer) is
  'Claims up to p_limit due outbox rows (pending and due, or delivering with an expired lock) for p_lock_seconds.';

-- Only the guardian (service_role) delivers notifications.
revoke all on function public.outbox_claim(text, integer, integer) from public, anon, authenticated;
grant execute on function public.outbox_claim(text, integer, integer) to service_role;
