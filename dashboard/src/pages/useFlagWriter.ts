/**
 * Writes to one flag with the version they were made on; a 412 becomes a {@link ConflictState}
 * (what changed, retry on the new version), other failures a message in words.
 */
import { useCallback, useState } from 'react';
import { ApiError } from '../api/client.ts';
import type { Flag } from '../api/types.ts';
import type { ConflictState } from '../components/Conflict.tsx';

export type WriteOp = (base: Flag) => Promise<{ flag: Flag; note?: string }>;

export interface FlagWriter {
  busy: boolean;
  error: string | null;
  note: string | null;
  conflict: ConflictState | null;
  /** Runs `op` on `base` (the flag as the person saw it when they started the change). */
  write(intent: string, base: Flag, op: WriteOp): Promise<boolean>;
  clear(): void;
  keepCurrent(): void;
}

export function useFlagWriter(setFlag: (f: Flag) => void): FlagWriter {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [conflict, setConflict] = useState<ConflictState | null>(null);

  const write = useCallback(
    async (intent: string, base: Flag, op: WriteOp): Promise<boolean> => {
      setBusy(true);
      setError(null);
      setNote(null);
      try {
        const r = await op(base);
        setFlag(r.flag);
        setConflict(null);
        setNote(r.note ? `${intent}: done. ${r.note}` : `${intent}: done (now version ${r.flag.version}).`);
        return true;
      } catch (err) {
        if (err instanceof ApiError && err.status === 412 && err.current) {
          const current = err.current;
          setFlag(current);
          setConflict({
            intent,
            before: base,
            current,
            retry: (cur) => {
              setConflict(null);
              void write(intent, cur, op);
            },
          });
        } else {
          setError(`${intent} failed: ${err instanceof ApiError ? err.describe() : (err as Error).message}`);
        }
        return false;
      } finally {
        setBusy(false);
      }
    },
    [setFlag],
  );

  return {
    busy,
    error,
    note,
    conflict,
    write,
    clear: () => {
      setError(null);
      setNote(null);
    },
    keepCurrent: () => setConflict(null),
  };
}
