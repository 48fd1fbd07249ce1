import type { CoreFacts } from './core.ts';

/**
 * What the names systemd-coredump and apport give cores say about them:
 * - systemd-coredump: `core.<comm>.<uid>.<boot id>.<pid>.<usec>[.zst|.xz|.lz4]` in
 *   /var/lib/systemd/coredump, comm escaped as `\xNN` where it holds `.`, `/` or a space, the boot
 *   id 32 hex digits, the time in microseconds since 1970;
 * - apport (22.04 and later): `core.<executable path, / as _>.<uid>.<boot id>.<pid>.<start time>`
 *   in /var/lib/apport/coredump, the boot id with dashes and the last number the process's start
 *   time in clock ticks since boot (not a date), and the path ambiguous where it held `_`.
 * These fill in what a core lacks (a core cut short in its notes has no pid, uid or name); what
 * the core itself says always wins.
 */

export interface CoreName {
  writer: 'systemd-coredump' | 'apport';
  /** The command name (systemd-coredump only: apport's mangled path cannot be undone). */
  comm: string | null;
  uid: number;
  bootId: string;
  pid: number;
  /** When the core was written (systemd-coredump only). */
  time: Date | null;
}

const NAME =
  /^core\.(.+)\.(\d{1,10})\.([0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,10})\.(\d{1,20})(?:\.(?:zst|xz|lz4))?$/;

/** 2000-01-01 and 2200-01-01 in microseconds: a time outside is not one systemd wrote. */
const EARLIEST_USEC = 946_684_800_000_000;
const LATEST_USEC = 7_258_118_400_000_000;

/** systemd's xescape: `\xNN` for each escaped byte. */
function unescapeComm(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = /^\\x([0-9a-fA-F]{2})/.exec(text.slice(i, i + 4));
    if (hex) {
      bytes.push(Number.parseInt(hex[1]!, 16));
      i += 3;
    } else {
      bytes.push(...Buffer.from(text[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Parses a file's base name; undefined when it is not a name either writer gives. */
export function parseCoreName(baseName: string): CoreName | undefined {
  const m = NAME.exec(baseName);
  if (!m) return undefined;
  const [, who, uid, bootId, pid, last] = m as unknown as [string, string, string, string, string, string];
  const uidNumber = Number(uid);
  const pidNumber = Number(pid);
  if (uidNumber > 0xffffffff || pidNumber < 1 || pidNumber > 0x7fffffff) return undefined;
  if (bootId.includes('-')) {
    return { writer: 'apport', comm: null, uid: uidNumber, bootId, pid: pidNumber, time: null };
  }
  const usec = Number(last);
  const time = usec >= EARLIEST_USEC && usec < LATEST_USEC ? new Date(Math.floor(usec / 1000)) : null;
  // The kernel keeps 15 bytes of a command name (TASK_COMM_LEN 16, NUL included).
  const comm = Buffer.from(unescapeComm(who)).subarray(0, 15).toString('utf8');
  return { writer: 'systemd-coredump', comm, uid: uidNumber, bootId, pid: pidNumber, time };
}

/** The core's facts with the gaps the name can fill filled; the core's own values win. */
export function withNameFacts(facts: CoreFacts, name: CoreName | undefined): CoreFacts {
  if (!name) return facts;
  return {
    ...facts,
    pid: facts.pid ?? name.pid,
    uid: facts.uid ?? name.uid,
    processName: facts.processName ?? name.comm,
  };
}
