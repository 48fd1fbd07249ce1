import { Worker } from 'node:worker_threads';
import { CodedError, type ErrorCode } from '../errors.ts';
import { runTask, type ScanTask, type TaskResult, type WorkerMessage } from './tasks.ts';

/**
 * A small pool of worker threads for scan tasks, so several dumps (and several ranges of one big
 * dump) are analysed on all cores. With size 0 tasks run inline, one at a time.
 *
 * `mainThreadScans`: the main thread, idle otherwise, takes range tasks too, one at a time (a
 * 64 MiB range blocks it for ~35 ms), so the CLI needs one worker fewer than it has cores and
 * starts scanning before any worker has loaded its modules (~0.15 s). The bot keeps it off: its
 * event loop must answer Slack within 3 seconds.
 */

interface Job {
  task: ScanTask;
  resolve: (result: TaskResult) => void;
  reject: (error: Error) => void;
  onProgress: (bytes: number) => void;
}

export interface ScanPoolOptions {
  mainThreadScans?: boolean;
}

export class ScanPool {
  private readonly size: number;
  private readonly mainThreadScans: boolean;
  private readonly ready: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private helping = false;

  constructor(size: number, options: ScanPoolOptions = {}) {
    this.size = size;
    this.mainThreadScans = options.mainThreadScans ?? false;
  }

  run(task: ScanTask, onProgress: (bytes: number) => void = () => {}): Promise<TaskResult> {
    if (this.size === 0) return runTask(task, onProgress);
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject, onProgress });
      while (this.all.length < Math.min(this.size, this.queue.length + this.running.size)) this.spawn();
      this.pump();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((w) => w.terminate()));
    this.all.length = 0;
    this.ready.length = 0;
  }

  private pump(): void {
    while (this.queue.length > 0 && this.ready.length > 0) {
      const worker = this.ready.pop()!;
      const job = this.queue.shift()!;
      this.running.set(worker, job);
      worker.postMessage(job.task);
    }
    if (this.mainThreadScans && !this.helping && this.queue.some((j) => j.task.kind === 'range')) {
      this.helping = true;
      setImmediate(() => this.helpOnce());
    }
  }

  /** Runs one range task on the main thread (synchronously: scanRange does not yield). */
  private helpOnce(): void {
    this.helping = false;
    const index = this.queue.findIndex((j) => j.task.kind === 'range');
    if (index < 0) return;
    const [job] = this.queue.splice(index, 1);
    runTask(job!.task, job!.onProgress).then(job!.resolve, job!.reject);
    this.pump();
  }

  private spawn(): void {
    const worker = new Worker(new URL('./scan-worker.ts', import.meta.url));
    this.all.push(worker);
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') {
        this.ready.push(worker);
        this.pump();
        return;
      }
      const job = this.running.get(worker);
      if (!job || job.task.id !== message.id) return;
      if (message.type === 'progress') {
        job.onProgress(message.bytes);
        return;
      }
      this.running.delete(worker);
      this.ready.push(worker);
      if (message.type === 'done') job.resolve(message.result);
      else job.reject(new CodedError(message.error.code as ErrorCode, message.error.message));
      this.pump();
    });
    worker.on('error', (error) => {
      const job = this.running.get(worker);
      this.running.delete(worker);
      this.all.splice(this.all.indexOf(worker), 1);
      const at = this.ready.indexOf(worker);
      if (at >= 0) this.ready.splice(at, 1);
      job?.reject(error);
      if (this.all.length === 0) for (const waiting of this.queue.splice(0)) waiting.reject(error);
      this.pump();
    });
  }
}
