/** A confirmation in a native modal <dialog> (focus kept inside, Escape cancels). */
import { useEffect, useRef } from 'react';
import type { ReactNode } from 'react';

export function ConfirmDialog(props: { open: boolean; title: string; confirmLabel: string; danger?: boolean; confirmDisabled?: boolean; onConfirm(): void; onCancel(): void; children: ReactNode }): ReactNode {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) {
      d.showModal();
      // showModal focuses the first control (Cancel); the action the person asked for is the default.
      d.querySelector<HTMLButtonElement>('button[type=submit]')?.focus();
    }
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="dialog-title" onCancel={(e) => { e.preventDefault(); props.onCancel(); }}>
      {props.open && (
        <form method="dialog" onSubmit={(e) => { e.preventDefault(); if (!props.confirmDisabled) props.onConfirm(); }}>
          <h2 id="dialog-title">{props.title}</h2>
          <div className="dialog-body">{props.children}</div>
          <div className="row end">
            <button type="button" onClick={props.onCancel}>Cancel</button>
            <button type="submit" className={props.danger ? 'danger' : 'primary'} disabled={props.confirmDisabled}>{props.confirmLabel}</button>
          </div>
        </form>
      )}
    </dialog>
  );
}
