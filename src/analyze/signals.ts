/**
 * Signal numbers, si_code meanings and a plain-words reading of what a signal usually means for a
 * crashed server process. Numbers are Linux's generic ones, shared by x86_64 and aarch64.
 */

const NAMES: Record<number, string> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  4: 'SIGILL',
  5: 'SIGTRAP',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  9: 'SIGKILL',
  10: 'SIGUSR1',
  11: 'SIGSEGV',
  12: 'SIGUSR2',
  13: 'SIGPIPE',
  14: 'SIGALRM',
  15: 'SIGTERM',
  16: 'SIGSTKFLT',
  17: 'SIGCHLD',
  18: 'SIGCONT',
  19: 'SIGSTOP',
  20: 'SIGTSTP',
  21: 'SIGTTIN',
  22: 'SIGTTOU',
  23: 'SIGURG',
  24: 'SIGXCPU',
  25: 'SIGXFSZ',
  26: 'SIGVTALRM',
  27: 'SIGPROF',
  28: 'SIGWINCH',
  29: 'SIGIO',
  30: 'SIGPWR',
  31: 'SIGSYS',
};

export function signalName(signo: number): string {
  if (NAMES[signo]) return NAMES[signo];
  if (signo >= 34 && signo <= 64) return `SIGRT${signo - 34}`;
  return signo === 0 ? 'none' : `signal ${signo}`;
}

const GENERIC_CODES: Record<number, string> = {
  0: 'SI_USER (sent by kill() from a process)',
  128: 'SI_KERNEL (sent by the kernel)',
  [-1]: 'SI_QUEUE (sent by sigqueue())',
  [-2]: 'SI_TIMER (a POSIX timer expired)',
  [-3]: 'SI_MESGQ (a message queue state changed)',
  [-4]: 'SI_ASYNCIO (asynchronous I/O completed)',
  [-5]: 'SI_SIGIO (queued SIGIO)',
  [-6]: 'SI_TKILL (sent by tkill()/tgkill(), as raise() and abort() do)',
  [-7]: 'SI_DETHREAD (sent by execve() killing subsidiary threads)',
};

const FAULT_CODES: Record<number, Record<number, string>> = {
  4: {
    1: 'ILL_ILLOPC (illegal opcode)',
    2: 'ILL_ILLOPN (illegal operand)',
    3: 'ILL_ILLADR (illegal addressing mode)',
    4: 'ILL_ILLTRP (illegal trap)',
    5: 'ILL_PRVOPC (privileged opcode)',
    6: 'ILL_PRVREG (privileged register)',
    7: 'ILL_COPROC (coprocessor error)',
    8: 'ILL_BADSTK (internal stack error)',
  },
  5: { 1: 'TRAP_BRKPT (breakpoint)', 2: 'TRAP_TRACE (trace trap)', 3: 'TRAP_BRANCH', 4: 'TRAP_HWBKPT' },
  7: {
    1: 'BUS_ADRALN (invalid address alignment)',
    2: 'BUS_ADRERR (non-existent physical address)',
    3: 'BUS_OBJERR (object-specific error, e.g. a mapped file was truncated)',
    4: 'BUS_MCEERR_AR (hardware memory error, action required)',
    5: 'BUS_MCEERR_AO (hardware memory error, action optional)',
  },
  8: {
    1: 'FPE_INTDIV (integer divide by zero)',
    2: 'FPE_INTOVF (integer overflow)',
    3: 'FPE_FLTDIV (floating-point divide by zero)',
    4: 'FPE_FLTOVF (floating-point overflow)',
    5: 'FPE_FLTUND (floating-point underflow)',
    6: 'FPE_FLTRES (floating-point inexact result)',
    7: 'FPE_FLTINV (invalid floating-point operation)',
    8: 'FPE_FLTSUB (subscript out of range)',
  },
  11: {
    1: 'SEGV_MAPERR (address not mapped)',
    2: 'SEGV_ACCERR (invalid permissions for mapped object)',
    3: 'SEGV_BNDERR (failed address bound checks)',
    4: 'SEGV_PKUERR (access denied by memory protection keys)',
    8: 'SEGV_MTEAERR (asynchronous MTE error)',
    9: 'SEGV_MTESERR (synchronous MTE error)',
    10: 'SEGV_CPERR (control protection fault)',
  },
};

export function signalCodeName(signo: number, code: number): string {
  if (code > 0 && code < 128) {
    const byFault = FAULT_CODES[signo]?.[code];
    if (byFault) return byFault;
  }
  return GENERIC_CODES[code] ?? `code ${code}`;
}

/** Signals the kernel raises for a fault at an instruction: SIGILL, SIGBUS, SIGFPE, SIGSEGV. */
const FAULTS = new Set([4, 7, 8, 11]);

export interface SignalContext {
  signo: number;
  code?: number;
  senderPid?: number;
  pid?: number;
  faultAddress?: bigint;
}

/** What the signal usually means for a server process, in words for someone new to core dumps. */
export function explainSignal(ctx: SignalContext): string {
  const fromOther = ctx.senderPid !== undefined && ctx.senderPid > 0 && ctx.senderPid !== ctx.pid;
  const bySelf = ctx.senderPid !== undefined && ctx.senderPid === ctx.pid;
  // A fault signal the kernel raised has a positive si_code (SEGV_MAPERR, BUS_ADRERR, ...); one sent
  // with kill(), tgkill() or sigqueue() has SI_USER, SI_TKILL or SI_QUEUE and a sender instead.
  const sent = ctx.code !== undefined && ctx.code <= 0;
  if (sent && FAULTS.has(ctx.signo)) {
    const name = signalName(ctx.signo);
    const how = ctx.code === -6 ? 'tgkill()/raise()' : ctx.code === -1 ? 'sigqueue()' : 'kill()';
    if (fromOther) {
      return `${name} sent by another process (pid ${ctx.senderPid}) with ${how}, not a memory fault: the process did not crash on its own. Find out what sent it (a supervisor, a watchdog, someone running kill -${name.slice(3)}).`;
    }
    if (bySelf) {
      return `${name} raised by the process itself with ${how}, not a memory fault: usually a crash handler (a runtime's or a library's) re-raising a signal, or a deliberate raise().`;
    }
    return `${name} sent with ${how} (si_code ${ctx.code}), not a memory fault raised by the kernel.`;
  }
  switch (ctx.signo) {
    case 6:
      if (fromOther) {
        return `SIGABRT sent by another process (pid ${ctx.senderPid}): usually a supervisor such as the gunicorn/uWSGI master killing a worker stuck past its timeout. Look at what the worker was waiting on.`;
      }
      if (bySelf || ctx.code === -6) {
        return 'SIGABRT raised by the process itself: abort() after a failed assertion, a fatal runtime error or heap corruption detected by the allocator.';
      }
      return 'SIGABRT: the process was aborted, by itself (abort(), a failed assertion) or by a supervisor killing a stuck worker.';
    case 11: {
      const at = ctx.faultAddress !== undefined ? ` at address 0x${ctx.faultAddress.toString(16)}` : '';
      const nullish = ctx.faultAddress !== undefined && ctx.faultAddress < 0x10000n;
      return `SIGSEGV: invalid memory access${at}${nullish ? ' (a NULL or near-NULL pointer dereference)' : ''}; a bug in native code or an extension module.`;
    }
    case 7:
      return 'SIGBUS: a bad memory access, often a memory-mapped file that was truncated or a full disk behind a mapping.';
    case 4:
      return 'SIGILL: an illegal instruction: a corrupted jump, or code built for a newer CPU than this host.';
    case 8:
      return 'SIGFPE: an arithmetic fault, most often an integer division by zero.';
    case 3:
      return 'SIGQUIT: someone asked for a core (kill -QUIT or Ctrl-\\), or a runtime dumping its state.';
    case 5:
      return 'SIGTRAP: a breakpoint or trap instruction, e.g. a runtime assertion compiled as a trap.';
    case 24:
      return 'SIGXCPU: the process went past its CPU time limit (ulimit -t).';
    case 25:
      return 'SIGXFSZ: the process went past its file size limit (ulimit -f).';
    case 31:
      return 'SIGSYS: a bad system call, usually blocked by a seccomp filter.';
    case 0:
      return 'Taken by gcore while running (no signal): a snapshot of a live process, not a crash. It shows what the process held at that moment.';
    default:
      return `${signalName(ctx.signo)}: the process was terminated by this signal and dumped core.`;
  }
}
