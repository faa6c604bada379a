// How much one standalone worker takes on at once, from the environment: PGOPS_MAX_CONCURRENT_ACTIVITIES
// (default 20) and PGOPS_MAX_CACHED_WORKFLOWS (the SDK's default when unset: sized from the memory
// limit). A fleet of workers on one task queue shares the work; see docs/deployment.md.
export interface WorkerSizing {
  maxConcurrentActivityTaskExecutions?: number;
  maxCachedWorkflows?: number;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, max: number): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new Error(`${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  return value;
}

export function workerSizingFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerSizing {
  const activities = positiveInt(env, 'PGOPS_MAX_CONCURRENT_ACTIVITIES', 1000);
  const cached = positiveInt(env, 'PGOPS_MAX_CACHED_WORKFLOWS', 100_000);
  return {
    ...(activities !== undefined && { maxConcurrentActivityTaskExecutions: activities }),
    ...(cached !== undefined && { maxCachedWorkflows: cached }),
  };
}
