import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderReport } from '../../analyze/render.ts';
import type { Report } from '../../analyze/report-schema.ts';
import { systemClock } from '../../clock.ts';
import { collectHost, type HostCollection } from '../../collect/collect-host.ts';
import { type PullResult, pullFile } from '../../collect/pull.ts';
import { localName } from '../../collect/pull-plan.ts';
import { openSsh } from '../../collect/ssh-setup.ts';
import type { RemoteHost } from '../../collect/transport.ts';
import { loadConfig } from '../../config/env.ts';
import { findHost } from '../../config/hosts.ts';
import { CodedError, ErrorCode } from '../../errors.ts';
import { analyzeFiles } from '../../evidence/analyze-files.ts';
import { createLogger } from '../../log.ts';
import type { CliIo } from '../io.ts';

export const collectHelp = `Usage: nightshift collect HOST [--pull [--into DIR]] [--json]

Runs the built-in, read-only collectors on HOST over SSH and prints their findings: filesystems
and inodes (df), then the largest directories of the fullest filesystem (du, time-limited). HOST
is a name, address or label from the hosts file in NIGHTSHIFT_HOSTS; its key must be pinned in
the hosts file's knownHosts (default ~/.ssh/known_hosts).

--pull brings the core files it found home (docker cp ... | gzip -1 over SSH, nothing written on
the host) into DIR (default NIGHTSHIFT_DATA_DIR/evidence/<host>) and analyses them as one set.
--into is only for --pull.

Errors (an unreachable host, a refused host key, a key file that cannot be read) go to stderr,
once. Exit status: 0 when something was collected, 1 when nothing could be, 2 on a usage error.
`;

export async function collectCommand(
  args: string[],
  io: CliIo,
  env: Record<string, string | undefined>,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      pull: { type: 'boolean', default: false },
      into: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    io.stdout.write(collectHelp);
    return 0;
  }
  if (values.into !== undefined && !values.pull)
    throw new CodedError(
      ErrorCode.Usage,
      '--into DIR says where --pull puts the cores: add --pull, or drop --into',
    );
  if (positionals.length !== 1)
    throw new CodedError(
      ErrorCode.Usage,
      `collect needs exactly one HOST, got ${positionals.length === 0 ? 'none' : positionals.map((p) => `"${p}"`).join(' ')}`,
    );
  const config = loadConfig(env);
  if (!config.NIGHTSHIFT_HOSTS)
    throw new CodedError(ErrorCode.ConfigInvalid, 'NIGHTSHIFT_HOSTS is not set: it names the hosts file');
  const { hosts, ssh } = await openSsh(config.NIGHTSHIFT_HOSTS, {
    log: createLogger({ level: 'silent' }),
    now: systemClock,
  });
  const host = findHost(hosts, positionals[0]!);
  if (!host)
    throw new CodedError(ErrorCode.HostUnknown, `no host "${positionals[0]}" in ${config.NIGHTSHIFT_HOSTS}`);
  try {
    const remote = ssh.host(host.name);
    const collection = await collectHost(remote, {
      now: systemClock(),
      coreSearchPaths: host.coreSearchPaths,
    });
    const { pulled, pullErrors } = values.pull
      ? await pullCores(
          remote,
          collection.cores,
          values.into ?? join(config.NIGHTSHIFT_DATA_DIR, 'evidence', host.name),
        )
      : { pulled: [], pullErrors: [] };
    const paths = pulled.map((p) => p.localPath);
    const report = paths.length > 0 ? await analyzeFiles(paths, { now: systemClock }) : undefined;
    // Nothing collected: the host could not be reached (or every collector failed). That is an
    // error, said once on stderr, not a report of "0 findings" with the error under it.
    const failed = collection.errors.length > 0 && collection.findings.length === 0;
    // Errors go to stderr, each said once (a refused connection is one error, not one per collector).
    for (const e of new Set(collection.errors)) io.stderr.write(`nightshift: could not collect: ${e}\n`);
    for (const e of new Set(pullErrors)) io.stderr.write(`nightshift: could not pull: ${e}\n`);
    if (failed) return 1;
    if (values.json)
      io.stdout.write(`${JSON.stringify({ ...collection, pulled, pullErrors, report }, null, 2)}\n`);
    else writeCollection(io, host.name, collection, pulled, report);
    return 0;
  } finally {
    await ssh.closeAll();
  }
}

/** Pulls every core found into `into`, several files on parallel channels (the host's session limit keeps it gentle). */
async function pullCores(
  remote: RemoteHost,
  cores: HostCollection['cores'],
  into: string,
): Promise<{ pulled: PullResult[]; pullErrors: string[] }> {
  const pulled: PullResult[] = [];
  const pullErrors: string[] = [];
  await Promise.all(
    cores.map(async (core) => {
      const source = core.container ? { container: core.container, path: core.path } : { path: core.path };
      try {
        pulled.push(await pullFile(remote, source, join(into, localName(source))));
      } catch (error) {
        pullErrors.push((error as Error).message);
      }
    }),
  );
  return { pulled, pullErrors };
}

function writeCollection(
  io: CliIo,
  host: string,
  collection: HostCollection,
  pulled: readonly PullResult[],
  report: Report | undefined,
): void {
  const { findings } = collection;
  io.stdout.write(`${host}: ${findings.length} finding${findings.length === 1 ? '' : 's'}\n`);
  for (const f of findings)
    io.stdout.write(`[${f.severity}] ${f.title}\n  ${f.detail.replace(/\n/g, '\n  ')}\n`);
  for (const p of pulled)
    io.stdout.write(`pulled ${p.localPath} (${p.bytes} bytes, sha256 ${p.sha256.slice(0, 16)}…)\n`);
  if (report) io.stdout.write(`\n${renderReport(report)}`);
}
