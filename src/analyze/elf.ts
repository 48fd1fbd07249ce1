import { CodedError, ErrorCode } from '../errors.ts';

/**
 * ELF64 little-endian core files, as the Linux kernel and gdb's gcore write them. Everything here
 * works on bytes the caller already read, so a truncated or hostile file can only produce a typed
 * error, never a read past the end.
 */

export type Arch = 'x86_64' | 'aarch64';

export const ELF_HEADER_SIZE = 64;
export const PROGRAM_HEADER_SIZE = 56;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
/** A segment count that does not fit e_phnum lives in section header 0, which cores write last. */
const PN_XNUM = 0xffff;

const MACHINES: Record<number, string> = {
  3: 'i386',
  8: 'MIPS',
  20: 'PowerPC',
  21: 'PowerPC64',
  22: 'S/390',
  40: 'ARM (32-bit)',
  62: 'x86_64',
  183: 'aarch64',
  243: 'RISC-V',
  258: 'LoongArch',
};

const TYPES: Record<number, string> = {
  0: 'an ELF file of no type',
  1: 'a relocatable object file (.o)',
  2: 'an executable',
  3: 'a shared object or position-independent executable',
  4: 'a core dump',
};

export interface ElfHeader {
  arch: Arch;
  phoff: number;
  phnum: number;
}

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
  memsz: bigint;
}

export function isElf(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46
  );
}

/** Reads a u64 that must fit a JS number (file offsets and sizes); anything larger is malformed. */
function safeU64(view: DataView, at: number, what: string): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CodedError(ErrorCode.MalformedElf, `ELF ${what} is impossibly large (${value})`);
  }
  return Number(value);
}

/**
 * Parses the ELF identification and header. Names what the file is when it is not something we
 * can read: an on-call engineer pointed at the wrong file should learn that at once.
 */
export function parseElfHeader(bytes: Uint8Array): ElfHeader {
  if (!isElf(bytes)) throw new CodedError(ErrorCode.NotElf, 'not an ELF file');
  if (bytes.length < ELF_HEADER_SIZE) {
    throw new CodedError(ErrorCode.MalformedElf, `ELF header cut short: ${bytes.length} of 64 bytes`);
  }
  const cls = bytes[4];
  const data = bytes[5];
  const view = new DataView(bytes.buffer, bytes.byteOffset, ELF_HEADER_SIZE);
  const big = data === 2;
  const type = view.getUint16(16, !big);
  const machine = view.getUint16(18, !big);
  const machineName = MACHINES[machine] ?? `machine ${machine}`;
  const typeName = TYPES[type] ?? `ELF type ${type}`;
  if (cls !== 2) {
    const bits = cls === 1 ? '32-bit' : `class ${cls}`;
    throw new CodedError(
      ErrorCode.UnsupportedElf,
      `${bits} ELF (${typeName}, ${machineName}): only 64-bit little-endian cores are supported`,
    );
  }
  if (data !== 1) {
    const order = big ? 'big-endian' : `data encoding ${data}`;
    throw new CodedError(
      ErrorCode.UnsupportedElf,
      `${order} ELF (${typeName}, ${machineName}): only 64-bit little-endian cores are supported`,
    );
  }
  if (type !== 4) {
    throw new CodedError(ErrorCode.NotCore, `not a core dump: ${typeName} for ${machineName}`);
  }
  let arch: Arch;
  if (machine === 62) arch = 'x86_64';
  else if (machine === 183) arch = 'aarch64';
  else {
    throw new CodedError(
      ErrorCode.UnsupportedElf,
      `core dump for ${machineName}: only x86_64 and aarch64 cores are supported`,
    );
  }
  const phoff = safeU64(view, 32, 'program header offset');
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  if (phnum === PN_XNUM) {
    throw new CodedError(
      ErrorCode.UnsupportedElf,
      'core has 65535 or more segments (PN_XNUM); their count is at the end of the file and is not supported',
    );
  }
  if (phnum === 0) throw new CodedError(ErrorCode.MalformedElf, 'core has no program headers');
  if (phentsize !== PROGRAM_HEADER_SIZE) {
    throw new CodedError(ErrorCode.MalformedElf, `program header size is ${phentsize}, expected 56`);
  }
  if (phoff < ELF_HEADER_SIZE) {
    throw new CodedError(ErrorCode.MalformedElf, `program headers at offset ${phoff} overlap the ELF header`);
  }
  return { arch, phoff, phnum };
}

export function parseProgramHeaders(bytes: Uint8Array, header: ElfHeader): ProgramHeader[] {
  const need = header.phnum * PROGRAM_HEADER_SIZE;
  if (bytes.length < need) {
    throw new CodedError(
      ErrorCode.MalformedElf,
      `program headers cut short: ${bytes.length} of ${need} bytes`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, need);
  const headers: ProgramHeader[] = [];
  for (let i = 0; i < header.phnum; i++) {
    const at = i * PROGRAM_HEADER_SIZE;
    const offset = safeU64(view, at + 8, 'segment offset');
    const filesz = safeU64(view, at + 32, 'segment size');
    if (offset + filesz > Number.MAX_SAFE_INTEGER) {
      throw new CodedError(ErrorCode.MalformedElf, `segment ${i} ends past any possible file size`);
    }
    headers.push({
      type: view.getUint32(at, true),
      flags: view.getUint32(at + 4, true),
      offset,
      vaddr: view.getBigUint64(at + 16, true),
      filesz,
      memsz: view.getBigUint64(at + 40, true),
    });
  }
  return headers;
}

/** The size a complete core must have: the end of its last segment's bytes in the file. */
export function expectedCoreSize(header: ElfHeader, segments: readonly ProgramHeader[]): number {
  let end = header.phoff + header.phnum * PROGRAM_HEADER_SIZE;
  for (const segment of segments) {
    if (segment.filesz > 0) end = Math.max(end, segment.offset + segment.filesz);
  }
  return end;
}
