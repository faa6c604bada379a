// Waits until a workflow's `progress` query reports one of the given steps.
import { progressQuery, type Progress } from '../../src/contract/definitions';

export interface Queryable {
  query: (q: typeof progressQuery) => Promise<Progress>;
}

export async function waitForStep(
  handle: Queryable,
  steps: string | string[],
  timeoutMs = 90_000,
  intervalMs = 100,
): Promise<string> {
  const wanted = Array.isArray(steps) ? steps : [steps];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const progress = await handle.query(progressQuery).catch(() => undefined);
    if (progress && wanted.includes(progress.step)) return progress.step;
    if (Date.now() > deadline)
      throw new Error(`workflow never reached step ${wanted.join('/')} (last: ${progress?.step})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
