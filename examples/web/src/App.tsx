import type { BrowserFlagClient } from '@rollback-guardian/sdk';
import { FlagsProvider } from '@rollback-guardian/sdk/react';
import type { FlagsSnapshot } from '@rollback-guardian/sdk/react';
import { BookingButton } from './BookingButton.tsx';
import { RollbackNotice } from './RollbackNotice.tsx';

/** The page: the same tree on the server (client `null`, values from the snapshot) and in the browser. */
export function App(props: { readonly client: BrowserFlagClient | null; readonly snapshot: FlagsSnapshot }) {
  return (
    <FlagsProvider client={props.client} snapshot={props.snapshot}>
      <main>
        <h1>Book an appointment</h1>
        <RollbackNotice />
        <BookingButton />
      </main>
    </FlagsProvider>
  );
}
