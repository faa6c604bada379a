// Workflows that do nothing but Temporal's own work, for bench/floor.ts.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

interface NoopActivities {
  noop(): Promise<number>;
}
const local = proxyLocalActivities<NoopActivities>({ startToCloseTimeout: '10s' });
const remote = proxyActivities<NoopActivities>({ startToCloseTimeout: '10s' });

export async function emptyWorkflow(): Promise<number> {
  return 0;
}

export async function oneLocalActivityWorkflow(): Promise<number> {
  return local.noop();
}

export async function threeLocalActivitiesWorkflow(): Promise<number> {
  await local.noop();
  await local.noop();
  return local.noop();
}

export async function oneActivityWorkflow(): Promise<number> {
  return remote.noop();
}
