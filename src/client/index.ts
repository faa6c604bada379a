export * from './pgOpsClient';
export * from './errors';
export * from './backupSchedules';
export * from './drillSchedules';
