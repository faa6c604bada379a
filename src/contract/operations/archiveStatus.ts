// archiveStatusWorkflow (read-only): its result is the archive's status (../archive.ts).
export type { ArchiveStatus as ArchiveStatusResult } from '../archive';
