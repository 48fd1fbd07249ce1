import { CodedError, ErrorCode } from '../errors.ts';

/**
 * A streaming reader for apport's crash reports (Ubuntu's /var/crash/*.crash), written by
 * problem_report.py: RFC 822-like `Key: value` lines, continuation lines starting with a space,
 * and binary fields as `Key: base64` followed by one indented line per compressed chunk, each line
 * base64 on its own (with its own padding). The decoded lines of a binary field, concatenated, are
 * a gzip stream (a gzip header naming the key, raw deflate, CRC and size). The CoreDump field's
 * bytes are handed on as they are decoded, so a core of gigabytes is never held: only one line
 * (one compressed chunk of apport's 1 MiB reads) at a time.
 */

/** The text fields kept, for naming the report in errors. */
const KEPT_FIELDS = new Set(['ProblemType', 'ExecutablePath', 'Signal', 'Date', 'ProcCmdline']);
const MAX_LINE = 64 << 20;
const MAX_FIELD = 4096;

export interface ApportSummary {
  fields: Map<string, string>;
  /** Bytes of the CoreDump field's gzip stream handed on. */
  coreBytes: number;
}

export class ApportReader {
  private readonly onCore: (gzipBytes: Uint8Array) => void;
  private line: Uint8Array[] = [];
  private lineLength = 0;
  private key: string | undefined;
  private binary = false;
  private lines = 0;
  readonly fields = new Map<string, string>();
  coreBytes = 0;

  constructor(onCore: (gzipBytes: Uint8Array) => void) {
    this.onCore = onCore;
  }

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const newline = chunk.indexOf(0x0a, at);
      const end = newline < 0 ? chunk.length : newline;
      if (end > at) {
        this.lineLength += end - at;
        if (this.lineLength > MAX_LINE) {
          throw new CodedError(
            ErrorCode.MalformedReport,
            `apport report line ${this.lines + 1} is over 64 MiB`,
          );
        }
        this.line.push(chunk.slice(at, end));
      }
      if (newline < 0) return;
      this.onLine(Buffer.concat(this.line));
      this.line = [];
      this.lineLength = 0;
      at = newline + 1;
    }
  }

  end(): ApportSummary {
    if (this.lineLength > 0) this.onLine(Buffer.concat(this.line));
    this.line = [];
    return { fields: this.fields, coreBytes: this.coreBytes };
  }

  private onLine(line: Buffer): void {
    this.lines++;
    if (line.length > 0 && line[0] === 0x20) {
      if (this.key === 'CoreDump' && this.binary) {
        const text = line.toString('latin1').trim();
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
          throw new CodedError(
            ErrorCode.MalformedReport,
            `apport report's CoreDump field is not base64 at line ${this.lines}`,
          );
        }
        const bytes = Buffer.from(text, 'base64');
        this.coreBytes += bytes.length;
        this.onCore(bytes);
      } else if (this.key !== undefined && KEPT_FIELDS.has(this.key)) {
        const value = this.fields.get(this.key) ?? '';
        if (value.length < MAX_FIELD)
          this.fields.set(this.key, `${value}\n${line.toString('utf8', 1)}`.slice(0, MAX_FIELD));
      }
      return;
    }
    const text = line.toString('utf8', 0, Math.min(line.length, MAX_FIELD));
    const colon = text.indexOf(':');
    if (colon <= 0 || !/^[A-Za-z0-9._-]+$/.test(text.slice(0, colon))) {
      if (line.length === 0) return;
      throw new CodedError(
        ErrorCode.MalformedReport,
        `not an apport report: line ${this.lines} is neither "Key: value" nor an indented continuation`,
      );
    }
    this.key = text.slice(0, colon);
    const value = text.slice(colon + 1).trim();
    this.binary = value === 'base64';
    if (this.lines === 1 && this.key !== 'ProblemType') {
      throw new CodedError(
        ErrorCode.MalformedReport,
        'not an apport report: it does not start with ProblemType',
      );
    }
    if (KEPT_FIELDS.has(this.key)) this.fields.set(this.key, value);
  }
}

/** Names a report for a message: "an apport Crash report for /usr/bin/foo (signal 11)". */
export function describeReport(fields: ReadonlyMap<string, string>): string {
  const type = fields.get('ProblemType') ?? 'unknown';
  const exe = fields.get('ExecutablePath');
  const signal = fields.get('Signal');
  return `an apport ${type} report${exe ? ` for ${exe}` : ''}${signal ? ` (signal ${signal})` : ''}`;
}
