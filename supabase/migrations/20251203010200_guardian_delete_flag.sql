-- guardian_delete_flag: removes a disabled flag (its targets go with it; flag_changes and
-- rollback_events keep its history) when it is still at the expected version (else RG412).
-- An enabled flag is refused (55000): turn it off first, so nobody loses a live feature by accident.

-- Deletes the flag; returns the deleted row.
create or replace function public.guardian_delete_flag(p_name text, p_expected_version bigint, p_actor text)
returns public.feature_flags
language plpgsql
set search_path = ''
as $$
declare
  v_flag public.feature_flags;
begin
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'guardian_delete_flag: p_actor is required (who deletes the flag, for the audit log)' using errcode = '22023';
  end if;
  select * into v_flag from public.feature_flags where name = p_name for update;
  if not found then
    raise exception 'guardian_delete_flag: flag "%" does not exist', p_name using errcode = 'P0002';
  end if;
  if p_expected_version is null or v_flag.version <> p_expected_version then
    raise exception 'guardian_delete_flag: flag "%" is at version %, not %: someone changed it since you read it', p_name, v_flag.version, p_expected_version
      using errcode = 'RG412';
  end if;
  if v_flag.enabled then
    raise exception 'guardian_delete_flag: flag "%" is enabled; disable it first', p_name using errcode = '55000';
  end if;
  perform set_config('app.actor', p_actor, true);
  delete from public.feature_flags where name = p_name;
  return v_flag;
end
$$;

comment on function public.guardian_delete_flag(text, bigint, text) is
  'Deletes a disabled flag at the expected version (else RG412) in one audited transaction.';

-- Only the service role may delete flags through it.
revoke all on function public.guardian_delete_flag(text, bigint, text) from public, anon, authenticated;
grant execute on function public.guardian_delete_flag(text, bigint, text) to service_role;
