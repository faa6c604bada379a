/** Queue behind another operation on the cluster instead of failing (true, or a duration to wait at most). */
export type LockWait = boolean | string | number;
