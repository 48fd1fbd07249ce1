import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook authentication: a bearer token, or an HMAC-SHA256 signature of the raw body keyed with
 * the same secret. Comparisons are constant-time over fixed-length digests, so neither the
 * secret's length nor its prefix leaks through timing.
 */

function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function verifyBearer(authorization: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return m !== null && sameSecret(m[1]!, token);
}

/**
 * `signature` is hex, optionally prefixed `sha256=` (GitHub style). `timestamp` is signed as
 * `ts:body`. The body is the bytes as received (a string is taken as its UTF-8).
 */
export function verifyHmac(
  body: string | Uint8Array,
  signature: string | undefined,
  key: string,
  timestamp?: string,
): boolean {
  if (!signature) return false;
  const given = signature
    .replace(/^sha256=/i, '')
    .trim()
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(given)) return false;
  const hmac = createHmac('sha256', key);
  if (timestamp) hmac.update(`${timestamp}:`);
  const expected = hmac.update(body).digest('hex');
  return timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(expected, 'hex'));
}

export function sign(body: string, key: string, timestamp?: string): string {
  return createHmac('sha256', key)
    .update(timestamp ? `${timestamp}:${body}` : body)
    .digest('hex');
}
