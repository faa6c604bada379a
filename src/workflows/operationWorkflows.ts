// Each operation's workflow and input parser, under the same key as its entry in the operations'
// table (src/contract/operations/registry.ts): the workflows' side of that table. An operation
// without an entry here, or one the table does not name, does not compile. Each workflow fails with
// the message of the step that refused, at the top of the failure (see surfaceFailure.ts). Each
// parser is pure: the workflow calls it first, and it throws the workflow's InvalidInput failure.
import { surfacingActivityFailures as surfaced } from './surfaceFailure';
import * as stop from './plannedStop';
import * as start from './plannedStart';
import * as pitr from './delayedReplicaPitr';
import * as locate from './locateIncident';
import * as backup from './snapshotBackup';
import * as restore from './rollbackRestore';
import * as catalog from './backupCatalog';
import * as archive from './archiveStatus';
import * as verify from './verifyBackup';
import * as recover from './recoverRows';
import * as preview from './openScratch';
import * as scratchGc from './scratchGc';
import {
  parseListScratchInput,
  parseOpenScratchInput,
  parseRecoverRowsInput,
  parseScratchGcInput,
  parseVerifyBackupInput,
} from './scratchInput';
import { parsePlannedStartInput, parsePlannedStopInput } from './stopStartInput';
import { parseLocateIncidentInput, parsePitrInput } from './pitrInput';
import {
  parseArchiveStatusInput,
  parseDeleteBackupInput,
  parseListBackupsInput,
  parseRollbackRestoreInput,
  parseSnapshotBackupInput,
} from './backupInput';
import type { OperationIo, OperationName } from '../contract/operations/registry';

export interface OperationWorkflow<K extends OperationName> {
  workflow: (input: OperationIo[K]['input']) => Promise<OperationIo[K]['result']>;
  /** Checks a raw input as the workflow does first; returns it checked, or throws its InvalidInput failure. */
  parseInput: (raw: unknown) => { cluster?: string };
}

export const OPERATION_WORKFLOWS = {
  plannedStop: { workflow: surfaced(stop.plannedStopWorkflow), parseInput: parsePlannedStopInput },
  plannedStart: { workflow: surfaced(start.plannedStartWorkflow), parseInput: parsePlannedStartInput },
  pitr: { workflow: surfaced(pitr.delayedReplicaPitrWorkflow), parseInput: parsePitrInput },
  locateIncident: { workflow: surfaced(locate.locateIncidentWorkflow), parseInput: parseLocateIncidentInput },
  backup: { workflow: surfaced(backup.snapshotBackupWorkflow), parseInput: parseSnapshotBackupInput },
  restore: { workflow: surfaced(restore.rollbackRestoreWorkflow), parseInput: parseRollbackRestoreInput },
  listBackups: { workflow: surfaced(catalog.listBackupsWorkflow), parseInput: parseListBackupsInput },
  deleteBackup: { workflow: surfaced(catalog.deleteBackupWorkflow), parseInput: parseDeleteBackupInput },
  archiveStatus: { workflow: surfaced(archive.archiveStatusWorkflow), parseInput: parseArchiveStatusInput },
  verifyBackup: { workflow: surfaced(verify.verifyBackupWorkflow), parseInput: parseVerifyBackupInput },
  recoverRows: { workflow: surfaced(recover.recoverRowsWorkflow), parseInput: parseRecoverRowsInput },
  openScratch: { workflow: surfaced(preview.openScratchWorkflow), parseInput: parseOpenScratchInput },
  listScratch: { workflow: surfaced(scratchGc.listScratchWorkflow), parseInput: (raw) => parseListScratchInput(raw) },
  scratchGc: { workflow: surfaced(scratchGc.scratchGcWorkflow), parseInput: (raw) => parseScratchGcInput(raw) },
} as const satisfies { [K in OperationName]: OperationWorkflow<K> };
