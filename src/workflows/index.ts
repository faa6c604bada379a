// The workflow types this plugin registers. Their names are the public contract.
export { plannedStopWorkflow } from './plannedStop';
export { plannedStartWorkflow } from './plannedStart';
export { clusterLockWorkflow } from './clusterLockWorkflow';
export { delayedReplicaPitrWorkflow } from './delayedReplicaPitr';
export { locateIncidentWorkflow } from './locateIncident';
