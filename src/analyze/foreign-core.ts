/**
 * ELF cores that are not Linux's: the BSDs write ELF64 cores for x86_64 and aarch64 too, with the
 * same ET_CORE type and PT_LOAD/PT_NOTE segments, but their notes are named for the system
 * ("NetBSD-CORE", "FreeBSD", "OpenBSD") and laid out by it. Read as Linux cores they gave no pid,
 * no signal and no command line, and an exit status of success; they are named instead.
 */

const decoder = new TextDecoder('utf-8', { fatal: false });
const align4 = (n: number) => (n + 3) & ~3;

interface Note {
  name: string;
  type: number;
  desc: Uint8Array;
}

function* walkNotes(bytes: Uint8Array): Generator<Note> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + 12 <= bytes.length; ) {
    const namesz = view.getUint32(at, true);
    const descsz = view.getUint32(at + 4, true);
    const type = view.getUint32(at + 8, true);
    const descAt = at + 12 + align4(namesz);
    if (namesz > 256 || descAt + descsz > bytes.length) return;
    let end = at + 12;
    while (end < at + 12 + namesz && bytes[end] !== 0) end++;
    yield {
      name: decoder.decode(bytes.subarray(at + 12, end)),
      type,
      desc: bytes.subarray(descAt, descAt + descsz),
    };
    at = descAt + align4(descsz);
  }
}

/** NetBSD's signal numbers (sys/sys/signal.h), which differ from Linux's past SIGTERM's neighbours. */
const NETBSD_SIGNALS = [
  '',
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGEMT',
  'SIGFPE',
  'SIGKILL',
  'SIGBUS',
  'SIGSEGV',
  'SIGSYS',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGURG',
  'SIGSTOP',
  'SIGTSTP',
  'SIGCONT',
  'SIGCHLD',
  'SIGTTIN',
  'SIGTTOU',
  'SIGIO',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGWINCH',
  'SIGINFO',
  'SIGUSR1',
  'SIGUSR2',
  'SIGPWR',
];

/** NT_NETBSDCORE_PROCINFO: struct netbsd_elfcore_procinfo (sys/sys/exec_elf.h). */
const NT_NETBSDCORE_PROCINFO = 1;

function netbsdProcess(desc: Uint8Array): string {
  if (desc.length < 156) return '';
  const d = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  const signo = d.getUint32(8, true);
  const pid = d.getInt32(80, true);
  const uid = d.getUint32(96, true);
  let end = 124;
  while (end < 156 && desc[end] !== 0) end++;
  const name = decoder.decode(desc.subarray(124, end));
  const signal = signo > 0 ? `, signal ${signo} (${NETBSD_SIGNALS[signo] ?? 'unknown'})` : '';
  return `: pid ${pid} (${name}), uid ${uid}${signal}`;
}

/**
 * What system wrote this core, when its notes say it was not Linux; undefined for a Linux core
 * (notes named CORE or LINUX) or one whose notes say nothing.
 */
export function describeForeignCore(noteSegments: readonly Uint8Array[]): string | undefined {
  let linux = false;
  let system: string | undefined;
  let details = '';
  for (const segment of noteSegments) {
    for (const note of walkNotes(segment)) {
      if (note.name === 'CORE' || note.name === 'LINUX') linux = true;
      else if (note.name.startsWith('NetBSD-CORE')) {
        system = 'NetBSD';
        if (note.name === 'NetBSD-CORE' && note.type === NT_NETBSDCORE_PROCINFO)
          details = netbsdProcess(note.desc);
      } else if (note.name === 'FreeBSD') system ??= 'FreeBSD';
      else if (note.name === 'OpenBSD') system ??= 'OpenBSD';
    }
  }
  if (linux || system === undefined) return undefined;
  return `a ${system} core, not a Linux one${details}; only Linux cores are read (open it with gdb on ${system})`;
}
