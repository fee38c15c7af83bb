import { useFeatureFlag } from '@rollback-guardian/sdk/react';

/** The mission's button: the AI booking agent while `booking_agent_enabled` is on for this user, else the classic form. */
export function BookingButton(props: { readonly onBook?: (kind: 'ai' | 'classic') => void }) {
  const aiAgent = useFeatureFlag('booking_agent_enabled');
  return aiAgent ? (
    <button type="button" data-testid="booking" data-kind="ai" onClick={() => props.onBook?.('ai')}>Book with the AI assistant</button>
  ) : (
    <button type="button" data-testid="booking" data-kind="classic" onClick={() => props.onBook?.('classic')}>Book an appointment</button>
  );
}
