import { Socket } from 'node:net';
import pg from 'pg';
import { isSecretName, KnownSecrets, REDACTED, redact } from '../analyze/redact.ts';
import type { SqlDatabase } from '../config/sql-databases.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import type { Logger } from '../log.ts';
import { classifyReadOnlySql, type ReadKind, type SqlVerdict } from './sql-check.ts';
import { type CatalogQuery, checkReferencesOnServer } from './sql-resolve.ts';
import { BackendWatchdog } from './sql-watchdog.ts';

/**
 * Runs an approved SQL text against a database named in the configuration, so that it can only
 * read and only for so long: the text passes the SQL gate again, then runs inside
 * `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, `lock_timeout` and
 * `idle_in_transaction_session_timeout`, the names it uses are resolved on the server
 * (sql-resolve.ts), a SELECT through a cursor that fetches
 * one row more than the cap (so "more than N rows" is known without reading them all), and the
 * transaction is rolled back at the end whatever happened. The database's URL never appears in
 * an error; results are redacted before they are rendered.
 *
 * Every statement goes over the extended protocol (one statement per message, so a text the
 * server splits differently from the gate cannot smuggle a second statement), and
 * `SET LOCAL standard_conforming_strings = on` comes first, so the server reads backslashes in
 * string literals as the gate's parser does even where a legacy default turns it off. Rows are
 * fetched in batches until `maxRows` or `maxBytes` of result text; a row too large to fit stops
 * the fetch at the socket, and the result says where it was cut.
 *
 * The time limit also holds from outside the statement, whatever it does to its own settings: a
 * second connection (opened before anything runs; without it nothing runs) watches the run's
 * backend, cancels it when the whole run passes `timeoutMs`, terminates it if it is still there
 * `WATCHDOG.terminateAfterMs` later, and at the end makes sure the backend is gone, so no backend
 * of the SQL role runs or holds a lock a few seconds past the limit.
 */

export interface SqlRunOptions {
  database: SqlDatabase;
  /** The exact approved text. */
  text: string;
  /** statement_timeout, in milliseconds. Default 10,000. */
  timeoutMs?: number;
  /** Rows kept; more than this sets `truncated`. Default 1000. */
  maxRows?: number;
  /** Connecting gives up after this long, in milliseconds. Default 10,000. */
  connectTimeoutMs?: number;
  /** Bytes of result text (UTF-8, values and column names) kept; the fetch stops there. Default 4 MiB. */
  maxBytes?: number;
}

export interface SqlResult {
  columns: string[];
  /** Values in PostgreSQL's text form; null is NULL. */
  rows: Array<Array<string | null>>;
  /** The query had more than `maxRows` rows; only the first `maxRows` are here. */
  truncated: boolean;
  maxRows: number;
  /** Set when the result text reached `maxBytes`: the fetch stopped and only the rows before it are here. */
  cutAtBytes?: number;
  durationMs: number;
}

export const SQL_DEFAULTS = {
  timeoutMs: 10_000,
  maxRows: 1000,
  connectTimeoutMs: 10_000,
  maxBytes: 4 * 1024 * 1024,
};

/** How the watchdog connection enforces the limit: cancel after the limit and this grace, then terminate. */
export const WATCHDOG = { graceMs: 500, terminateAfterMs: 2000, goneWithinMs: 3000 };

/** Rows asked for per FETCH. */
const FETCH_BATCH = 200;
/** Wire bytes allowed beyond twice the text cap (protocol framing, field lengths) before the socket is cut. */
const WIRE_SLACK = 1024 * 1024;

/** Over the extended protocol: the server takes exactly one statement per message. */
const extended = <T extends object>(query: T) => ({ ...query, queryMode: 'extended' as const });

/** Every value in its text form: a CSV shows what psql would, not JavaScript's reading of it. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value };

/** Hides the URL and its parts (password, user@host, host:port) in a driver's message, then redacts. */
export function scrubDatabaseMessage(message: string, url: string): string {
  let out = message.split(url).join('[database URL]');
  try {
    const parsed = new URL(url);
    const parts = [
      parsed.password,
      decodeURIComponent(parsed.password),
      parsed.host,
      parsed.hostname,
      parsed.hostname.replace(/^\[|\]$/g, ''),
    ].filter((p) => p.length >= 3);
    for (const part of parts.sort((a, b) => b.length - a.length)) out = out.split(part).join('[database]');
  } catch {
    // Not a URL we can take apart: the whole of it is already hidden.
  }
  return redact(out).text;
}

export async function runReadOnlySql(options: SqlRunOptions): Promise<SqlResult> {
  const { database, text } = options;
  const limits = runLimits(options);
  const verdict = await classifyReadOnlySql(text);
  if (!verdict.ok)
    throw new CodedError(ErrorCode.SqlRefused, `refused before running: ${verdict.reason}; nothing ran`);
  const { client, wire } = guardedClient(database, limits);
  const watchdog = await connectWithWatchdog(client, database, limits);
  const started = performance.now();
  const result = new ResultRows(limits.maxBytes);
  try {
    const pid = await client.query<{ pid: number }>(
      extended({ text: 'SELECT pg_catalog.pg_backend_pid() AS pid' }),
    );
    watchdog.start(Number(pid.rows[0]!.pid));
    await beginReadOnly(client, limits.timeoutMs);
    const resolved = await checkReferencesOnServer(catalogQuery(client), verdict.refs);
    if (!resolved.ok)
      throw new CodedError(
        ErrorCode.SqlRefused,
        `refused before running, by what the names resolve to in "${database.name}": ${resolved.reason}; nothing ran`,
      );
    wire.limit = wire.received + 2 * limits.maxBytes + WIRE_SLACK;
    await fetchRows(client, text, verdict.kind, limits.maxRows, result);
  } catch (error) {
    if (error instanceof CodedError) throw error;
    if (watchdog.fired)
      throw sqlFailure(
        database,
        `stopped at the time limit (${limits.timeoutMs} ms): the watchdog connection ${watchdog.fired} it`,
        error,
      );
    if (!wire.cut) throw sqlFailure(database, 'the query failed', error);
    result.cut = true;
  } finally {
    if (!wire.cut) await client.query('ROLLBACK').catch(() => {});
    await client.end().catch(() => {});
    await watchdog.stop(WATCHDOG.goneWithinMs);
  }
  return {
    columns: result.columns,
    rows: result.rows.slice(0, limits.maxRows),
    truncated: result.rows.length > limits.maxRows,
    maxRows: limits.maxRows,
    ...(result.cut ? { cutAtBytes: limits.maxBytes } : {}),
    durationMs: Math.round(performance.now() - started),
  };
}

type RunLimits = Required<Omit<SqlRunOptions, 'database' | 'text'>>;

/** The options with their defaults, each a positive integer (a RangeError says which is not). */
function runLimits(options: SqlRunOptions): RunLimits {
  const limits = {
    timeoutMs: options.timeoutMs ?? SQL_DEFAULTS.timeoutMs,
    maxRows: options.maxRows ?? SQL_DEFAULTS.maxRows,
    maxBytes: options.maxBytes ?? SQL_DEFAULTS.maxBytes,
    connectTimeoutMs: options.connectTimeoutMs ?? SQL_DEFAULTS.connectTimeoutMs,
  };
  for (const name of ['timeoutMs', 'maxRows', 'maxBytes'] as const)
    if (!Number.isInteger(limits[name]) || limits[name] < 1)
      throw new RangeError(`${name} must be a positive integer`);
  return limits;
}

/** A driver's error as the run's: the database by name, its URL scrubbed, the server's code kept. */
function sqlFailure(database: SqlDatabase, what: string, error: unknown): CodedError {
  const message = scrubDatabaseMessage((error as Error).message ?? String(error), database.url);
  const code = (error as { code?: string }).code;
  return new CodedError(
    ErrorCode.SqlFailed,
    `database "${database.name}": ${what}: ${message}${code ? ` (${code})` : ''}`,
  );
}

/** Bytes received on the run's socket; past `limit` the socket is cut (and `cut` set). */
interface WireGuard {
  received: number;
  limit: number;
  cut: boolean;
}

/** The run's client, with the wire guard: a single row larger than the cap is never read whole into memory. */
function guardedClient(database: SqlDatabase, limits: RunLimits): { client: pg.Client; wire: WireGuard } {
  const wire: WireGuard = { received: 0, limit: Number.POSITIVE_INFINITY, cut: false };
  const client = new pg.Client({
    connectionString: database.url,
    connectionTimeoutMillis: limits.connectTimeoutMs,
    // The server's statement_timeout and the watchdog stop the query; this stops waiting on a server that hangs.
    query_timeout: limits.timeoutMs + WATCHDOG.graceMs + WATCHDOG.terminateAfterMs + 5000,
    application_name: 'nightshift',
    types: TEXT_TYPES,
    stream: () => {
      const socket = new Socket();
      socket.on('data', (chunk: Buffer) => {
        wire.received += chunk.length;
        if (wire.received > wire.limit && !wire.cut) {
          wire.cut = true;
          socket.destroy(new Error(`result cut at ${limits.maxBytes} bytes`));
        }
      });
      return socket;
    },
  });
  // A connection dropped mid-query is reported by the query itself; this keeps it from crashing the bot.
  client.on('error', () => {});
  return { client, wire };
}

/** Connects the run's client, then the watchdog's second connection: without both, nothing runs. */
async function connectWithWatchdog(
  client: pg.Client,
  database: SqlDatabase,
  limits: RunLimits,
): Promise<BackendWatchdog> {
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw sqlFailure(database, 'cannot connect', error);
  }
  try {
    return await BackendWatchdog.connect({
      url: database.url,
      limitMs: limits.timeoutMs + WATCHDOG.graceMs,
      terminateAfterMs: WATCHDOG.terminateAfterMs,
      connectTimeoutMs: limits.connectTimeoutMs,
    });
  } catch (error) {
    await client.end().catch(() => {});
    throw sqlFailure(
      database,
      'cannot open the second connection that enforces the time limit, so nothing ran',
      error,
    );
  }
}

/** The read-only transaction with the run's time limits, reading backslashes as the gate does. */
async function beginReadOnly(client: pg.Client, timeoutMs: number): Promise<void> {
  await client.query(extended({ text: 'BEGIN READ ONLY' }));
  await client.query(extended({ text: `SET LOCAL statement_timeout = ${timeoutMs}` }));
  await client.query(extended({ text: `SET LOCAL lock_timeout = ${timeoutMs}` }));
  await client.query(
    extended({ text: `SET LOCAL idle_in_transaction_session_timeout = ${timeoutMs + 5000}` }),
  );
  await client.query(extended({ text: 'SET LOCAL standard_conforming_strings = on' }));
}

/** The catalog questions of sql-resolve.ts, asked on the client's transaction. */
function catalogQuery(client: pg.Client): CatalogQuery {
  return async (sql, values) => (await client.query(extended({ text: sql, values }))).rows;
}

/** The rows kept, in text form, while they fit in `maxBytes` (column names counted). */
class ResultRows {
  columns: string[] = [];
  readonly rows: Array<Array<string | null>> = [];
  cut = false;
  #bytes = 0;
  readonly #maxBytes: number;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  setColumns(names: string[]): void {
    this.columns = names;
    this.#bytes += names.reduce((n, c) => n + Buffer.byteLength(c), 0);
  }

  /** Keeps rows while they fit; false once the cap is reached. */
  keep(batch: unknown[][]): boolean {
    for (const raw of batch) {
      const row = raw.map((v) => (v === null || v === undefined ? null : String(v)));
      const size = row.reduce((n, v) => n + (v === null ? 0 : Buffer.byteLength(v)), 0);
      if (this.#bytes + size > this.#maxBytes) {
        this.cut = true;
        return false;
      }
      this.#bytes += size;
      this.rows.push(row);
    }
    return true;
  }
}

/** A SELECT through a cursor, in batches, up to one row more than `maxRows`; EXPLAIN and SHOW at once. */
async function fetchRows(
  client: pg.Client,
  text: string,
  kind: ReadKind,
  maxRows: number,
  result: ResultRows,
): Promise<void> {
  if (kind !== 'select') {
    // EXPLAIN and SHOW cannot be a cursor's query; their output is a plan or a list of settings.
    const all = await client.query<unknown[]>(extended({ text, rowMode: 'array' as const }));
    result.columns = all.fields.map((f) => f.name);
    result.keep((all.rows as unknown[][]).slice(0, maxRows + 1));
    return;
  }
  await client.query(extended({ text: `DECLARE nightshift_result NO SCROLL CURSOR FOR ${text}` }));
  for (;;) {
    const want = Math.min(FETCH_BATCH, maxRows + 1 - result.rows.length);
    const batch = await client.query<unknown[]>(
      extended({ text: `FETCH FORWARD ${want} FROM nightshift_result`, rowMode: 'array' as const }),
    );
    if (result.columns.length === 0) result.setColumns(batch.fields.map((f) => f.name));
    if (!result.keep(batch.rows as unknown[][]) || batch.rows.length < want || result.rows.length > maxRows)
      break;
  }
}

/**
 * The whole gate for a text about to be proposed on a database: the text check, then what its
 * names resolve to on that server (in a read-only transaction, rolled back; nothing of the text
 * runs). A database that cannot be reached does not block the proposal: the runner asks again
 * before anything runs, and refuses then.
 */
export async function checkSqlOnDatabase(
  database: SqlDatabase,
  text: string,
  connectTimeoutMs = 5000,
): Promise<SqlVerdict & { unreachable?: string }> {
  const verdict = await classifyReadOnlySql(text);
  if (!verdict.ok) return verdict;
  const client = new pg.Client({
    connectionString: database.url,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: 'nightshift-gate',
    types: TEXT_TYPES,
  });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    return { ok: true, unreachable: scrubDatabaseMessage((error as Error).message, database.url) };
  }
  try {
    await client.query(extended({ text: 'BEGIN READ ONLY' }));
    await client.query(extended({ text: 'SET LOCAL statement_timeout = 5000' }));
    return await checkReferencesOnServer(catalogQuery(client), verdict.refs);
  } catch (error) {
    return { ok: true, unreachable: scrubDatabaseMessage((error as Error).message, database.url) };
  } finally {
    await client.query('ROLLBACK').catch(() => {});
    await client.end().catch(() => {});
  }
}

/** checkSqlOnDatabase by a database's name, for the agent's propose_sql; logs a database it cannot reach. */
export function checkSqlOnDatabases(databases: readonly SqlDatabase[], log: Pick<Logger, 'warn'>) {
  return async (name: string, text: string): Promise<SqlVerdict> => {
    const database = databases.find((d) => d.name === name);
    if (!database) return { ok: false, reason: `no database named "${name}" is configured` };
    const verdict = await checkSqlOnDatabase(database, text);
    if (verdict.ok && verdict.unreachable)
      log.warn(
        { database: name, error: verdict.unreachable },
        'cannot ask the database what a proposed statement names; it is asked again before it runs',
      );
    return verdict.ok ? { ok: true } : verdict;
  };
}

/**
 * The result with secrets hidden: a value in a column named like a secret (`password`,
 * `api_key`), anything the redaction patterns catch, and every later copy of a value found so.
 */
export function redactSqlResult(result: SqlResult): { result: SqlResult; redactions: number } {
  let redactions = 0;
  const known = new KnownSecrets();
  const secretColumns = result.columns.map((c) => isSecretName(c));
  const columns = result.columns.map((c) => {
    const r = redact(c);
    redactions += r.count;
    return r.text;
  });
  let rows = result.rows.map((row) =>
    row.map((value, i) => {
      if (value === null) return null;
      if (secretColumns[i] && value !== '') {
        redactions++;
        known.add([value]);
        return REDACTED;
      }
      const r = redact(value);
      redactions += r.count;
      known.add(r.secrets);
      return r.text;
    }),
  );
  if (known.size > 0)
    rows = rows.map((row) =>
      row.map((value) => {
        if (value === null) return null;
        const r = known.scrub(value);
        redactions += r.count;
        return r.text;
      }),
    );
  return { result: { ...result, columns, rows }, redactions };
}

/** RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled; NULL is empty. */
export function csvField(value: string | null): string {
  if (value === null) return '';
  return /[",\r\n]/.test(value) || /^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function toCsv(result: Pick<SqlResult, 'columns' | 'rows'>): string {
  const lines = [result.columns, ...result.rows].map((row) => row.map(csvField).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A few lines for the thread: how many rows, how long, and the first rows as `column: value`. */
export function summarizeSqlResult(result: SqlResult, previewRows = 3): string {
  const count = result.truncated
    ? `more than ${result.maxRows} rows (the first ${result.maxRows} are in the file)`
    : `${result.rows.length} row${result.rows.length === 1 ? '' : 's'}`;
  const lines = [`${count}, ${result.columns.length} column(s), in ${result.durationMs} ms`];
  if (result.cutAtBytes !== undefined)
    lines.push(`cut at ${result.cutAtBytes} bytes: only the rows before it were fetched`);
  for (const row of result.rows.slice(0, previewRows)) {
    lines.push(
      clip(
        result.columns.map((c, i) => `${c}: ${row[i] === null ? 'NULL' : clip(row[i]!, 80)}`).join(' · '),
        400,
      ),
    );
  }
  if (result.rows.length > previewRows) lines.push(`… ${result.rows.length - previewRows} more in the file`);
  return lines.join('\n');
}

/** What leaves the bot: the CSV and the summary, built from the redacted result and redacted again. */
export function renderSqlResult(result: SqlResult): { csv: string; summary: string; redactions: number } {
  const safe = redactSqlResult(result);
  const csv = redact(toCsv(safe.result));
  const summary = redact(summarizeSqlResult(safe.result));
  return { csv: csv.text, summary: summary.text, redactions: safe.redactions + csv.count + summary.count };
}
