import { type CoreFacts, CoreStreamReader } from './core.ts';
import { EvidenceCollector, type EvidenceSnapshot, type OverflowSpill } from './evidence.ts';
import { StringScanner } from './strings.ts';

/**
 * One core read front to back in a single pass: the structure (header, notes, stack) and the
 * strings at once, so a gzip or tar stream is decompressed only once.
 */
export class DumpStreamAnalyzer {
  private readonly reader = new CoreStreamReader();
  private readonly evidence: EvidenceCollector;
  private readonly scanner: StringScanner;

  /** `spill`: where values past the collector's in-memory caps go (see EvidenceCollector). */
  constructor(options: { spill?: OverflowSpill } = {}) {
    this.evidence = new EvidenceCollector(options);
    this.scanner = new StringScanner(this.evidence.onString, {
      skipPlain: true,
      values: this.evidence.valueBytes,
    });
  }

  get bytesRead(): number {
    return this.reader.bytesRead;
  }

  push(chunk: Uint8Array): void {
    this.reader.push(chunk);
    this.scanner.push(chunk);
  }

  finish(): { facts: CoreFacts; evidence: EvidenceSnapshot; sizeBytes: number } {
    this.scanner.flush();
    return {
      facts: this.reader.finish(),
      evidence: this.evidence.snapshot(),
      sizeBytes: this.reader.bytesRead,
    };
  }
}
