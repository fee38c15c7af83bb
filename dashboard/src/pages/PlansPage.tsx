/** Release plans: every plan of the rules file in force, live from the change stream. */
import type { ReactNode } from 'react';
import { ErrorNotice } from '../components/Notice.tsx';
import { PlanCard, usePlans } from './plans/PlanCard.tsx';

export function PlansPage(): ReactNode {
  const { plans, error, reload } = usePlans();
  return (
    <section aria-labelledby="plans-title">
      <div className="page-head">
        <h1 id="plans-title">Release plans</h1>
        <p className="muted">{plans ? `${plans.length} plan${plans.length === 1 ? '' : 's'} in the rules file` : 'Loading plans…'}</p>
      </div>
      <p className="muted small">
        The guardian promotes a flag to its next stage only when the stage has lasted its minimum time, has seen its minimum flag-on users, and the safety test shows flag-on is not worse than flag-off by more than the plan’s margin.
      </p>
      {error && <ErrorNotice title="Could not load the plans">{error}</ErrorNotice>}
      {plans && plans.length === 0 && <p className="empty">No release plan: add a <code>plans:</code> section to the rules file to have the guardian walk a flag through its stages.</p>}
      <div className="grid two">
        {(plans ?? []).map((p) => (
          <PlanCard key={p.flag} plan={p} onChanged={() => void reload()} />
        ))}
      </div>
    </section>
  );
}
