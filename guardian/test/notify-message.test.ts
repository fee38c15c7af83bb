import { describe, expect, it } from 'vitest';
import { evidenceFacts, messageFromOutbox, messageText } from '../src/notify/message.ts';
import type { OutboxRow } from '../src/notify/types.ts';

const base = {
  unit: 'users',
  condition: 'relative',
  treatment: { total: 5050, errors: 141, rate: 141 / 5050 },
  control: { total: 5050, errors: 80, rate: 80 / 5050 },
  max_increase: 0,
  alpha: 0.02,
  statistic: 'rate_ratio_mixture_sprt',
  window: 3_600_000,
  polls: 182,
};

describe('evidenceFacts', () => {
  it('says how many windows of the stage the counts span when more than one', () => {
    const facts = evidenceFacts({ ...base, segments: 3, since: '2026-01-01T08:00:00.000Z' });
    expect(facts).toContainEqual({ label: 'Counted over', value: 'the last 3 windows of the stage (since 2026-01-01T08:00:00.000Z)' });
    expect(facts.map((f) => f.label)).toEqual(['Flag on', 'Flag off', 'Allowed increase', 'Alpha', 'Statistic', 'Window', 'Counted over', 'Polls']);
  });

  it('leaves the line out for one window, and for evidence stored before segments existed', () => {
    expect(evidenceFacts({ ...base, segments: 1 }).map((f) => f.label)).not.toContain('Counted over');
    expect(evidenceFacts(base).map((f) => f.label)).not.toContain('Counted over');
  });

  it('malformed evidence shows no facts rather than wrong ones', () => {
    expect(evidenceFacts({ ...base, segments: 'three' })).toEqual([]);
  });
});

describe('a rollback alert says what users go through', () => {
  const at = new Date('2026-12-03T10:00:00Z');
  const rollbackRow = (kind: string, action: string, newState: Record<string, unknown>): OutboxRow => ({
    id: '7',
    eventId: '3',
    dedupeKey: 'event:3',
    topic: 'rollback_event',
    payload: {
      event_id: 3,
      flag: 'booking_agent_enabled',
      kind,
      rule_id: 'booking-errors',
      source: 'posthog',
      action,
      reason: 'Flag-on error rate 20% against 5%.',
      previous_state: { enabled: true, rollout_percentage: 50, targets: [], guard_state: 'watching', rollback_message: null, rollback_urgent: false },
      new_state: { enabled: false, rollout_percentage: 50, targets: [], guard_state: 'rolled_back', ...newState },
      actor: 'guardian',
      created_at: at.toISOString(),
    },
    channel: 'slack',
    status: 'pending',
    attempts: 1,
    nextAttemptAt: at,
    lockedUntil: null,
    lockedBy: null,
    lastError: null,
    deliveredAt: null,
    createdAt: at,
  });

  it('an urgent rollback is marked urgent in the title and the facts, with the message users see', () => {
    const m = messageFromOutbox(rollbackRow('auto_rollback', 'disable', { rollback_message: 'Booking with AI is paused; the classic form works.', rollback_urgent: true }));
    expect(m.title).toBe('URGENT: Guardian disabled booking_agent_enabled');
    expect(m.facts).toContainEqual({ label: 'Urgent', value: "yes: users leave the feature at once, without waiting for the app's safe points" });
    expect(m.facts).toContainEqual({ label: 'Users see', value: 'Booking with AI is paused; the classic form works.' });
    const text = messageText(m);
    expect(text).toContain('Urgent: yes');
    expect(text).toContain('Users see: Booking with AI is paused');
  });

  it('an ordinary rollback says nothing of urgency; a dry run says what would happen, without the title mark', () => {
    const plain = messageFromOutbox(rollbackRow('manual_rollback', 'disable', { rollback_message: null, rollback_urgent: false }));
    expect(plain.title).toBe('booking_agent_enabled rolled back by guardian');
    expect(plain.facts.map((f) => f.label)).not.toContain('Urgent');
    expect(plain.facts.map((f) => f.label)).not.toContain('Users see');
    const dry = messageFromOutbox(rollbackRow('dry_run', 'disable', { rollback_urgent: true }));
    expect(dry.title.startsWith('[dry run]')).toBe(true);
    expect(dry.facts).toContainEqual({ label: 'Urgent', value: "yes: users would leave the feature at once, without waiting for the app's safe points" });
  });

  it('a restore, and events stored before urgency existed, carry no urgency', () => {
    expect(messageFromOutbox(rollbackRow('restore', 'disable', { rollback_urgent: true })).facts.map((f) => f.label)).not.toContain('Urgent');
    const old = rollbackRow('auto_rollback', 'disable', {});
    expect(messageFromOutbox(old).title).toBe('Guardian disabled booking_agent_enabled');
  });
});
