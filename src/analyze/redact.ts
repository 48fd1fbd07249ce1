/**
 * Secrets never leave the analyzer: every value is passed through `redact` before it is stored,
 * counted, printed or (later) posted to Slack or sent to the model. The patterns favour catching a
 * secret over keeping a harmless value intact; each replacement is counted so the report can say
 * how much was hidden.
 */

export const REDACTED = '[REDACTED]';

export interface Redacted {
  text: string;
  count: number;
  /** The secret values that were hidden, so the same value found elsewhere unnamed can be hidden too. */
  secrets: string[];
}

/** Variable or field names whose values are secrets: *PASSWORD*, *SECRET*, *TOKEN*, *KEY* and kin. */
const SECRET_NAME =
  '[A-Za-z0-9_.-]*(?:PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH)[A-Za-z0-9_.-]*';

/** Whether a column, field or variable name says its value is a secret (`api_key`, `password`). */
export function isSecretName(name: string): boolean {
  return new RegExp(`^${SECRET_NAME}$`, 'i').test(name);
}

interface Rule {
  pattern: RegExp;
  replace: (match: string, ...groups: string[]) => string;
  /** Which capture group holds the secret itself; the whole match when absent. */
  secretGroup?: number;
  /**
   * A test every match of `pattern` passes (a literal it cannot match without): the rule is run
   * only on text that passes it. Every URL passes MAYBE_SECRET, and running all the rules on each
   * of a million distinct URLs took most of a text-dense core's analysis.
   */
  needs: (text: string) => boolean;
}

const has = (literal: string) => (text: string) => text.includes(literal);
const matches = (pattern: RegExp) => (text: string) => pattern.test(text);
const SECRET_NAME_PART = /PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH/i;

const RULES: Rule[] = [
  {
    // PEM private keys, whole or cut off by the end of the string.
    pattern: /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g,
    replace: (_m, kind) => `-----BEGIN ${kind}PRIVATE KEY----- ${REDACTED}`,
    needs: has('PRIVATE KEY-----'),
  },
  {
    // user:password@ in URLs and DSNs (postgres://, redis://, https://, amqp://, ...).
    pattern: /([A-Za-z][A-Za-z0-9+.-]{1,20}:\/\/)([^/\s:@'"]{0,256}):([^/\s@'"]{1,256})@/g,
    replace: (_m, scheme, user) => `${scheme}${user}:${REDACTED}@`,
    secretGroup: 3,
    needs: has('@'),
  },
  {
    // Sentry DSN public keys and other key-only userinfo (https://<32 hex>@o1.ingest.sentry.io/2).
    pattern: /([A-Za-z][A-Za-z0-9+.-]{1,20}:\/\/)([0-9a-fA-F]{16,64})@/g,
    replace: (_m, scheme) => `${scheme}${REDACTED}@`,
    secretGroup: 2,
    needs: has('@'),
  },
  {
    // Any userinfo in a Sentry DSN is its key, whatever its format.
    pattern: /([A-Za-z][A-Za-z0-9+.-]{1,20}:\/\/)([^/\s:@'"[\]]{1,256})@([^/\s'"]*sentry[^/\s'"]*)/gi,
    replace: (_m, scheme, _key, host) => `${scheme}${REDACTED}@${host}`,
    secretGroup: 2,
    needs: has('@'),
  },
  { pattern: /\bxox[abposre]-[A-Za-z0-9-]{8,}/g, replace: () => `xox-${REDACTED}`, needs: has('xox') },
  { pattern: /\bxapp-\d-[A-Za-z0-9-]{8,}/g, replace: () => `xapp-${REDACTED}`, needs: has('xapp-') },
  {
    pattern: /(hooks\.slack\.com\/(?:services|workflows|triggers)\/)[A-Za-z0-9/_-]+/g,
    replace: (_m, prefix) => `${prefix}${REDACTED}`,
    needs: has('hooks.slack.com/'),
  },
  {
    pattern: /\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b/g,
    replace: () => REDACTED,
    needs: matches(/AKIA|ASIA|AGPA|AIDA|AROA/),
  },
  {
    pattern: /\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}\b|\bgithub_pat_[A-Za-z0-9_]{20,}/g,
    replace: () => REDACTED,
    needs: matches(/gh[pousr]_|github_pat_/),
  },
  { pattern: /\bsk-(?:ant-)?[A-Za-z0-9_-]{20,}/g, replace: () => REDACTED, needs: has('sk-') },
  { pattern: /\b(?:sk|rk)_live_[A-Za-z0-9]{10,}/g, replace: () => REDACTED, needs: has('_live_') },
  { pattern: /\bAIza[0-9A-Za-z_-]{30,}/g, replace: () => REDACTED, needs: has('AIza') },
  {
    pattern: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g,
    replace: () => REDACTED,
    needs: has('eyJ'),
  },
  {
    pattern: /\b(Bearer|Basic|Token|Digest)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi,
    replace: (_m, scheme, space) => `${scheme}${space}${REDACTED}`,
    needs: matches(/bearer|basic|token|digest/i),
  },
  {
    // NAME=value, "name": "value", 'name': 'value', name: value, ?token=value in query strings.
    pattern: new RegExp(
      String.raw`(["']?)(${SECRET_NAME})\1(\s*[:=]\s*)(["']?)((?!\[REDACTED\]|(?:Bearer|Basic|Token|Digest)\s)[^\s"'&,;}]{1,4096})`,
      'gi',
    ),
    replace: (_m, q, name, sep, q2) => `${q}${name}${q}${sep}${q2}${REDACTED}`,
    secretGroup: 5,
    needs: matches(SECRET_NAME_PART),
  },
  {
    // Command-line flags: --password secret, --api-key=secret.
    pattern: new RegExp(String.raw`(--?${SECRET_NAME})(\s+)((?!\[REDACTED\])[^\s-][^\s]{0,4095})`, 'gi'),
    replace: (_m, flag, space) => `${flag}${space}${REDACTED}`,
    secretGroup: 3,
    needs: matches(SECRET_NAME_PART),
  },
];

/**
 * Quick reject: most strings hold none of the characters every rule needs. Each rule's `needs`
 * implies a match here; the URL rules need an '@', so a URL without one (nearly every URL of a
 * web worker's heap) is let through untouched without testing each rule.
 */
export const MAYBE_SECRET =
  /PRIVATE KEY|@|xox|xapp|hooks\.slack|AKIA|ASIA|AGPA|AIDA|AROA|gh[pousr]_|github_pat|sk-|_live_|AIza|eyJ|bearer|basic|token|digest|password|passwd|secret|key|credential|private|auth/i;

/**
 * False only for text in which redact finds nothing: a caller that tests this first makes no
 * result object for the nearly every value of a heap that holds no secret.
 */
export function mayHoldSecret(text: string): boolean {
  return MAYBE_SECRET.test(text);
}

export function redact(text: string): Redacted {
  if (!MAYBE_SECRET.test(text)) return { text, count: 0, secrets: [] };
  let count = 0;
  const secrets: string[] = [];
  let out = text;
  for (const rule of RULES) {
    if (!rule.needs(out)) continue;
    out = out.replace(rule.pattern, (...args: unknown[]) => {
      count++;
      const groups = args.slice(1, -2) as string[];
      const secret = rule.secretGroup === undefined ? (args[0] as string) : groups[rule.secretGroup - 1];
      if (secret && secret.length >= MIN_KNOWN_SECRET) secrets.push(secret);
      return rule.replace(args[0] as string, ...groups);
    });
  }
  return { text: out, count, secrets };
}

/** Shorter values are too likely to be ordinary words to hide wherever they appear. */
export const MIN_KNOWN_SECRET = 6;

/**
 * Hides secrets already identified elsewhere (an environment variable named *PASSWORD*, a URL's
 * password) wherever the same value turns up without a telling name: a heap copy of `EN=hunter2`
 * whose first bytes were overwritten by the allocator is still the password.
 */
export class KnownSecrets {
  private readonly values = new Set<string>();
  private pattern: RegExp | undefined;

  add(values: Iterable<string>): void {
    for (const v of values) {
      if (v.length >= MIN_KNOWN_SECRET && !v.includes(REDACTED) && this.values.size < 10_000) {
        this.values.add(v);
        this.pattern = undefined;
      }
    }
  }

  get size(): number {
    return this.values.size;
  }

  /** The text with every known secret replaced by `fill` over its length, so offsets stay where they were. */
  mask(text: string, fill: string): string {
    if (this.values.size === 0) return text;
    return text.replace(this.compiled(), (m) => fill.repeat(m.length));
  }

  scrub(text: string): Redacted {
    if (this.values.size === 0) return { text, count: 0, secrets: [] };
    let count = 0;
    const out = text.replace(this.compiled(), () => {
      count++;
      return REDACTED;
    });
    return { text: out, count, secrets: [] };
  }

  private compiled(): RegExp {
    this.pattern ??= new RegExp(
      [...this.values]
        .sort((a, b) => b.length - a.length)
        .map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('|'),
      'g',
    );
    return this.pattern;
  }
}
