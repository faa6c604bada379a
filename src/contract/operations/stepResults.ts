// The results of single steps that operation results carry (the PITR check and replay, a restore's
// rollback and recovery). Types only: nothing here runs. Their declarations still live beside the
// activities and drivers that produce them; this file is the one place the contract reaches for them.
import type { PgOpsActivities } from '../../activities';

/** What the activity `K` returns. */
export type StepResult<K extends keyof PgOpsActivities> = Awaited<ReturnType<PgOpsActivities[K]>>;
