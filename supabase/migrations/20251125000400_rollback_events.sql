-- rollback_events: what the guardian (or a person) did to a flag and why. Never updated or
-- deleted: a restore is a new event pointing at the one it undoes.

-- The events.
create table public.rollback_events (
  id bigserial not null,
  flag_name text not null,
  kind text not null,
  rule_id text null,
  source text null,
  action text null,
  reason text null,
  evidence jsonb not null default '{}'::jsonb,
  previous_state jsonb not null,
  new_state jsonb not null,
  actor text not null,
  idempotency_key text not null,
  restores_event_id bigint null,
  created_at timestamptz not null default now(),
  constraint rollback_events_pkey primary key (id),
  constraint rollback_events_idempotency_key_key unique (idempotency_key),
  constraint rollback_events_restores_event_id_fkey foreign key (restores_event_id) references public.rollback_events (id),
  constraint rollback_events_kind_valid check (kind in ('auto_rollback', 'manual_rollback', 'restore', 'dry_run')),
  constraint rollback_events_action_valid check (action is null or action in ('disable', 'step_back', 'notify_only')),
  constraint rollback_events_idempotency_key_not_empty check (length(idempotency_key) > 0),
  constraint rollback_events_actor_not_empty check (length(actor) > 0),
  constraint rollback_events_evidence_object check (jsonb_typeof(evidence) = 'object'),
  constraint rollback_events_previous_state_object check (jsonb_typeof(previous_state) = 'object'),
  constraint rollback_events_new_state_object check (jsonb_typeof(new_state) = 'object')
);

comment on table public.rollback_events is 'Append-only log of rollbacks, restores and dry runs. previous_state = {enabled, rollout_percentage, targets, guard_state}.';

-- The event log per flag, newest first.
create index rollback_events_flag_name_created_at_idx on public.rollback_events (flag_name, created_at desc, id desc);

-- Finds the restore of an event.
create index rollback_events_restores_event_id_idx on public.rollback_events (restores_event_id) where restores_event_id is not null;

-- No UPDATE or DELETE of events, whoever asks (service_role and the owner included).
create trigger rollback_events_append_only
  before update or delete on public.rollback_events
  for each row execute function public.refuse_append_only_change();

-- No TRUNCATE either.
create trigger rollback_events_no_truncate
  before truncate on public.rollback_events
  for each statement execute function public.refuse_append_only_change();
