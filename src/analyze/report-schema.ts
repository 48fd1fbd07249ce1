import { z } from 'zod';
import { CONTAINERS } from './container.ts';
import { TIME_SOURCES } from './dump-time.ts';
import { EVIDENCE_KINDS } from './extract.ts';

/**
 * The shape of `nightshift analyze --json`, the contract for scripts and for the bot itself (its
 * analysis jobs store this document). Changing a field here changes the documented output.
 */

export const SignalSchema = z.object({
  number: z.number().int().describe('Signal number, e.g. 6'),
  name: z.string().describe('Signal name, e.g. SIGABRT'),
  code: z.number().int().nullable().describe('si_code from NT_SIGINFO'),
  codeName: z
    .string()
    .nullable()
    .describe('What si_code means, e.g. "SI_USER (sent by kill() from a process)"'),
  senderPid: z.number().int().nullable().describe('Pid of the process that sent the signal, when one did'),
  senderUid: z.number().int().nullable(),
  faultAddress: z.string().nullable().describe('Faulting address (hex) for SIGSEGV/SIGBUS/SIGILL/SIGFPE'),
  meaning: z.string().describe('What this signal usually means for a server process'),
});

export const ValueCountSchema = z.object({ value: z.string(), count: z.number().int() });

export const EvidenceSchema = z.object({
  kind: z.enum(EVIDENCE_KINDS),
  value: z.string().describe('Redacted value'),
  count: z.number().int().describe('Occurrences in this dump'),
  encoding: z.enum(['ascii', 'utf16le']),
});

export const DumpSchema = z.object({
  file: z.string().describe('Path of the file given (or found in a directory given)'),
  entry: z.string().nullable().describe('Member name inside a tar stream, else null'),
  container: z
    .enum(CONTAINERS)
    .describe(
      'How the core was kept: raw, compressed (gzip, zstd, xz, lz4), in a tar, or in an apport report',
    ),
  fileBytes: z.number().int().describe('Size of the file on disk'),
  sizeBytes: z.number().int().describe('Size of the core itself, after decompression'),
  mtime: z.string().describe('Modification time of the file or tar member (ISO 8601)'),
  time: z
    .string()
    .describe(
      'When the dump was written, as far as known (ISO 8601): the tar member time, else the gzip header time, else the time in the file name, else the file modification time (see timeSource)',
    ),
  timeSource: z
    .enum(TIME_SOURCES)
    .describe(
      'Where time came from: tar (member mtime), gzip (header MTIME), file_name, or file (the file modification time, which a copy or git clone resets)',
    ),
  arch: z.enum(['x86_64', 'aarch64']),
  pid: z.number().int().nullable(),
  ppid: z.number().int().nullable(),
  uid: z.number().int().nullable(),
  gid: z.number().int().nullable(),
  processName: z.string().nullable().describe('pr_fname: the first 15 bytes of the command name'),
  commandLine: z.string().nullable().describe('Full command line (redacted)'),
  commandLineSource: z
    .enum(['stack', 'prpsinfo'])
    .nullable()
    .describe('stack: full argv; prpsinfo: first 80 bytes'),
  psargs: z.string().nullable(),
  executable: z.string().nullable().describe('Path of the mapped executable (NT_FILE)'),
  executableSource: z
    .enum(['nt_file', 'execfn', 'argv0', 'other_dump'])
    .nullable()
    .describe(
      'Where executable came from: NT_FILE; or, in a core cut before NT_FILE, AT_EXECFN, the first word of the command line, or another dump of the set that mapped the program under that path or name',
    ),
  execfn: z.string().nullable().describe('AT_EXECFN: the path given to execve()'),
  libraries: z.array(z.string()).describe('Mapped shared objects (NT_FILE), the executable left out'),
  mappedFiles: z
    .array(z.string())
    .describe(
      'Every other mapped file (NT_FILE): data files, locale archives, /tmp/hsperfdata_*, anon_inode:[io_uring]',
    ),
  signal: SignalSchema.nullable(),
  threads: z.number().int(),
  threadList: z.array(
    z.object({ pid: z.number().int(), signal: z.number().int(), pc: z.string(), sp: z.string() }),
  ),
  truncated: z.boolean().describe('True when the file ends before the last segment it declares'),
  expectedBytes: z.number().int(),
  urls: z
    .array(ValueCountSchema)
    .describe(
      'URLs with their exact counts in this dump: the first 1,000 distinct ones the scan came to (which ones, when more, depends on thread timing), its 200 most frequent and those the correlations list',
    ),
  evidence: z.array(EvidenceSchema).describe('Up to 200 values per kind, most frequent first'),
  environment: z.array(z.string()).describe('Environment from the initial stack (redacted)'),
  redactions: z.number().int().describe('Secret values replaced by [REDACTED] in this dump'),
  stringsScanned: z
    .number()
    .int()
    .describe(
      'Printable strings the evidence extractors read: those holding a trigger of some extractor (most strings in binary data hold none and are skipped unread)',
    ),
  evidenceDropped: z
    .number()
    .int()
    .describe(
      'Occurrences lost: values past the in-memory limits that could not be spilled to disk either (the spill budget spent or the disk full); 0 means every count is exact',
    ),
  signature: z.string().describe('Id of the crash signature this dump belongs to'),
});

export const CorrelationSchema = z.object({
  value: z.string(),
  kind: z.enum(EVIDENCE_KINDS),
  dumps: z.number().int().describe('In how many dumps the value appears'),
  total: z.number().int().describe('How many dumps were analysed together'),
  files: z.array(z.string()).describe('Which dumps (file, or file:member)'),
  occurrences: z.number().int(),
  score: z.number(),
  stream: z.boolean().describe('Looks like an endless audio/video stream'),
  lowerBound: z
    .boolean()
    .describe(
      'True when dumps and occurrences may be undercounts: some dump lost values past its limits (evidenceDropped > 0), or this value is in dumps that could not list it',
    ),
  why: z.string().describe('Why it ranks where it does, in words'),
});

export const SignatureSchema = z.object({
  id: z.string(),
  executable: z.string().nullable(),
  signal: z.string().nullable(),
  topEvidence: z.string().nullable(),
  count: z.number().int(),
  files: z.array(z.string()),
  firstSeen: z.string().describe('Earliest time of its dumps (see Dump.time)'),
  lastSeen: z.string(),
  timeSources: z.array(z.enum(TIME_SOURCES)).describe('Where the times of its dumps came from'),
});

export const FindingSchema = z.object({
  severity: z.enum(['critical', 'warning', 'info']),
  title: z.string(),
  detail: z.string(),
});

export const AnalysisErrorSchema = z.object({
  file: z.string(),
  entry: z.string().nullable(),
  code: z.string(),
  message: z.string(),
});

export const ReportSchema = z.object({
  version: z.literal(1),
  generatedAt: z.string(),
  dumps: z.array(DumpSchema),
  errors: z.array(AnalysisErrorSchema).describe('Files that could not be analysed, with why'),
  correlations: z.array(CorrelationSchema).describe('Ranked: what most likely explains the crashes first'),
  signatures: z.array(SignatureSchema),
  findings: z.array(FindingSchema),
  nextSteps: z.array(z.string()),
  totals: z.object({
    dumps: z.number().int(),
    bytes: z.number().int().describe('Bytes of the cores themselves, decompressed (sum of sizeBytes)'),
    fileBytes: z
      .number()
      .int()
      .describe('Bytes of the input files read, compressed where they are: what the progress bar counts'),
    redactions: z.number().int(),
  }),
});

export type Report = z.infer<typeof ReportSchema>;
export type Dump = z.infer<typeof DumpSchema>;
export type Correlation = z.infer<typeof CorrelationSchema>;
export type Signature = z.infer<typeof SignatureSchema>;
export type Finding = z.infer<typeof FindingSchema>;
export type AnalysisError = z.infer<typeof AnalysisErrorSchema>;

/** The JSON Schema document of the report, as committed in docs/report.schema.json. */
export function reportJsonSchema(): string {
  return `${JSON.stringify(z.toJSONSchema(ReportSchema), null, 2)}\n`;
}
