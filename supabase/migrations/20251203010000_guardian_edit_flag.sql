-- guardian_edit_flag: the admin API's flag edit, optimistically concurrent. The caller names the
-- version it last read; when the row has moved on the change is refused (SQLSTATE RG412, the
-- API's 412) and nothing is written. Otherwise the patch is applied in the same transaction:
-- `description` here, every other key by guardian_set_flag (same rules, same audit actor).

-- Applies p_patch (guardian_set_flag's keys plus description) when the flag is still at p_expected_version.
create or replace function public.guardian_edit_flag(p_flag text, p_expected_version bigint, p_patch jsonb, p_actor text)
returns public.feature_flags
language plpgsql
set search_path = ''
as $$
declare
  v_flag public.feature_flags;
  v_rest jsonb;
begin
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'guardian_edit_flag: p_actor is required (who changes the flag, for the audit log)' using errcode = '22023';
  end if;
  if p_patch is null or jsonb_typeof(p_patch) <> 'object' then
    raise exception 'guardian_edit_flag: p_patch must be a JSON object' using errcode = '22023';
  end if;
  if p_patch ? 'description' and jsonb_typeof(p_patch -> 'description') <> 'string' then
    raise exception 'guardian_edit_flag: description must be a string' using errcode = '22023';
  end if;
  select * into v_flag from public.feature_flags where name = p_flag for update;
  if not found then
    raise exception 'guardian_edit_flag: flag "%" does not exist', p_flag using errcode = 'P0002';
  end if;
  if p_expected_version is null or v_flag.version <> p_expected_version then
    raise exception 'guardian_edit_flag: flag "%" is at version %, not %: someone changed it since you read it', p_flag, v_flag.version, p_expected_version
      using errcode = 'RG412';
  end if;
  perform set_config('app.actor', p_actor, true);
  if p_patch ? 'description' then
    update public.feature_flags set description = p_patch ->> 'description', updated_by = p_actor where name = p_flag;
  end if;
  v_rest := p_patch - 'description';
  if v_rest <> '{}'::jsonb then
    perform public.guardian_set_flag(p_flag, v_rest, p_actor);
  end if;
  select * into v_flag from public.feature_flags where name = p_flag;
  return v_flag;
end
$$;

comment on function public.guardian_edit_flag(text, bigint, jsonb, text) is
  'Changes a flag by hand only if it is still at the expected version (else RG412), in one audited transaction.';

-- Only the service role may change flags through it.
revoke all on function public.guardian_edit_flag(text, bigint, jsonb, text) from public, anon, authenticated;
grant execute on function public.guardian_edit_flag(text, bigint, jsonb, text) to service_role;
