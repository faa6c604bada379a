// Shows a running operation while the CLI waits: a progress bar while WAL replays (bytes left and
// ETA), a spinner with the current step otherwise; plain lines when the output is not a terminal.
import { SingleBar } from 'cli-progress';
import yoctoSpinner from 'yocto-spinner';
import type { OperationHandle } from '../client/pgOpsClient';
import type { Progress } from '../contract/definitions';

export async function watch<R>(op: OperationHandle<R>, tty: boolean): Promise<R> {
  const spinner = tty ? yoctoSpinner({ text: 'starting' }).start() : undefined;
  let bar: SingleBar | undefined;
  let lastLine = '';
  let total = 0;
  const show = (p: Progress) => {
    const left = typeof p.numbers.bytesLeft === 'number' ? p.numbers.bytesLeft : undefined;
    const line = `${p.step}: ${p.detail}`;
    if (!tty) {
      if (line !== lastLine) console.error(`[pgops] ${line}`);
      lastLine = line;
      return;
    }
    if (left !== undefined && p.step.includes('replay')) {
      total = Math.max(total, left);
      if (!bar) {
        spinner?.stop();
        bar = new SingleBar({
          format: 'replaying WAL [{bar}] {percentage}% | {left} MB left | ETA {eta_formatted}',
          hideCursor: true,
          stream: process.stderr,
        });
        bar.start(total, 0, { left: (left / 1e6).toFixed(1) });
      }
      bar.setTotal(total);
      bar.update(total - left, { left: (left / 1e6).toFixed(1) });
      return;
    }
    if (bar) {
      bar.stop();
      bar = undefined;
      spinner?.start();
    }
    if (spinner) spinner.text = line;
  };
  const timer = setInterval(() => {
    op.progress()
      .then(show)
      .catch(() => undefined);
  }, 500);
  try {
    const result = await op.result();
    spinner?.success('done');
    return result;
  } catch (err) {
    spinner?.error('failed');
    throw err;
  } finally {
    clearInterval(timer);
    bar?.stop();
  }
}
