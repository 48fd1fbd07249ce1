import { setFlagsFromString } from 'node:v8';

/**
 * Counts memory held outside V8's heap (Buffers: SSH packets, file reads, zstd's output) toward
 * the heap's own limits, instead of V8's default of a full collection after every 64 MiB or so
 * of such allocation, however little of it is still alive.
 *
 * Why: a pull and an analysis stream gigabytes through short-lived Buffers. With the default, the
 * bot ran a full mark-compact of its whole heap every ~300 ms of a pull (26 in 10 s: 4 CPU s on
 * V8's helper threads, a sixth of what two cores had to give to the incident); with this, a
 * handful (bench:incident). The flag is V8's own (--external-memory-accounted-in-global-limit);
 * set at run time, an unknown flag is ignored, so a Node.js without it runs as before. Flags are
 * process-wide: the scan workers' isolates get it too. Call it first thing in an entry point.
 */
export function countExternalMemoryInHeapLimits(): void {
  setFlagsFromString('--external-memory-accounted-in-global-limit');
}
