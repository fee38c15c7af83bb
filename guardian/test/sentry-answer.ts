/**
 * The body Sentry's `GET /api/0/organizations/{org}/events/` sends for the guardian's grouped
 * query (`field=tags[flag.<name>]&field=count_unique(user)&field=count()`), shaped like
 * fixtures/sentry/mcp-events-errors.json: `data` rows keyed by the requested fields exactly
 * (the endpoint's documented behaviour), `meta.fields` types as strings, `units`, `tips`,
 * `datasetReason` and `dataset`.
 */
export interface SentryRow {
  /** The tag value (`'true'`/`'false'`). */
  readonly value: string;
  /** `count()`; null is what a broken answer may carry. */
  readonly count: number | null;
  /** `count_unique(user)`. */
  readonly users: number | null;
}

/**
 * @example
 * nock(base).get('/api/0/organizations/acme/events/').query(true).reply(200, sentryGroupedBody('f', [{ value: 'true', count: 9, users: 3 }], 'errors'));
 */
export function sentryGroupedBody(flag: string, rows: readonly SentryRow[], dataset: 'errors' | 'transactions') {
  const tag = `tags[flag.${flag}]`;
  return {
    data: rows.map((r) => ({ [tag]: r.value, 'count_unique(user)': r.users, 'count()': r.count })),
    meta: {
      fields: { [tag]: 'string', 'count_unique(user)': 'integer', 'count()': 'integer' },
      units: { [tag]: null, 'count_unique(user)': null, 'count()': null },
      isMetricsData: false,
      isMetricsExtractedData: false,
      tips: { query: null, columns: null },
      datasetReason: 'unchanged',
      dataset,
    },
  };
}
