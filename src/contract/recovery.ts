// Where a restore or a PITR stops, and which timeline it follows: the words of the workflow inputs.
import type { RecoveryTarget } from '../common/recoveryTarget';

export type { RecoveryTarget };

/** A recovery target, or 'immediate': stop as soon as the backup is consistent. */
export type RestoreTarget = 'immediate' | RecoveryTarget;

/** Which timeline recovery follows: the backup's own ('current'), the newest in the archive, or a number. */
export type RecoveryTimeline = 'current' | 'latest' | number;
