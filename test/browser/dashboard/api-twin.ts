/**
 * An in-memory twin of the admin API (/work/notes/admin-api-contract.md shapes) for the
 * dashboard's component-level browser tests: seven flags, versions with If-Match / 412, targets,
 * events, audit, usage, status and the SSE stream. It lets the pages be rendered, checked with
 * axe and measured at 360/1440 px without a guardian; the end-to-end tests
 * (dashboard-e2e.db.test.ts) run the same pages against the real guardian on PostgreSQL.
 */
import { Hono } from 'hono';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { SSEStreamingApi } from 'hono/streaming';
import type { AuditChange, Flag, FlagPatch, GuardianStatus, Me, RollbackEvent, Usage } from '../../../dashboard/src/api/types.ts';

export interface TwinOptions {
  /** token → who it is */
  readonly tokens: Readonly<Record<string, Me>>;
  /** A description, reason and user id to put in the data (hostile-value tests). */
  readonly hostile?: string;
}

type Row = { -readonly [K in keyof Flag]: Flag[K] } & { targets: Set<string> };

const SEED: [string, string, boolean, number, string | null][] = [
  ['ai_alpha_users', 'AI features, alpha stage: 10% of users.', true, 10, 'ai_rollout'],
  ['ai_beta_users', 'AI features, beta stage: 50% of users.', true, 50, 'ai_rollout'],
  ['ai_ga_enabled', 'AI features, general availability: every user.', true, 100, 'ai_rollout'],
  ['booking_agent_enabled', 'Booking agent: books appointments for the user.', true, 25, null],
  ['session_agent_enabled', 'Session agent: assists during a live session.', true, 10, null],
  ['insights_agent_enabled', 'Insights agent: summaries and trends.', true, 50, null],
  ['followup_agent_enabled', 'Follow-up agent: drafts follow-up messages.', true, 0, null],
];

function err(c: Context, status: 400 | 401 | 403 | 404 | 412 | 428, code: string, message: string, extra: Record<string, unknown> = {}): Response {
  return c.json({ error: { code, message }, ...extra }, status);
}

export class AdminApiTwin {
  readonly app = new Hono();
  readonly flags = new Map<string, Row>();
  readonly events: RollbackEvent[] = [];
  readonly audit: AuditChange[] = [];
  private seq = 0;
  private readonly streams = new Set<SSEStreamingApi>();
  private readonly t0 = Date.now();

  private readonly options: TwinOptions;

  constructor(options: TwinOptions) {
    this.options = options;
    for (const [name, description, enabled, pct, group] of SEED) {
      this.flags.set(name, {
        name, description, enabled, rolloutPercentage: pct, bucketGroup: group, version: 1, updatedAt: new Date(this.t0 - 3600_000).toISOString(), updatedBy: 'seed',
        guardState: 'watching', rollbackMessage: null, stageStartedAt: new Date(this.t0 - 3600_000).toISOString(), targetCount: 0, targets: new Set(),
        verdicts: name.startsWith('ai_') ? [{ ruleId: 'ai-stage-regression', source: 'posthog', verdict: 'ok', at: new Date(this.t0 - 60_000).toISOString(), summary: 'Flag-on users are not worse than flag-off users.', treatment: { errors: 12, total: 1200, unit: 'users' }, control: { errors: 11, total: 1180, unit: 'users' }, threshold: 0.01 }] : [],
        exposures: { on: 1200, off: 1180, since: new Date(this.t0 - 24 * 3600_000).toISOString() }, lastRollback: null,
      });
    }
    if (options.hostile) {
      const f = this.flags.get('booking_agent_enabled')!;
      f.description = options.hostile;
      f.targets.add(options.hostile);
      f.targetCount = 1;
      this.rollback('booking_agent_enabled', 'auto_rollback', options.hostile, 'booking-agent-errors');
    }
    this.routes();
  }

  private view(r: Row): Flag {
    const { targets: _t, ...flag } = r;
    return { ...flag, targetCount: r.targets.size };
  }

  private broadcast(event: string, data: unknown): void {
    this.seq += 1;
    for (const s of this.streams) void s.writeSSE({ event, data: JSON.stringify(data), id: String(this.seq) });
  }

  private bump(r: Row, actor: string, fields: string[], old: Record<string, unknown>): void {
    r.version += 1;
    r.updatedAt = new Date().toISOString();
    r.updatedBy = actor;
    this.audit.unshift({ id: String(this.audit.length + 1), flag: r.name, op: 'UPDATE', actor, at: r.updatedAt, fields: [...fields, 'version'], old: { ...old, version: r.version - 1 }, new: { ...Object.fromEntries(fields.map((f) => [f, (r as unknown as Record<string, unknown>)[f.replace(/_(\w)/g, (_m, ch: string) => ch.toUpperCase())]])), version: r.version } });
    const { targets: _t, verdicts: _v, exposures: _e, lastRollback: _l, targetCount: _c, stageStartedAt: _s, ...pub } = r;
    this.broadcast('flag', pub);
  }

  /** A rollback as the guardian makes it (test source breach). */
  rollback(name: string, kind: 'auto_rollback' | 'manual_rollback', reason: string, ruleId: string | null, actor = 'guardian'): RollbackEvent {
    const r = this.flags.get(name)!;
    const ev: RollbackEvent = {
      id: String(this.events.length + 1), flag: name, kind, ruleId, source: ruleId ? 'test' : null, action: 'disable', reason,
      evidence: { summary: 'Flag-on error rate 9.0% is above the 5.0% threshold (lower bound 6.1%).', treatment: { errors: 90, total: 1000, unit: 'users' }, control: { errors: 20, total: 1000, unit: 'users' }, threshold: 0.05, lowerBound: 0.061, window: '10m' },
      previousState: { enabled: r.enabled, rolloutPercentage: r.rolloutPercentage, targets: { count: r.targets.size }, guardState: r.guardState },
      newState: { enabled: false, rolloutPercentage: r.rolloutPercentage, guardState: 'rolled_back' }, actor, restoresEventId: null, createdAt: new Date().toISOString(),
      notifications: [{ channel: 'slack', status: 'delivered', attempts: 1, deliveredAt: new Date().toISOString(), lastError: null }],
    };
    this.events.unshift(ev);
    const old = { enabled: r.enabled, guard_state: r.guardState };
    r.enabled = false;
    r.guardState = 'rolled_back';
    r.lastRollback = ev;
    this.bump(r, actor, ['enabled', 'guard_state'], old);
    this.broadcast('rollback_event', { id: ev.id, flag: name, kind, actor, ruleId, createdAt: ev.createdAt });
    return ev;
  }

  private me(c: Context): Me | null {
    const auth = c.req.header('authorization') ?? '';
    return this.options.tokens[auth.replace(/^Bearer /, '')] ?? null;
  }

  private routes(): void {
    const app = new Hono();
    app.use('*', async (c, next) => {
      const me = this.me(c);
      if (!me) return err(c, 401, 'unauthorized', 'The token is not valid. Sign in again.');
      if (c.req.method !== 'GET' && me.role === 'viewer') return err(c, 403, 'forbidden', 'This needs the editor role; you are a viewer.');
      await next();
    });
    const flagOr404 = (c: Context): Row | Response => this.flags.get(c.req.param('name') ?? '') ?? err(c, 404, 'not_found', `No flag named ${c.req.param('name')}.`);
    const checkVersion = (c: Context, r: Row): Response | null => {
      const m = c.req.header('if-match');
      if (!m) return err(c, 428, 'precondition_required', 'Send If-Match with the version you are changing.');
      if (m !== `"${r.version}"`) return err(c, 412, 'version_conflict', `The flag changed: it is at version ${r.version}.`, { current: this.view(r) });
      return null;
    };
    app.get('/me', (c) => c.json(this.me(c)));
    app.get('/flags', (c) => c.json({ flags: [...this.flags.values()].map((r) => this.view(r)) }));
    app.get('/flags/:name', (c) => {
      const r = flagOr404(c);
      return r instanceof Response ? r : c.json({ flag: this.view(r) }, 200, { etag: `"${r.version}"` });
    });
    app.patch('/flags/:name', async (c) => {
      const r = flagOr404(c);
      if (r instanceof Response) return r;
      const stale = checkVersion(c, r);
      if (stale) return stale;
      const body = (await c.req.json()) as FlagPatch;
      if (body.rolloutPercentage !== undefined && (body.rolloutPercentage < 0 || body.rolloutPercentage > 100)) return c.json({ error: { code: 'bad_request', message: 'rolloutPercentage must be 0..100', field: 'body.rolloutPercentage' } }, 400);
      const old: Record<string, unknown> = { enabled: r.enabled, rollout_percentage: r.rolloutPercentage, rollback_message: r.rollbackMessage, guard_state: r.guardState };
      const fields: string[] = [];
      if (body.enabled !== undefined) {
        r.enabled = body.enabled;
        fields.push('enabled');
      }
      if (body.rolloutPercentage !== undefined) {
        r.rolloutPercentage = body.rolloutPercentage;
        fields.push('rollout_percentage');
      }
      if (body.rollbackMessage !== undefined) {
        r.rollbackMessage = body.rollbackMessage;
        fields.push('rollback_message');
      }
      if (body.locked !== undefined) {
        r.guardState = body.locked ? 'locked' : 'watching';
        fields.push('guard_state');
      }
      this.bump(r, this.me(c)!.actor, fields, old);
      return c.json({ flag: this.view(r) });
    });
    app.get('/flags/:name/targets', (c) => {
      const r = flagOr404(c);
      if (r instanceof Response) return r;
      const search = c.req.query('search') ?? '';
      const limit = Number(c.req.query('limit') ?? 100);
      const start = Number(c.req.query('cursor') ?? 0);
      const all = [...r.targets].filter((t) => t.includes(search)).sort();
      const page = all.slice(start, start + limit);
      return c.json({ targets: page, total: all.length, nextCursor: start + limit < all.length ? String(start + limit) : null });
    });
    app.post('/flags/:name/targets', async (c) => {
      const r = flagOr404(c);
      if (r instanceof Response) return r;
      const stale = checkVersion(c, r);
      if (stale) return stale;
      const body = (await c.req.json()) as { add?: string[]; remove?: string[] };
      let added = 0;
      let removed = 0;
      for (const id of body.add ?? []) {
        if (r.targets.has(id)) continue;
        r.targets.add(id);
        added++;
      }
      for (const id of body.remove ?? []) if (r.targets.delete(id)) removed++;
      this.bump(r, this.me(c)!.actor, [], {});
      return c.json({ flag: this.view(r), added, removed });
    });
    app.post('/flags/:name/restore', async (c) => {
      const r = flagOr404(c);
      if (r instanceof Response) return r;
      const prev = r.lastRollback?.previousState;
      const old = { enabled: r.enabled, guard_state: r.guardState };
      r.enabled = prev?.enabled ?? true;
      r.guardState = 'watching';
      const ev: RollbackEvent = { ...r.lastRollback!, id: String(this.events.length + 1), kind: 'restore', actor: this.me(c)!.actor, restoresEventId: r.lastRollback?.id ?? null, createdAt: new Date().toISOString(), reason: 'restored from the dashboard', notifications: [] };
      this.events.unshift(ev);
      r.lastRollback = null;
      this.bump(r, this.me(c)!.actor, ['enabled', 'guard_state'], old);
      this.broadcast('rollback_event', { id: ev.id, flag: r.name, kind: 'restore', actor: ev.actor, ruleId: null, createdAt: ev.createdAt });
      return c.json({ event: ev, flag: this.view(r) });
    });
    app.get('/flags/:name/audit', (c) => c.json({ changes: this.audit.filter((a) => a.flag === c.req.param('name')), nextCursor: null }));
    app.get('/flags/:name/usage', (c) => {
      const r = flagOr404(c);
      if (r instanceof Response) return r;
      const bucketMs = c.req.query('bucket') === 'minute' ? 60_000 : 3600_000;
      const since = new Date(c.req.query('since') ?? Date.now() - 24 * 3600_000).getTime();
      const series: Usage['series'][number][] = [];
      let i = 0;
      for (let t = Math.ceil(since / bucketMs) * bucketMs; t <= Date.now(); t += bucketMs, i++) {
        const on = 400 + ((i * 37) % 90);
        const off = 380 + ((i * 53) % 70);
        series.push({ t: new Date(t).toISOString(), on: { users: on, errorUsers: Math.round(on * (0.02 + ((i % 7) / 400))) }, off: { users: off, errorUsers: Math.round(off * 0.018) } });
      }
      const usage: Usage = {
        bucket: bucketMs === 60_000 ? 'minute' : 'hour', since: new Date(since).toISOString(), until: new Date().toISOString(), series, judged: [],
        thresholds: [{ ruleId: 'booking-agent-errors', kind: 'absolute', value: 0.05 }, { ruleId: 'ai-stage-regression', kind: 'relative', value: 0.01 }],
        changes: [{ at: new Date(Date.now() - 5 * bucketMs).toISOString(), kind: 'change', enabled: true, rolloutPercentage: r.rolloutPercentage, actor: 'alice@example.com' }, ...this.events.filter((e) => e.flag === r.name).map((e) => ({ at: e.createdAt, kind: e.kind, enabled: e.kind === 'restore', rolloutPercentage: r.rolloutPercentage, actor: e.actor }))],
      };
      return c.json(usage);
    });
    app.get('/events', (c) => {
      const kind = c.req.query('kind');
      const flag = c.req.query('flag');
      const events = this.events.filter((e) => (!kind || e.kind === kind) && (!flag || e.flag === flag));
      if (c.req.query('format') === 'csv') return c.text(['id,flag,kind,reason', ...events.map((e) => `${e.id},${e.flag},${e.kind},"${(e.reason ?? '').replace(/"/g, '""')}"`)].join('\n'), 200, { 'content-type': 'text/csv' });
      return c.json({ events, nextCursor: null });
    });
    // The twin's rules file has no release plan (the plans pages run against the real guardian).
    app.get('/plans', (c) => c.json({ plans: [] }));
    app.get('/status', (c) => {
      const s: GuardianStatus = {
        lastCycle: { at: new Date(Date.now() - 12_000).toISOString(), durationMs: 184, ok: true }, intervalMs: 30_000, dryRun: false,
        sources: [
          { id: 'posthog', configured: true, healthy: true, blindSince: null, detail: 'Answered 1 query in 180 ms.' },
          { id: 'sentry', configured: true, healthy: false, blindSince: new Date(Date.now() - 600_000).toISOString(), detail: 'HTTP 429 from Sentry; backing off.' },
          { id: 'builtin', configured: false, healthy: false, blindSince: null, detail: 'Set GUARDIAN_INGEST_KEY to receive SDK exposures.' },
        ],
        rules: { file: 'rules/guardian.yaml', count: 2, ids: ['ai-stage-regression', 'booking-agent-errors'], loadedAt: new Date(this.t0).toISOString(), lastReloadError: this.options.hostile ? `rules[0].id: ${this.options.hostile}` : null },
        verdicts: [...this.flags.values()].flatMap((r) => (r.verdicts ?? []).map((v) => ({ ...v, flag: r.name }))),
      };
      return c.json(s);
    });
    app.get('/stream', (c) =>
      streamSSE(c, async (s) => {
        this.streams.add(s);
        s.onAbort(() => {
          this.streams.delete(s);
        });
        await s.write(': hello\n\n');
        while (!s.aborted && !s.closed) await s.sleep(15_000).then(() => s.write(': heartbeat\n\n'));
      }),
    );
    this.app.route('/api/v1', app);
  }
}
