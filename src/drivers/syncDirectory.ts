// Makes a rename or a removal in a directory durable: the directory itself is fsynced.
import { closeSync, fsyncSync, openSync } from 'node:fs';

export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
