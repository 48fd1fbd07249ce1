import { createHmac, createPublicKey, type KeyObject, verify } from 'node:crypto';

/**
 * OpenSSH known_hosts, read the way ssh reads it (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain and
 * hashed (|1|salt|hash) host patterns, `[host]:port` for ports other than 22, several patterns per
 * line with `*` and `?` wildcards and `!` negation (a negated pattern that matches keeps the whole
 * line from applying), names compared without regard to case, and the `@revoked` and
 * `@cert-authority` markers. A line with another marker is ignored, as ssh ignores it. Pure: the
 * file is read by the caller, the clock is a parameter.
 *
 * Host certificates: ssh2 (the SSH client the bot uses) negotiates only plain host keys, so a
 * host whose key is vouched for by a @cert-authority line is checked in two steps: ssh2's handshake
 * proves the host holds the private half of the plain key it presented, and the certificate that
 * host serves (fetched by host-certificate.ts) must certify that same key, be signed by the CA
 * of a matching @cert-authority line, be a host certificate, be valid now, name the host among its
 * principals (or name none) and carry no critical options: what ssh's check_host_cert requires.
 */

export type KnownHostMarker = 'revoked' | 'cert-authority' | null;

export interface KnownHostEntry {
  /** 1-based line in the file, as ssh-keygen -F numbers them. */
  line: number;
  marker: KnownHostMarker;
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  /** The base64 key blob, as in the file. */
  key: string;
  /** marker === 'revoked'. */
  revoked: boolean;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/[ \t]+/);
    let marker: KnownHostMarker = null;
    if (fields[0]?.startsWith('@')) {
      const word = fields.shift();
      if (word === '@revoked') marker = 'revoked';
      else if (word === '@cert-authority') marker = 'cert-authority';
      else continue;
    }
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) continue;
    const base = { line: i + 1, marker, keyType, key, revoked: marker === 'revoked' };
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|');
      entries.push({
        ...base,
        patterns: [],
        hashed: { salt: Buffer.from(salt ?? '', 'base64'), hash: Buffer.from(hash ?? '', 'base64') },
      });
    } else {
      entries.push({ ...base, patterns: hosts.split(',').filter(Boolean) });
    }
  }
  return entries;
}

/** The name ssh looks a host up by: `host`, or `[host]:port` when the port is not 22. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** OpenSSH's match_pattern: `*` any run, `?` one character, everything else literal. */
function globMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === name;
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return re.test(name);
}

/** Whether a line applies to a host name, as ssh's match_hostname decides it (negation wins). */
export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  const lower = name.toLowerCase();
  if (entry.hashed) {
    const digest = createHmac('sha1', entry.hashed.salt).update(lower).digest();
    return digest.length === entry.hashed.hash.length && digest.equals(entry.hashed.hash);
  }
  let matched = false;
  for (const raw of entry.patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).toLowerCase();
    if (!globMatches(pattern, lower)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

export type HostKeyVerdict =
  | { ok: true; via?: 'certificate' }
  | {
      ok: false;
      reason: 'unknown' | 'changed' | 'revoked' | 'certificate';
      message: string;
      /** A @cert-authority line covers this host: its certificate can still vouch for the key. */
      certificateAuthorities?: true;
    };

/**
 * Decides whether the plain key a server presented may be trusted: it must be listed for this
 * host (and not revoked). An unknown host and a changed key both refuse, with words that say
 * which; when a @cert-authority line covers the host, the verdict says so, and the caller fetches
 * the host's certificate for verifyHostCertificate.
 */
export function verifyHostKey(
  entries: readonly KnownHostEntry[],
  address: string,
  port: number,
  presented: Buffer,
): HostKeyVerdict {
  const name = knownHostsName(address, port);
  const blob = presented.toString('base64');
  const forHost = entries.filter((e) => entryMatches(e, name));
  if (forHost.some((e) => e.marker === 'revoked' && e.key === blob)) {
    return {
      ok: false,
      reason: 'revoked',
      message: `the host key of ${name} is marked @revoked in known_hosts`,
    };
  }
  if (forHost.some((e) => e.marker === null && e.key === blob)) return { ok: true };
  const plain = forHost.filter((e) => e.marker === null);
  const authorities = certificateNames(address, port).some((n) =>
    entries.some((e) => e.marker === 'cert-authority' && entryMatches(e, n)),
  );
  const hint = authorities ? { certificateAuthorities: true as const } : {};
  if (plain.length === 0) {
    return {
      ok: false,
      reason: 'unknown',
      message: authorities
        ? `${name} presented no host certificate signed by a @cert-authority of known_hosts, and its plain key is not pinned`
        : `${name} is not in known_hosts: refusing to connect to a host whose key is not pinned (add it with ssh-keyscan after checking its fingerprint)`,
      ...hint,
    };
  }
  return {
    ok: false,
    reason: 'changed',
    message: `the host key of ${name} has CHANGED since it was pinned in known_hosts: refusing to connect (it may be reinstalled, or someone may be intercepting the connection)`,
    ...hint,
  };
}

/**
 * The names a host certificate's CA is looked up by: `[host]:port`, then, on another port than 22,
 * the bare host, as ssh does for certificates ("found matching key w/out port": a fleet's
 * `@cert-authority *.example.com` line covers its hosts on every port).
 */
function certificateNames(address: string, port: number): string[] {
  return port === 22 ? [address] : [knownHostsName(address, port), address];
}

/** An OpenSSH certificate (PROTOCOL.certkeys), as far as a client checks one. */
export interface OpenSshCertificate {
  type: string;
  /** The certified key as a plain key blob (`ssh-ed25519` + key), comparable to what ssh2 presents. */
  publicKey: Buffer;
  serial: bigint;
  certType: 'user' | 'host';
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: Buffer;
  /** The CA's key blob. */
  signatureKey: Buffer;
  signature: Buffer;
  /** The bytes the signature covers: everything before the signature field. */
  signed: Buffer;
}

class Reader {
  private offset = 0;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  get position(): number {
    return this.offset;
  }
  get done(): boolean {
    return this.offset === this.buf.length;
  }
  uint32(): number {
    if (this.offset + 4 > this.buf.length) throw new Error('certificate is cut short');
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  uint64(): bigint {
    if (this.offset + 8 > this.buf.length) throw new Error('certificate is cut short');
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  string(): Buffer {
    const length = this.uint32();
    if (this.offset + length > this.buf.length) throw new Error('certificate is cut short');
    const v = this.buf.subarray(this.offset, this.offset + length);
    this.offset += length;
    return v;
  }
}

const sshString = (b: Buffer | string) => {
  const bytes = typeof b === 'string' ? Buffer.from(b) : b;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
};

/** The certificate types ssh2 cannot negotiate, with how many key fields follow the nonce. */
const CERT_KEY_FIELDS: Record<string, { plain: string; fields: number }> = {
  'ssh-ed25519-cert-v01@openssh.com': { plain: 'ssh-ed25519', fields: 1 },
  'ecdsa-sha2-nistp256-cert-v01@openssh.com': { plain: 'ecdsa-sha2-nistp256', fields: 2 },
  'ecdsa-sha2-nistp384-cert-v01@openssh.com': { plain: 'ecdsa-sha2-nistp384', fields: 2 },
  'ecdsa-sha2-nistp521-cert-v01@openssh.com': { plain: 'ecdsa-sha2-nistp521', fields: 2 },
  'ssh-rsa-cert-v01@openssh.com': { plain: 'ssh-rsa', fields: 2 },
};

/** The host-key algorithms a client offers to be sent a certificate, in ssh's order of preference. */
export const HOST_CERTIFICATE_ALGORITHMS = [
  'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'rsa-sha2-512-cert-v01@openssh.com',
  'rsa-sha2-256-cert-v01@openssh.com',
];

/** Parses a certificate blob (the base64 of a `-cert.pub` file, decoded). Throws when it is not one. */
export function parseCertificate(blob: Buffer): OpenSshCertificate {
  const r = new Reader(blob);
  const type = r.string().toString('latin1');
  const shape = CERT_KEY_FIELDS[type];
  if (!shape) throw new Error(`not a certificate type this client reads: ${type.slice(0, 60)}`);
  r.string(); // nonce
  const keyStart = r.position;
  for (let i = 0; i < shape.fields; i++) r.string();
  const publicKey = Buffer.concat([sshString(shape.plain), blob.subarray(keyStart, r.position)]);
  const serial = r.uint64();
  const kind = r.uint32();
  const keyId = r.string().toString('utf8');
  const principalsBlob = new Reader(r.string());
  const principals: string[] = [];
  while (!principalsBlob.done) principals.push(principalsBlob.string().toString('utf8'));
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  const criticalOptions = Buffer.from(r.string());
  r.string(); // extensions
  r.string(); // reserved
  const signatureKey = Buffer.from(r.string());
  const signedEnd = r.position;
  const signature = Buffer.from(r.string());
  if (!r.done) throw new Error('certificate has trailing bytes');
  if (kind !== 1 && kind !== 2) throw new Error(`certificate of unknown type ${kind}`);
  return {
    type,
    publicKey,
    serial,
    certType: kind === 2 ? 'host' : 'user',
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    signatureKey,
    signature,
    signed: Buffer.from(blob.subarray(0, signedEnd)),
  };
}

const b64url = (b: Buffer) => b.toString('base64url');
/** An mpint's magnitude without the sign byte. */
const unsigned = (b: Buffer) => (b[0] === 0 ? b.subarray(1) : b);

const CURVES: Record<string, { crv: string; hash: string; size: number }> = {
  nistp256: { crv: 'P-256', hash: 'sha256', size: 32 },
  nistp384: { crv: 'P-384', hash: 'sha384', size: 48 },
  nistp521: { crv: 'P-521', hash: 'sha512', size: 66 },
};

/** Whether `signature` (an SSH signature blob) by the key `keyBlob` covers `data`. */
export function verifySshSignature(keyBlob: Buffer, signature: Buffer, data: Buffer): boolean {
  const key = new Reader(keyBlob);
  const keyType = key.string().toString('latin1');
  const sig = new Reader(signature);
  const algorithm = sig.string().toString('latin1');
  const bytes = sig.string();
  let publicKey: KeyObject;
  if (keyType === 'ssh-ed25519') {
    if (algorithm !== 'ssh-ed25519') return false;
    publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: b64url(key.string()) },
      format: 'jwk',
    });
    return verify(null, data, publicKey, bytes);
  }
  if (keyType === 'ssh-rsa') {
    // ssh-rsa (SHA-1) signatures are refused, as OpenSSH's CASignatureAlgorithms has since 8.2.
    const hash = { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' }[algorithm];
    if (!hash) return false;
    const e = unsigned(key.string());
    const n = unsigned(key.string());
    publicKey = createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' });
    return verify(hash, data, publicKey, bytes);
  }
  const curve = /^ecdsa-sha2-(nistp\d+)$/.exec(keyType)?.[1];
  const params = curve ? CURVES[curve] : undefined;
  if (params && algorithm === keyType) {
    key.string(); // the curve's name again
    const point = key.string();
    if (point[0] !== 4 || point.length !== 1 + 2 * params.size) return false;
    publicKey = createPublicKey({
      key: {
        kty: 'EC',
        crv: params.crv,
        x: b64url(point.subarray(1, 1 + params.size)),
        y: b64url(point.subarray(1 + params.size)),
      },
      format: 'jwk',
    });
    const rs = new Reader(bytes);
    const pad = (b: Buffer) => {
      const v = unsigned(b);
      return v.length > params.size ? undefined : Buffer.concat([Buffer.alloc(params.size - v.length), v]);
    };
    const r = pad(rs.string());
    const s = pad(rs.string());
    if (!r || !s) return false;
    return verify(params.hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
  }
  return false;
}

/**
 * Whether a host certificate vouches for the plain key ssh2's handshake authenticated, by the
 * rules ssh applies (sshconnect.c check_host_cert, sshkey_cert_check_authority): signed by the key
 * of a @cert-authority line matching the host (not @revoked), a host certificate, valid at `now`,
 * the host's name among its principals when it lists any, no critical options, and certifying
 * exactly the presented key. The principal is the address as configured, without the port.
 */
export function verifyHostCertificate(
  entries: readonly KnownHostEntry[],
  address: string,
  port: number,
  presented: Buffer,
  certificateBlob: Buffer,
  now: Date,
): HostKeyVerdict {
  // `[host]:port` first, then the bare host; a revoked key or CA under either name refuses.
  const verdicts = certificateNames(address, port).map((name) =>
    checkHostCertificate(entries, name, address, presented, certificateBlob, now),
  );
  return (
    verdicts.find((v) => !v.ok && v.message.includes('@revoked')) ??
    verdicts.find((v) => v.ok) ??
    verdicts[0]!
  );
}

function checkHostCertificate(
  entries: readonly KnownHostEntry[],
  name: string,
  address: string,
  presented: Buffer,
  certificateBlob: Buffer,
  now: Date,
): HostKeyVerdict {
  const refuse = (why: string): HostKeyVerdict => ({
    ok: false,
    reason: 'certificate',
    message: `the host certificate of ${name} is refused: ${why}`,
  });
  let cert: OpenSshCertificate;
  try {
    cert = parseCertificate(certificateBlob);
  } catch (error) {
    return refuse((error as Error).message);
  }
  const forHost = entries.filter((e) => entryMatches(e, name));
  const ca = cert.signatureKey.toString('base64');
  if (forHost.some((e) => e.marker === 'revoked' && e.key === ca))
    return refuse('its certificate authority is marked @revoked in known_hosts');
  if (!forHost.some((e) => e.marker === 'cert-authority' && e.key === ca))
    return refuse('it is signed by a key that no @cert-authority line for this host names');
  if (!verifySshSignature(cert.signatureKey, cert.signature, cert.signed))
    return refuse("the certificate authority's signature does not verify");
  if (cert.certType !== 'host') return refuse('it is a user certificate, not a host certificate');
  if (!cert.publicKey.equals(presented))
    return refuse('it certifies another key than the one the host proved it holds');
  const seconds = BigInt(Math.floor(now.getTime() / 1000));
  if (seconds < cert.validAfter) return refuse('it is not valid yet');
  if (seconds >= cert.validBefore) return refuse('it has expired');
  const host = address.toLowerCase();
  if (cert.principals.length > 0 && !cert.principals.includes(host))
    return refuse(`it names ${cert.principals.slice(0, 5).join(', ')}, not ${host}`);
  if (cert.criticalOptions.length > 0)
    return refuse('it carries critical options, which host certificates may not');
  return { ok: true, via: 'certificate' };
}
