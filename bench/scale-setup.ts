// The set-up cycle-scale and daemon-rss share: N flags, each watched by a PostHog relative rule and
// a Sentry absolute rule, pointed at the provider doubles (cycle-scale.bench.ts --serve) at `base`.
import type { SqlClient } from '../guardian/src/store/sql.ts';

/** N flag names: scale_000000, scale_000001, … */
export function scaleNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `scale_${String(i).padStart(6, '0')}`);
}

/** Creates the flags, each on at 50%. */
export async function seedScaleFlags(sql: SqlClient, names: readonly string[]): Promise<void> {
  await sql.query(`insert into public.feature_flags (name, enabled, rollout_percentage) select x, true, 50 from unnest($1::text[]) as x`, [names]);
}

/** The rules file: both rules over every flag; Sentry's request settings when given (else the schema's defaults). */
export function scaleRulesYaml(names: readonly string[], base: string, opts: { intervalMs: number; sentry?: { maxRequestsPerCycle: number; concurrency: number } }): string {
  const sentryLimits = opts.sentry ? `, max_requests_per_cycle: ${opts.sentry.maxRequestsPerCycle}, concurrency: ${opts.sentry.concurrency}` : '';
  return [
    `interval: ${opts.intervalMs / 1000}s`,
    'defaults: { window: 1h, min_users: 200, min_samples: 1000, consecutive: 2 }',
    'sources:',
    `  posthog: { host: "${base}", project_id: "1", api_key: "phx_bench" }`,
    `  sentry: { base_url: "${base}", org: bench, token: "sntrys_bench"${sentryLimits} }`,
    'rules:',
    `  - { id: scale-relative, source: posthog, action: step_back, condition: { relative: { max_increase: 0.01 } }, flags: [${names.join(', ')}] }`,
    `  - { id: scale-absolute, source: sentry, action: disable, condition: { absolute: { error_rate_above: 0.05 } }, flags: [${names.join(', ')}] }`,
  ].join('\n');
}
