/**
 * Every domain error carries a stable code from one list, so callers (the CLI's exit codes, the
 * report's `errors[]`, later the Slack thread) can branch on what happened without parsing text.
 * The original error is kept as `cause`.
 */
export const ErrorCode = {
  NotElf: 'nightshift_not_elf',
  UnsupportedElf: 'nightshift_unsupported_elf',
  NotCore: 'nightshift_not_core',
  MalformedElf: 'nightshift_malformed_elf',
  MalformedTar: 'nightshift_malformed_tar',
  MalformedGzip: 'nightshift_malformed_gzip',
  /** zstd, xz or lz4 data that does not decode (gzip keeps MalformedGzip). */
  MalformedCompression: 'nightshift_malformed_compression',
  /** A compression the analyzer cannot read here (lz4 legacy, xz without its decoder package). */
  UnsupportedCompression: 'nightshift_unsupported_compression',
  /** An apport .crash report that is not one, or holds no core. */
  MalformedReport: 'nightshift_malformed_report',
  UnreadableFile: 'nightshift_unreadable_file',
  NoInput: 'nightshift_no_input',
  Usage: 'nightshift_usage',
  ConfigInvalid: 'nightshift_config_invalid',
  StoreLocked: 'nightshift_store_locked',
  StoreUnavailable: 'nightshift_store_unavailable',
  MigrationFailed: 'nightshift_migration_failed',
  HostUnknown: 'nightshift_host_unknown',
  HostKeyRejected: 'nightshift_host_key_rejected',
  SshFailed: 'nightshift_ssh_failed',
  /** The SSH connection or channel went away mid-command (or could not be opened): worth one retry. */
  ConnectionLost: 'nightshift_connection_lost',
  /** No such thing (an incident, a proposal) by the id given. */
  NotFound: 'nightshift_not_found',
  /** A state change the state machine does not allow from where the thing is now. */
  InvalidTransition: 'nightshift_invalid_transition',
  NotApproved: 'nightshift_not_approved',
  SqlRefused: 'nightshift_sql_refused',
  SqlFailed: 'nightshift_sql_failed',
  SandboxUnavailable: 'nightshift_sandbox_unavailable',
  /** A run whose worker stopped answering (no heartbeat): the sweeper failed it. */
  RunAbandoned: 'nightshift_run_abandoned',
  /** The analysis job's child process crashed, ran out of memory or passed its time limit. */
  AnalysisFailed: 'nightshift_analysis_failed',
  /** A file the analysis followed as it was pulled did not arrive whole (evidence/follow.ts). */
  EvidenceIncomplete: 'nightshift_evidence_incomplete',
  /** The pull of a followed file started again from its first byte; its analysis starts again too. */
  FollowRestarted: 'nightshift_follow_restarted',
  Internal: 'nightshift_internal',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class CodedError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'CodedError';
  }
}

/** The embedded store's data directory is held by another live process, named by its pid. */
export class StoreLockedError extends CodedError {
  readonly holderPid: number;
  constructor(holderPid: number, message: string) {
    super(ErrorCode.StoreLocked, message);
    this.holderPid = holderPid;
    this.name = 'StoreLockedError';
  }
}

/** Wraps anything thrown into a CodedError so one error sink can report it. */
export function asCodedError(error: unknown): CodedError {
  if (error instanceof CodedError) return error;
  if (error instanceof Error) {
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT' || errno === 'EACCES' || errno === 'EISDIR' || errno === 'EIO') {
      return new CodedError(ErrorCode.UnreadableFile, error.message, { cause: error });
    }
    if (errno === 'Z_DATA_ERROR' || errno === 'Z_BUF_ERROR') {
      return new CodedError(ErrorCode.MalformedGzip, `gzip data is corrupt: ${error.message}`, {
        cause: error,
      });
    }
    return new CodedError(ErrorCode.Internal, error.message, { cause: error });
  }
  return new CodedError(ErrorCode.Internal, String(error));
}
