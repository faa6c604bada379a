// Finds the Temporal CLI, installing it with `go install` when it is missing (v1.5.1: later tags
// carry a `replace` directive and cannot be installed that way).
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { runCommand } from '../drivers/exec';

export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

async function goBinDir(): Promise<string | undefined> {
  try {
    const result = await runCommand('go', ['env', 'GOPATH']);
    return result.code === 0 ? join(result.stdout.trim().split(delimiter)[0] ?? '', 'bin') : undefined;
  } catch {
    return undefined;
  }
}

export async function findTemporalBinary(): Promise<string | undefined> {
  if (process.env.TEMPORAL_CLI && existsSync(process.env.TEMPORAL_CLI)) return process.env.TEMPORAL_CLI;
  const candidates = (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'temporal'));
  const goBin = await goBinDir();
  if (goBin) candidates.push(join(goBin, 'temporal'));
  candidates.push(join(homedir(), 'go', 'bin', 'temporal'));
  return candidates.find((path) => existsSync(path));
}

export async function ensureTemporalBinary(log: (line: string) => void = () => undefined): Promise<string> {
  const found = await findTemporalBinary();
  if (found) return found;
  log(`temporal CLI not found; building it with go install ${TEMPORAL_CLI_MODULE} (a few minutes, once)`);
  const result = await runCommand('go', ['install', TEMPORAL_CLI_MODULE], { timeoutMs: 30 * 60_000 });
  if (result.code !== 0) throw new Error(`go install ${TEMPORAL_CLI_MODULE} failed:\n${result.stderr}`);
  const built = await findTemporalBinary();
  if (!built) throw new Error('go install succeeded but no temporal binary was found in $(go env GOPATH)/bin');
  return built;
}
