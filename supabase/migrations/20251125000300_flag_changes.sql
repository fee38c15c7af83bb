-- flag_changes: the append-only audit log. A trigger writes one row for EVERY change to
-- feature_flags and flag_targets, whoever made it (guardian, CLI, dashboard, raw SQL).

-- The log. flag_name has no foreign key: history outlives a deleted flag.
create table public.flag_changes (
  id bigserial not null,
  flag_name text not null,
  op text not null,
  old_row jsonb null,
  new_row jsonb null,
  actor text not null,
  at timestamptz not null default now(),
  constraint flag_changes_pkey primary key (id),
  constraint flag_changes_op_valid check (op in ('insert', 'update', 'delete', 'target_add', 'target_remove'))
);

comment on table public.flag_changes is 'Append-only audit log of every change to feature_flags and flag_targets (written by trigger).';

-- Lists a flag's history quickly.
create index flag_changes_flag_name_at_idx on public.flag_changes (flag_name, at desc, id desc);

-- Refuses UPDATE, DELETE and TRUNCATE on an append-only table, for every role.
create function public.refuse_append_only_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  begin
    raise exception '% is append-only: % is refused', tg_table_name, tg_op
      using errcode = 'restrict_violation',
            hint = 'Rows of this table are never changed or removed; write a new row instead (for a rollback: a restore event).';
  end
  $$;

-- No UPDATE or DELETE of audit rows, whoever asks.
create trigger flag_changes_append_only
  before update or delete on public.flag_changes
  for each row execute function public.refuse_append_only_change();

-- No TRUNCATE either.
create trigger flag_changes_no_truncate
  before truncate on public.flag_changes
  for each statement execute function public.refuse_append_only_change();

-- Writes the audit row for a feature_flags change. SECURITY DEFINER: the writer needs no
-- right on flag_changes. A pure version bump (caused by a target change, which is logged on
-- its own) is not logged twice.
create function public.feature_flags_audit() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
  declare
    bookkeeping constant text[] := array['version', 'updated_at', 'updated_by', 'stage_started_at'];
  begin
    if tg_op = 'INSERT' then
      insert into public.flag_changes (flag_name, op, old_row, new_row, actor)
        values (new.name, 'insert', null, to_jsonb(new), public.flag_actor());
      return null;
    elsif tg_op = 'DELETE' then
      insert into public.flag_changes (flag_name, op, old_row, new_row, actor)
        values (old.name, 'delete', to_jsonb(old), null, public.flag_actor());
      return null;
    end if;
    if (to_jsonb(new) - bookkeeping) = (to_jsonb(old) - bookkeeping) then
      return null;
    end if;
    insert into public.flag_changes (flag_name, op, old_row, new_row, actor)
      values (new.name, 'update', to_jsonb(old), to_jsonb(new), public.flag_actor());
    return null;
  end
  $$;

-- Logs every inserted, updated and deleted flag.
create trigger feature_flags_audit
  after insert or update or delete on public.feature_flags
  for each row execute function public.feature_flags_audit();

-- Writes the audit rows for a flag_targets change (an update is a removal plus an addition).
create function public.flag_targets_audit() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
  begin
    if tg_op in ('DELETE', 'UPDATE') then
      insert into public.flag_changes (flag_name, op, old_row, new_row, actor)
        values (old.flag_name, 'target_remove', to_jsonb(old), null, public.flag_actor());
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
      insert into public.flag_changes (flag_name, op, old_row, new_row, actor)
        values (new.flag_name, 'target_add', null, to_jsonb(new), public.flag_actor());
    end if;
    return null;
  end
  $$;

-- Logs every added, changed and removed target.
create trigger flag_targets_audit
  after insert or update or delete on public.flag_targets
  for each row execute function public.flag_targets_audit();
