// Worker Versioning for the standalone worker: PGOPS_WORKER_DEPLOYMENT (the deployment's name) and
// PGOPS_BUILD_ID (this build) make the worker a version of a Temporal Worker Deployment, and every
// workflow it starts is pinned to it: an operation finishes on the build that started it, while new
// ones start on the deployment's current version. PGOPS_PROMOTE says when this build becomes the
// current version: `if-none` (default: the first build of a deployment), `always` (as soon as it
// polls: an upgrade by rollout), `never` (an operator promotes it with
// `temporal worker deployment set-current-version`). See docs/upgrading.md.
export const PROMOTE_CHOICES = ['if-none', 'always', 'never'] as const;
export type PromoteChoice = (typeof PROMOTE_CHOICES)[number];

export interface WorkerDeploymentChoice {
  deploymentName: string;
  buildId: string;
  promote: PromoteChoice;
}

const DEPLOYMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;
const BUILD_ID = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/;

/** The worker's deployment version from the environment, or undefined when versioning is off (neither set). */
export function workerDeploymentFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerDeploymentChoice | undefined {
  const deploymentName = env.PGOPS_WORKER_DEPLOYMENT?.trim() || undefined;
  const buildId = env.PGOPS_BUILD_ID?.trim() || undefined;
  if (!deploymentName && !buildId) return undefined;
  if (!deploymentName || !buildId)
    throw new Error('Worker Versioning needs both PGOPS_WORKER_DEPLOYMENT and PGOPS_BUILD_ID (or neither)');
  if (!DEPLOYMENT_NAME.test(deploymentName))
    throw new Error(
      `PGOPS_WORKER_DEPLOYMENT must be letters, digits, "-" or "_" (no "."), at most 100, got "${deploymentName}"`,
    );
  if (!BUILD_ID.test(buildId))
    throw new Error(`PGOPS_BUILD_ID must be letters, digits, ".", "+", "-" or "_", at most 100, got "${buildId}"`);
  const promote = (env.PGOPS_PROMOTE?.trim() || 'if-none') as PromoteChoice;
  if (!PROMOTE_CHOICES.includes(promote))
    throw new Error(`PGOPS_PROMOTE must be one of ${PROMOTE_CHOICES.join(', ')}, got "${promote}"`);
  return { deploymentName, buildId, promote };
}
