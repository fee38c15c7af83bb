-- Guardian state that must survive restarts and failover: leases, per-rule counters,
-- observations and per-source health. Tables, not memory (DESIGN.md §3, §6).

-- Leases: one holder per name at a time (works through Supabase's transaction pooler).
create table public.guardian_leases (
  name text not null,
  holder text not null,
  expires_at timestamptz not null,
  acquired_at timestamptz not null,
  constraint guardian_leases_pkey primary key (name)
);

comment on table public.guardian_leases is 'Leader leases of guardian replicas: the row''s holder owns the name until expires_at.';

-- Consecutive-breach counter and last verdict per (rule, flag).
create table public.guardian_rule_state (
  rule_id text not null,
  flag_name text not null,
  consecutive_breaches integer not null default 0,
  last_verdict text null,
  last_evidence jsonb null,
  updated_at timestamptz not null default now(),
  constraint guardian_rule_state_pkey primary key (rule_id, flag_name),
  constraint guardian_rule_state_consecutive_breaches_non_negative check (consecutive_breaches >= 0)
);

comment on table public.guardian_rule_state is 'Per (rule, flag): consecutive breaches and the last verdict with its evidence.';

-- Cumulative counts the guardian observed per source, flag and stage.
create table public.guardian_observations (
  id bigserial not null,
  source text not null,
  flag_name text not null,
  stage_started_at timestamptz not null,
  at timestamptz not null default now(),
  unit text not null,
  treatment_total bigint not null,
  treatment_errors bigint not null,
  control_total bigint null,
  control_errors bigint null,
  constraint guardian_observations_pkey primary key (id),
  constraint guardian_observations_unit_valid check (unit in ('users', 'events')),
  constraint guardian_observations_treatment_counts check (treatment_total >= 0 and treatment_errors >= 0),
  constraint guardian_observations_control_counts check (
    (control_total is null or control_total >= 0) and (control_errors is null or control_errors >= 0)
  )
);

comment on table public.guardian_observations is 'Observed treatment/control totals and errors per source, flag and stage.';

-- The guardian reads one flag's observations of the current stage in time order.
create index guardian_observations_source_flag_stage_at_idx
  on public.guardian_observations (source, flag_name, stage_started_at, at);

-- Per-source health: when it last answered and since when it is blind.
create table public.guardian_source_health (
  source text not null,
  last_ok_at timestamptz null,
  blind_since timestamptz null,
  blind_alerted boolean not null default false,
  last_error text null,
  constraint guardian_source_health_pkey primary key (source)
);

comment on table public.guardian_source_health is 'Per metric source: last good answer, blindness start and whether it was alerted.';
