import { appendFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KnownSecrets, redact } from '../analyze/redact.ts';

/**
 * The secret values redact() found in an incident's findings, kept on the bot host beside the
 * incident's evidence instead of in the database. Findings are stored redacted, so the database
 * (the system of record: backed up, perhaps a shared server, kept for good) holds no secret found
 * in a core; the agent still needs the values themselves to hide their bare copies (a password
 * named in one finding, unnamed in a heap string a search returns) and to refuse a search for
 * one. The host already holds them, in the evidence they came from: this file adds no new place,
 * lives as long as that evidence (the sweeper removes both), and is out of the sandbox's and the
 * agent tools' sight (beside the incidents' directories, not in one; 0700 directory, 0600 file).
 *
 * One JSON string per line, appended: two jobs of one incident may write at once.
 */

const DIR = '.known-secrets';

export const knownSecretsPath = (evidenceDir: string, incidentId: number): string =>
  join(evidenceDir, DIR, `incident-${incidentId}.jsonl`);

/** Adds `secrets` to the incident's list. */
export async function rememberSecrets(
  evidenceDir: string,
  incidentId: number,
  secrets: readonly string[],
): Promise<void> {
  if (secrets.length === 0) return;
  await mkdir(join(evidenceDir, DIR), { recursive: true, mode: 0o700 });
  const lines = [...new Set(secrets)].map((s) => `${JSON.stringify(s)}\n`).join('');
  await appendFile(knownSecretsPath(evidenceDir, incidentId), lines, { mode: 0o600 });
}

/** The incident's list; empty when there is none. A line cut short by a crash is skipped. */
export async function recallSecrets(evidenceDir: string, incidentId: number): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(knownSecretsPath(evidenceDir, incidentId), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const secrets: string[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value === 'string') secrets.push(value);
    } catch {
      // cut short
    }
  }
  return secrets;
}

/**
 * Removes the lists not written to since `cutoff` (evidence retention), except those of incidents
 * in `keep`, which still have evidence on the host (a later pull without new secrets does not
 * touch the list, yet its cores hold the old ones); how many.
 */
export async function forgetSecretsBefore(
  evidenceDir: string,
  cutoff: Date,
  keep: ReadonlySet<number> = new Set(),
): Promise<number> {
  let names: string[];
  try {
    names = await readdir(join(evidenceDir, DIR));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const incident = /^incident-(\d+)\.jsonl$/.exec(name);
    if (incident && keep.has(Number(incident[1]))) continue;
    const path = join(evidenceDir, DIR, name);
    const info = await stat(path).catch(() => undefined);
    if (info && info.mtime < cutoff) {
      await rm(path, { force: true });
      removed++;
    }
  }
  return removed;
}

/**
 * How an incident's findings are stored and posted: secrets named in any of `texts` are redacted,
 * and their bare copies, or those of a secret the incident's list already holds (an earlier job,
 * the analyzer), are hidden too. The new secrets are added to the list (when there is an evidence
 * directory); `scrub` says how many values it hid in a text.
 */
export async function findingRedactor(
  evidenceDir: string | undefined,
  incidentId: number,
  texts: readonly string[],
): Promise<(text: string) => { text: string; count: number }> {
  const known = new KnownSecrets();
  if (evidenceDir) known.add(await recallSecrets(evidenceDir, incidentId));
  const found = texts.flatMap((text) => redact(text).secrets);
  known.add(found);
  if (evidenceDir) await rememberSecrets(evidenceDir, incidentId, found);
  return (text) => {
    const named = redact(text);
    const bare = known.scrub(named.text);
    return { text: bare.text, count: named.count + bare.count };
  };
}
