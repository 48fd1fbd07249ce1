import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { reportJsonSchema } from '../../src/analyze/report-schema.ts';

it('docs/report.schema.json is the schema the code validates with (run `npm run schema` when it is not)', () => {
  const committed = readFileSync(new URL('../../docs/report.schema.json', import.meta.url), 'utf8');
  assert.equal(committed, reportJsonSchema());
});
