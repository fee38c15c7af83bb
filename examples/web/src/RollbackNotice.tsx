import { useEffect, useState } from 'react';
import { useFlagsClient } from '@rollback-guardian/sdk/react';

/**
 * Tells the user when a feature they were using is rolled back: the flag's rollback message (plain
 * text: React renders it as text, never as HTML), dismissible. The hook runs BEFORE the button
 * switches, so this is also where a draft would be saved, and where a user in the middle of
 * something (`safePoint`: e.g. a booking being confirmed) keeps the old button until it is done,
 * unless the rollback is urgent (an operator ran `guardian rollback --urgent`, or the rule says
 * `urgent: true`): then the SDK ignores `holdUntil` and the button switches once the draft is saved.
 */
export function RollbackNotice(props: { readonly saveDraft?: () => Promise<void>; readonly safePoint?: () => Promise<void> | undefined }) {
  const flags = useFlagsClient();
  const [notice, setNotice] = useState<{ readonly text: string; readonly urgent: boolean } | null>(null);
  const { saveDraft, safePoint } = props;
  useEffect(
    () =>
      flags?.onRollback(async (event) => {
        setNotice({ text: event.message ?? 'A feature you were using was turned off for now.', urgent: event.urgent });
        const midFlow = safePoint?.();
        if (midFlow) event.holdUntil(midFlow); // ignored (logged) when event.urgent
        await saveDraft?.(); // the switch waits for this (at most the client's rollbackHoldMs)
      }),
    [flags, saveDraft, safePoint],
  );
  if (notice === null) return null;
  return (
    <div role="status" data-testid="rollback-notice" data-urgent={notice.urgent ? 'true' : 'false'}>
      <span>{notice.text}</span>
      {notice.urgent ? <small> Switched off right away.</small> : null}
      <button type="button" aria-label="Dismiss" onClick={() => setNotice(null)}>×</button>
    </div>
  );
}
