// Polling helpers shared by drivers: wait for a condition with progress, a deadline and abort.
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveDelay, reject) => {
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveDelay();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface PollOptions {
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (detail: string) => void;
  /** Says what was being waited for, for the timeout message. */
  what: string;
}

/** Calls `check` until it returns a value other than undefined; `check` may return a progress note. */
export async function pollUntil<T>(
  check: () => Promise<{ done: T } | { waiting: string }>,
  opts: PollOptions,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    const result = await check();
    if ('done' in result) return result.done;
    last = result.waiting;
    opts.onProgress?.(result.waiting);
    if (Date.now() >= deadline)
      throw new Error(
        `timed out after ${Math.round(opts.timeoutMs / 1000)}s waiting for ${opts.what} (last seen: ${last})`,
      );
    await delay(opts.intervalMs, opts.signal);
  }
}
