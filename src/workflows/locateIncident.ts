// Read-only: lists the transactions that deleted, truncated or dropped in a time window, from the
// replica's WAL archive, so the user picks an xid instead of guessing a time. Takes no lock.
import { longStep } from './activityProxies';
import { parseLocateIncidentInput } from './pitrInput';
import { tagWorkflow } from './searchAttributes';
import type { LocateIncidentInput, LocateIncidentResult } from '../contract/operations/delayedReplicaPitr';
import { OPERATION_LABELS } from '../contract/operations/registry';

export type { LocateIncidentInput, LocateIncidentResult };

export async function locateIncidentWorkflow(input: LocateIncidentInput): Promise<LocateIncidentResult> {
  const query = parseLocateIncidentInput(input);
  tagWorkflow(query.cluster, OPERATION_LABELS.locateIncident);
  return longStep.locateIncident(query);
}
