import { readFileSync } from 'node:fs';
import { CodedError, ErrorCode } from '../errors.ts';

/** A configuration file's text; one that cannot be read is a configuration error naming it. */
export function readConfigFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new CodedError(
      ErrorCode.ConfigInvalid,
      `cannot read the ${what} ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}
