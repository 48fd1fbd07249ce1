import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AnalysisError } from '../analyze/report-schema.ts';
import { asCodedError } from '../errors.ts';

/**
 * Expands the paths given on the command line into files: directories recursively, in sorted
 * order, symlinked directories not followed (a loop must not hang the analyzer).
 */

export interface InputFile {
  path: string;
  size: number;
  mtime: Date;
}

export async function expandInputs(
  paths: readonly string[],
): Promise<{ files: InputFile[]; errors: AnalysisError[] }> {
  const files: InputFile[] = [];
  const errors: AnalysisError[] = [];
  const seen = new Set<string>();
  const fail = (path: string, error: unknown) => {
    const coded = asCodedError(error);
    errors.push({ file: path, entry: null, code: coded.code, message: coded.message });
  };
  const visit = async (path: string, top: boolean): Promise<void> => {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch (error) {
      fail(path, error);
      return;
    }
    if (info.isDirectory()) {
      let entries: Dirent[];
      try {
        entries = await readdir(path, { withFileTypes: true });
      } catch (error) {
        fail(path, error);
        return;
      }
      entries.sort((a, b) => a.name.localeCompare(b.name));
      for (const entry of entries) {
        if (entry.isSymbolicLink() && !top) {
          // Follow symlinked files, never symlinked directories.
          const target = await stat(join(path, entry.name)).catch(() => undefined);
          if (!target?.isFile()) continue;
        }
        await visit(join(path, entry.name), false);
      }
      return;
    }
    if (!info.isFile()) return;
    const key = `${info.dev}:${info.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    files.push({ path, size: info.size, mtime: info.mtime });
  };
  for (const path of paths) await visit(path, true);
  return { files, errors };
}
