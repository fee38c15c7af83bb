/**
 * The body PostHog's query API (`POST /api/projects/{id}/query/`) sends for the guardian's HogQL
 * query, shaped like fixtures/posthog/guardian-flag-errors-200.json: `columns`, `types`,
 * `results` (one row per flag and `$feature/<flag>` value: flag, variant, users, error_users),
 * `hasMore` and the paging/caching fields.
 */
export type PosthogRow = readonly [flag: string, variant: string | null, users: number, errorUsers: number];

/**
 * @example
 * nock(host).post('/api/projects/1/query/').reply(200, posthogQueryAnswer([['ai_beta_users', 'true', 400, 12]]));
 */
export function posthogQueryAnswer(results: readonly PosthogRow[]) {
  return {
    cache_key: 'cache_test',
    columns: ['flag', 'variant', 'users', 'error_users'],
    error: null,
    hasMore: false,
    hogql: 'SELECT ...',
    is_cached: false,
    limit: 100,
    offset: 0,
    results,
    timezone: 'UTC',
    types: [
      ['flag', 'String'],
      ['variant', 'Nullable(String)'],
      ['users', 'UInt64'],
      ['error_users', 'UInt64'],
    ],
  };
}
