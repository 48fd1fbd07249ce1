import { readFile } from 'node:fs/promises';
import type { Clock } from '../clock.ts';
import { type HostsFile, knownHostsPath, loadHostsFile } from '../config/hosts.ts';
import type { Logger } from '../log.ts';
import { parseKnownHosts } from './known-hosts.ts';
import { SshConnections } from './ssh.ts';

/** The hosts file and the SSH connections to its hosts, keys pinned from its known_hosts. */
export interface SshSetup {
  hosts: HostsFile;
  ssh: SshConnections;
  /** The known_hosts file the keys were read from, and how many entries it held. */
  knownHostsPath: string;
  pinned: number;
}

/**
 * Reads the hosts file and its known_hosts (missing: no key is pinned, so every connection is
 * refused, which the caller says) and makes the pool; no connection is opened until a command runs.
 * The one SSH setup of `serve`, `doctor` and `collect`.
 */
export async function openSsh(
  hostsPath: string,
  options: { log: Logger; now: Clock; readyTimeoutMs?: number },
): Promise<SshSetup> {
  const hosts = loadHostsFile(hostsPath);
  const path = knownHostsPath(hosts);
  const knownHosts = parseKnownHosts(await readFile(path, 'utf8').catch(() => ''));
  const ssh = new SshConnections({ hosts, knownHosts, ...options });
  return { hosts, ssh, knownHostsPath: path, pinned: knownHosts.length };
}
