export * from './pgOpsClient';
export * from './errors';
