// Read-only: lists the transactions that deleted, truncated or dropped in a time window, from the
// replica's WAL archive, so the user picks an xid instead of guessing a time. Takes no lock.
import { longStep } from './activityProxies';
import { checkInputObject } from './inputValidation';
import { parseIncidentQuery } from './pitrInput';
import { tagWorkflow } from './searchAttributes';
import type { LocateIncidentInput, LocateIncidentResult } from '../contract/operations/delayedReplicaPitr';
import { WORKFLOW_TYPES } from '../contract/operations/registry';

export type { LocateIncidentInput, LocateIncidentResult };

export async function locateIncidentWorkflow(input: LocateIncidentInput): Promise<LocateIncidentResult> {
  const TYPE = WORKFLOW_TYPES.locateIncident;
  const record = checkInputObject(TYPE, input, ['cluster', 'from', 'to', 'table']);
  const query = parseIncidentQuery(TYPE, {
    from: record.from,
    to: record.to,
    ...(record.table !== undefined ? { table: record.table } : {}),
  });
  tagWorkflow(input.cluster, 'locateIncident');
  return longStep.locateIncident({ cluster: input.cluster, ...query });
}
