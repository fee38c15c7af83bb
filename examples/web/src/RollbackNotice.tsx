import { useEffect, useState } from 'react';
import { useFlagsClient } from '@rollback-guardian/sdk/react';

/**
 * Tells the user when a feature they were using is rolled back: the flag's rollback message (plain
 * text: React renders it as text, never as HTML), dismissible. The hook runs BEFORE the button
 * switches, so this is also where a draft would be saved.
 */
export function RollbackNotice(props: { readonly saveDraft?: () => Promise<void> }) {
  const flags = useFlagsClient();
  const [notice, setNotice] = useState<string | null>(null);
  const { saveDraft } = props;
  useEffect(
    () =>
      flags?.onRollback(async (event) => {
        setNotice(event.message ?? 'A feature you were using was turned off for now.');
        await saveDraft?.(); // the switch waits for this (at most the client's rollbackHoldMs)
      }),
    [flags, saveDraft],
  );
  if (notice === null) return null;
  return (
    <div role="status" data-testid="rollback-notice">
      <span>{notice}</span>
      <button type="button" aria-label="Dismiss" onClick={() => setNotice(null)}>×</button>
    </div>
  );
}
