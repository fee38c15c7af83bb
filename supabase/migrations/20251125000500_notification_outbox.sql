-- notification_outbox: one row per (event, channel), written in the same transaction as the
-- event, delivered later with retries. dedupe_key makes "notified once per channel" a constraint.

-- The outbox.
create table public.notification_outbox (
  id bigserial not null,
  event_id bigint null,
  topic text not null default 'rollback_event',
  payload jsonb not null default '{}'::jsonb,
  channel text not null,
  status text not null default 'pending',
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz null,
  last_error text null,
  delivered_at timestamptz null,
  created_at timestamptz not null default now(),
  dedupe_key text not null,
  constraint notification_outbox_pkey primary key (id),
  constraint notification_outbox_dedupe_key_key unique (dedupe_key),
  constraint notification_outbox_event_id_fkey foreign key (event_id) references public.rollback_events (id),
  constraint notification_outbox_topic_valid check (topic in ('rollback_event', 'blindness', 'recovery')),
  constraint notification_outbox_channel_valid check (channel in ('slack', 'email')),
  constraint notification_outbox_status_valid check (status in ('pending', 'delivering', 'delivered', 'failed')),
  constraint notification_outbox_attempts_non_negative check (attempts >= 0),
  constraint notification_outbox_payload_object check (jsonb_typeof(payload) = 'object')
);

comment on table public.notification_outbox is 'Notifications to deliver (Slack, email), one per (event, channel), with retry bookkeeping.';

-- The deliverer's query: due rows that are not finished.
create index notification_outbox_due_idx on public.notification_outbox (next_attempt_at, id)
  where status in ('pending', 'delivering');

-- Rows of one event.
create index notification_outbox_event_id_idx on public.notification_outbox (event_id) where event_id is not null;
