// How a PITR ends: the replica promoted, or its target cleared and its delay back in force.
import type { ClusterRegistry } from './clusterRegistry';
import { asStep } from './failures';
import { withHeartbeats } from './heartbeat';
import type { ReplicaRef } from './replicaRef';
import { replicasLeftBehind } from './replicaHistoryChecks';
import { confirmDelayedReplay } from './delayConfirmation';
import { clearReadAheadLeftovers, readAheadPlan } from './replayReadAhead';
import { promoteStandby } from '../drivers/postgres/replica/promote';
import { clearRecoveryTarget } from '../drivers/postgres/replica/recoveryTarget';
import type { SettingWithSource } from '../drivers/postgres/replica/replayControl';
import { withSession } from '../drivers/postgres/session';
import type { DelayedReplayConfirmed, PromotionResult } from '../contract/operations/pitrSteps';

/** Promote, or clear the target and confirm the delayed replay. */
export function createPitrFinishSteps(registry: ClusterRegistry) {
  return {
    /**
     * Promotion: first stop the replica writing into the shared archive (archive_command '' keeps
     * WAL locally instead), then pg_promote(). Idempotent: a promoted server is reported as such.
     */
    async promoteReplica({ cluster }: ReplicaRef): Promise<PromotionResult> {
      return asStep(cluster, 'promote', async () => {
        const promotion = await withSession(await registry.services(cluster).endpoint(), promoteStandby);
        // The old primary's other replicas and the catalog no longer fit: say which (issue 19).
        return { ...promotion, ...replicasLeftBehind(registry, cluster, promotion.timeline) };
      });
    },

    async clearPitrTarget({
      cluster,
      originalDelay,
    }: ReplicaRef & { originalDelay?: SettingWithSource }): Promise<{ recoveryMinApplyDelay: string }> {
      return asStep(cluster, 'clear-target', async () => {
        // Segments a read-ahead staged before its worker died (a later run clears them anyway).
        const services = registry.services(cluster);
        const plan = await readAheadPlan(services);
        if (plan) await clearReadAheadLeftovers(plan);
        return clearRecoveryTarget(await services.endpoint(), originalDelay);
      });
    },

    async confirmDelayedReplay(input: ReplicaRef & { timeoutMs: number }): Promise<DelayedReplayConfirmed> {
      return asStep(input.cluster, 'confirm-delay', () =>
        withHeartbeats((progress) => confirmDelayedReplay(registry.services(input.cluster), input, progress)),
      );
    },
  };
}
