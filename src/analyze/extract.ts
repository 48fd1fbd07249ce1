import type { StringEncoding } from './strings.ts';

/**
 * Turns one printable string found in memory into evidence: the kinds of value an on-call engineer
 * would grep a core for. Each extractor starts with a cheap substring test so the common case, a
 * string that holds none of them, costs a few `indexOf`s.
 */

export const EVIDENCE_KINDS = [
  'url',
  'request',
  'header',
  'traceback',
  'frame',
  'exception',
  'transaction',
  'release',
  'environment',
  'function',
  'payload',
  'sql',
  'env',
] as const;

export type EvidenceKind = (typeof EVIDENCE_KINDS)[number];

/**
 * Every extractor below starts by looking for one of these substrings (or, for an environment
 * variable, an upper-case NAME and an '=': ENV_START), so a string holding none of them yields no
 * evidence and the scanner skips it without making a string of it: on random heap, 98 strings in
 * 100. Shorter is fine (a prefix of what an extractor looks for lets more through); the scanner
 * takes at most 32 of at most 32 bytes each. A property test holds extractEvidence to
 * mayHoldEvidence.
 */
export const EVIDENCE_TRIGGERS: readonly string[] = [
  '://',
  ' HTTP/',
  'ontent-',
  'ONTENT-',
  'icy-',
  'Traceback (',
  'File "',
  'Error',
  'Exception',
  'Exit',
  'Interrupt',
  'transaction',
  'release',
  'environment',
  'function',
  'event_id',
  '"profile"',
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
];

const startsUpper = (text: string) => {
  const first = text.charCodeAt(0);
  return first >= 0x41 && first <= 0x5a;
};

/** The environment-variable rule, which is not a substring: `NAME=value`, NAME upper-case. */
const ENV_START = /^[A-Z][A-Z0-9_]*=/;

/** False only for a string in which extractEvidence cannot find anything. */
export function mayHoldEvidence(text: string): boolean {
  if (ENV_START.test(text)) return true;
  for (const trigger of EVIDENCE_TRIGGERS) if (text.includes(trigger)) return true;
  return false;
}

export type EvidenceEmit = (kind: EvidenceKind, value: string) => void;

/** Longest value kept: anything longer is cut, with an ellipsis, to keep reports readable. */
export const MAX_VALUE = 512;

/**
 * The URL character class: RFC 3986 unreserved, reserved and '%', without the quote characters
 * that end a URL inside JSON or a Python repr. Kept identical to the grep expression in the tests:
 * `https?://[][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+`.
 */
export const URL_PATTERN = /https?:\/\/[\][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+/g;
const OTHER_URL_PATTERN =
  /\b(?:wss?|rtmps?|rtsp|mms|icy|ftp|postgres(?:ql)?|mysql|redis|rediss|amqps?|mongodb(?:\+srv)?):\/\/[\][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+/g;
const REQUEST_LINE =
  /\b(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS|CONNECT) ((?:\/|https?:\/\/)[!-~]{0,2047}) HTTP\/\d(?:\.\d)?/g;
const HEADER =
  /(?:^|[^A-Za-z0-9-])(content-type|icy-[a-z0-9-]{2,30})(["']?\s*[:=,]\s*["']?)([^"'\r\n;,}]{1,200})/gi;
const MEDIA_TYPE = /^[A-Za-z0-9][\w.+-]*\/[A-Za-z0-9][\w.+-]*$/;
const FRAME = /File "([^"]{1,400})", line (\d{1,7}), in ([\w<>.]{1,200})/g;
/** An exception line with its message: bare class names are furniture in every interpreter. */
const EXCEPTION =
  /^((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Timeout|Warning)): (.{1,300})$/;
const SENTRY_FIELD = /["'](transaction|release|environment)["']\s*:\s*["']([^"'\\]{1,200})["']/g;
const FUNCTION_FIELD = /["']function["']\s*:\s*["']([^"'\\]{1,200})["']/g;
/** Upper-case keywords only: what ORMs and drivers send; lower-case prose says "select ... from" too. */
const SQL =
  /\b(?:SELECT\s[\s\S]{1,2000}?\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\S{1,200}\s+SET\s|DELETE\s+FROM\s)/g;
/**
 * What collapses to one space in a SQL value: what /\s+/ matches, less a lone space, so a
 * statement already spaced singly comes back as it is instead of as a copy.
 */
const SPACES = /\s{2,}|[^\S ]/g;
const ENV = /^([A-Z_][A-Z0-9_]{0,127})=([\s\S]*)$/;

/**
 * Whether some '://' in the text follows something other than http or https: only then can
 * OTHER_URL_PATTERN match, and on a heap of web URLs scanning for its schemes cost more than the
 * URL pattern itself.
 */
function hasOtherScheme(text: string): boolean {
  for (let at = text.indexOf('://'); at >= 0; at = text.indexOf('://', at + 3)) {
    if (text.endsWith('http', at)) continue;
    if (text.endsWith('https', at)) continue;
    return true;
  }
  return false;
}

function clip(value: string): string {
  const trimmed = value.trim();
  return trimmed.length > MAX_VALUE ? `${trimmed.slice(0, MAX_VALUE - 1)}…` : trimmed;
}

function each(pattern: RegExp, text: string, fn: (m: RegExpExecArray) => void): void {
  pattern.lastIndex = 0;
  for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
    fn(m);
    if (m[0].length === 0) pattern.lastIndex++;
  }
}

/** The bit of a string that starts like an environment variable (NAME=, NAME upper-case). */
export const ENV_TRIGGER = 1 << 23;

/** Bit of each trigger in the mask the scanner hands over (see StringSink). */
const bit = (trigger: string): number => 1 << EVIDENCE_TRIGGERS.indexOf(trigger);
const URL_BITS = bit('://');
/** The trigger mask of a string whose only trigger is '://' (see url_fast in wasm/strings.c). */
export const URL_TRIGGER = URL_BITS;
const REQUEST_BITS = bit(' HTTP/');
/** The trigger mask of a string whose only trigger is ' HTTP/' (see request_fast in wasm/strings.c). */
export const REQUEST_TRIGGER = REQUEST_BITS;
const HEADER_BITS = bit('ontent-') | bit('ONTENT-') | bit('icy-');
const TRACEBACK_BITS = bit('Traceback (');
const FRAME_BITS = bit('File "');
const EXCEPTION_BITS = bit('Error') | bit('Exception') | bit('Exit') | bit('Interrupt');
const SENTRY_BITS = bit('transaction') | bit('release') | bit('environment');
const FUNCTION_BITS = bit('function');
const EVENT_BITS = bit('event_id');
const PROFILE_BITS = bit('"profile"');
const SQL_BITS = bit('SELECT') | bit('INSERT') | bit('UPDATE') | bit('DELETE');
/** The trigger mask a string of SQL holds some of, and nothing else (see sql_fast in wasm/strings.c). */
export const SQL_TRIGGERS = SQL_BITS;

/** The mask of EVIDENCE_TRIGGERS (and ENV_TRIGGER) a text holds, found in JavaScript. */
export function triggerMask(text: string): number {
  let mask = 0;
  for (let i = 0; i < EVIDENCE_TRIGGERS.length; i++) if (text.includes(EVIDENCE_TRIGGERS[i]!)) mask |= 1 << i;
  if (ENV_START.test(text)) mask |= ENV_TRIGGER;
  return mask;
}

/**
 * `triggers`, when given, says which of EVIDENCE_TRIGGERS the text holds (the scanner looked for
 * them in WebAssembly): each extractor's own first test is then a bit test instead of a search.
 * Without it the mask is found here; constant masks rather than a lookup per test, which cost a
 * Map lookup and a closure call per extractor per string.
 */
export function extractEvidence(
  text: string,
  _encoding: StringEncoding,
  emit: EvidenceEmit,
  triggers?: number,
): void {
  const mask = triggers ?? triggerMask(text);
  if (mask & URL_BITS) {
    // Loops rather than each(): no closure made per string on the hottest paths. Every match of
    // these patterns is non-empty, so lastIndex always moves on.
    URL_PATTERN.lastIndex = 0;
    for (let m = URL_PATTERN.exec(text); m !== null; m = URL_PATTERN.exec(text)) emit('url', clip(m[0]));
    if (hasOtherScheme(text)) each(OTHER_URL_PATTERN, text, (m) => emit('url', clip(m[0])));
  }
  if (mask & REQUEST_BITS) {
    REQUEST_LINE.lastIndex = 0;
    for (let m = REQUEST_LINE.exec(text); m !== null; m = REQUEST_LINE.exec(text)) {
      // Method, space, target: the start of the match itself, a slice rather than a concatenation
      // V8 would flatten (copy) to hash it.
      emit('request', clip(text.slice(m.index, m.index + m[1]!.length + 1 + m[2]!.length)));
    }
  }
  if (mask & HEADER_BITS) {
    each(HEADER, text, (m) => {
      const name = m[1]!.toLowerCase();
      const value = m[3]!.trim();
      // A Content-Type is type/subtype; anything else after the name is prose or a format string.
      if (name === 'content-type' && !MEDIA_TYPE.test(value)) return;
      emit('header', clip(`${name}: ${value}`));
    });
  }
  if (mask & TRACEBACK_BITS && text.includes('Traceback (most recent call last)'))
    emit('traceback', 'Traceback (most recent call last)');
  if (mask & FRAME_BITS) {
    each(FRAME, text, (m) => emit('frame', clip(`${m[1]}:${m[2]} in ${m[3]}`)));
  }
  if (startsUpper(text)) {
    if (mask & EXCEPTION_BITS) {
      const m = EXCEPTION.exec(text);
      if (m) emit('exception', clip(`${m[1]}: ${m[2]}`));
    }
    // ENV_START is what the bit says; the text starts with a capital, so ENV is no wider.
    if (mask & ENV_TRIGGER) {
      const m = ENV.exec(text);
      if (m) emit('env', clip(`${m[1]}=${m[2]}`));
    }
  }
  if (mask & SENTRY_BITS) {
    each(SENTRY_FIELD, text, (m) => emit(m[1] as EvidenceKind, clip(m[2]!)));
  }
  if (mask & FUNCTION_BITS) {
    each(FUNCTION_FIELD, text, (m) => emit('function', clip(m[1]!)));
  }
  if (mask & EVENT_BITS && (text.includes('"sent_at"') || text.includes('"dsn"') || text.includes('"sdk"'))) {
    emit('payload', 'Sentry envelope');
  }
  if (mask & PROFILE_BITS && (text.includes('"frames"') || text.includes('"samples"'))) {
    emit('payload', 'profiling payload');
  }
  if (mask & SQL_BITS) {
    SQL.lastIndex = 0;
    for (let m = SQL.exec(text); m !== null; m = SQL.exec(text)) {
      const end = text.indexOf(';', m.index);
      emit('sql', clip(text.slice(m.index, end >= 0 ? end : text.length).replace(SPACES, ' ')));
    }
  }
}
