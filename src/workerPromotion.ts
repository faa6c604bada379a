// Makes a versioned worker's build the current version of its Worker Deployment once the server knows
// it (the version exists only after the worker has polled), as PGOPS_PROMOTE says: only when the
// deployment has no current version yet (`if-none`), or always (`always`). New workflows then start on
// this build; those pinned to an older build go on there until they end.
import { hostname } from 'node:os';
import type { Connection } from '@temporalio/client';
import type { WorkerDeploymentChoice } from './config/workerDeployment';
import { delay } from './drivers/waiting';

export type PromotionOutcome = 'promoted' | 'already current' | 'another is current' | 'not asked';

export async function promoteWhenPolling(
  connection: Connection,
  namespace: string,
  choice: WorkerDeploymentChoice,
  timeoutMs = 120_000,
): Promise<PromotionOutcome> {
  if (choice.promote === 'never') return 'not asked';
  const { deploymentName, buildId } = choice;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const { workerDeploymentInfo: info, conflictToken } = await connection.workflowService.describeWorkerDeployment({
        namespace,
        deploymentName,
      });
      const known = info?.versionSummaries?.some((v) => v.deploymentVersion?.buildId === buildId);
      if (known) {
        const current = info?.routingConfig?.currentDeploymentVersion?.buildId;
        if (current === buildId) return 'already current';
        if (current && choice.promote === 'if-none') return 'another is current';
        await connection.workflowService.setWorkerDeploymentCurrentVersion({
          namespace,
          deploymentName,
          buildId,
          conflictToken,
          identity: `pgops worker ${hostname()} (${process.pid})`,
        });
        return 'promoted';
      }
    } catch (err) {
      lastError = err; // not found until the first poll registers the deployment; a conflict is retried
    }
    await delay(500);
  }
  throw new Error(
    `build ${buildId} of Worker Deployment ${deploymentName} was not made current within ${timeoutMs} ms: ${(lastError as Error | undefined)?.message ?? 'the server never listed the version'}`,
  );
}
