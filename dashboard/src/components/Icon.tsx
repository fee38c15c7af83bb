/** Small inline icons (no emoji font needed), always decorative: words say the same thing. */
import type { ReactNode } from 'react';

const PATHS = {
  eye: 'M1 8s2.5-5 7-5 7 5 7 5-2.5 5-7 5-7-5-7-5Zm7 3a3 3 0 1 0 0-6 3 3 0 0 0 0 6Z',
  lock: 'M4 7V5a4 4 0 1 1 8 0v2h1v8H3V7h1Zm2 0h4V5a2 2 0 1 0-4 0v2Z',
} as const;

export function Icon(props: { name: keyof typeof PATHS }): ReactNode {
  return (
    <svg className="icon" viewBox="0 0 16 16" width="12" height="12" aria-hidden="true" focusable="false">
      <path d={PATHS[props.name]} fill="currentColor" fillRule="evenodd" />
    </svg>
  );
}
