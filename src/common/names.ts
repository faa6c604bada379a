// Names that reach a command line, a Kubernetes API path, a workflow id or an SQL identifier are
// checked here first. Pure functions only: this file is imported by workflow code too.

/** Kubernetes object names and our cluster names: a DNS-1123 label (RFC 1123). */
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A DNS-1123 subdomain: what Kubernetes accepts for most object names (StatefulSets, PVCs, pods). */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** An unquoted PostgreSQL identifier we are willing to interpolate (always quoted anyway). */
const SQL_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

export function clusterNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length === 0)
    return 'a cluster name is required (a string naming an entry of the worker catalog)';
  if (name.length > 63) return `cluster name "${name.slice(0, 70)}…" is longer than 63 characters`;
  if (!DNS1123_LABEL.test(name)) {
    return `cluster name ${JSON.stringify(name)} is not valid: use lower-case letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label)`;
  }
  return undefined;
}

export function isKubernetesName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}

export function isKubernetesLabel(name: string): boolean {
  return name.length > 0 && name.length <= 63 && DNS1123_LABEL.test(name);
}

/** Returns the identifier double-quoted for SQL, or throws if it is not a plain identifier. */
export function quoteIdentifier(name: string): string {
  if (!SQL_IDENTIFIER.test(name))
    throw new Error(`${JSON.stringify(name)} is not a plain SQL identifier (letters, digits, _ and $, at most 63)`);
  return `"${name}"`;
}

export function isSqlIdentifier(name: string): boolean {
  return SQL_IDENTIFIER.test(name);
}
