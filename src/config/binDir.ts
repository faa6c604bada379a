// Where the worker finds PostgreSQL's programs (pg_ctl, pg_waldump, pg_dump) when a catalog entry
// does not say: PGOPS_PG_BIN, else Debian's PostgreSQL 15 location (what scripts/setup.sh installs).
export const DEFAULT_PG_BIN_DIR = process.env.PGOPS_PG_BIN ?? '/usr/lib/postgresql/15/bin';
