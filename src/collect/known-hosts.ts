import { createHmac } from 'node:crypto';

/**
 * OpenSSH known_hosts, read the way ssh does it: plain and hashed (|1|salt|hash) host patterns,
 * `[host]:port` for ports other than 22, several names per line, @revoked markers. Pure.
 */

export interface KnownHostEntry {
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  /** The base64 key blob, as in the file. */
  key: string;
  revoked: boolean;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]?.startsWith('@')) {
      revoked = fields[0] === '@revoked';
      if (fields[0] === '@cert-authority') continue;
      fields.shift();
    }
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) continue;
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|');
      entries.push({
        patterns: [],
        hashed: { salt: Buffer.from(salt ?? '', 'base64'), hash: Buffer.from(hash ?? '', 'base64') },
        keyType,
        key,
        revoked,
      });
    } else {
      entries.push({ patterns: hosts.split(','), keyType, key, revoked });
    }
  }
  return entries;
}

/** The name ssh looks a host up by: `host`, or `[host]:port` when the port is not 22. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

function matches(entry: KnownHostEntry, name: string): boolean {
  if (entry.hashed) {
    const digest = createHmac('sha1', entry.hashed.salt).update(name).digest();
    return digest.equals(entry.hashed.hash);
  }
  return entry.patterns.some((p) => {
    if (p.startsWith('!')) return false;
    if (!p.includes('*') && !p.includes('?')) return p === name;
    const re = new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    return re.test(name);
  });
}

export type HostKeyVerdict =
  | { ok: true }
  | { ok: false; reason: 'unknown' | 'changed' | 'revoked'; message: string };

/**
 * Decides whether the key a server presented may be trusted: it must be listed for this host
 * (and not revoked). An unknown host and a changed key both refuse, with words that say which.
 */
export function verifyHostKey(
  entries: readonly KnownHostEntry[],
  address: string,
  port: number,
  presented: Buffer,
): HostKeyVerdict {
  const name = knownHostsName(address, port);
  const blob = presented.toString('base64');
  const forHost = entries.filter((e) => matches(e, name));
  if (forHost.some((e) => e.revoked && e.key === blob)) {
    return {
      ok: false,
      reason: 'revoked',
      message: `the host key of ${name} is marked @revoked in known_hosts`,
    };
  }
  if (forHost.some((e) => !e.revoked && e.key === blob)) return { ok: true };
  if (forHost.length === 0) {
    return {
      ok: false,
      reason: 'unknown',
      message: `${name} is not in known_hosts: refusing to connect to a host whose key is not pinned (add it with ssh-keyscan after checking its fingerprint)`,
    };
  }
  return {
    ok: false,
    reason: 'changed',
    message: `the host key of ${name} has CHANGED since it was pinned in known_hosts: refusing to connect (it may be reinstalled, or someone may be intercepting the connection)`,
  };
}
