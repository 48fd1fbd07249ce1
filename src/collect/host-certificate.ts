import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { HOST_CERTIFICATE_ALGORITHMS } from './known-hosts.ts';

/**
 * Asks an SSH server for its host certificate: ssh2 cannot negotiate certificate host-key
 * algorithms, so this opens a second connection (direct, or through the jump host's channel) and
 * runs the key exchange only as far as the server's KEX_ECDH_REPLY, whose K_S is the certificate.
 * It offers curve25519 and only certificate host-key algorithms, and hangs up once it has K_S:
 * nothing is authenticated here. The certificate is trusted only through verifyHostCertificate,
 * which requires it to certify the very key ssh2's own handshake proved the host holds.
 *
 * Resolves to the certificate blob, or undefined when the server has none (it ends the exchange
 * with "no matching host key type") or speaks no SSH within the time given.
 */

const KEXINIT = 20;
const KEX_ECDH_INIT = 30;
const KEX_ECDH_REPLY = 31;
const DISCONNECT = 1;

const sshString = (b: Buffer | string) => {
  const bytes = typeof b === 'string' ? Buffer.from(b) : b;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
};

/** An unencrypted binary packet (RFC 4253 §6), padded to a multiple of 8. */
function packet(payload: Buffer): Buffer {
  let padding = 8 - ((5 + payload.length) % 8);
  if (padding < 4) padding += 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + payload.length + padding);
  head[4] = padding;
  return Buffer.concat([head, payload, randomBytes(padding)]);
}

function kexInit(): Buffer {
  return Buffer.concat([
    Buffer.from([KEXINIT]),
    randomBytes(16),
    sshString('curve25519-sha256,curve25519-sha256@libssh.org'),
    sshString(HOST_CERTIFICATE_ALGORITHMS.join(',')),
    sshString(
      'aes128-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com',
    ),
    sshString(
      'aes128-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com',
    ),
    sshString('hmac-sha2-256-etm@openssh.com,hmac-sha2-256,hmac-sha2-512'),
    sshString('hmac-sha2-256-etm@openssh.com,hmac-sha2-256,hmac-sha2-512'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    sshString(''),
    Buffer.from([0, 0, 0, 0, 0]),
  ]);
}

export function fetchHostCertificate(socket: Duplex, timeoutMs = 10_000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    let identified = false;
    let settled = false;
    const finish = (certificate: Buffer | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.on('error', () => {});
      socket.destroy();
      resolve(certificate);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      // The server's identification string, after any lines before it (RFC 4253 §4.2).
      while (!identified) {
        const end = buffered.indexOf('\n');
        if (end < 0) {
          if (buffered.length > 8192) finish(undefined);
          return;
        }
        const line = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + 1);
        if (line.startsWith('SSH-')) {
          if (!line.startsWith('SSH-2.0-') && !line.startsWith('SSH-1.99-')) return finish(undefined);
          identified = true;
          socket.write(packet(kexInit()));
          // Any 32 bytes are an X25519 public value; the exchange is never finished.
          socket.write(packet(Buffer.concat([Buffer.from([KEX_ECDH_INIT]), sshString(randomBytes(32))])));
        }
      }
      while (buffered.length >= 5) {
        const length = buffered.readUInt32BE(0);
        if (length > 256 * 1024) return finish(undefined);
        if (buffered.length < 4 + length) return;
        const padding = buffered[4]!;
        const payload = buffered.subarray(5, 4 + length - padding);
        buffered = buffered.subarray(4 + length);
        if (payload[0] === DISCONNECT) return finish(undefined);
        if (payload[0] === KEX_ECDH_REPLY && payload.length >= 5) {
          const size = payload.readUInt32BE(1);
          if (5 + size > payload.length) return finish(undefined);
          return finish(Buffer.from(payload.subarray(5, 5 + size)));
        }
      }
    });
    socket.write('SSH-2.0-nightshift_hostcert\r\n');
  });
}
