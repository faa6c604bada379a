// Workflows set their own search attributes: one started from the Temporal UI carries none.
import { upsertSearchAttributes } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { OperationLabel } from '../contract/operations/registry';

export const PgClusterKey = defineSearchAttributeKey('PgCluster', SearchAttributeType.KEYWORD);
export const PgOperationKey = defineSearchAttributeKey('PgOperation', SearchAttributeType.KEYWORD);

export function tagWorkflow(cluster: string, operation: OperationLabel): void {
  upsertSearchAttributes([
    { key: PgClusterKey, value: cluster },
    { key: PgOperationKey, value: operation },
  ]);
}
