// The worker's mount table (/proc/self/mounts): which directories are mount points, and what is
// mounted where. Octal escapes (\040 for a space) are decoded.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface MountEntry {
  source: string;
  mountpoint: string;
  type: string;
}

export function mountTable(): MountEntry[] {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [source = '', mountpoint = '', type = ''] = line.split(' ');
      return { source: decode(source), mountpoint: decode(mountpoint), type };
    });
}

export function mountAt(path: string): MountEntry | undefined {
  const wanted = resolve(path);
  return mountTable()
    .reverse()
    .find((m) => m.mountpoint === wanted);
}

export function isMountPoint(path: string): boolean {
  return mountAt(path) !== undefined;
}
