import { parentPort } from 'node:worker_threads';
import { asCodedError } from '../errors.ts';
import { runTask, type ScanTask, type WorkerMessage } from './tasks.ts';

/**
 * A worker thread: runs scan tasks one at a time, in the order posted (the pool may post the next
 * share of a shared task before this one is done), and reports progress and results. Tasks posted
 * while it still boots wait in its port until the listener below is attached.
 */
const port = parentPort;
if (!port) throw new Error('scan-worker.ts must run as a worker thread');

const post = (message: WorkerMessage) => port.postMessage(message);
/** A task's output, its bytes moved to the main thread rather than copied. */
const postOutput = (id: number, data: Uint8Array) =>
  port.postMessage({ type: 'output', id, data } satisfies WorkerMessage, [data.buffer as ArrayBuffer]);

async function run(task: ScanTask): Promise<void> {
  try {
    const result = await runTask(
      task,
      (bytes) => post({ type: 'progress', id: task.id, bytes }),
      (data) => postOutput(task.id, data),
    );
    post({ type: 'done', id: task.id, result });
  } catch (error) {
    const coded = asCodedError(error);
    post({ type: 'failed', id: task.id, error: { code: coded.code, message: coded.message } });
  }
}

let previous = Promise.resolve();
port.on('message', (task: ScanTask) => {
  previous = previous.then(() => run(task));
});
