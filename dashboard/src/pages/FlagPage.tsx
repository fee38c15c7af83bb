/**
 * One flag: toggle (with how many users it affects), rollout percentage, targets, rollback
 * message, lock, restore after a rollback, usage and error-rate charts, rule verdicts, audit.
 * Every write is made on the version the person saw when they started it.
 */
import { useCallback, useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError } from '../api/client.ts';
import type { Flag } from '../api/types.ts';
import { GuardBadge, OnOffBadge, VerdictBadge } from '../components/Badges.tsx';
import { ConflictNotice } from '../components/Conflict.tsx';
import { ConfirmDialog } from '../components/Dialog.tsx';
import { DisabledReason, ErrorNotice, InfoNotice } from '../components/Notice.tsx';
import { ago, counts, flagState, num, pct, targetsText, when, KIND_WORDS } from '../format.ts';
import { useLiveMessages } from '../live.tsx';
import { Link, navigate } from '../router.tsx';
import { useCan, useSession } from '../session.tsx';
import { AuditPanel } from './flag/AuditPanel.tsx';
import { TargetsPanel } from './flag/TargetsPanel.tsx';
import { UsagePanel } from './flag/UsagePanel.tsx';
import { PlanCard, usePlans } from './plans/PlanCard.tsx';
import { useFlagWriter } from './useFlagWriter.ts';

export function FlagPage(props: { name: string }): ReactNode {
  const { api } = useSession();
  const [flag, setFlagState] = useState<Flag | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [revision, setRevision] = useState(0);

  const setFlag = useCallback((f: Flag) => {
    setFlagState((old) => (old && old.name === f.name && old.version > f.version ? old : f));
    setRevision((r) => r + 1);
  }, []);

  const load = useCallback(async () => {
    try {
      const f = await api.flag(props.name);
      setFlag(f);
      setLoadError(null);
    } catch (err) {
      setLoadError(err instanceof ApiError ? err.describe() : (err as Error).message);
    }
  }, [api, props.name, setFlag]);
  useEffect(() => {
    setFlagState(null);
    void load();
  }, [load]);

  useLiveMessages((m) => {
    if (m.type === 'reset') void load();
    else if (m.type === 'flag' && m.data.name === props.name) {
      if (m.data.deleted) setLoadError(`The flag ${props.name} was deleted.`);
      else void load();
    } else if (m.type === 'rollback_event' && m.data.flag === props.name) void load();
  });

  const writer = useFlagWriter(setFlag);

  if (loadError && !flag) {
    return (
      <section>
        <p><Link to="/">← All flags</Link></p>
        <ErrorNotice title={`Could not load ${props.name}`}>{loadError}</ErrorNotice>
      </section>
    );
  }
  if (!flag) return <p aria-busy="true">Loading {props.name}…</p>;

  return (
    <section aria-labelledby="flag-title" className="flag-page">
      <p className="crumbs"><Link to="/">← All flags</Link></p>
      <div className="page-head">
        <h1 id="flag-title" className="flag-name">{flag.name}</h1>
        <div className="badges">
          <OnOffBadge enabled={flag.enabled} percentage={flag.rolloutPercentage} />
          <GuardBadge state={flag.guardState} />
        </div>
      </div>
      {flag.description ? <p className="description">{flag.description}</p> : null}
      <p className="muted small">
        Version {flag.version} · updated {ago(flag.updatedAt)}{flag.updatedBy ? ` by ${flag.updatedBy}` : ''}
        {flag.bucketGroup ? ` · bucket group ${flag.bucketGroup}` : ''}
        {flag.stageStartedAt ? ` · this stage since ${when(flag.stageStartedAt)}` : ''}
      </p>
      {loadError && <ErrorNotice>{loadError}</ErrorNotice>}
      {writer.conflict && <ConflictNotice conflict={writer.conflict} onKeep={writer.keepCurrent} />}
      {writer.error && <ErrorNotice onDismiss={writer.clear}>{writer.error}</ErrorNotice>}
      {writer.note && <InfoNotice kind="success" onDismiss={writer.clear}>{writer.note}</InfoNotice>}

      {flag.guardState === 'rolled_back' && <RestoreCard flag={flag} writer={writer} />}
      <div className="grid two">
        <ControlsCard flag={flag} writer={writer} />
        <RulesCard flag={flag} />
      </div>
      <FlagPlan name={flag.name} />
      {flag.enabled && flag.guardState !== 'rolled_back' && <RollbackNowCard flag={flag} writer={writer} />}
      <UsagePanel flag={flag} revision={revision} />
      <TargetsPanel flag={flag} writer={writer} />
      <AuditPanel flag={flag} revision={revision} />
      <DeleteCard flag={flag} />
    </section>
  );
}

type Writer = ReturnType<typeof useFlagWriter>;

function RestoreCard(props: { flag: Flag; writer: Writer }): ReactNode {
  const { api } = useSession();
  const can = useCan('editor');
  const { flag, writer } = props;
  const [open, setOpen] = useState<Flag | null>(null);
  const ev = flag.lastRollback ?? null;
  const prev = ev?.previousState ?? null;
  const what = prev ? (
    <ul className="restore-list">
      <li>Enabled: <strong>{prev.enabled === undefined ? 'unchanged' : prev.enabled ? 'on' : 'off'}</strong> (now {flag.enabled ? 'on' : 'off'})</li>
      <li>Rollout: <strong>{prev.rolloutPercentage ?? flag.rolloutPercentage}%</strong> (now {flag.rolloutPercentage}%)</li>
      <li>Targets: <strong>{targetsText(prev.targets)}</strong> (now {num(flag.targetCount ?? 0)})</li>
      <li>Guard state: <strong>{prev.guardState ?? 'watching'}</strong> (now rolled back), so the guardian watches it again</li>
    </ul>
  ) : (
    <p>The event that rolled it back is not available; restore puts back what it recorded.</p>
  );
  return (
    <div className="card alert-card" aria-labelledby="restore-title">
      <h2 id="restore-title"><span aria-hidden="true">⟲ </span>Rolled back {ev ? ago(ev.createdAt) : ''}</h2>
      {ev && (
        <p>
          {KIND_WORDS[ev.kind] ?? ev.kind} {ev.ruleId ? <>by rule <strong>{ev.ruleId}</strong>{ev.source ? ` (${ev.source})` : ''}</> : ev.actor ? `by ${ev.actor}` : ''} at {when(ev.createdAt)}.
          {ev.reason ? <> Reason: <span className="reason">{ev.reason}</span></> : null}
        </p>
      )}
      {flag.rollbackUrgent && <p><strong>Marked urgent:</strong> apps switched without waiting for their users&apos; safe points.</p>}
      {flag.rollbackMessage && <p>Users see: <q className="reason">{flag.rollbackMessage}</q></p>}
      <h3>Restore will put back exactly</h3>
      {what}
      <button type="button" className="primary" disabled={!can.allowed || writer.busy} aria-describedby={can.allowed ? undefined : 'restore-why'} onClick={() => setOpen(flag)}>
        Restore {flag.name}…
      </button>
      <DisabledReason id="restore-why" reason={can.reason} />
      <ConfirmDialog
        open={open !== null}
        title={`Restore ${flag.name}?`}
        confirmLabel="Restore"
        onCancel={() => setOpen(null)}
        onConfirm={() => {
          const base = open!;
          setOpen(null);
          void writer.write(`Restore ${flag.name}`, base, (b) => api.restore(b.name, b.version, ev ? { eventId: ev.id } : {}));
        }}
      >
        {what}
      </ConfirmDialog>
    </div>
  );
}

function affected(flag: Flag, turningOn: boolean): string {
  const exp = flag.exposures;
  const targets = flag.targetCount ?? 0;
  const t = targets > 0 ? ` and its ${num(targets)} targeted user${targets === 1 ? '' : 's'}` : '';
  if (!exp) return turningOn ? `About ${flag.rolloutPercentage}% of users${t} will get it on (no usage counted yet).` : `Everyone who has it on (${flag.rolloutPercentage}% of users${t}) gets it off (no usage counted yet).`;
  const seen = exp.on + exp.off;
  if (turningOn) return `About ${num(Math.round((seen * flag.rolloutPercentage) / 100))} of the ${num(seen)} users seen since ${when(exp.since)} (${flag.rolloutPercentage}%)${t} will get it on.`;
  return `${num(exp.on)} users had it on since ${when(exp.since)}${t}; they get it off at their next evaluation (live clients within a second).`;
}

function ControlsCard(props: { flag: Flag; writer: Writer }): ReactNode {
  const { api } = useSession();
  const can = useCan('editor');
  const { flag, writer } = props;
  const [toggle, setToggle] = useState<Flag | null>(null);
  const [draft, setDraft] = useState<{ value: number; base: Flag } | null>(null);
  const [msg, setMsg] = useState<{ value: string; base: Flag } | null>(null);
  const dis = !can.allowed || writer.busy;
  const why = can.allowed ? undefined : 'controls-why';
  const shown = draft?.value ?? flag.rolloutPercentage;

  function setPct(v: number): void {
    const value = Math.max(0, Math.min(100, Math.round(v)));
    setDraft((d) => ({ value, base: d?.base ?? flag }));
  }

  async function savePct(): Promise<void> {
    if (!draft) return;
    const { value, base } = draft;
    const ok = await writer.write(`Set ${flag.name} to ${value}%`, base, (b) => api.patchFlag(b.name, b.version, { rolloutPercentage: value }));
    if (ok) setDraft(null);
  }

  const seen = flag.exposures ? flag.exposures.on + flag.exposures.off : null;
  return (
    <div className="card" aria-labelledby="controls-title">
      <h2 id="controls-title">Rollout</h2>
      <DisabledReason id="controls-why" reason={can.reason} />
      <div className="control-row">
        <div>
          <strong>{flag.enabled ? 'On' : 'Off'}</strong>
          <span className="muted small"> · {flagState(flag)}</span>
        </div>
        <button type="button" className={flag.enabled ? 'danger' : 'primary'} disabled={dis} aria-describedby={why} onClick={() => setToggle(flag)}>
          {flag.enabled ? 'Turn off…' : 'Turn on…'}
        </button>
      </div>
      <ConfirmDialog
        open={toggle !== null}
        title={toggle ? `Turn ${toggle.enabled ? 'off' : 'on'} ${toggle.name}?` : ''}
        confirmLabel={toggle?.enabled ? 'Turn off' : 'Turn on'}
        danger={toggle?.enabled ?? false}
        onCancel={() => setToggle(null)}
        onConfirm={() => {
          const base = toggle!;
          setToggle(null);
          const on = !base.enabled;
          void writer.write(`Turn ${on ? 'on' : 'off'} ${base.name}`, base, (b) => api.patchFlag(b.name, b.version, { enabled: on }));
        }}
      >
        {toggle && <p>{affected(toggle, !toggle.enabled)}</p>}
        {toggle && toggle.guardState === 'rolled_back' && !toggle.enabled && <p>This flag is rolled back: turning it on here does not restore its targets; use Restore to put back exactly what it had.</p>}
      </ConfirmDialog>

      <fieldset className="pct" disabled={dis}>
        <legend>Rollout percentage</legend>
        <div className="pct-row">
          <label htmlFor="pct-range" className="visually-hidden">Rollout percentage slider</label>
          <input id="pct-range" type="range" min={0} max={100} step={1} value={shown} onChange={(e) => setPct(Number(e.target.value))} aria-describedby={why} aria-valuetext={`${shown}%`} />
          <label htmlFor="pct-number" className="visually-hidden">Rollout percentage, any value from 0 to 100</label>
          <input id="pct-number" type="number" min={0} max={100} step={1} inputMode="numeric" value={shown} onChange={(e) => e.target.value !== '' && setPct(Number(e.target.value))} aria-describedby={why} />
          <span aria-hidden="true">%</span>
        </div>
        <div className="row" role="group" aria-label="Stages">
          {[10, 50, 100].map((v) => (
            <button key={v} type="button" aria-pressed={shown === v} onClick={() => setPct(v)}>
              {v}%
            </button>
          ))}
        </div>
        {draft && draft.value !== flag.rolloutPercentage && (
          <p className="small">
            {flag.rolloutPercentage}% → <strong>{draft.value}%</strong>
            {seen !== null ? ` · about ${num(Math.round((seen * draft.value) / 100))} of ${num(seen)} recent users` : ''}
            {draft.base.version !== flag.version ? ` · the flag changed since you started (now version ${flag.version})` : ''}
          </p>
        )}
        <div className="row">
          <button type="button" className="primary" disabled={!draft || draft.value === draft.base.rolloutPercentage} onClick={() => void savePct()}>
            Save percentage
          </button>
          {draft && <button type="button" onClick={() => setDraft(null)}>Discard</button>}
        </div>
      </fieldset>

      <fieldset disabled={dis}>
        <legend>Rollback message</legend>
        <label htmlFor="rb-message" className="visually-hidden">Message users see after a rollback</label>
        <textarea id="rb-message" rows={2} maxLength={500} placeholder="Shown to users after a rollback (plain text)" value={msg?.value ?? flag.rollbackMessage ?? ''} onChange={(e) => setMsg({ value: e.target.value, base: msg?.base ?? flag })} aria-describedby={why} />
        <div className="row">
          <button
            type="button"
            disabled={!msg}
            onClick={() => {
              if (!msg) return;
              const value = msg.value.trim() === '' ? null : msg.value;
              void writer.write('Save the rollback message', msg.base, (b) => api.patchFlag(b.name, b.version, { rollbackMessage: value })).then((ok) => ok && setMsg(null));
            }}
          >
            Save message
          </button>
          {msg && <button type="button" onClick={() => setMsg(null)}>Discard</button>}
        </div>
      </fieldset>

      <div className="control-row">
        <div>
          <strong>{flag.guardState === 'locked' ? 'Locked' : 'Not locked'}</strong>
          <div className="muted small">{flag.guardState === 'locked' ? 'The guardian never acts on it.' : 'The guardian may roll it back when its rules breach.'}</div>
        </div>
        <button
          type="button"
          disabled={dis || flag.guardState === 'rolled_back'}
          aria-describedby={flag.guardState === 'rolled_back' ? 'lock-why' : why}
          onClick={() => void writer.write(flag.guardState === 'locked' ? `Unlock ${flag.name}` : `Lock ${flag.name}`, flag, (b) => api.patchFlag(b.name, b.version, { locked: b.guardState !== 'locked' }))}
        >
          {flag.guardState === 'locked' ? 'Unlock' : 'Lock'}
        </button>
      </div>
      {flag.guardState === 'rolled_back' && <p id="lock-why" className="disabled-reason">Restore the flag before locking it.</p>}
    </div>
  );
}

function RulesCard(props: { flag: Flag }): ReactNode {
  const { flag } = props;
  const v = flag.verdicts ?? [];
  return (
    <div className="card" aria-labelledby="rules-title">
      <h2 id="rules-title">Rules watching it</h2>
      {v.length === 0 ? (
        <p className="muted">No rule watches this flag. Add it to a rule in the rules file to have it guarded.</p>
      ) : (
        <ul className="plain rule-list">
          {v.map((r) => (
            <li key={`${r.ruleId}:${r.source}`}>
              <VerdictBadge verdict={r} /> <span className="muted small">{r.source ?? "rule no longer in the rules file"} · {ago(r.at)}</span>
              <p className="small">{r.summary}</p>
              <dl className="facts small">
                <dt>Flag on</dt>
                <dd>{counts(r.treatment)}</dd>
                <dt>Flag off</dt>
                <dd>{counts(r.control)}</dd>
                {r.threshold !== null && (
                  <>
                    <dt>Threshold</dt>
                    <dd>{pct(r.threshold)}</dd>
                  </>
                )}
              </dl>
            </li>
          ))}
        </ul>
      )}
      {flag.exposures && (
        <p className="small muted">
          Since {when(flag.exposures.since)}: {num(flag.exposures.on)} users with it on, {num(flag.exposures.off)} with it off.
        </p>
      )}
    </div>
  );
}

/** The flag's release plan, when the rules file has one for it. */
function FlagPlan(props: { name: string }): ReactNode {
  const { plans, error, reload } = usePlans();
  const plan = plans?.find((p) => p.flag === props.name);
  if (error) return <ErrorNotice title="Could not load the release plan">{error}</ErrorNotice>;
  if (!plan) return null;
  return <PlanCard plan={plan} showFlag={false} onChanged={() => void reload()} />;
}

/** Roll back now: a person's rollback, with a reason, of what the flag does to its users. */
function RollbackNowCard(props: { flag: Flag; writer: Writer }): ReactNode {
  const { api } = useSession();
  const can = useCan('editor');
  const { flag, writer } = props;
  const [open, setOpen] = useState<Flag | null>(null);
  const [reason, setReason] = useState('');
  const [stepBack, setStepBack] = useState(false);
  const [urgent, setUrgent] = useState(false);
  const [tried, setTried] = useState(false);
  const locked = flag.guardState === 'locked';
  const why = !can.allowed ? can.reason : locked ? 'The flag is locked: unlock it first (a locked flag is never rolled back).' : '';
  const missing = reason.trim() === '';
  return (
    <div className="card" aria-labelledby="rollback-now-title">
      <h2 id="rollback-now-title">Roll back now</h2>
      <p className="small">
        Turn the flag off (or step it back to its previous stage) at once, as the guardian would on a breach: a manual rollback event is written, the team is alerted, users see the rollback message, and
        Restore puts back exactly what it had.
      </p>
      <button type="button" className="danger" disabled={why !== '' || writer.busy} aria-describedby={why ? 'rollback-now-why' : undefined} onClick={() => { setTried(false); setOpen(flag); }}>
        Roll back {flag.name} now…
      </button>
      <DisabledReason id="rollback-now-why" reason={why} />
      <ConfirmDialog
        open={open !== null}
        title={`Roll back ${flag.name} now?`}
        confirmLabel={stepBack ? 'Step back now' : 'Turn off now'}
        danger
        onCancel={() => setOpen(null)}
        onConfirm={() => {
          setTried(true);
          if (missing) return;
          const base = open!;
          setOpen(null);
          void writer
            .write(`Roll back ${base.name}`, base, async (b) => {
              const r = await api.rollback(b.name, { reason: reason.trim(), ...(stepBack ? { stepBack: true } : {}), ...(urgent ? { urgent: true } : {}) });
              return { flag: r.flag, ...(r.alreadyRolledBack ? { note: 'It had already been rolled back; nothing more was changed.' } : { note: `Now ${r.flag.enabled ? `at ${r.flag.rolloutPercentage}%` : 'off'}; restore shows what comes back.` }) };
            })
            .then((ok) => {
              if (!ok) return;
              setReason('');
              setUrgent(false);
            });
        }}
      >
        {open && (
          <>
            <p>{stepBack ? `It goes from ${open.rolloutPercentage}% to its previous stage (or off if it had none); users above that stage get it off at their next evaluation.` : affected(open, false)}</p>
            <fieldset>
              <legend>What to do</legend>
              <label className="check">
                <input type="radio" name="rollback-action" checked={!stepBack} onChange={() => setStepBack(false)} /> Turn it off for everyone (disable)
              </label>
              <label className="check">
                <input type="radio" name="rollback-action" checked={stepBack} onChange={() => setStepBack(true)} /> Step back to the previous rollout stage
              </label>
            </fieldset>
            <label className="check">
              <input type="checkbox" checked={urgent} onChange={(e) => setUrgent(e.target.checked)} aria-describedby="rollback-urgent-help" /> Urgent: users must leave the feature at once
            </label>
            <p id="rollback-urgent-help" className="small muted">
              Apps then switch without waiting for the safe point a user&apos;s flow declared (their save hook still runs, for at most its bound). Leave it off when finishing a form first is fine.
            </p>
            <label htmlFor="rollback-reason">Reason (required: stored with the event and sent in the alerts)</label>
            <textarea id="rollback-reason" rows={2} maxLength={1000} aria-required="true" aria-invalid={tried && missing} aria-describedby={tried && missing ? 'rollback-reason-error' : undefined} value={reason} onChange={(e) => setReason(e.target.value)} />
            {tried && missing && <p id="rollback-reason-error" className="field-error" role="alert">Say why you roll it back: the reason is stored with the event and shown in the alerts.</p>}
            {open.rollbackMessage ? <p className="small">Users will see: <q className="reason">{open.rollbackMessage}</q></p> : <p className="small muted">The flag has no rollback message: users are not told.</p>}
          </>
        )}
      </ConfirmDialog>
    </div>
  );
}

/** Delete the flag (admins, and only when it is off), confirmed by typing its name. */
function DeleteCard(props: { flag: Flag }): ReactNode {
  const { api } = useSession();
  const can = useCan('admin');
  const { flag } = props;
  const [open, setOpen] = useState<Flag | null>(null);
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const why = !can.allowed ? can.reason.replace('Needs the admin role', 'Deleting a flag needs the admin role') : flag.enabled ? `Turn ${flag.name} off before deleting it: only a disabled flag can be deleted.` : '';

  async function remove(base: Flag): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      await api.deleteFlag(base.name, base.version);
      navigate(`/?deleted=${encodeURIComponent(base.name)}`);
    } catch (err) {
      setError(`Delete ${base.name} failed: ${err instanceof ApiError ? err.describe() : (err as Error).message}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="card danger-zone" aria-labelledby="delete-title">
      <h2 id="delete-title">Delete this flag</h2>
      <p className="small">The flag, its targets and its rollout are removed; its history and rollback events stay. Apps that still ask for it get their default.</p>
      {error && <ErrorNotice onDismiss={() => setError(null)}>{error}</ErrorNotice>}
      <button type="button" className="danger" disabled={why !== '' || busy} aria-describedby={why ? 'delete-why' : undefined} onClick={() => { setTyped(''); setOpen(flag); }}>
        Delete {flag.name}…
      </button>
      <DisabledReason id="delete-why" reason={why} />
      <ConfirmDialog
        open={open !== null}
        title={`Delete ${flag.name}?`}
        confirmLabel="Delete for good"
        danger
        confirmDisabled={typed !== flag.name}
        onCancel={() => setOpen(null)}
        onConfirm={() => {
          const base = open!;
          setOpen(null);
          void remove(base);
        }}
      >
        <p>This cannot be undone. Type the flag’s name, <strong className="flag-name">{flag.name}</strong>, to confirm.</p>
        <label htmlFor="delete-confirm-name">Flag name</label>
        <input id="delete-confirm-name" type="text" autoComplete="off" spellCheck={false} value={typed} onChange={(e) => setTyped(e.target.value)} />
      </ConfirmDialog>
    </div>
  );
}
