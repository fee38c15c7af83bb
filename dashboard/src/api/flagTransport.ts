/**
 * An SDK transport over the admin API, so the dashboard's "what does user X get" preview runs the
 * SDK's own evaluation (`useFeatureFlag`) and hears changes from the change stream.
 * Target lists are never downloaded whole: for the one user previewed, each flag with targets is
 * asked whether that user is on it (`GET /flags/{name}/targets?search=<id>`).
 */
import type { ChangeListener, FlagRecord, FlagTransport } from '@rollback-guardian/sdk';
import type { AdminApi } from './client.ts';
import type { LiveHub } from '../live.tsx';

export function adminApiTransport(api: AdminApi, hub: LiveHub, userId: string): FlagTransport {
  return {
    async loadAll(signal?: AbortSignal): Promise<readonly FlagRecord[]> {
      const flags = await api.flags({}, signal);
      return Promise.all(
        flags.map(async (f): Promise<FlagRecord> => {
          let targets: string[] = [];
          if ((f.targetCount ?? 0) > 0 && userId !== '') {
            const page = await api.targets(f.name, { search: userId, limit: 1000 });
            targets = page.targets.filter((t) => t === userId);
          }
          return { name: f.name, enabled: f.enabled, rolloutPercentage: f.rolloutPercentage, bucketGroup: f.bucketGroup, version: f.version, guardState: f.guardState, rollbackMessage: f.rollbackMessage, description: f.description, targets };
        }),
      );
    },
    subscribe(listener: ChangeListener): () => void {
      if (hub.status === 'live') queueMicrotask(() => listener.status('live'));
      const offStatus = hub.onStatus(() => listener.status(hub.status === 'live' ? 'live' : 'down', hub.detail));
      const off = hub.on((m) => {
        if (m.type !== 'flag') return;
        const d = m.data;
        if (d.deleted) {
          listener.change({ type: 'DELETE', name: d.name, version: d.version, record: null });
          return;
        }
        listener.change({
          type: 'UPDATE',
          name: d.name,
          version: d.version,
          record: { name: d.name, enabled: d.enabled, rolloutPercentage: d.rolloutPercentage, bucketGroup: d.bucketGroup, version: d.version, guardState: d.guardState, rollbackMessage: d.rollbackMessage, description: d.description ?? null },
        });
      });
      return () => {
        off();
        offStatus();
      };
    },
  };
}
