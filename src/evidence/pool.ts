import { Worker } from 'node:worker_threads';
import { CodedError, type ErrorCode } from '../errors.ts';
import { discardPrestarted, SCAN_WORKER_OPTIONS, SCAN_WORKER_URL, takePrestarted } from './prestart.ts';
import { runTask, type ScanTask, type TaskResult, type WorkerMessage } from './tasks.ts';

/**
 * A small pool of worker threads for scan tasks, so several dumps (and several ranges of one big
 * dump) are analysed on all cores. With size 0 tasks run inline.
 *
 * A task goes to a worker as soon as the worker is free, even while it still boots: the message
 * waits in its port, so the worker starts on it the moment its modules are loaded, without a
 * round trip through the main thread, which may be busy scanning.
 *
 * `mainThreadScans`: the main thread, idle otherwise, takes part in shared range tasks too, so the
 * CLI needs one worker fewer than it has cores and starts scanning before any worker has loaded
 * its modules (~0.15 s). The bot keeps it off: its event loop must answer Slack within 3 seconds.
 */

interface Job {
  task: ScanTask;
  resolve: (result: TaskResult) => void;
  reject: (error: Error) => void;
  onProgress: (bytes: number) => void;
  onOutput: (data: Uint8Array) => void;
  /** The main thread's share of a shared task: never given to a worker. */
  mainOnly: boolean;
}

/** Shares of shared tasks a worker holds at once: the one it runs and the next. */
const SHARES_AHEAD = 2;

export interface ScanPoolOptions {
  mainThreadScans?: boolean;
}

export class ScanPool {
  /** Worker threads it runs tasks on (0: inline). */
  readonly size: number;
  private readonly mainThreadScans: boolean;
  private readonly all: Worker[] = [];
  private readonly queue: Job[] = [];
  /** Each worker's jobs, in the order posted; it runs them one at a time (scan-worker.ts). */
  private readonly running = new Map<Worker, Job[]>();
  private helping = false;

  constructor(size: number, options: ScanPoolOptions = {}) {
    this.size = size;
    this.mainThreadScans = options.mainThreadScans ?? false;
  }

  /** Runs a task on one thread; `onOutput` receives what it hands over as it goes. */
  run(
    task: ScanTask,
    onProgress: (bytes: number) => void = () => {},
    onOutput: (data: Uint8Array) => void = () => {},
  ): Promise<TaskResult> {
    if (this.size === 0) return runTask(task, onProgress, onOutput);
    const result = this.enqueue(task, onProgress, false, onOutput);
    this.pump();
    return result;
  }

  /**
   * Runs a 'ranges' task on every thread at once (each worker, and the main thread when it
   * scans): they claim its ranges from one shared counter. Resolves with each thread's result.
   */
  runShared(task: ScanTask, onProgress: (bytes: number) => void = () => {}): Promise<TaskResult[]> {
    if (this.size === 0) return runTask(task, onProgress).then((result) => [result]);
    const shares: Array<Promise<TaskResult>> = [];
    if (this.mainThreadScans) shares.push(this.enqueue(task, onProgress, true));
    for (let i = 0; i < this.size; i++) shares.push(this.enqueue(task, onProgress, false));
    this.pump();
    return Promise.all(shares);
  }

  async close(): Promise<void> {
    await Promise.all([...this.all.map((w) => w.terminate()), discardPrestarted()]);
    this.all.length = 0;
    this.running.clear();
  }

  private enqueue(
    task: ScanTask,
    onProgress: (bytes: number) => void,
    mainOnly: boolean,
    onOutput: (data: Uint8Array) => void = () => {},
  ): Promise<TaskResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject, onProgress, onOutput, mainOnly });
      const forWorkers = this.queue.filter((j) => !j.mainOnly).length;
      const busy = [...this.running.values()].filter((jobs) => jobs.length > 0).length;
      while (this.all.length < Math.min(this.size, forWorkers + busy)) this.spawn();
    });
  }

  /**
   * Gives each free worker the next job. A worker busy with its share of a shared task is given
   * its share of the next one too, to start the moment it is done: handed over only when the main
   * thread next yields (it may be scanning a 64 MiB range), it left the worker idle between dumps,
   * a tenth of its time on eight cores. Only shares: every worker has its own of each, so queuing
   * one behind another takes no work from a worker that is free.
   */
  private pump(): void {
    for (let given = true; given; ) {
      given = false;
      for (const worker of this.all) if (this.give(worker)) given = true;
    }
    if (!this.helping && this.queue.some((j) => j.mainOnly)) {
      this.helping = true;
      setImmediate(() => this.helpOnce());
    }
  }

  /** Posts the worker the next job it may take (see pump); false when there is none. */
  private give(worker: Worker): boolean {
    const jobs = this.running.get(worker) ?? [];
    const index = this.queue.findIndex(
      jobs.length === 0
        ? (j) => !j.mainOnly
        : (j) =>
            !j.mainOnly &&
            j.task.kind === 'ranges' &&
            jobs.length < SHARES_AHEAD &&
            jobs.every((held) => held.task.kind === 'ranges' && held.task.id !== j.task.id),
    );
    if (index < 0) return false;
    const [job] = this.queue.splice(index, 1);
    jobs.push(job!);
    this.running.set(worker, jobs);
    worker.postMessage(job!.task);
    return true;
  }

  /** Starts the main thread's share of a shared task (it yields between ranges). */
  private helpOnce(): void {
    this.helping = false;
    const index = this.queue.findIndex((j) => j.mainOnly);
    if (index < 0) return;
    const [job] = this.queue.splice(index, 1);
    runTask(job!.task, job!.onProgress, job!.onOutput).then(job!.resolve, job!.reject);
    this.pump();
  }

  /** Adopts a worker the CLI started early (see prestart.ts), else starts one. */
  private spawn(): void {
    const worker = takePrestarted() ?? new Worker(SCAN_WORKER_URL, SCAN_WORKER_OPTIONS);
    this.all.push(worker);
    this.running.set(worker, []);
    worker.on('message', (message: WorkerMessage) => {
      const jobs = this.running.get(worker) ?? [];
      const at = jobs.findIndex((j) => j.task.id === message.id);
      const job = jobs[at];
      if (!job) return;
      if (message.type === 'progress') {
        job.onProgress(message.bytes);
        return;
      }
      if (message.type === 'output') {
        job.onOutput(message.data);
        return;
      }
      jobs.splice(at, 1);
      if (message.type === 'done') job.resolve(message.result);
      else job.reject(new CodedError(message.error.code as ErrorCode, message.error.message));
      this.pump();
    });
    worker.on('error', (error) => {
      const jobs = this.running.get(worker) ?? [];
      this.running.delete(worker);
      this.all.splice(this.all.indexOf(worker), 1);
      for (const job of jobs) job.reject(error);
      if (this.all.length === 0)
        for (const waiting of this.queue.splice(0).filter((j) => !j.mainOnly)) waiting.reject(error);
      this.pump();
    });
  }
}
