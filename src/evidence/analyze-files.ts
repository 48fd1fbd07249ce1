import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describeMinidump, describeUnknown, MINIDUMP_HEAD_BYTES, sniff } from '../analyze/container.ts';
import { parseCoreName, withNameFacts } from '../analyze/core-name.ts';
import { buildReport, type DumpRecord, HeadlineSoFar } from '../analyze/correlate.ts';
import { chooseDumpTime, fileNameTime } from '../analyze/dump-time.ts';
import { EvidenceCollector, type EvidenceSnapshot } from '../analyze/evidence.ts';
import type { AnalysisError, Report } from '../analyze/report-schema.ts';
import type { Clock } from '../clock.ts';
import { asCodedError, CodedError, ErrorCode } from '../errors.ts';
import { expandInputs, type InputFile } from './inputs.ts';
import { resolveOverflow } from './overflow.ts';
import { ScanPool } from './pool.ts';
import { readHead } from './read-head.ts';
import type { StreamResult } from './read-stream.ts';
import { readRawStructure } from './read-structure.ts';
import { newSpillConfig, type SpillConfig, SpillStore } from './spill.ts';
import type { ScanTask } from './tasks.ts';

/**
 * `nightshift analyze` without the printing: every dump given at once is analysed as one set, on
 * all cores, and correlated into one report.
 */

export interface AnalyzeOptions {
  /**
   * Worker threads; default: the machine's available parallelism, or none (inline) when the input
   * is under INLINE_BYTES, where starting threads costs more than it saves. 0 runs everything inline.
   */
  workers?: number;
  /**
   * Raw cores are scanned in ranges of at most this many bytes, which the threads claim one at a
   * time (see rangeBounds). Default 64 MiB.
   */
  rangeBytes?: number;
  /**
   * Let the main thread scan ranges too (see ScanPool); then one worker fewer than cores is started.
   * Default false.
   */
  mainThreadScans?: boolean;
  /**
   * Called once with the secret values redaction hid, for a caller that keeps them apart from the
   * report (the bot keeps them beside the evidence, so the agent can hide their bare copies); the
   * report itself never holds them.
   */
  onSecrets?: (secrets: readonly string[]) => void;
  /**
   * Called as input bytes are consumed: (bytes done, bytes in all), bytes of the files as they are
   * on disk, compressed or not; the report's totals.fileBytes is the same total.
   */
  onProgress?: (done: number, total: number) => void;
  /**
   * Directory under which distinct values past the in-memory caps are spilled, sorted, while the
   * dumps are scanned, so every count stays exact in bounded memory (see src/analyze/evidence.ts);
   * a fresh directory is made in it and removed at the end. Default: the OS temp dir (TMPDIR).
   */
  spillDir?: string;
  /**
   * Bytes the spilled values of one analysis may take on disk; past them values are lost and the
   * counts they could change are marked lowerBound. Default 4 GiB (SPILL_BYTES).
   */
  spillBytes?: number;
  /** The clock the report's time and a followed file's placeholder time come from. */
  now: Clock;
  /**
   * The paths are files a pull is still writing (collect/pull.ts): each is read as it grows, to its
   * end or its pull's failure (follow.ts), instead of as it is on disk. Default false.
   */
  follow?: boolean;
  /**
   * Called each time a file's analysis ends, with the headline of the files done so far (counts not
   * made exact yet, see resolveOverflow: each is a lower bound) and their dumps: what the bot posts
   * before the last file is in, and, once it is, while the counts are made exact (on eight
   * text-dense dumps the headline then shows a second and more before the report).
   */
  onPartial?: (partial: PartialAnalysis) => void;
  /**
   * The least time between two partial headlines (the last file's is always made). Each is a
   * correlation of every dump done so far on the thread that merges and reports: on eight
   * text-dense dumps ending within seconds of each other, one a file made the analysis 2.4 s
   * longer. Default PARTIAL_EVERY_MS.
   */
  partialEveryMs?: number;
}

export const PARTIAL_EVERY_MS = 2000;

/**
 * What holds after some of the files: the report's first finding's title (redacted as the report
 * is; undefined while nothing stands out) and how many dumps and files it stands on.
 */
export interface PartialAnalysis {
  headline: string | undefined;
  dumps: number;
  filesDone: number;
  filesTotal: number;
}

export const SPILL_BYTES = 4 * 1024 * 1024 * 1024;

export const DEFAULT_RANGE_BYTES = 64 * 1024 * 1024;
export const INLINE_BYTES = 32 * 1024 * 1024;
/** The smallest range rangeBounds cuts (unless rangeBytes is smaller). */
export const MIN_RANGE_BYTES = 4 * 1024 * 1024;

/**
 * Boundaries of the ranges [bounds[i], bounds[i + 1]) that cover [0, end): rangeBytes long, then
 * an eighth of what is left once that is shorter, down to MIN_RANGE_BYTES. Threads claim them in
 * order, so the last ones to be claimed are the short ones and all threads finish at about the
 * same time; a fixed size leaves one thread alone with a last range of up to rangeBytes.
 */
export function rangeBounds(end: number, rangeBytes: number): number[] {
  const floor = Math.min(rangeBytes, MIN_RANGE_BYTES);
  const bounds = [0];
  for (let at = 0; at < end; ) {
    at = Math.min(end, at + Math.max(floor, Math.min(rangeBytes, Math.ceil((end - at) / 8))));
    bounds.push(at);
  }
  return bounds;
}

/** What the analysis of one file needs from the whole run. */
interface RunContext {
  pool: ScanPool;
  spill: SpillConfig;
  progress: (bytes: number) => void;
  errors: AnalysisError[];
  nextId: () => number;
  rangeBytes: number;
  /** Raw files whose ranges are not all claimed yet (an Int32; see scanClaimedRanges). */
  unclaimed: SharedArrayBuffer;
}

export async function analyzeFiles(paths: readonly string[], options: AnalyzeOptions): Promise<Report> {
  if (paths.length === 0) throw new CodedError(ErrorCode.NoInput, 'no files or directories given');
  const { now } = options;
  // Followed files are not there yet (or not whole): their size is learnt as they are read.
  const { files, errors } = options.follow
    ? { files: paths.map((path) => ({ path, size: 0, mtime: now() })), errors: [] as AnalysisError[] }
    : await expandInputs(paths);
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const totalForReport = options.follow ? undefined : total;
  const pool = newPool(options, total);
  const spill = await openSpill(options);
  let nextId = 1;
  const run: RunContext = {
    pool,
    spill: spill.config,
    progress: progressOf(options, total),
    errors,
    nextId: () => nextId++,
    rangeBytes: options.rangeBytes ?? DEFAULT_RANGE_BYTES,
    unclaimed: new SharedArrayBuffer(4),
  };
  try {
    // Dropped after the last file's headline: its groups would stay alive through the report.
    let soFar: HeadlineSoFar | undefined = new HeadlineSoFar();
    let dumpsDone = 0;
    let filesDone = 0;
    let lastPartial = Number.NEGATIVE_INFINITY;
    const partial = (records: DumpRecord[]) => {
      filesDone++;
      dumpsDone += records.length;
      if (!options.onPartial || !soFar) return;
      soFar.add(records);
      const at = now().getTime();
      if (filesDone < files.length && at - lastPartial < (options.partialEveryMs ?? PARTIAL_EVERY_MS)) return;
      lastPartial = at;
      options.onPartial({
        headline: soFar.headline(),
        dumps: dumpsDone,
        filesDone,
        filesTotal: files.length,
      });
      if (filesDone === files.length) soFar = undefined;
    };
    const perFile = await Promise.all(
      files.map(async (file): Promise<DumpRecord[]> => {
        let records: DumpRecord[] = [];
        try {
          records = options.follow ? await followOne(run, file) : await analyzeOne(run, file);
        } catch (error) {
          const coded = asCodedError(error);
          errors.push({ file: file.path, entry: null, code: coded.code, message: coded.message });
          run.progress(file.size);
        }
        partial(records);
        return records;
      }),
    );
    const records = perFile.flat();
    // Every count made exact, and the values that recur across dumps found, however many others.
    await resolveOverflow(
      records.map((r) => r.evidence),
      spill.config,
      // Half the keys on a worker, idle by now (overflow-split.ts).
      pool.size > 0
        ? {
            share: async (part, onEvents) => {
              await pool.run({ id: run.nextId(), kind: 'resolve', part }, undefined, onEvents);
            },
          }
        : {},
    );
    options.onSecrets?.(secretsOf(records));
    return buildReport(records, errors, now(), totalForReport);
  } finally {
    await pool.close();
    await spill.close();
  }
}

/** Reports progress as bytes are read; followed files' sizes are not known ahead. */
function progressOf(options: AnalyzeOptions, total: number): (bytes: number) => void {
  let done = 0;
  return (bytes) => {
    done += bytes;
    if (options.follow) options.onProgress?.(done, done);
    else options.onProgress?.(Math.min(done, total), total);
  };
}

function newPool(options: AnalyzeOptions, total: number): ScanPool {
  const mainThreadScans = options.mainThreadScans ?? false;
  const cores = Math.max(1, availableParallelism() - (mainThreadScans ? 1 : 0));
  const workers = options.workers ?? (total < INLINE_BYTES && !options.follow ? 0 : cores);
  return new ScanPool(workers, { mainThreadScans });
}

/**
 * The run's spill directory. Without one (TMPDIR unwritable), values past the caps are lost, and
 * the counts they could change are marked lowerBound, rather than the analysis failing.
 */
async function openSpill(options: AnalyzeOptions): Promise<{ config: SpillConfig; close(): Promise<void> }> {
  const dir = await mkdtemp(join(options.spillDir ?? tmpdir(), 'nightshift-spill-')).catch(() => undefined);
  return {
    config: newSpillConfig(dir ?? '', dir === undefined ? 0 : (options.spillBytes ?? SPILL_BYTES)),
    close: async () => {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    },
  };
}

function secretsOf(records: readonly DumpRecord[]): string[] {
  const secrets = new Set<string>();
  for (const r of records) for (const s of [...r.facts.secrets, ...r.evidence.secrets]) secrets.add(s);
  return [...secrets];
}

/** A file being pulled, read as it grows; its analysis starts again when its pull does. */
async function followOne(run: RunContext, file: InputFile): Promise<DumpRecord[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const result = (await run.pool.run(
        { id: run.nextId(), kind: 'stream', file: file.path, follow: true, spill: run.spill },
        run.progress,
      )) as StreamResult;
      run.errors.push(...result.errors);
      return result.dumps;
    } catch (error) {
      if (attempt >= 3 || asCodedError(error).code !== ErrorCode.FollowRestarted) throw error;
    }
  }
}

async function analyzeOne(run: RunContext, file: InputFile): Promise<DumpRecord[]> {
  const head = await readHead(file.path);
  const kind = sniff(head);
  if (kind === 'unknown') {
    run.progress(file.size);
    // A minidump is named from its directory and system info, which lie past the first block.
    const minidump = head.subarray(0, 4).toString('latin1') === 'MDMP';
    const what = minidump
      ? describeMinidump(await readHead(file.path, MINIDUMP_HEAD_BYTES))
      : describeUnknown(head);
    throw new CodedError(ErrorCode.NotCore, `not a core dump: ${what}`);
  }
  if (kind !== 'elf') {
    const result = (await run.pool.run(
      { id: run.nextId(), kind: 'stream', file: file.path, spill: run.spill },
      run.progress,
    )) as StreamResult;
    run.errors.push(...result.errors);
    return result.dumps;
  }
  return [await analyzeRaw(run, file)];
}

/** A raw core: its structure by seeking, its strings in ranges on every thread. */
async function analyzeRaw(run: RunContext, file: InputFile): Promise<DumpRecord> {
  const structure = await readRawStructure(file.path);
  const evidence = new EvidenceCollector({ spill: new SpillStore(run.spill) });
  const task: ScanTask = {
    id: run.nextId(),
    kind: 'ranges',
    file: file.path,
    bounds: rangeBounds(structure.scanEnd, run.rangeBytes),
    claim: new SharedArrayBuffer(4),
    unclaimed: run.unclaimed,
    spill: run.spill,
  };
  Atomics.add(new Int32Array(run.unclaimed), 0, 1);
  for (const share of await run.pool.runShared(task, run.progress)) evidence.merge(share as EvidenceSnapshot);
  // systemd-coredump's and apport's names fill what the core lacks, and date it (core-name.ts).
  const named = parseCoreName(basename(file.path));
  return {
    file: file.path,
    entry: null,
    container: 'raw',
    fileBytes: file.size,
    sizeBytes: structure.size,
    mtime: named?.time ?? file.mtime,
    time: chooseDumpTime({ fileName: fileNameTime(file.path), file: file.mtime }),
    facts: withNameFacts(structure.facts, named),
    evidence: evidence.snapshot(),
  };
}
