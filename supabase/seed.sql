-- Seed: the core flags of DESIGN.md §3 and a couple of internal targets. Idempotent: rows that
-- exist are left as they are (on conflict do nothing), so a seeded database keeps its edits.

-- The audit log records these writes as made by 'seed' (this transaction only).
select set_config('app.actor', 'seed', true);

-- The staged AI rollout: one bucket group, so the 10% alpha users are inside the 50% beta
-- users, who are inside the 100% GA.
insert into public.feature_flags (name, description, enabled, rollout_percentage, bucket_group) values
  ('ai_alpha_users', 'AI features, alpha stage: 10% of users (nested inside beta and GA through bucket group ai_rollout).', true, 10, 'ai_rollout'),
  ('ai_beta_users', 'AI features, beta stage: 50% of users (contains the alpha cohort).', true, 50, 'ai_rollout'),
  ('ai_ga_enabled', 'AI features, general availability: every user.', true, 100, 'ai_rollout')
on conflict (name) do nothing;

-- The agents, each rolled out on its own (bucket group = the flag's name).
insert into public.feature_flags (name, description, enabled, rollout_percentage, bucket_group) values
  ('booking_agent_enabled', 'Booking agent: books appointments for the user. Gradual rollout at 25%.', true, 25, null),
  ('session_agent_enabled', 'Session agent: assists during a live session. Early rollout at 10%.', true, 10, null),
  ('insights_agent_enabled', 'Insights agent: summaries and trends. Half of users.', true, 50, null),
  ('followup_agent_enabled', 'Follow-up agent: drafts follow-up messages. Internal testing only: 0% rollout, on for its targets.', true, 0, null)
on conflict (name) do nothing;

-- Internal QA accounts that see features before their cohort does.
insert into public.flag_targets (flag_name, user_id) values
  ('ai_alpha_users', '00000000-0000-4000-8000-00000000a001'),
  ('booking_agent_enabled', '00000000-0000-4000-8000-00000000a001'),
  ('followup_agent_enabled', '00000000-0000-4000-8000-00000000a001')
on conflict (flag_name, user_id) do nothing;
