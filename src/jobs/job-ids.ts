import { createHash } from 'node:crypto';

/**
 * A job id derived from what the job is for (`collect-host:<incident>`), shaped as a UUID as
 * pg-boss wants. pg-boss inserts a job whose id exists as nothing, so sending the same work twice
 * (a retried webhook, the sweeper catching up after a crash) queues it once.
 */
export function stableJobId(key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
