// The fleet-wide cap on concurrent backups: one semaphore workflow per task queue
// (`pgops-backup-slots/<queue>`) hands out `fleet.maxConcurrentBackups` slots (the catalog's setting).
// A backup asks for a slot before it asks for its cluster's lock, and waits for one; restores,
// stops, starts and PITRs never ask, so they are never behind backups.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export interface BackupSlotRequest {
  workflowId: string;
  runId: string;
  cluster: string;
  /** The catalog's cap as the requesting worker reads it; the latest request's value applies. */
  capacity: number;
}

export interface BackupSlotHolder extends BackupSlotRequest {
  /** ISO time the slot was granted (the slots workflow's clock). */
  since: string;
}

export type BackupSlotAnswer =
  | { status: 'granted' }
  | { status: 'queued'; position: number; running: number; capacity: number }
  /** No cap in the catalog: nothing was asked. */
  | { status: 'uncapped' };

export interface BackupSlotsState {
  capacity: number;
  holders: BackupSlotHolder[];
  queue: BackupSlotRequest[];
}

/** Sent with update-with-start: granted at once, or queued (then told by `backupSlotGranted`). */
export const backupSlotAcquireUpdate = defineUpdate<BackupSlotAnswer, [BackupSlotRequest]>('acquireBackupSlot');
export const backupSlotReleaseSignal = defineSignal<[{ workflowId: string }]>('releaseBackupSlot');
export const backupSlotGrantedSignal = defineSignal<[]>('backupSlotGranted');
export const backupSlotsStateQuery = defineQuery<BackupSlotsState>('backupSlots');

export function backupSlotsWorkflowId(taskQueue: string): string {
  return `pgops-backup-slots/${taskQueue}`;
}
