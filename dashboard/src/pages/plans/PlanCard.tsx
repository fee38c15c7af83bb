/**
 * One release plan: its stage (i of n, and the percentage), status, time in the stage, flag-on
 * users against the stage's minimum, the evidence for safety and for harm in words and numbers,
 * the earliest promotion; and a person's hand on it (pause / resume / abort, each confirmed).
 * `usePlans` loads the plans and refreshes them when the change stream carries a promotion, a
 * plan event or a change of a planned flag.
 */
import { useCallback, useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError } from '../../api/client.ts';
import type { PlanAction, PlanStatus, PlanView } from '../../api/types.ts';
import { ConfirmDialog } from '../../components/Dialog.tsx';
import { DisabledReason, ErrorNotice, InfoNotice } from '../../components/Notice.tsx';
import { ago, duration, num, pct, when } from '../../format.ts';
import { useLiveMessages } from '../../live.tsx';
import { Link } from '../../router.tsx';
import { useCan, useSession } from '../../session.tsx';

/** The plans of the rules file in force, kept fresh from the change stream. */
export function usePlans(): { plans: PlanView[] | null; error: string | null; reload(): Promise<void> } {
  const { api } = useSession();
  const [plans, setPlans] = useState<PlanView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const reload = useCallback(async () => {
    try {
      setPlans(await api.plans());
      setError(null);
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : (err as Error).message);
    }
  }, [api]);
  useEffect(() => void reload(), [reload]);
  useLiveMessages((m) => {
    if (m.type === 'reset') void reload();
    else if (m.type === 'rollback_event' && (m.data.kind === 'promote' || m.data.kind.startsWith('plan_') || plans?.some((p) => p.flag === m.data.flag))) void reload();
    else if (m.type === 'flag' && plans?.some((p) => p.flag === m.data.name)) void reload();
  });
  return { plans, error, reload };
}

const STATUS: Record<PlanStatus, { icon: string; label: string; cls: string; help: string }> = {
  active: { icon: '▶', label: 'Active', cls: 'ok', help: 'The guardian promotes the flag when a stage is shown safe.' },
  paused: { icon: '⏸', label: 'Paused', cls: 'warn', help: 'No promotion until someone resumes it; the guardian still rolls back on harm.' },
  stopped: { icon: '■', label: 'Stopped', cls: 'bad', help: 'A guard rule breached or someone changed the flag: resume it to go on.' },
  completed: { icon: '✓', label: 'Completed', cls: 'ok', help: 'The flag reached the last stage.' },
  aborted: { icon: '✕', label: 'Aborted', cls: 'neutral', help: 'Ended for good; the flag stays where it is.' },
  'not started': { icon: '…', label: 'Not started', cls: 'neutral', help: 'The guardian has not looked at this plan yet.' },
};

export function PlanStatusBadge(props: { status: PlanStatus }): ReactNode {
  const s = STATUS[props.status] ?? { icon: '•', label: props.status, cls: 'neutral', help: '' };
  return (
    <span className={`badge ${s.cls}`} title={s.help} data-plan-status={props.status}>
      <span aria-hidden="true">{s.icon}</span> {s.label}
    </span>
  );
}

/** The statuses each action may start from (guardian/src/plans/view.ts PLAN_CHANGES). */
const ALLOWED_FROM: Record<PlanAction, readonly PlanStatus[]> = { pause: ['active'], resume: ['paused', 'stopped'], abort: ['active', 'paused', 'stopped'] };
const ACTION_WORDS: Record<PlanAction, { label: string; does: string }> = {
  pause: { label: 'Pause', does: 'The guardian stops promoting it; it still rolls the flag back if a guard rule shows harm.' },
  resume: { label: 'Resume', does: 'The guardian promotes it again from the flag’s current state, when the stage is shown safe.' },
  abort: { label: 'Abort', does: 'The plan ends for good: the flag stays where it is and is never promoted by this plan again.' },
};

function num0(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function cohort(v: unknown): { errors: number; total: number } | null {
  if (v === null || typeof v !== 'object') return null;
  const c = v as Record<string, unknown>;
  const errors = num0(c['errors']);
  const total = num0(c['total']);
  return errors === null || total === null ? null : { errors, total };
}

function cohortText(c: { errors: number; total: number } | null, unit: string): string {
  if (!c) return 'no data';
  return `${pct(c.total > 0 ? c.errors / c.total : null, 2)} (${num(c.errors)} of ${num(c.total)} ${unit})`;
}

/** The evidence of safety in words: rates of both cohorts, the statistic against what it needs. */
export function safetyWords(s: Readonly<Record<string, unknown>> | null): string {
  if (!s) return 'No flag-on/flag-off counts yet for the safety test.';
  const unit = typeof s['unit'] === 'string' ? s['unit'] : 'users';
  const logE = num0(s['logE']);
  const threshold = num0(s['threshold']);
  const margin = num0(s['margin']);
  const alpha = num0(s['alpha']);
  const head = s['safe'] === true ? 'Shown safe' : 'Not yet shown safe';
  const evidence = logE !== null && threshold !== null ? `; evidence ${Math.exp(logE).toPrecision(3)} of ${Math.exp(threshold).toPrecision(3)} needed` : '';
  const terms = margin !== null ? ` (margin ${pct(margin, 2)}${alpha !== null ? `, confidence ${Math.round((1 - alpha) * 100)}%` : ''})` : '';
  return `${head}: flag-on ${cohortText(cohort(s['treatment']), unit)} vs flag-off ${cohortText(cohort(s['control']), unit)}${evidence}${terms}.`;
}

const HARM_KIND: Record<string, string> = { ok: 'no harm shown', healthy: 'no harm shown', breach: 'harm shown', insufficient_data: 'too few users', skipped: 'skipped', failed: 'could not be judged', no_data: 'no data' };

/** One guard rule's evidence of harm in words. */
export function harmWords(h: Readonly<Record<string, unknown>>): string {
  const kind = typeof h['kind'] === 'string' ? h['kind'] : 'unknown';
  const logE = num0(h['logE']);
  const threshold = num0(h['threshold']);
  const evidence = logE !== null && threshold !== null ? ` (evidence ${Math.exp(logE).toPrecision(3)} of ${Math.exp(threshold).toPrecision(3)} to act)` : '';
  const reason = typeof h['reason'] === 'string' && h['reason'] !== '' ? ` — ${h['reason']}` : '';
  return `${String(h['ruleId'] ?? 'rule')}: ${HARM_KIND[kind] ?? kind.replace(/_/g, ' ')}${evidence}${reason}`;
}

export function PlanCard(props: { plan: PlanView; onChanged(p: PlanView): void; headingLevel?: 2 | 3; showFlag?: boolean }): ReactNode {
  const { api } = useSession();
  const can = useCan('editor');
  const { plan } = props;
  const [asked, setAsked] = useState<PlanAction | null>(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const stageIndex = plan.percentage === null ? -1 : plan.stages.indexOf(plan.percentage);
  const last = stageIndex === plan.stages.length - 1;
  const H = props.headingLevel === 3 ? 'h3' : 'h2';
  const id = `plan-${plan.flag}`;

  async function run(action: PlanAction): Promise<void> {
    setBusy(true);
    setError(null);
    setNote(null);
    try {
      const r = await api.changePlan(plan.flag, action, reason.trim() === '' ? {} : { reason: reason.trim() });
      props.onChanged(r.plan);
      setNote(`${ACTION_WORDS[action].label} the plan of ${plan.flag}: done (now ${STATUS[r.plan.status]?.label.toLowerCase() ?? r.plan.status}).`);
      setReason('');
    } catch (err) {
      setError(`${ACTION_WORDS[action].label} the plan of ${plan.flag} failed: ${err instanceof ApiError ? err.describe() : (err as Error).message}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <article className="card plan" aria-labelledby={`${id}-title`} data-plan={plan.flag}>
      <div className="card-head">
        <H id={`${id}-title`}>
          {props.showFlag === false ? 'Release plan' : <Link to={`/flags/${encodeURIComponent(plan.flag)}`} className="flag-name">{plan.flag}</Link>}
        </H>
        <PlanStatusBadge status={plan.status} />
      </div>
      <ol className="plain stages" aria-label={`Stages of ${plan.flag}`}>
        {plan.stages.map((s, i) => (
          <li key={s} className={i === stageIndex ? 'current' : i < stageIndex ? 'done' : undefined} aria-current={i === stageIndex ? 'step' : undefined}>
            {i < stageIndex ? <span aria-hidden="true">✓ </span> : i === stageIndex ? <span aria-hidden="true">▶ </span> : null}
            {s}%
          </li>
        ))}
      </ol>
      <dl className="facts small">
        <dt>Stage</dt>
        <dd>
          {stageIndex >= 0
            ? `${stageIndex + 1} of ${plan.stages.length} (${plan.percentage}%${plan.enabled === false ? ', flag off' : ''})`
            : plan.percentage === null
              ? 'the flag does not exist'
              : `the flag is at ${plan.percentage}%, not a stage of the plan${plan.enabled === false ? ' (flag off)' : ''}`}
        </dd>
        {plan.reason && (
          <>
            <dt>Why</dt>
            <dd className="reason">{plan.reason}</dd>
          </>
        )}
        <dt>In stage</dt>
        <dd>{duration(plan.timeInStageMs)}</dd>
        <dt>Users</dt>
        <dd>
          {plan.users === null ? 'not counted yet' : `${num(plan.users)} flag-on users`}
          {plan.minUsers !== null ? ` of the ${num(plan.minUsers)} needed` : ''}
          {plan.users !== null && plan.minUsers !== null ? (plan.users >= plan.minUsers ? ' (enough)' : ' (not yet enough)') : ''}
        </dd>
        <dt>Safety</dt>
        <dd>{safetyWords(plan.safety)}</dd>
        <dt>Harm</dt>
        <dd>
          {plan.harm.length === 0 ? (
            'No guard rule has judged this stage yet.'
          ) : (
            <ul className="plain">
              {plan.harm.map((h, i) => (
                <li key={i}>{harmWords(h)}</li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Earliest promotion</dt>
        <dd>
          {last
            ? 'none: this is the last stage'
            : plan.earliestPromotionAt
              ? `${when(plan.earliestPromotionAt)} (${ago(plan.earliestPromotionAt)}), if the stage is shown safe by then`
              : '–'}
        </dd>
        <dt>Last looked</dt>
        <dd>{plan.assessedAt ? `${ago(plan.assessedAt)}${plan.lastAction ? `: ${plan.lastAction}` : ''}` : 'not yet'}</dd>
      </dl>
      {error && <ErrorNotice onDismiss={() => setError(null)}>{error}</ErrorNotice>}
      {note && <InfoNotice kind="success" onDismiss={() => setNote(null)}>{note}</InfoNotice>}
      <div className="row" role="group" aria-label={`Plan of ${plan.flag}`}>
        {(['pause', 'resume', 'abort'] as const).map((a) => {
          const fromOk = ALLOWED_FROM[a].includes(plan.status);
          const why = !can.allowed ? `${id}-role-why` : !fromOk ? `${id}-${a}-why` : undefined;
          return (
            <button key={a} type="button" className={a === 'abort' ? 'danger' : undefined} disabled={!can.allowed || !fromOk || busy} aria-describedby={why} onClick={() => setAsked(a)}>
              {ACTION_WORDS[a].label}…
            </button>
          );
        })}
      </div>
      <DisabledReason id={`${id}-role-why`} reason={can.reason} />
      {can.allowed &&
        (['pause', 'resume', 'abort'] as const)
          .filter((a) => !ALLOWED_FROM[a].includes(plan.status))
          .map((a) => (
            <p key={a} id={`${id}-${a}-why`} className="visually-hidden">
              {ACTION_WORDS[a].label} is not possible: the plan is {STATUS[plan.status]?.label.toLowerCase() ?? plan.status}; it can be {a === 'pause' ? 'paused' : a === 'resume' ? 'resumed' : 'aborted'} only when {ALLOWED_FROM[a].join(' or ')}.
            </p>
          ))}
      <ConfirmDialog
        open={asked !== null}
        title={asked ? `${ACTION_WORDS[asked].label} the plan of ${plan.flag}?` : ''}
        confirmLabel={asked ? ACTION_WORDS[asked].label : ''}
        danger={asked === 'abort'}
        onCancel={() => setAsked(null)}
        onConfirm={() => {
          const a = asked!;
          setAsked(null);
          void run(a);
        }}
      >
        {asked && <p>{ACTION_WORDS[asked].does}</p>}
        <label htmlFor={`${id}-reason`}>Reason (optional, stored with the event and sent in the alert)</label>
        <textarea id={`${id}-reason`} rows={2} maxLength={1000} value={reason} onChange={(e) => setReason(e.target.value)} />
      </ConfirmDialog>
    </article>
  );
}
