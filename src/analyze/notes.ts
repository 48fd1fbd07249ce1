import type { Arch } from './elf.ts';

/**
 * The notes segment of a Linux core: who the process was and how it died. Layouts follow the
 * kernel's `struct elf_prstatus`, `struct elf_prpsinfo` and `siginfo_t` for 64-bit x86_64 and
 * aarch64 (identical except for the register block). Every read is bounds-checked, so a cut-short
 * or garbled notes segment yields whatever complete notes it holds.
 */

export const NT_PRSTATUS = 1;
export const NT_PRPSINFO = 3;
export const NT_AUXV = 6;
export const NT_SIGINFO = 0x53494749;
export const NT_FILE = 0x46494c45;

export const AT_ENTRY = 9;
export const AT_EXECFN = 31;

/** Offsets into elf_prstatus: pr_reg starts at 112 on both architectures. */
const PRSTATUS_REG = 112;
const REGISTERS: Record<Arch, { pc: number; sp: number }> = {
  // user_regs_struct: rip is register 16, rsp register 19.
  x86_64: { pc: PRSTATUS_REG + 16 * 8, sp: PRSTATUS_REG + 19 * 8 },
  // user_pt_regs: x0..x30, sp, pc, pstate.
  aarch64: { pc: PRSTATUS_REG + 32 * 8, sp: PRSTATUS_REG + 31 * 8 },
};

export interface ThreadStatus {
  pid: number;
  ppid: number;
  /** pr_cursig: the signal the thread was handling when the core was written. */
  signal: number;
  pc: bigint;
  sp: bigint;
}

export interface ProcessInfo {
  state: string;
  fname: string;
  /** pr_psargs: the command line, NUL-separated arguments joined by spaces, cut at 80 bytes. */
  psargs: string;
  uid: number;
  gid: number;
  pid: number;
  ppid: number;
}

export interface SignalInfo {
  signo: number;
  errno: number;
  code: number;
  /** Set when the signal came from a process (kill, tgkill, sigqueue). */
  senderPid?: number;
  senderUid?: number;
  /** Set for faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE): the address that faulted. */
  faultAddress?: bigint;
}

export interface FileMapping {
  start: bigint;
  end: bigint;
  fileOffset: bigint;
  path: string;
}

export interface CoreNotes {
  threads: ThreadStatus[];
  process?: ProcessInfo;
  signal?: SignalInfo;
  auxv: Map<number, bigint>;
  files: FileMapping[];
  /** NT_AUXV as it lies in memory, to find the process's initial stack (see stack.ts). */
  auxvBytes?: Uint8Array;
  /** Notes that claimed more bytes than the segment holds: the segment was cut short or garbled. */
  incomplete: boolean;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

function cString(bytes: Uint8Array, start: number, max: number): string {
  const end = Math.min(bytes.length, start + max);
  let stop = start;
  while (stop < end && bytes[stop] !== 0) stop++;
  return decoder.decode(bytes.subarray(start, stop));
}

const align4 = (n: number) => (n + 3) & ~3;

/**
 * The si_codes whose siginfo holds the sender's pid and uid (include/uapi/asm-generic/siginfo.h):
 * SI_USER (kill), SI_QUEUE (sigqueue), SI_MESGQ (mq_notify) and SI_TKILL (tkill/tgkill, as raise()
 * and abort() send). SI_TIMER, SI_ASYNCIO, SI_SIGIO and SI_DETHREAD keep other fields (a timer id,
 * a band) in those bytes.
 */
const SENT_BY_PROCESS = new Set([0, -1, -3, -6]);
function sentByProcess(code: number): boolean {
  return SENT_BY_PROCESS.has(code);
}

const FAULT_SIGNALS = new Set([4, 7, 8, 11]);

export function parseNotes(bytes: Uint8Array, arch: Arch): CoreNotes {
  const notes: CoreNotes = { threads: [], auxv: new Map(), files: [], incomplete: false };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const registers = REGISTERS[arch];
  let at = 0;
  while (at + 12 <= bytes.length) {
    const namesz = view.getUint32(at, true);
    const descsz = view.getUint32(at + 4, true);
    const type = view.getUint32(at + 8, true);
    const nameAt = at + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (namesz > 4096 || descAt + descsz > bytes.length) {
      notes.incomplete = true;
      break;
    }
    const name = cString(bytes, nameAt, namesz);
    const desc = bytes.subarray(descAt, descAt + descsz);
    const d = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
    if (name === 'CORE') {
      if (type === NT_PRSTATUS && descsz >= Math.max(registers.pc, registers.sp) + 8) {
        notes.threads.push({
          signal: d.getUint16(12, true),
          pid: d.getInt32(32, true),
          ppid: d.getInt32(36, true),
          pc: d.getBigUint64(registers.pc, true),
          sp: d.getBigUint64(registers.sp, true),
        });
      } else if (type === NT_PRPSINFO && descsz >= 136) {
        notes.process = {
          state: String.fromCharCode(desc[1] || 0x3f),
          uid: d.getUint32(16, true),
          gid: d.getUint32(20, true),
          pid: d.getInt32(24, true),
          ppid: d.getInt32(28, true),
          fname: cString(desc, 40, 16),
          psargs: cString(desc, 56, 80).trimEnd(),
        };
      } else if (type === NT_SIGINFO && descsz >= 32) {
        const signo = d.getInt32(0, true);
        const code = d.getInt32(8, true);
        const info: SignalInfo = { signo, errno: d.getInt32(4, true), code };
        if (FAULT_SIGNALS.has(signo) && code > 0) info.faultAddress = d.getBigUint64(16, true);
        else if (sentByProcess(code)) {
          info.senderPid = d.getInt32(16, true);
          info.senderUid = d.getUint32(20, true);
        }
        notes.signal = info;
      } else if (type === NT_AUXV) {
        notes.auxvBytes = new Uint8Array(desc);
        for (let i = 0; i + 16 <= descsz; i += 16) {
          const key = Number(d.getBigUint64(i, true));
          if (key === 0) break;
          notes.auxv.set(key, d.getBigUint64(i + 8, true));
        }
      } else if (type === NT_FILE && descsz >= 16) {
        notes.files = parseFileNote(desc, d);
      }
    }
    at = next;
  }
  // Bytes left that cannot hold a note header: the segment was cut inside one.
  if (at < bytes.length && !notes.incomplete) notes.incomplete = true;
  return notes;
}

function parseFileNote(desc: Uint8Array, d: DataView): FileMapping[] {
  const count = d.getBigUint64(0, true);
  // Each entry needs 24 bytes of addresses plus at least one byte of name.
  if (count > BigInt(Math.floor((desc.length - 16) / 25))) return [];
  const n = Number(count);
  const mappings: FileMapping[] = [];
  let nameAt = 16 + n * 24;
  for (let i = 0; i < n && nameAt < desc.length; i++) {
    const at = 16 + i * 24;
    let end = nameAt;
    while (end < desc.length && desc[end] !== 0) end++;
    mappings.push({
      start: d.getBigUint64(at, true),
      end: d.getBigUint64(at + 8, true),
      fileOffset: d.getBigUint64(at + 16, true),
      path: decoder.decode(desc.subarray(nameAt, end)),
    });
    nameAt = end + 1;
  }
  return mappings;
}

/** The executable: the mapped file that holds the entry point (AT_ENTRY), else the first mapping. */
export function executableOf(notes: CoreNotes): string | undefined {
  const entry = notes.auxv.get(AT_ENTRY);
  if (entry !== undefined) {
    const hit = notes.files.find((m) => m.start <= entry && entry < m.end);
    if (hit) return hit.path;
  }
  return notes.files[0]?.path;
}

/**
 * Whether a mapped path names a shared object: `libc.so.6`, `ld-linux-x86-64.so.2`,
 * `_socket.cpython-311-x86_64-linux-gnu.so`, also one replaced on disk since (` (deleted)`).
 */
export function isSharedObject(path: string): boolean {
  const name =
    path
      .replace(/ \(deleted\)$/, '')
      .split('/')
      .pop() ?? '';
  // Version suffixes start with a digit (libc.so.6, libz.so.1.2.13): ld.so.cache is data.
  return /\.so(\.\d[0-9A-Za-z_-]*)*$/.test(name);
}

/** Distinct mapped files other than the executable, in mapping order. */
function mappedOtherThan(notes: CoreNotes, executable: string | undefined): string[] {
  const seen = new Set<string>();
  for (const m of notes.files) if (m.path !== executable) seen.add(m.path);
  return [...seen];
}

/** The shared objects among the mapped files other than the executable, in mapping order. */
export function librariesOf(notes: CoreNotes, executable: string | undefined): string[] {
  return mappedOtherThan(notes, executable).filter(isSharedObject);
}

/**
 * Every other mapped file, in mapping order: locale archives, `/tmp/hsperfdata_*`, data files,
 * `anon_inode:[io_uring]`, memfd and deleted files.
 */
export function mappedFilesOf(notes: CoreNotes, executable: string | undefined): string[] {
  return mappedOtherThan(notes, executable).filter((path) => !isSharedObject(path));
}
