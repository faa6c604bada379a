// Free text a user gives (a backup label, a stop reason) reaches PostgreSQL (pg_backup_start's
// label), files (backup_label, the backup records) and logs. A control character breaks each of
// them in its own way, late: PostgreSQL refuses NUL in text (SQLSTATE 22021) after the lock is
// taken, a newline splits the LABEL line of backup_label, an escape sequence rewrites a terminal.
// Pure code: workflows import it.

/** C0 controls (NUL, TAB, LF, CR, ESC…), DEL, and C1 controls (U+0080–U+009F). */
function isControl(code: number): boolean {
  return code <= 0x1f || (code >= 0x7f && code <= 0x9f);
}

/** Why `value` is not acceptable free text for `field`, or undefined when it is. */
export function controlCharacterProblem(field: string, value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (isControl(code)) {
      const name = CONTROL_NAMES[code] ?? 'a control character';
      return `${field} holds ${name} (U+${code.toString(16).toUpperCase().padStart(4, '0')}) at position ${i + 1}: it must be printable text on one line, without control characters (it reaches PostgreSQL, files and logs)`;
    }
  }
  return undefined;
}

const CONTROL_NAMES: Record<number, string> = {
  0x00: 'a NUL byte',
  0x09: 'a tab',
  0x0a: 'a line break',
  0x0d: 'a carriage return',
  0x1b: 'an escape character',
  0x7f: 'a DEL character',
};
