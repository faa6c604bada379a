// The scratch janitor and the list: `pgops scratch gc` removes the scratch instances whose workflow
// no longer runs (a crash, a terminate) or whose time is up; `pgops scratch list` shows them all.
import { longStep, quickStep } from './activityProxies';
import { trackProgress } from './progress';
import { parseListScratchInput, parseScratchGcInput } from './scratchInput';
import type { ListScratchResult, ScratchGcInput, ScratchGcResult } from '../contract/operations/scratchRestores';
import { OPERATION_LABELS } from '../contract/operations/registry';

export async function scratchGcWorkflow(input: ScratchGcInput = {}): Promise<ScratchGcResult> {
  const { cluster, all } = parseScratchGcInput(input);
  const progress = trackProgress(OPERATION_LABELS.scratchGc, cluster ?? '*');
  progress.step('gc', `removing scratch instances${all ? '' : ' whose workflow is over or whose time is up'}`);
  const result = await longStep.collectScratch({ cluster, all });
  progress.step('done', `${result.removed.length} removed, ${result.kept.length} kept, ${result.failed.length} failed`);
  return result;
}

export async function listScratchWorkflow(input: { cluster?: string } = {}): Promise<ListScratchResult> {
  const { cluster } = parseListScratchInput(input);
  const progress = trackProgress(OPERATION_LABELS.listScratch, cluster ?? '*');
  progress.step('list', 'reading the scratch records');
  return { scratch: await quickStep.listScratch({ cluster }) };
}
