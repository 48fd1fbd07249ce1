/**
 * An audit entry as one line of a postmortem's timeline, pure: who did what, then its subject in
 * words (`proposal #3, via button, approval 1 of 1`), hashes and job ids shortened. The action
 * and actor come first as stored (`proposal.approved by U0…`), so the line can still be searched
 * for them; keys this does not know are shown as `key value`.
 */

export interface AuditEntry {
  action: string;
  actor: string;
  subject: Record<string, unknown>;
}

const text = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));

/** Keys shown in this order and these words; whatever is left follows as `key value`. */
const KNOWN: ReadonlyArray<[string, (s: Record<string, unknown>) => string | undefined]> = [
  ['proposal', (s) => `proposal #${text(s.proposal)}`],
  ['run', (s) => `run ${text(s.run)}`],
  ['kind', (s) => (s.target === undefined ? `kind ${text(s.kind)}` : `${text(s.kind)} on ${text(s.target)}`)],
  ['target', (s) => (s.kind === undefined ? `target ${text(s.target)}` : undefined)],
  [
    'decision',
    (s) => (s.decision === 'approved' ? 'to approve' : s.decision === 'rejected' ? 'to reject' : undefined),
  ],
  ['via', (s) => `via ${text(s.via)}`],
  ['reason', (s) => `reason: ${text(s.reason)}`],
  [
    'approvals',
    (s) =>
      s.required === undefined
        ? `approvals ${text(s.approvals)}`
        : `approval ${text(s.approvals)} of ${text(s.required)}`,
  ],
  ['required', (s) => (s.approvals === undefined ? `required ${text(s.required)}` : undefined)],
  ['ok', (s) => (s.ok === true ? 'succeeded' : s.ok === false ? 'failed' : undefined)],
  ['exitCode', (s) => `exit code ${text(s.exitCode)}`],
  ['outputBytes', (s) => `${text(s.outputBytes)} bytes of output`],
  ['durationMs', (s) => `${text(s.durationMs)} ms`],
  ['error', (s) => `error: ${text(s.error)}`],
  ['file', (s) => `file ${text(s.file)}${s.fileBytes === undefined ? '' : ` (${text(s.fileBytes)} bytes)`}`],
  ['fileBytes', () => undefined],
  ['bytes', (s) => `a reply of ${text(s.bytes)} characters`],
  // The model's tool_use id: how a restarted turn finds what it proposed, not for a reader.
  ['toolUse', () => undefined],
  ['sha256', (s) => `sha256 ${text(s.sha256).slice(0, 12)}`],
  ['job', (s) => `job ${text(s.job).slice(0, 8)}`],
  // A proposal's text (the timeline adds it), on one line and cut: the thread has it whole.
  [
    'text',
    (s) => {
      const line = text(s.text).replace(/\s+/g, ' ').trim();
      return `text: ${line.length > 200 ? `${line.slice(0, 199)}…` : line}`;
    },
  ],
];

export function describeAudit(entry: AuditEntry): string {
  const head = `${entry.action} by ${entry.actor}`;
  const subject = entry.subject;
  const present = (key: string) => subject[key] !== undefined && subject[key] !== null;
  const parts: string[] = [];
  for (const [key, words] of KNOWN) {
    if (!present(key)) continue;
    const said = words(subject);
    if (said !== undefined) parts.push(said);
  }
  const known = new Set(KNOWN.map(([key]) => key));
  for (const [key, value] of Object.entries(subject))
    if (!known.has(key) && value !== undefined && value !== null) parts.push(`${key} ${text(value)}`);
  return parts.length === 0 ? head : `${head}: ${parts.join(', ')}`;
}
