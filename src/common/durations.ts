// Durations in workflow input: a number of milliseconds or a string such as "90s", "15m", "2h",
// "1d". Pure code (used inside workflows); the result is checked against bounds so that a typo
// such as "2000h" is refused instead of silently holding a production database down for months.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

export interface DurationBounds {
  min: number;
  max: number;
}

/** Parses a duration, returning milliseconds or a message saying what is wrong. */
export function parseDuration(field: string, value: unknown, bounds: DurationBounds): number | string {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const match = DURATION.exec(value);
    if (!match)
      return `${field} ${JSON.stringify(value)} is not a duration: write a number with a unit, such as "90s", "15m", "2h" or "1d"`;
    ms = Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  } else {
    return `${field} must be a duration such as "15m" or a number of milliseconds`;
  }
  if (!Number.isFinite(ms)) return `${field} must be a finite duration`;
  if (ms < bounds.min)
    return `${field} ${JSON.stringify(value)} is shorter than the minimum ${formatDuration(bounds.min)}`;
  if (ms > bounds.max)
    return `${field} ${JSON.stringify(value)} is longer than the maximum ${formatDuration(bounds.max)}`;
  return Math.round(ms);
}

export function formatDuration(ms: number): string {
  if (ms % UNIT_MS.d! === 0) return `${ms / UNIT_MS.d!}d`;
  if (ms % UNIT_MS.h! === 0) return `${ms / UNIT_MS.h!}h`;
  if (ms % UNIT_MS.m! === 0) return `${ms / UNIT_MS.m!}m`;
  if (ms % UNIT_MS.s! === 0) return `${ms / UNIT_MS.s!}s`;
  return `${ms}ms`;
}
