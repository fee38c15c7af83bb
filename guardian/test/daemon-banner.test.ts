/** The start banner's flag lists: every flag of a short list, a summary of a long one (10,000 flags must not print 10,000 lines' worth). */
import { describe, expect, it } from 'vitest';

import { watchedFlags } from '../src/daemon.ts';
import type { Flag } from '../src/store/types.ts';

function flag(name: string, over: Partial<Flag> = {}): Flag {
  const at = new Date('2026-12-01T00:00:00Z');
  return { name, description: '', enabled: true, rolloutPercentage: 50, bucketGroup: null, version: 1, updatedAt: at, updatedBy: null, guardState: 'watching', rollbackMessage: null, rollbackUrgent: false, stageStartedAt: at, targets: [], ...over };
}

describe('the banner names the flags a rule watches', () => {
  it('names each flag of a short list with its state, and a missing one as missing', () => {
    const byName = new Map([flag('ai_beta_users'), flag('ai_ga_enabled', { enabled: false, guardState: 'rolled_back' })].map((f) => [f.name, f]));
    expect(watchedFlags(['ai_beta_users', 'ai_ga_enabled', 'ai_gone'], byName)).toBe('ai_beta_users (on 50%, watching), ai_ga_enabled (off, rolled_back), ai_gone (MISSING in database)');
  });

  it('names the first 10 of a long list and counts the rest, naming missing flags', () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `scale_${String(i).padStart(6, '0')}`);
    const byName = new Map(names.slice(0, 9_990).map((n, i) => [n, flag(n, i % 2 === 0 ? {} : { enabled: false, guardState: 'locked' })]));
    const line = watchedFlags(names, byName);
    expect(line.length).toBeLessThan(1_000);
    expect(line).toMatch(/^scale_000000 \(on 50%, watching\), scale_000001 \(off, locked\), .*scale_000009 \(off, locked\) and 9,990 more: /);
    expect(line).toContain('9,990 more: 4,990 on, 4,990 off; 4,990 watching, 4,990 locked; 10 MISSING');
    expect(line).toContain('10 MISSING in database (scale_009990, scale_009991, scale_009992, scale_009993, scale_009994, …)');
  });
});
