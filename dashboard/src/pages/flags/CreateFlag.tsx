/**
 * Create a flag (admins): name, description, bucket group. A new flag is off at 0%. The API's
 * field errors are shown next to the field they are about.
 */
import { useState } from 'react';
import type { FormEvent, ReactNode } from 'react';
import { ApiError } from '../../api/client.ts';
import type { Flag } from '../../api/types.ts';
import { DisabledReason, ErrorNotice } from '../../components/Notice.tsx';
import { useCan, useSession } from '../../session.tsx';

type Field = 'name' | 'description' | 'bucketGroup';
const FIELDS: readonly Field[] = ['name', 'description', 'bucketGroup'];

/** Each field's messages from an API error (`body.name: …`); what fits no field is returned apart. */
export function fieldErrors(err: ApiError): { byField: Partial<Record<Field, string>>; other: string | null } {
  const byField: Partial<Record<Field, string>> = {};
  const fieldOf = (path: string | undefined): Field | undefined => FIELDS.find((f) => path === `body.${f}` || path === f);
  for (const i of err.issues) {
    const f = fieldOf(i.path);
    if (f) byField[f] = byField[f] ? `${byField[f]} ${i.message}` : i.message;
  }
  if (err.issues.length === 0) {
    const f = fieldOf(err.field) ?? (err.status === 409 ? 'name' : undefined);
    if (f) byField[f] = err.message;
  }
  const placed = Object.keys(byField).length > 0;
  return { byField, other: placed ? null : err.describe() };
}

export function CreateFlag(props: { onCreated(f: Flag): void }): ReactNode {
  const { api } = useSession();
  const can = useCan('admin');
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [group, setGroup] = useState('');
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Partial<Record<Field, string>>>({});
  const [other, setOther] = useState<string | null>(null);
  const why = can.allowed ? '' : can.reason.replace('Needs the admin role', 'Creating a flag needs the admin role');

  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setOther(null);
    try {
      const f = await api.createFlag({ name: name.trim(), ...(description.trim() !== '' ? { description: description.trim() } : {}), ...(group.trim() !== '' ? { bucketGroup: group.trim() } : {}) });
      props.onCreated(f);
      setName('');
      setDescription('');
      setGroup('');
      setOpen(false);
    } catch (err) {
      if (err instanceof ApiError) {
        const r = fieldErrors(err);
        setErrors(r.byField);
        setOther(r.other);
      } else setOther((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const described = (f: Field, help?: string): string | undefined => [errors[f] ? `new-${f}-error` : '', help ?? ''].filter(Boolean).join(' ') || undefined;
  return (
    <div className="create-flag">
      <div className="row">
        <button
          type="button"
          className="primary"
          disabled={!can.allowed}
          aria-expanded={open}
          aria-controls={open ? 'create-flag-form' : undefined}
          aria-describedby={why ? 'create-why' : undefined}
          onClick={() => setOpen((o) => !o)}
        >
          {open ? 'Close the new flag form' : 'New flag…'}
        </button>
      </div>
      <DisabledReason id="create-why" reason={why} />
      {open && (
        <form id="create-flag-form" className="card" onSubmit={(e) => void submit(e)} aria-labelledby="create-title" noValidate>
          <h2 id="create-title">New flag</h2>
          <p className="small muted">A new flag is created off, at 0%, and watched by any rule that names it.</p>
          {other && <ErrorNotice title="Could not create the flag">{other}</ErrorNotice>}
          <div className="row">
            <div className="field">
              <label htmlFor="new-name">Name</label>
              <input id="new-name" type="text" autoComplete="off" spellCheck={false} value={name} onChange={(e) => setName(e.target.value)} aria-invalid={errors.name ? true : undefined} aria-describedby={described('name', 'new-name-help')} />
              <p id="new-name-help" className="help small muted">Lowercase letters, digits and _, starting with a letter (e.g. checkout_v2).</p>
              {errors.name && <p id="new-name-error" className="field-error">{errors.name}</p>}
            </div>
            <div className="field">
              <label htmlFor="new-group">Bucket group (optional)</label>
              <input id="new-group" type="text" autoComplete="off" spellCheck={false} value={group} onChange={(e) => setGroup(e.target.value)} aria-invalid={errors.bucketGroup ? true : undefined} aria-describedby={described('bucketGroup', 'new-group-help')} />
              <p id="new-group-help" className="help small muted">Flags of one group nest their cohorts (the 10% are inside the 50%).</p>
              {errors.bucketGroup && <p id="new-bucketGroup-error" className="field-error">{errors.bucketGroup}</p>}
            </div>
          </div>
          <div className="field">
            <label htmlFor="new-description">Description (optional)</label>
            <textarea id="new-description" rows={2} maxLength={2000} value={description} onChange={(e) => setDescription(e.target.value)} aria-invalid={errors.description ? true : undefined} aria-describedby={described('description')} />
            {errors.description && <p id="new-description-error" className="field-error">{errors.description}</p>}
          </div>
          <div className="row">
            <button type="submit" className="primary" disabled={busy}>
              Create flag
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
