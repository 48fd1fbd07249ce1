import type { ProposalText } from './proposal.ts';

/**
 * A static risk note for a reviewer reading a proposal on a phone at night: what in the text
 * deserves a second look. It is a reading aid, not a guard (the guard is the approval itself), so
 * it errs on the side of saying more.
 */

interface Rule {
  pattern: RegExp;
  note: string;
}

const SCRIPT_RULES: Rule[] = [
  { pattern: /\b(curl|wget)\b[^|\n]*\|\s*(ba|z|da)?sh\b/, note: 'pipes a download into a shell' },
  { pattern: /\b(curl|wget|nc|ncat|ssh|scp|rsync|telnet|ftp)\b|https?:\/\//, note: 'uses the network' },
  { pattern: /\b(rm|unlink|shred|truncate)\b|\bfind\b[^\n]*-delete\b/, note: 'deletes files' },
  {
    pattern: /(^|[^0-9&<>])>>?\s*[^&\s]|\btee\b|\b(mv|cp|dd|install|mkdir|touch|chmod|chown|ln|sed\s+-i)\b/m,
    note: 'writes files',
  },
  {
    pattern: /\b(kill|pkill|killall|reboot|shutdown|systemctl|service)\b/,
    note: 'stops or restarts processes',
  },
  { pattern: /\bdocker\s+(rm|rmi|kill|stop|restart|exec|run|system\s+prune)\b/, note: 'changes containers' },
  { pattern: /\bsudo\b|\bsu\s/, note: 'raises privileges' },
  { pattern: /\beval\b|\bbase64\s+(-d|--decode)\b/, note: 'runs text it builds or decodes' },
];

const SQL_WRITE =
  /\b(insert|update|delete|merge|drop|alter|create|truncate|grant|revoke|copy|call|do|vacuum|reindex|cluster|lock|set|reset|listen|notify|prepare|execute|refresh)\b/i;

/** Notes for the reviewer, most serious first; empty when nothing stood out. */
export function riskNotes(p: ProposalText): string[] {
  if (p.kind === 'pull')
    return ['copies files off the host over SSH (read-only there, writes on the bot host)'];
  if (p.kind === 'free')
    // The same words as a script's rm, so whatever asks "does it delete?" reads one note.
    return [
      'deletes files',
      'on the host, each only while its size, mtime and inode are those of the copy pulled home',
    ];
  if (p.kind === 'sql') {
    const notes: string[] = [];
    const statements = p.text
      .replace(/--[^\n]*/g, '')
      .split(';')
      .filter((s) => s.trim() !== '');
    if (statements.length !== 1) notes.push(`${statements.length} statements, not one`);
    const verb = SQL_WRITE.exec(p.text);
    if (verb) notes.push(`mentions ${verb[1]!.toUpperCase()}: not a plain read`);
    notes.push('runs inside BEGIN READ ONLY with a statement timeout and a row cap');
    return notes;
  }
  return SCRIPT_RULES.filter((rule) => rule.pattern.test(p.text)).map((rule) => rule.note);
}
