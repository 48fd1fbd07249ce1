import { Worker } from 'node:worker_threads';
import { CodedError, type ErrorCode } from '../errors.ts';
import { runTask, type ScanTask, type TaskResult, type WorkerMessage } from './tasks.ts';

/**
 * A small pool of worker threads for scan tasks, so several dumps (and several ranges of one big
 * dump) are analysed on all cores while the main thread stays free (for the progress bar here, for
 * Slack's 3-second acks in the bot). With size 0 tasks run inline, one at a time.
 */
export class ScanPool {
  private readonly size: number;
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Array<{
    task: ScanTask;
    resolve: (r: TaskResult) => void;
    reject: (e: Error) => void;
    onProgress: (bytes: number) => void;
  }> = [];
  private readonly running = new Map<Worker, (typeof this.queue)[number]>();

  constructor(size: number) {
    this.size = size;
  }

  run(task: ScanTask, onProgress: (bytes: number) => void = () => {}): Promise<TaskResult> {
    if (this.size === 0) return runTask(task, onProgress);
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject, onProgress });
      this.pump();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((w) => w.terminate()));
    this.all.length = 0;
    this.idle.length = 0;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.all.length < this.size ? this.spawn() : undefined);
      if (!worker) return;
      const job = this.queue.shift()!;
      this.running.set(worker, job);
      worker.postMessage(job.task);
    }
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./scan-worker.ts', import.meta.url));
    this.all.push(worker);
    worker.on('message', (message: WorkerMessage) => {
      const job = this.running.get(worker);
      if (!job || job.task.id !== message.id) return;
      if (message.type === 'progress') return job.onProgress(message.bytes);
      this.running.delete(worker);
      this.idle.push(worker);
      if (message.type === 'done') job.resolve(message.result);
      else job.reject(new CodedError(message.error.code as ErrorCode, message.error.message));
      this.pump();
    });
    worker.on('error', (error) => {
      const job = this.running.get(worker);
      this.running.delete(worker);
      this.all.splice(this.all.indexOf(worker), 1);
      job?.reject(error);
      this.pump();
    });
    return worker;
  }
}
