// The `progress` query and the UI's current details, kept in one place so every workflow reports
// the same way: the step, a sentence a DBA can read, and the numbers behind it.
import { setCurrentDetails, setHandler } from '@temporalio/workflow';
import { activityProgressSignal, progressQuery, type Progress } from '../contract/definitions';

export interface ProgressReporter {
  step(step: string, detail: string, numbers?: Record<string, number | string>): void;
  note(numbers: Record<string, number | string>): void;
  readonly state: Progress;
}

export function trackProgress(operation: string, cluster: string): ProgressReporter {
  const state: Progress = { operation, cluster, step: 'starting', detail: '', numbers: {}, done: [] };
  const publish = () => {
    const numbers = Object.entries(state.numbers)
      .map(([k, v]) => `- ${k}: ${v}`)
      .join('\n');
    setCurrentDetails(
      `**${operation}** on cluster \`${cluster}\`\n\nStep: **${state.step}**: ${state.detail}${numbers ? `\n\n${numbers}` : ''}`,
    );
  };
  setHandler(progressQuery, () => state);
  setHandler(activityProgressSignal, ({ detail, numbers }) => {
    state.detail = detail;
    if (numbers) Object.assign(state.numbers, numbers);
    publish();
  });
  publish();
  return {
    state,
    step(step, detail, numbers) {
      if (state.step !== step && state.step !== 'starting') state.done.push(state.step);
      state.step = step;
      state.detail = detail;
      if (numbers) Object.assign(state.numbers, numbers);
      publish();
    },
    note(numbers) {
      Object.assign(state.numbers, numbers);
      publish();
    },
  };
}
