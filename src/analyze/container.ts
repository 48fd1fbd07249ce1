import { isElf } from './elf.ts';
import { redact } from './redact.ts';
import { BLOCK, isTarHeader, trimTrailingNuls } from './tar.ts';

/**
 * What a file is, told from its first bytes rather than its name: cores arrive as `core`,
 * `core.1234`, `core.1234.gz`, whatever `docker cp ... - | gzip` was redirected to,
 * systemd-coredump's `core.<comm>.<uid>.<boot id>.<pid>.<usec>.zst` (or .xz, .lz4), or apport's
 * `/var/crash/*.crash` reports.
 */

/** The compressions a core (or a tar of cores) is read through. */
export type Compression = 'gzip' | 'zstd' | 'xz' | 'lz4';
export const COMPRESSIONS: readonly Compression[] = ['gzip', 'zstd', 'xz', 'lz4'];

export type Container =
  | 'raw'
  | Compression
  | 'tar'
  | `tar+${Compression}`
  /** An apport .crash report: the core is its base64, gzip-compressed CoreDump field. */
  | 'apport';
export const CONTAINERS = [
  'raw',
  ...COMPRESSIONS,
  'tar',
  ...COMPRESSIONS.map((c) => `tar+${c}` as const),
  'apport',
] as const satisfies readonly Container[];

export type Sniffed = 'elf' | Compression | 'tar' | 'apport' | 'unknown';

export function isCompression(kind: Sniffed): kind is Compression {
  return (COMPRESSIONS as readonly string[]).includes(kind);
}

/** Every apport report starts with its ProblemType field (problem_report.py writes it first). */
const APPORT_START = Buffer.from('ProblemType: ');

/** Bytes needed to tell the forms apart (a tar header is one block). */
export const SNIFF_BYTES = BLOCK;

export function sniff(head: Uint8Array): Sniffed {
  if (isElf(head)) return 'elf';
  const starts = (...bytes: number[]) => head.length >= bytes.length && bytes.every((b, i) => head[i] === b);
  if (starts(0x1f, 0x8b)) return 'gzip';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x04, 0x22, 0x4d, 0x18)) return 'lz4';
  if (starts(...APPORT_START)) return 'apport';
  if (head.length >= BLOCK && isTarHeader(head.subarray(0, BLOCK))) return 'tar';
  return 'unknown';
}

/** Names what an unreadable file looks like, so the error tells the engineer what to do. */
export function describeUnknown(head: Uint8Array): string {
  if (head.length === 0) return 'an empty file';
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2-compressed data (decompress it with bzip2 -d first)';
  if (starts(0x02, 0x21, 0x4c, 0x18)) return 'lz4 legacy-format data (decompress it with lz4 -d first)';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return 'a zip archive (unzip it first)';
  if (starts(0x4d, 0x44, 0x4d, 0x50)) return describeMinidump(head);
  let printable = 0;
  const sample = head.subarray(0, Math.min(head.length, 512));
  for (const b of sample) if ((b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09) printable++;
  if (printable / sample.length > 0.95) return 'a text file';
  return 'unrecognised binary data';
}

/** Bytes of a minidump worth reading to name it: its directory and small streams come first. */
export const MINIDUMP_HEAD_BYTES = 1 << 20;

const MD_EXCEPTION_STREAM = 6;
const MD_SYSTEM_INFO_STREAM = 7;
/** Breakpad's Linux streams (0x4767xxxx, "Gg"): /proc files of the crashed process. */
const MD_LINUX_FIRST = 0x47670003;
const MD_LINUX_LAST = 0x4767000a;
const MD_LINUX_CMD_LINE = 0x47670006;
const MD_CRASHPAD_INFO_STREAM = 0x43500001;
const PLATFORMS: Record<number, string> = {
  0: 'Windows',
  1: 'Windows',
  2: 'Windows',
  3: 'Windows CE',
  32768: 'Unix',
  33025: 'macOS',
  33026: 'iOS',
  33281: 'Linux',
  33282: 'Solaris',
  33283: 'Android',
  33284: 'PS3',
  33285: 'Native Client',
  33286: 'Fuchsia',
};
/** Linux signal names for the exception code Breakpad and Crashpad store (the signal number). */
const LINUX_SIGNALS: Record<number, string> = {
  4: 'SIGILL',
  5: 'SIGTRAP',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  11: 'SIGSEGV',
  31: 'SIGSYS',
};

/**
 * Names a minidump (MDMP) from its first bytes: which system it came from (the system-info
 * stream's platform, or Breakpad's Linux streams), which writer (Crashpad's info stream), and for
 * Linux the command line and signal when they are in reach. A minidump is not an ELF core: it
 * holds thread stacks and module lists, not the process's memory.
 */
export function describeMinidump(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (at: number) => (at + 4 <= bytes.length ? view.getUint32(at, true) : undefined);
  const count = u32(8) ?? 0;
  const directory = u32(12) ?? 0;
  const streams = new Map<number, { size: number; rva: number }>();
  for (let i = 0; i < Math.min(count, 4096); i++) {
    const at = directory + i * 12;
    const type = u32(at);
    const size = u32(at + 4);
    const rva = u32(at + 8);
    if (type === undefined || size === undefined || rva === undefined) break;
    if (!streams.has(type)) streams.set(type, { size, rva });
  }
  const system = streams.get(MD_SYSTEM_INFO_STREAM);
  const platformId = system ? u32(system.rva + 20) : undefined;
  const linuxStreams = [...streams.keys()].some((t) => t >= MD_LINUX_FIRST && t <= MD_LINUX_LAST);
  const platform =
    platformId !== undefined
      ? (PLATFORMS[platformId] ?? `platform 0x${platformId.toString(16)}`)
      : linuxStreams
        ? 'Linux'
        : undefined;
  const writer = streams.has(MD_CRASHPAD_INFO_STREAM) ? 'Crashpad' : linuxStreams ? 'Breakpad' : undefined;
  const isWindows = platform?.startsWith('Windows') ?? false;
  if (isWindows || (platform === undefined && writer === undefined)) {
    return `a ${platform ?? 'Windows'} minidump, not a Linux core`;
  }
  const details: string[] = [];
  if (platform === 'Linux' || platform === 'Android') {
    const cmdline = streams.get(MD_LINUX_CMD_LINE);
    if (cmdline && cmdline.rva + cmdline.size <= bytes.length) {
      const text = trimTrailingNuls(
        new TextDecoder('utf-8', { fatal: false }).decode(
          bytes.subarray(cmdline.rva, cmdline.rva + Math.min(cmdline.size, 200)),
        ),
      ).replaceAll('\0', ' ');
      // Said in an error message, which leaves the machine as the report does: redacted the same way.
      if (text) details.push(`of ${redact(text).text}`);
    }
    const exception = streams.get(MD_EXCEPTION_STREAM);
    const code = exception ? u32(exception.rva + 8) : undefined;
    if (code !== undefined && code > 0 && code < 65)
      details.push(`signal ${code} (${LINUX_SIGNALS[code] ?? 'see signal(7)'})`);
  }
  const from = writer ? ` from ${writer}` : ' (Breakpad or Crashpad)';
  return `a minidump${from} of a ${platform} process${details.length ? `, ${details.join(', ')}` : ''}, not an ELF core: read it with minidump_stackwalk, or turn it into a core with minidump-2-core`;
}
