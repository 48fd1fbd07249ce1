/**
 * Writes docs/report.schema.json, the JSON Schema of `nightshift analyze --json`, from the zod
 * schema the code validates its output with. A test fails when the committed file is stale.
 */
import { writeFileSync } from 'node:fs';
import { reportJsonSchema } from '../src/analyze/report-schema.ts';

writeFileSync(new URL('../docs/report.schema.json', import.meta.url), reportJsonSchema());
