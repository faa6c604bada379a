// Every activity call carries a one-line summary (the event's user metadata), which the Temporal UI
// shows on the event and in the timeline: a DBA sees which cluster and which step without opening
// the input. Applied once, to the activity proxies, so that no call site has to spell it out.
import type { ActivityOptions } from '@temporalio/common';

/** `orders: take online backup (backup 20261122-031500)`: the cluster, then the step in words. */
export function activitySummary(activityType: string, args: readonly unknown[]): string {
  const step = activityType.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  const input = typeof args[0] === 'object' && args[0] !== null ? (args[0] as Record<string, unknown>) : {};
  const backup = typeof input.backup === 'string' ? ` (backup ${input.backup})` : '';
  const summary = typeof input.cluster === 'string' ? `${input.cluster}: ${step}${backup}` : `${step}${backup}`;
  return summary.slice(0, 200);
}

interface WithOptions {
  executeWithOptions(options: ActivityOptions, args: unknown[]): Promise<unknown>;
}

/** The same activity proxy, each call with its summary (merged into the proxy's options by the SDK). */
export function withSummaries<T extends object>(proxy: T): T {
  return new Proxy(proxy, {
    get(target, name, receiver) {
      const activity = Reflect.get(target, name, receiver) as Partial<WithOptions> | undefined;
      if (typeof name !== 'string' || typeof activity?.executeWithOptions !== 'function') return activity;
      const call = activity as WithOptions;
      return (...args: unknown[]) => call.executeWithOptions({ summary: activitySummary(name, args) }, args);
    },
  });
}
