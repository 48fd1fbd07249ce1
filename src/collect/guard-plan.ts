/**
 * The guard against the next crash filling the disk again, chosen from how the host writes cores
 * (kernel.core_pattern) and where they were found. Where it can be one exact host script it is
 * (proposed like any script: it runs only when approved); where it cannot (a container must be
 * recreated from its own run command, which the bot does not have) it is advice in words.
 */

export interface GuardInput {
  host: string;
  /** kernel.core_pattern as the host printed it ('' when unknown). */
  corePattern: string;
  /** Containers whose cores filled the disk. */
  containers: readonly string[];
  /** Limits written into the script; defaults: 1 GiB a core, keep 10 GiB free, 4 GiB in all. */
  maxCoreBytes?: number;
  keepFreeBytes?: number;
  maxUseBytes?: number;
}

export interface GuardPlan {
  /** An exact host script (run as root), with why; none when only advice fits. */
  script?: { text: string; why: string };
  advice: string[];
}

const GIB = 1024 ** 3;
export const CORE_HANDLER = '/usr/local/sbin/nightshift-core';
export const CORE_DIR = '/var/lib/nightshift-cores';

/**
 * The pipe handler's lines: the kernel runs it with the core on stdin and `%p %t %e` as its
 * arguments. It keeps the core only while the directory's filesystem has more than keepFreeBytes
 * free, and no more than maxCoreBytes of it. `dir` is fixed text of ours (tests pass a temp one).
 */
export function coreHandler(o: { dir: string; maxCoreBytes: number; keepFreeBytes: number }): string[] {
  return [
    '#!/bin/sh',
    `# kernel.core_pattern pipes each core here (%p %t %e): kept under ${o.dir} only`,
    `# while the disk keeps ${o.keepFreeBytes} bytes free, and cut at ${o.maxCoreBytes} bytes. Written by Nightshift.`,
    `dir=${o.dir}`,
    'free=$(df -Pk "$dir" | awk \'NR==2 {print $4}\')',
    `[ "\${free:-0}" -gt ${Math.floor(o.keepFreeBytes / 1024)} ] || exit 0`,
    `exec head -c ${o.maxCoreBytes} > "$dir/core.$3.$1.$2"`,
  ];
}

export function planGuard(input: GuardInput): GuardPlan {
  const maxCore = input.maxCoreBytes ?? GIB;
  const keepFree = input.keepFreeBytes ?? 10 * GIB;
  const maxUse = input.maxUseBytes ?? 4 * GIB;
  const advice: string[] = [];
  for (const container of input.containers)
    advice.push(
      `Container ${container}: recreate it with \`--ulimit core=0\` (no cores) or a cap such as \`--ulimit core=${maxCore}\` (compose: \`ulimits: { core: 0 }\`); \`docker update\` cannot change ulimits, so it has to be recreated from its own run command or compose file, which the bot does not have.`,
    );
  const pattern = input.corePattern.trim();
  if (/^\|\s*\S*systemd-coredump\b/.test(pattern)) {
    return {
      script: {
        text: [
          'set -eu',
          'mkdir -p /etc/systemd/coredump.conf.d',
          "cat > /etc/systemd/coredump.conf.d/50-nightshift.conf <<'EOF'",
          '[Coredump]',
          `ProcessSizeMax=${maxCore}`,
          `ExternalSizeMax=${maxCore}`,
          `MaxUse=${maxUse}`,
          `KeepFree=${keepFree}`,
          'EOF',
          'systemd-analyze cat-config systemd/coredump.conf | tail -n 6',
        ].join('\n'),
        why: `${input.host} pipes cores to systemd-coredump, which reads its settings at each crash: this caps a core at ${maxCore} bytes and the store at ${maxUse}, keeping ${keepFree} bytes free. Needs root.`,
      },
      advice,
    };
  }
  if (pattern.startsWith('|')) {
    advice.push(
      `${input.host} pipes cores to a helper (\`${pattern.slice(0, 120)}\`): cap what that helper keeps in its own settings (apport: \`/etc/default/apport\`, or disable it).`,
    );
    return { advice };
  }
  // A plain pattern (`core`, `/var/crash/core.%e.%p`): the kernel writes whole cores wherever the
  // process runs, inside containers' layers too. A pipe to a small handler caps them all, host and
  // containers alike (the kernel runs the handler on the host).
  const handler = coreHandler({ dir: CORE_DIR, maxCoreBytes: maxCore, keepFreeBytes: keepFree });
  const setting = `|${CORE_HANDLER} %p %t %e`;
  return {
    script: {
      text: [
        'set -eu',
        `# Before: ${pattern.replace(/[^\x20-\x7e]/g, '?').slice(0, 120) || '(unknown)'}`,
        `mkdir -p ${CORE_DIR}`,
        `cat > ${CORE_HANDLER} <<'EOF'`,
        ...handler,
        'EOF',
        `chmod 755 ${CORE_HANDLER}`,
        `echo 'kernel.core_pattern=${setting}' > /etc/sysctl.d/50-nightshift-core.conf`,
        `sysctl -w 'kernel.core_pattern=${setting}'`,
      ].join('\n'),
      why: `${input.host} writes whole cores where the process runs (core_pattern \`${pattern.slice(0, 60) || 'unknown'}\`), inside containers' layers too. This pipes every core, host and containers, to a handler that keeps it only while ${keepFree} bytes stay free and cuts it at ${maxCore} bytes; kept across reboots in /etc/sysctl.d. Needs root. To undo: restore the pattern above.`,
    },
    advice,
  };
}
