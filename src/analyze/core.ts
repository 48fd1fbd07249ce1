import { CodedError, ErrorCode } from '../errors.ts';
import {
  type Arch,
  ELF_HEADER_SIZE,
  type ElfHeader,
  expectedCoreSize,
  PROGRAM_HEADER_SIZE,
  type ProgramHeader,
  PT_LOAD,
  PT_NOTE,
  parseElfHeader,
  parseProgramHeaders,
} from './elf.ts';
import { describeForeignCore } from './foreign-core.ts';
import { AT_EXECFN, type CoreNotes, executableOf, librariesOf, mappedFilesOf, parseNotes } from './notes.ts';
import { redact } from './redact.ts';
import { explainSignal, signalCodeName, signalName } from './signals.ts';
import { formatCommandLine, recoverStackStrings, type StackSegment } from './stack.ts';

/** Notes beyond this are not read: even a thousand-thread core's notes are a few megabytes. */
export const MAX_NOTES_BYTES = 64 << 20;
/** Only the top of a huge stack is kept: argv, envp and auxv live there. */
export const MAX_STACK_BYTES = 16 << 20;
/** Program headers further into the file than this are not a core we can stream. */
const MAX_HEADER_BYTES = 16 << 20;

export interface SignalFacts {
  number: number;
  name: string;
  code: number | null;
  codeName: string | null;
  senderPid: number | null;
  senderUid: number | null;
  faultAddress: string | null;
  meaning: string;
}

export interface ThreadFacts {
  pid: number;
  signal: number;
  pc: string;
  sp: string;
}

/** Everything the ELF structure says about one dump (strings come separately). */
export interface CoreFacts {
  arch: Arch;
  pid: number | null;
  ppid: number | null;
  uid: number | null;
  gid: number | null;
  processName: string | null;
  psargs: string | null;
  argv: string[] | null;
  commandLine: string | null;
  /** Where the command line came from: the full argv on the stack, or PRPSINFO's first 80 bytes. */
  commandLineSource: 'stack' | 'prpsinfo' | null;
  executable: string | null;
  /**
   * Where the executable's path came from: NT_FILE's mapping of the entry point; else, in a core
   * cut before its NT_FILE note, AT_EXECFN on the stack or the command line's first word (a path);
   * 'other_dump' is set when the set is correlated (see resolveExecutables).
   */
  executableSource: 'nt_file' | 'execfn' | 'argv0' | 'other_dump' | null;
  execfn: string | null;
  /** Mapped shared objects (NT_FILE), the executable left out. */
  libraries: string[];
  /** Every other mapped file: data files, locale archives, anon_inode:[io_uring], ... */
  mappedFiles: string[];
  signal: SignalFacts | null;
  threads: number;
  threadList: ThreadFacts[];
  environment: string[];
  truncated: boolean;
  /** Bytes the core should have had (end of its last segment), for comparison with sizeBytes. */
  expectedBytes: number;
  segments: number;
  notesIncomplete: boolean;
  redactions: number;
  /** Secret values hidden from the command line and environment; never printed. */
  secrets: string[];
}

export interface CoreParts {
  header: ElfHeader;
  segments: ProgramHeader[];
  notes: Uint8Array[];
  stack?: StackSegment;
  /** Bytes of the core actually present. */
  size: number;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/**
 * The note segments' bytes to keep: at most MAX_NOTES_BYTES in all, however many note segments a
 * (malformed) header declares and however large it says they are.
 */
export function noteWindows(segments: readonly ProgramHeader[]): Array<{ offset: number; length: number }> {
  let budget = MAX_NOTES_BYTES;
  const windows: Array<{ offset: number; length: number }> = [];
  for (const s of segments) {
    if (s.type !== PT_NOTE || s.filesz === 0 || budget === 0) continue;
    const length = Math.min(s.filesz, budget);
    budget -= length;
    windows.push({ offset: s.offset, length });
  }
  return windows;
}

/** The load segment holding `address`, if its bytes are in the file. */
export function segmentHolding(
  segments: readonly ProgramHeader[],
  address: bigint,
): ProgramHeader | undefined {
  return segments.find(
    (s) => s.type === PT_LOAD && s.filesz > 0 && s.vaddr <= address && address < s.vaddr + BigInt(s.filesz),
  );
}

/** Which part of the stack segment to keep: the top MAX_STACK_BYTES of it. */
export function stackWindow(segment: ProgramHeader): { offset: number; length: number; vaddr: bigint } {
  const length = Math.min(segment.filesz, MAX_STACK_BYTES);
  const skip = segment.filesz - length;
  return { offset: segment.offset + skip, length, vaddr: segment.vaddr + BigInt(skip) };
}

function readCString(stack: StackSegment | undefined, address: bigint | undefined): string | null {
  if (!stack || address === undefined) return null;
  const at = address - stack.vaddr;
  if (at < 0n || at >= BigInt(stack.bytes.length)) return null;
  const start = Number(at);
  let end = start;
  while (end < stack.bytes.length && end - start < 4096 && stack.bytes[end] !== 0) end++;
  return new TextDecoder().decode(stack.bytes.subarray(start, end));
}

/** Reads the facts out of the parts of a core; pure, so both the streaming and the seeking readers share it. */
export function interpretCore(parts: CoreParts): CoreFacts {
  const { header, segments } = parts;
  const foreign = describeForeignCore(parts.notes);
  if (foreign) throw new CodedError(ErrorCode.UnsupportedElf, foreign);
  const notes = mergeNotes(parts.notes, header.arch);
  let redactions = 0;
  const secrets: string[] = [];
  const clean = (text: string) => {
    const r = redact(text);
    redactions += r.count;
    secrets.push(...r.secrets);
    return r.text;
  };
  const stackStrings =
    parts.stack && notes.auxvBytes ? recoverStackStrings(parts.stack, notes.auxvBytes) : undefined;
  const psargs = notes.process?.psargs ?? null;
  const { argv, commandLine, commandLineSource } = commandLineOf(stackStrings?.argv, psargs, clean);
  const { executable, executableSource, execfn } = executableFacts(notes, parts.stack, argv, psargs);
  const mainThread = notes.threads[0];
  const pid = notes.process?.pid ?? mainThread?.pid ?? null;
  const expectedBytes = expectedCoreSize(header, segments);
  return {
    arch: header.arch,
    pid,
    ppid: notes.process?.ppid ?? mainThread?.ppid ?? null,
    uid: notes.process?.uid ?? null,
    gid: notes.process?.gid ?? null,
    processName: notes.process?.fname ?? null,
    psargs: psargs === null ? null : clean(psargs),
    argv,
    commandLine,
    commandLineSource,
    executable,
    executableSource,
    execfn,
    libraries: librariesOf(notes, executableOf(notes)),
    mappedFiles: mappedFilesOf(notes, executableOf(notes)),
    signal: signalFacts(notes, pid),
    threads: notes.threads.length,
    threadList: notes.threads.map((t) => ({ pid: t.pid, signal: t.signal, pc: hex(t.pc), sp: hex(t.sp) })),
    environment: (stackStrings?.env ?? []).map(clean),
    truncated: parts.size < expectedBytes,
    expectedBytes,
    segments: segments.length,
    notesIncomplete: notes.incomplete,
    redactions,
    secrets,
  };
}

/** The notes of every PT_NOTE segment as one: threads added up, the first of everything else kept. */
function mergeNotes(segments: readonly Uint8Array[], arch: Arch): CoreNotes {
  const merged = segments.map((n) => parseNotes(n, arch));
  const notes = merged[0] ?? parseNotes(new Uint8Array(0), arch);
  for (const extra of merged.slice(1)) {
    notes.threads.push(...extra.threads);
    notes.process ??= extra.process;
    notes.signal ??= extra.signal;
    if (notes.files.length === 0) notes.files = extra.files;
    for (const [k, v] of extra.auxv) if (!notes.auxv.has(k)) notes.auxv.set(k, v);
    notes.auxvBytes ??= extra.auxvBytes;
    notes.incomplete ||= extra.incomplete;
  }
  return notes;
}

/** The command line, from the stack's argv where it agrees with the kernel's psargs, else psargs. */
function commandLineOf(
  stackArgv: string[] | undefined,
  psargs: string | null,
  clean: (text: string) => string,
): Pick<CoreFacts, 'argv' | 'commandLine' | 'commandLineSource'> {
  let argv: string[] | null = null;
  let commandLineSource: CoreFacts['commandLineSource'] = null;
  // Trust the stack only when it agrees with what the kernel recorded at the time of the crash.
  if (stackArgv && stackArgv.length > 0) {
    const joined = formatCommandLine(stackArgv);
    if (psargs === null || joined.startsWith(psargs) || psargs.startsWith(joined.slice(0, psargs.length))) {
      argv = stackArgv.map(clean);
      commandLineSource = 'stack';
    }
  }
  if (argv === null && psargs !== null) commandLineSource = 'prpsinfo';
  const commandLine = argv ? formatCommandLine(argv) : psargs === null ? null : clean(psargs);
  return { argv, commandLine, commandLineSource };
}

/** The executable: the mapped file it ran from, else AT_EXECFN, else an absolute argv[0]. */
function executableFacts(
  notes: CoreNotes,
  stack: StackSegment | undefined,
  argv: string[] | null,
  psargs: string | null,
): Pick<CoreFacts, 'executable' | 'executableSource' | 'execfn'> {
  const mapped = executableOf(notes);
  const execfn = readCString(stack, notes.auxv.get(AT_EXECFN));
  const argv0 = argv?.[0] ?? psargs?.split(' ')[0];
  const executable = mapped ?? (execfn || (argv0?.startsWith('/') ? argv0 : null));
  const executableSource: CoreFacts['executableSource'] =
    mapped !== undefined
      ? 'nt_file'
      : executable === null
        ? null
        : executable === execfn
          ? 'execfn'
          : 'argv0';
  return { executable, executableSource, execfn };
}

function signalFacts(notes: CoreNotes, pid: number | null): SignalFacts | null {
  const si = notes.signal;
  const mainThread = notes.threads[0];
  // A core of a live process (gdb's gcore) has no current signal; its NT_SIGINFO is the SIGSTOP of
  // gdb attaching, which says nothing about the process.
  const snapshot = mainThread !== undefined && mainThread.signal === 0;
  const signo = snapshot ? 0 : (si?.signo ?? mainThread?.signal);
  if (signo === undefined) return null;
  const info = snapshot ? undefined : si;
  return {
    number: signo,
    name: signalName(signo),
    code: info ? info.code : null,
    codeName: info ? signalCodeName(signo, info.code) : null,
    senderPid: info?.senderPid ?? null,
    senderUid: info?.senderUid ?? null,
    faultAddress: info?.faultAddress !== undefined ? hex(info.faultAddress) : null,
    meaning: explainSignal({
      signo,
      ...(info ? { code: info.code } : {}),
      ...(info?.senderPid !== undefined ? { senderPid: info.senderPid } : {}),
      ...(info?.faultAddress !== undefined ? { faultAddress: info.faultAddress } : {}),
      ...(pid !== null ? { pid } : {}),
    }),
  };
}

interface Capture {
  offset: number;
  bytes: Uint8Array;
  filled: number;
}

/**
 * Reads a core from a stream of bytes in file order (gunzip output, a tar member), keeping only the
 * header, the notes and the top of the stack: memory use is bounded whatever the core's size.
 */
export class CoreStreamReader {
  private position = 0;
  private head: Uint8Array[] = [];
  private headLength = 0;
  private header: ElfHeader | undefined;
  private segments: ProgramHeader[] | undefined;
  private notes: Capture[] = [];
  private stack: (Capture & { vaddr: bigint }) | undefined;
  private stackDecided = false;

  get bytesRead(): number {
    return this.position;
  }

  /** Throws a CodedError as soon as the header shows this is not a core we can read. */
  push(chunk: Uint8Array): void {
    const at = this.position;
    this.position += chunk.length;
    if (!this.segments) {
      this.head.push(new Uint8Array(chunk));
      this.headLength += chunk.length;
      if (!this.tryParseHead()) return;
      const head = Buffer.concat(this.head);
      this.head = [];
      this.capture(head, 0);
      return;
    }
    this.capture(chunk, at);
  }

  private tryParseHead(): boolean {
    if (!this.header) {
      if (this.headLength < ELF_HEADER_SIZE) return false;
      this.header = parseElfHeader(Buffer.concat(this.head).subarray(0, ELF_HEADER_SIZE));
    }
    const end = this.header.phoff + this.header.phnum * PROGRAM_HEADER_SIZE;
    if (end > MAX_HEADER_BYTES) {
      throw new CodedError(
        ErrorCode.MalformedElf,
        `program headers at offset ${this.header.phoff} are past 16 MiB`,
      );
    }
    if (this.headLength < end) return false;
    const head = Buffer.concat(this.head);
    this.segments = parseProgramHeaders(head.subarray(this.header.phoff, end), this.header);
    for (const note of noteWindows(this.segments)) {
      this.notes.push({ offset: note.offset, bytes: new Uint8Array(note.length), filled: 0 });
    }
    return true;
  }

  private capture(chunk: Uint8Array, at: number): void {
    for (const note of this.notes) {
      copyOverlap(note, chunk, at);
      if (!this.stackDecided && note.filled === note.bytes.length) this.decideStack(at);
    }
    if (this.stack) copyOverlap(this.stack, chunk, at);
  }

  /** Once the notes are in, AT_EXECFN points into the stack segment: keep that one when it streams by. */
  private decideStack(chunkAt: number): void {
    if (!this.notes.every((n) => n.filled === n.bytes.length)) return;
    this.stackDecided = true;
    const notes = this.notes.map((n) => parseNotes(n.bytes, this.header!.arch));
    const execfn = notes.map((n) => n.auxv.get(AT_EXECFN)).find((v) => v !== undefined);
    if (execfn === undefined) return;
    const segment = segmentHolding(this.segments!, execfn);
    if (!segment) return;
    const window = stackWindow(segment);
    // The stack came before the notes in this file: it has streamed past already.
    if (window.offset < chunkAt) return;
    this.stack = {
      offset: window.offset,
      bytes: new Uint8Array(window.length),
      filled: 0,
      vaddr: window.vaddr,
    };
  }

  /** Call at the end of the stream. Throws if the stream ended before the program headers. */
  finish(): CoreFacts {
    if (!this.segments) {
      if (this.headLength === 0) throw new CodedError(ErrorCode.NotElf, 'empty file');
      const head = Buffer.concat(this.head);
      // Let parseElfHeader name what the file is, or say the header is cut short.
      const header = parseElfHeader(head.subarray(0, Math.min(head.length, ELF_HEADER_SIZE)));
      throw new CodedError(
        ErrorCode.MalformedElf,
        `core cut short in its program headers: ${head.length} bytes, ${header.phoff + header.phnum * PROGRAM_HEADER_SIZE} needed`,
      );
    }
    const parts: CoreParts = {
      header: this.header!,
      segments: this.segments,
      notes: this.notes.map((n) => n.bytes.subarray(0, n.filled)),
      size: this.position,
    };
    if (this.stack && this.stack.filled > 0) {
      parts.stack = { vaddr: this.stack.vaddr, bytes: this.stack.bytes.subarray(0, this.stack.filled) };
    }
    return interpretCore(parts);
  }
}

/** Copies the part of `chunk` (at file offset `at`) that falls into `capture`, in order. */
function copyOverlap(capture: Capture, chunk: Uint8Array, at: number): void {
  const want = capture.offset + capture.filled;
  const end = capture.offset + capture.bytes.length;
  if (capture.filled === capture.bytes.length || at + chunk.length <= want || at >= end) return;
  if (at > want) return; // a gap: bytes before this chunk were never seen (cannot happen in order)
  const from = want - at;
  const take = Math.min(chunk.length - from, end - want);
  capture.bytes.set(chunk.subarray(from, from + take), capture.filled);
  capture.filled += take;
}
