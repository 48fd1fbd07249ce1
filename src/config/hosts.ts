import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CodedError, ErrorCode } from '../errors.ts';
import { readConfigFile } from './read-file.ts';

/**
 * The hosts file (NIGHTSHIFT_HOSTS, YAML or JSON): where each host is, how to log in, and the
 * labels alerts carry for it (an Alertmanager `instance` label → a host). Host keys are pinned in
 * a known_hosts file: an unknown or changed key refuses the connection.
 */

const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'letters, digits, ".", "_" or "-"');

export const HostSchema = z
  .object({
    name: Name,
    address: z.string().min(1).describe('DNS name or IP the bot connects to'),
    port: z.number().int().min(1).max(65535).default(22),
    user: z.string().min(1),
    /** Private key file; unset: the ssh-agent at SSH_AUTH_SOCK. */
    key: z.string().min(1).optional(),
    /** A host (by name in this file) to jump through, as ssh -J does. */
    jump: Name.optional(),
    /** Values alerts may carry for this host: instance, hostname, node... */
    labels: z.array(z.string().min(1)).default([]),
    /** At most this many SSH sessions at once on this host. */
    maxSessions: z.number().int().min(1).max(16).default(4),
    /** Where to look for core files on the host (each searched with find -xdev). Default /. */
    coreSearchPaths: z.array(z.string().regex(/^\//, 'an absolute path')).min(1).default(['/']),
  })
  .strict();

export const HostsFileSchema = z
  .object({
    /** known_hosts file with the pinned keys; default ~/.ssh/known_hosts. */
    knownHosts: z.string().min(1).optional(),
    hosts: z.array(HostSchema).min(1),
  })
  .strict()
  .superRefine((file, ctx) => {
    const names = new Set<string>();
    for (const [i, host] of file.hosts.entries()) {
      if (names.has(host.name))
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', i, 'name'],
          message: `"${host.name}" is listed twice`,
        });
      names.add(host.name);
    }
    for (const [i, host] of file.hosts.entries()) {
      if (host.jump && !names.has(host.jump)) {
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', i, 'jump'],
          message: `no host named "${host.jump}" to jump through`,
        });
      }
      if (host.jump === host.name)
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', i, 'jump'],
          message: 'a host cannot jump through itself',
        });
    }
  });

export type Host = z.output<typeof HostSchema>;
export type HostsFile = z.output<typeof HostsFileSchema>;

export function parseHostsFile(text: string, path: string): HostsFile {
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new CodedError(
      ErrorCode.ConfigInvalid,
      `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`,
    );
  }
  const result = HostsFileSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`);
  throw new CodedError(ErrorCode.ConfigInvalid, `hosts file ${path} is not valid:\n  ${lines.join('\n  ')}`);
}

export function loadHostsFile(path: string): HostsFile {
  const text = readConfigFile(path, 'hosts file');
  return parseHostsFile(text, path);
}

/** The host an alert or a command names: by name, address or one of its labels. */
export function findHost(file: HostsFile, name: string): Host | undefined {
  return (
    file.hosts.find((h) => h.name === name) ??
    file.hosts.find((h) => h.address === name || h.labels.includes(name))
  );
}

/** The known_hosts file with the pinned keys: the file's `knownHosts`, or ~/.ssh/known_hosts. */
export function knownHostsPath(file: HostsFile): string {
  return file.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
}

/** Files an evidence script must not see: the hosts file itself, its known_hosts and every SSH key it names. */
export function hostsSecretFiles(file: HostsFile, path: string): string[] {
  const keys = file.hosts.flatMap((host) => (host.key ? [host.key] : []));
  return [...new Set([path, knownHostsPath(file), ...keys])];
}
