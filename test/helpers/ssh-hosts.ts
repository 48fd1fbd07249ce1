import { writeFileSync } from 'node:fs';
import type { z } from 'zod';
import { systemClock } from '../../src/clock.ts';
import { parseKnownHosts } from '../../src/collect/known-hosts.ts';
import { SshConnections } from '../../src/collect/ssh.ts';
import { type HostSchema, type HostsFile, parseHostsFile } from '../../src/config/hosts.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import type { Sshd } from './sshd.ts';

/**
 * Hosts reached through a test's sshd (helpers/sshd.ts): the hosts-file entries, the file the bot
 * reads, and the SSH connections collection uses, as the collection, pull and runner tests wrote
 * them each by hand.
 */

/** A host as a hosts file lists it, without what the sshd gives (address, port, user, key). */
export type HostEntry = { name: string } & Omit<
  z.input<typeof HostSchema>,
  'name' | 'address' | 'port' | 'user' | 'key'
>;

/** The hosts file's entries for hosts all reached through `sshd`, each with what it adds. */
const entries = (sshd: Sshd, hosts: HostEntry[]) =>
  hosts.map((host) => ({
    address: sshd.host,
    port: sshd.port,
    user: sshd.user,
    key: sshd.privateKeyPath,
    ...host,
  }));

/** A hosts file, parsed and checked as the bot reads one, of hosts behind `sshd`. */
export function hostsBehind(sshd: Sshd, hosts: HostEntry[]): HostsFile {
  return parseHostsFile(JSON.stringify({ hosts: entries(sshd, hosts) }), 'hosts.json');
}

/** Writes a hosts file for NIGHTSHIFT_HOSTS at `path` (JSON), pinning `sshd`'s host key; returns `path`. */
export function writeHostsFile(path: string, sshd: Sshd, hosts: HostEntry[]): string {
  writeFileSync(path, JSON.stringify({ knownHosts: sshd.knownHostsPath, hosts: entries(sshd, hosts) }));
  return path;
}

/** SSH connections to `hosts` that trust `sshd`'s host key alone; the test closes them (closeAll). */
export function connectionsTo(
  sshd: Sshd,
  hosts: HostsFile,
  log: Logger = createLogger({ level: 'silent' }),
): SshConnections {
  return new SshConnections({
    now: systemClock,
    hosts,
    knownHosts: parseKnownHosts(sshd.knownHostsLine),
    log,
  });
}
