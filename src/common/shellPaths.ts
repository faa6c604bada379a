// Paths that PostgreSQL places in a shell string it runs (archive_command, restore_command):
// plain characters only, so nothing in a path can become shell syntax.
const PLAIN_PATH = /^\/[A-Za-z0-9._/-]+$/;

/** Why `path` cannot go into `command` (a shell string PostgreSQL runs), or undefined when it can. */
export function plainPathProblem(path: string, command = 'archive_command'): string | undefined {
  if (!path.startsWith('/')) return `${JSON.stringify(path)} must be an absolute path`;
  if (!PLAIN_PATH.test(path) || path.includes('..'))
    return `${JSON.stringify(path)} must contain only letters, digits, '.', '_', '-' and '/': it is placed in ${command}, which PostgreSQL runs through a shell`;
  return undefined;
}
