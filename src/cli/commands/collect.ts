import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { collectHost } from '../../collect/collect-host.ts';
import { parseKnownHosts } from '../../collect/known-hosts.ts';
import { SshConnections } from '../../collect/ssh.ts';
import { loadConfig } from '../../config/env.ts';
import { findHost, loadHostsFile } from '../../config/hosts.ts';
import { CodedError, ErrorCode } from '../../errors.ts';
import { createLogger } from '../../log.ts';
import type { CliIo } from '../io.ts';

export const collectHelp = `Usage: nightshift collect HOST [--json]

Runs the built-in, read-only collectors on HOST over SSH and prints their findings: filesystems
and inodes (df), then the largest directories of the fullest filesystem (du, time-limited). HOST
is a name, address or label from the hosts file in NIGHTSHIFT_HOSTS; its key must be pinned in
the hosts file's knownHosts (default ~/.ssh/known_hosts).
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
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    io.stdout.write(collectHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new CodedError(ErrorCode.Usage, 'collect needs exactly one HOST');
  const config = loadConfig(env);
  if (!config.NIGHTSHIFT_HOSTS)
    throw new CodedError(ErrorCode.ConfigInvalid, 'NIGHTSHIFT_HOSTS is not set: it names the hosts file');
  const hosts = loadHostsFile(config.NIGHTSHIFT_HOSTS);
  const host = findHost(hosts, positionals[0]!);
  if (!host)
    throw new CodedError(ErrorCode.HostUnknown, `no host "${positionals[0]}" in ${config.NIGHTSHIFT_HOSTS}`);
  const knownHostsPath = hosts.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
  let knownHosts: string;
  try {
    knownHosts = readFileSync(knownHostsPath, 'utf8');
  } catch {
    knownHosts = '';
  }
  const ssh = new SshConnections({
    hosts,
    knownHosts: parseKnownHosts(knownHosts),
    log: createLogger({ level: 'silent' }),
  });
  try {
    const collection = await collectHost(ssh.host(host.name));
    if (values.json) io.stdout.write(`${JSON.stringify(collection, null, 2)}\n`);
    else {
      io.stdout.write(
        `${host.name}: ${collection.findings.length} finding${collection.findings.length === 1 ? '' : 's'}\n`,
      );
      for (const f of collection.findings)
        io.stdout.write(`[${f.severity}] ${f.title}\n  ${f.detail.replace(/\n/g, '\n  ')}\n`);
      for (const e of collection.errors) io.stdout.write(`could not collect: ${e}\n`);
    }
    return collection.errors.length > 0 && collection.findings.length === 0 ? 1 : 0;
  } finally {
    await ssh.closeAll();
  }
}
