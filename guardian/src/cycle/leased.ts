/**
 * Several replicas: before each cycle a replica takes the `cycle` lease for one interval. The
 * holder renews it every cycle; the others skip. A dead holder's lease expires within one
 * interval and the next replica to tick takes over. Idempotency keys make a rare overlap (a
 * holder that stalls past its lease) harmless: the flip, event and outbox rows still happen once.
 */
import { runCycle } from './run.ts';
import type { CycleDeps, CycleReport } from './types.ts';

/** Name of the lease that elects the replica running a cycle. */
export const CYCLE_LEASE = 'cycle';

/**
 * What {@link runLeasedCycle} needs beyond {@link CycleDeps}.
 *
 * @example
 * await runLeasedCycle({ ...deps, holder: `${hostname()}:${process.pid}`, leaseTtlMs: 60_000 });
 */
export interface LeasedCycleDeps extends CycleDeps {
  /** This replica's id (unique among replicas). */
  readonly holder: string;
  /** How long the lease lasts: the interval. */
  readonly leaseTtlMs: number;
}

/**
 * Runs one cycle when this replica holds (or takes) the cycle lease; otherwise returns a report
 * with `ran: false`. A store that cannot be reached for the lease is a cycle-wide error.
 *
 * @example
 * const report = await runLeasedCycle({ ...deps, holder: 'replica-a', leaseTtlMs: 60_000 });
 * if (!report.ran) console.log(report.notRunReason);
 */
export async function runLeasedCycle(deps: LeasedCycleDeps): Promise<CycleReport> {
  const at = deps.now();
  const notRun = (reason: string, errors: CycleReport['errors'] = []): CycleReport => ({
    at,
    durationMs: 0,
    ran: false,
    notRunReason: reason,
    dryRun: deps.rules.dry_run || deps.dryRun === true,
    results: [],
    sources: [],
    sourceReports: [],
    errors,
  });
  let held: boolean;
  try {
    held = await deps.store.tryLease(CYCLE_LEASE, deps.holder, deps.leaseTtlMs);
  } catch (err) {
    const info = err instanceof Error ? { code: (err as { code?: string }).code ?? 'STORE_UNREACHABLE', message: err.message } : { code: 'STORE_UNREACHABLE', message: String(err) };
    deps.logger.error({ err }, 'cycle: could not take the cycle lease; skipping this cycle');
    return notRun('the cycle lease could not be taken', [info]);
  }
  if (!held) {
    deps.logger.debug({ holder: deps.holder }, 'cycle: another replica holds the cycle lease; skipping');
    return notRun('another replica holds the cycle lease');
  }
  return runCycle(deps);
}
