-- guardian_create_flag: a new flag, off at 0%, created by a named actor (audited as 'insert').
-- A name already taken is refused (23505); a bad name or bucket group by the table's checks (23514).

-- Creates the flag and returns its row.
create or replace function public.guardian_create_flag(p_name text, p_description text, p_bucket_group text, p_actor text)
returns public.feature_flags
language plpgsql
set search_path = ''
as $$
declare
  v_flag public.feature_flags;
begin
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'guardian_create_flag: p_actor is required (who creates the flag, for the audit log)' using errcode = '22023';
  end if;
  if exists (select 1 from public.feature_flags where name = p_name) then
    raise exception 'guardian_create_flag: flag "%" already exists', p_name using errcode = '23505';
  end if;
  perform set_config('app.actor', p_actor, true);
  insert into public.feature_flags (name, description, enabled, rollout_percentage, bucket_group, updated_by)
    values (p_name, coalesce(p_description, ''), false, 0, p_bucket_group, p_actor)
    returning * into v_flag;
  return v_flag;
end
$$;

comment on function public.guardian_create_flag(text, text, text, text) is
  'Creates a flag (off, 0%) in one audited transaction.';

-- Only the service role may create flags through it.
revoke all on function public.guardian_create_flag(text, text, text, text) from public, anon, authenticated;
grant execute on function public.guardian_create_flag(text, text, text, text) to service_role;
