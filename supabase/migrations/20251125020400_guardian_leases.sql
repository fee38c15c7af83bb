-- Leases for guardian replicas, in a table so they work through Supabase's transaction pooler
-- (session advisory locks do not survive it). A lease is held until expires_at; its holder renews
-- it, anyone else takes it only once it has expired, so a dead replica's lease lapses within ttl.

-- Take or renew a lease atomically (one upsert statement); true when p_holder now holds it.
create or replace function public.guardian_try_lease(p_name text, p_holder text, p_ttl interval)
returns boolean
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_got boolean;
begin
  if p_name is null or length(btrim(p_name)) = 0 or p_holder is null or length(btrim(p_holder)) = 0 then
    raise exception 'guardian_try_lease: p_name and p_holder are required' using errcode = '22023';
  end if;
  if p_ttl is null or p_ttl <= interval '0' then
    raise exception 'guardian_try_lease: p_ttl must be a positive interval, got %', p_ttl using errcode = '22023';
  end if;
  insert into public.guardian_leases as l (name, holder, expires_at, acquired_at)
  values (p_name, p_holder, clock_timestamp() + p_ttl, clock_timestamp())
  on conflict (name) do update
     set holder = excluded.holder,
         expires_at = excluded.expires_at,
         acquired_at = case when l.holder = excluded.holder then l.acquired_at else excluded.acquired_at end
   where l.holder = excluded.holder or l.expires_at <= clock_timestamp()
  returning true into v_got;
  return coalesce(v_got, false);
end
$$;

comment on function public.guardian_try_lease(text, text, interval) is
  'Takes or renews the named lease for p_holder for p_ttl; true when held. Works through transaction poolers.';

-- Give a lease up (only its holder can); true when it was released.
create or replace function public.guardian_release_lease(p_name text, p_holder text)
returns boolean
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_count integer;
begin
  delete from public.guardian_leases where name = p_name and holder = p_holder;
  get diagnostics v_count = row_count;
  return v_count > 0;
end
$$;

comment on function public.guardian_release_lease(text, text) is
  'Releases the named lease when p_holder holds it (shutdown), so another replica takes over at once.';

-- Only the service role (the guardian) may take leases.
revoke all on function public.guardian_try_lease(text, text, interval) from public, anon, authenticated;
grant execute on function public.guardian_try_lease(text, text, interval) to service_role;
revoke all on function public.guardian_release_lease(text, text) from public, anon, authenticated;
grant execute on function public.guardian_release_lease(text, text) to service_role;
