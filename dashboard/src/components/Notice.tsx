/** Messages for people: errors (role=alert), information and success (role=status). Text only. */
import type { ReactNode } from 'react';
import { Icon } from './Icon.tsx';

export function ErrorNotice(props: { title?: string; children: ReactNode; onDismiss?: () => void }): ReactNode {
  return (
    <div className="notice error" role="alert">
      <span className="notice-icon" aria-hidden="true">⚠</span>
      <div className="notice-body">
        {props.title && <strong>{props.title}: </strong>}
        {props.children}
      </div>
      {props.onDismiss && (
        <button type="button" className="link" onClick={props.onDismiss} aria-label="Dismiss this message">
          Dismiss
        </button>
      )}
    </div>
  );
}

export function InfoNotice(props: { kind?: 'info' | 'success' | 'warning'; children: ReactNode; onDismiss?: () => void }): ReactNode {
  const kind = props.kind ?? 'info';
  const icon = kind === 'success' ? '✓' : kind === 'warning' ? '!' : 'ℹ';
  return (
    <div className={`notice ${kind}`} role="status">
      <span className="notice-icon" aria-hidden="true">{icon}</span>
      <div className="notice-body">{props.children}</div>
      {props.onDismiss && (
        <button type="button" className="link" onClick={props.onDismiss} aria-label="Dismiss this message">
          Dismiss
        </button>
      )}
    </div>
  );
}

/** The reason a control is disabled, referenced by `aria-describedby`. */
export function DisabledReason(props: { id: string; reason: string }): ReactNode {
  if (props.reason === '') return null;
  return (
    <p id={props.id} className="disabled-reason">
      <Icon name="lock" />{' '}
      {props.reason}
    </p>
  );
}
