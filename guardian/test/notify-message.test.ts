import { describe, expect, it } from 'vitest';
import { evidenceFacts } from '../src/notify/message.ts';

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
