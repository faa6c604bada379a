// Inside the workflow sandbox the SDK replaces Date with the workflow task's start time, so this
// is deterministic on replay. It is the only place workflow code reads the clock.
export function workflowClockMs(): number {
  return Date.now(); // eslint-disable-line no-restricted-properties
}
