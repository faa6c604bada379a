// One structured logger (pino) for the worker, the Temporal runtime and scripts.
import pino from 'pino';

export const logger = pino({ level: process.env.PGOPS_LOG_LEVEL ?? 'info', base: { pid: process.pid } });
