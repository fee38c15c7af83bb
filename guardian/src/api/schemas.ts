/**
 * The zod schemas of the admin API: they validate every request (params, query, body) and
 * describe every answer, and the OpenAPI document is generated from them (openapi.ts). One
 * source of truth; there is no hand-written copy of these shapes anywhere else.
 */
import { z } from 'zod';

import { FLAG_NAME_PATTERN } from '../rules/schema.ts';
import { MAX_MESSAGE_LENGTH, MAX_REASON_LENGTH, textProblem } from '../store/limits.ts';
import { EVENT_KINDS } from '../store/types.ts';

/** Most ids one targets request may add (and, separately, remove). */
export const MAX_TARGET_BATCH = 10_000;

/** Control characters (C0, DEL, C1) are refused in ids and text a person typed. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const FlagName = z.string().regex(FLAG_NAME_PATTERN, { error: 'must match ^[a-z][a-z0-9_]{1,63}$ (lowercase letter, then letters, digits, _)' });
const Time = z.iso.datetime({ offset: true, error: 'must be an ISO-8601 time with a zone, e.g. 2026-12-03T10:00:00Z' });
const Text = (max: number) =>
  z
    .string()
    .max(max, { error: `must be at most ${max} characters` })
    // eslint-disable-next-line no-control-regex -- tabs and newlines are allowed in text, other control characters are not
    .refine((s) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(s), { error: 'must not contain control characters' });
/**
 * One line of plain text under the same rule as the CLI and the rules file (store/limits.ts): at
 * most `max` characters, no control characters at all (a reason or a message users see is one line).
 */
const OneLine = (noun: string, max: number) =>
  z
    .string()
    .superRefine((s, ctx) => {
      const problem = textProblem(noun, s, max);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .meta({ maxLength: max });
export const TargetId = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(1024, { error: 'must be at most 1024 characters' })
  .refine((s) => !CONTROL.test(s), { error: 'must not contain control characters (tabs, newlines, NUL, …)' })
  .refine((s) => s.trim() === s, { error: 'must not start or end with spaces' });
const Cursor = z.string().max(1100).optional();
const Limit = (max: number, dflt: number) =>
  z.coerce
    .number({ error: `must be a whole number 1..${max}` })
    .int({ error: `must be a whole number 1..${max}` })
    .min(1, { error: `must be at least 1` })
    .max(max, { error: `must be at most ${max}` })
    .default(dflt);

// ---- requests ------------------------------------------------------------------------------

export const FlagParams = z.object({ name: FlagName });
export const EventParams = z.object({ name: FlagName });

export const FlagListQuery = z.object({
  search: z.string().max(200).optional(),
  state: z.enum(['on', 'off', 'rolled_back', 'locked', 'watching']).optional(),
});

export const CreateFlagBody = z.strictObject({
  name: FlagName,
  description: Text(2000).optional(),
  bucketGroup: FlagName.nullable().optional(),
});

export const PatchFlagBody = z
  .strictObject({
    enabled: z.boolean().optional(),
    rolloutPercentage: z.number().int({ error: 'must be a whole number 0..100' }).min(0).max(100).optional(),
    rollbackMessage: OneLine('message', MAX_MESSAGE_LENGTH).nullable().optional(),
    description: Text(2000).optional(),
    locked: z.boolean().optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { error: 'name at least one of enabled, rolloutPercentage, rollbackMessage, description, locked' });

export const TargetsQuery = z.object({ search: z.string().max(1024).optional(), cursor: Cursor, limit: Limit(1000, 100) });

export const TargetsBody = z
  .strictObject({
    add: z.array(TargetId).max(MAX_TARGET_BATCH, { error: `at most ${MAX_TARGET_BATCH} ids per request` }).optional(),
    remove: z.array(TargetId).max(MAX_TARGET_BATCH, { error: `at most ${MAX_TARGET_BATCH} ids per request` }).optional(),
  })
  .refine((b) => (b.add?.length ?? 0) + (b.remove?.length ?? 0) > 0, { error: 'give ids to add or remove' });

export const RollbackBody = z.strictObject({
  reason: OneLine('reason', MAX_REASON_LENGTH).refine((s) => s.trim() !== '', { error: 'say why (stored with the event and shown in alerts)' }),
  stepBack: z.boolean().optional(),
  notify: z.boolean().optional(),
  force: z.boolean().optional(),
  urgent: z.boolean({ error: 'must be true or false' }).optional().meta({
    description:
      'Urgent rollback (default false): users must leave the feature at once. The flag carries the mark (rollbackUrgent) until it is restored, and SDK clients then ignore the app\'s holdUntil(safePoint); the onRollback save hook still runs within its bound.',
  }),
});

export const RestoreBody = z.strictObject({
  eventId: z.string().regex(/^\d{1,19}$/, { error: 'must be an event id (digits)' }).optional(),
  reason: OneLine('reason', MAX_REASON_LENGTH).optional(),
});

export const EventsQuery = z.object({
  flag: FlagName.optional(),
  kind: z.enum(EVENT_KINDS).optional(),
  rule: z.string().max(200).optional(),
  actor: z.string().max(320).optional(),
  since: Time.optional(),
  until: Time.optional(),
  cursor: z.string().regex(/^\d{1,19}$/, { error: 'must be the nextCursor of a previous page' }).optional(),
  limit: Limit(1000, 50),
  format: z.enum(['json', 'csv']).optional(),
});

export const AuditQuery = EventsQuery.pick({ flag: true, actor: true, since: true, until: true, cursor: true, limit: true, format: true });
export const FlagAuditQuery = AuditQuery.omit({ flag: true });

export const UsageQuery = z.object({
  bucket: z.enum(['minute', 'hour', 'day']).default('hour'),
  since: Time.optional(),
  until: Time.optional(),
});

export const StreamQuery = z.object({ lastEventId: z.string().max(40).optional() });

// ---- answers -------------------------------------------------------------------------------

export const ErrorBody = z.object({
  error: z.object({
    code: z.enum([
      'not_found',
      'unauthorized',
      'forbidden',
      'bad_request',
      'version_conflict',
      'precondition_required',
      'conflict',
      'rate_limited',
      'payload_too_large',
      'unavailable',
      'internal',
      'method_not_allowed',
      'unsupported_media_type',
    ]),
    message: z.string(),
    field: z.string().optional(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});

const Counts = z.object({ errors: z.number(), total: z.number(), unit: z.enum(['users', 'events']) });

export const VerdictOut = z.object({
  ruleId: z.string(),
  source: z.string().nullable(),
  verdict: z.string(),
  at: z.string(),
  summary: z.string(),
  treatment: Counts.nullable(),
  control: Counts.nullable(),
  threshold: z.number().nullable(),
});

const FlagStateOut = z.object({
  enabled: z.boolean(),
  rolloutPercentage: z.number(),
  targets: z.union([z.array(z.string()), z.object({ count: z.number() })]),
  guardState: z.string(),
  rollbackMessage: z.string().nullable().optional().meta({ description: 'The flag\'s rollback message in this state (absent in events recorded before it was).' }),
  rollbackUrgent: z.boolean().optional().meta({ description: 'The urgent mark in this state (absent in events recorded before it was).' }),
});

export const NotificationOut = z.object({
  channel: z.string(),
  status: z.string(),
  attempts: z.number(),
  deliveredAt: z.string().nullable(),
  lastError: z.string().nullable(),
});

export const EventOut = z.object({
  id: z.string(),
  flag: z.string(),
  kind: z.string(),
  ruleId: z.string().nullable(),
  source: z.string().nullable(),
  action: z.string().nullable(),
  reason: z.string().nullable(),
  evidence: z.record(z.string(), z.unknown()),
  previousState: FlagStateOut,
  newState: FlagStateOut,
  actor: z.string(),
  restoresEventId: z.string().nullable(),
  createdAt: z.string(),
  notifications: z.array(NotificationOut),
});

export const FlagOut = z.object({
  name: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  rolloutPercentage: z.number(),
  bucketGroup: z.string().nullable(),
  version: z.number(),
  updatedAt: z.string(),
  updatedBy: z.string().nullable(),
  guardState: z.enum(['watching', 'rolled_back', 'locked']),
  rollbackMessage: z.string().nullable(),
  rollbackUrgent: z.boolean().meta({ description: 'The flag\'s latest rollback was marked urgent (cleared by restore): SDK clients ignore holdUntil for it.' }),
  stageStartedAt: z.string(),
  targetCount: z.number(),
  verdicts: z.array(VerdictOut),
  exposures: z.object({ on: z.number(), off: z.number(), since: z.string() }).nullable(),
  lastRollback: EventOut.nullable(),
});

export const MeOut = z.object({ actor: z.string(), role: z.enum(['viewer', 'editor', 'admin']), via: z.enum(['supabase', 'admin_token']) });
export const FlagListOut = z.object({ flags: z.array(FlagOut) });
export const OneFlagOut = z.object({ flag: FlagOut });
export const PatchFlagOut = z.object({ flag: FlagOut, note: z.string().optional() });
export const VersionConflictOut = ErrorBody.extend({ current: FlagOut });
export const TargetsOut = z.object({ targets: z.array(z.string()), total: z.number(), nextCursor: z.string().nullable() });
export const TargetsChangeOut = z.object({ flag: FlagOut, added: z.number(), removed: z.number() });
export const RollbackOut = z.object({ event: EventOut, flag: FlagOut, alreadyRolledBack: z.boolean() });
export const RestoreOut = z.object({ event: EventOut, flag: FlagOut });
export const EventsOut = z.object({ events: z.array(EventOut), nextCursor: z.string().nullable() });
export const ChangeOut = z.object({
  id: z.string(),
  flag: z.string(),
  op: z.enum(['INSERT', 'UPDATE', 'DELETE', 'TARGET_ADD', 'TARGET_REMOVE']),
  actor: z.string(),
  at: z.string(),
  fields: z.array(z.string()),
  old: z.record(z.string(), z.unknown()).nullable(),
  new: z.record(z.string(), z.unknown()).nullable(),
});
export const AuditOut = z.object({ changes: z.array(ChangeOut), nextCursor: z.string().nullable() });
const CohortUsage = z.object({ users: z.number(), errorUsers: z.number() });
export const UsageOut = z.object({
  bucket: z.enum(['minute', 'hour', 'day']),
  since: z.string(),
  until: z.string(),
  series: z.array(z.object({ t: z.string(), on: CohortUsage, off: CohortUsage })),
  judged: z.array(
    z.object({ t: z.string(), ruleId: z.string().nullable(), ruleIds: z.array(z.string()), source: z.string(), treatment: Counts, control: Counts.nullable() }),
  ),
  thresholds: z.array(z.object({ ruleId: z.string(), source: z.string(), kind: z.enum(['absolute', 'relative']), value: z.number() })),
  changes: z.array(
    z.object({
      at: z.string(),
      kind: z.string(),
      enabled: z.boolean().nullable(),
      rolloutPercentage: z.number().nullable(),
      actor: z.string(),
      eventId: z.string().nullable(),
    }),
  ),
});
export const StatusOut = z.object({
  lastCycle: z.object({ at: z.string(), durationMs: z.number(), ok: z.boolean() }).nullable(),
  intervalMs: z.number(),
  dryRun: z.boolean(),
  sources: z.array(
    z.object({ id: z.string(), configured: z.boolean(), healthy: z.boolean(), blindSince: z.string().nullable(), lastOkAt: z.string().nullable(), detail: z.string() }),
  ),
  rules: z.object({ file: z.string(), count: z.number(), ids: z.array(z.string()), loadedAt: z.string().nullable(), lastReloadError: z.string().nullable() }),
  verdicts: z.array(VerdictOut.extend({ flag: z.string() })),
});
export const FlagEventData = z.object({
  name: z.string(),
  version: z.number(),
  enabled: z.boolean(),
  rolloutPercentage: z.number(),
  bucketGroup: z.string().nullable(),
  guardState: z.string(),
  rollbackMessage: z.string().nullable(),
  rollbackUrgent: z.boolean(),
  description: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string().nullable(),
  deleted: z.literal(true).optional(),
});
export const RollbackEventData = z.object({ id: z.string(), flag: z.string(), kind: z.string(), actor: z.string(), ruleId: z.string().nullable(), createdAt: z.string() });

// ---- release plans -----------------------------------------------------------------------

export const PlanParams = z.object({ flag: FlagName });

export const PlanChangeBody = z.strictObject({
  reason: OneLine('reason', MAX_REASON_LENGTH).optional(),
  notify: z.boolean().optional(),
});

const Evidence = z.record(z.string(), z.unknown());
export const PlanViewOut = z.object({
  flag: z.string(),
  status: z.enum(['active', 'paused', 'completed', 'aborted', 'stopped', 'not started']),
  reason: z.string().nullable(),
  stages: z.array(z.number()),
  percentage: z.number().nullable(),
  enabled: z.boolean().nullable(),
  timeInStageMs: z.number().nullable(),
  users: z.number().nullable(),
  minUsers: z.number().nullable(),
  earliestPromotionAt: z.string().nullable(),
  safety: Evidence.nullable(),
  harm: z.array(Evidence),
  assessedAt: z.string().nullable(),
  lastAction: z.string().nullable(),
});
export const PlansOut = z.object({ plans: z.array(PlanViewOut) });
export const PlanChangeOut = z.object({ plan: PlanViewOut, eventId: z.string().nullable() });
