// Server settings of a session's server that are not about one use (replica, restore, archive).
import type { Client } from 'pg';

/** Has the postmaster and every process re-read the configuration files (settings that need no restart). */
export async function reloadConfiguration(client: Client): Promise<void> {
  await client.query('SELECT pg_reload_conf()');
}
