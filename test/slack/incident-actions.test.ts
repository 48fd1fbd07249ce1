import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { CodedError, ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { refusalOrGeneric } from '../../src/slack/incident-actions.ts';

/** A logger whose lines are kept, to find the error id the person was given. */
function recordingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { log: createLogger({ level: 'info', destination }), lines };
}

describe('what a person is told when an incident command fails', () => {
  it('says the reason the code decides: a change the states do not allow, no such incident', () => {
    const { log, lines } = recordingLog();
    const transition = new CodedError(
      ErrorCode.InvalidTransition,
      'incident #3 is resolved; it cannot become mitigated',
    );
    assert.equal(
      refusalOrGeneric({ log }, transition),
      'incident #3 is resolved; it cannot become mitigated',
    );
    assert.equal(
      refusalOrGeneric({ log }, new CodedError(ErrorCode.NotFound, 'no incident #9')),
      'no incident #9',
    );
    assert.equal(lines.length, 0);
  });

  it("never shows a database error's text: a short line with an id, the error in the log under it", () => {
    const { log, lines } = recordingLog();
    const error = Object.assign(
      new Error('duplicate key value violates unique constraint "incidents_pkey" <!channel>'),
      {
        code: '23505',
      },
    );
    const told = refusalOrGeneric({ log }, error);
    assert.doesNotMatch(told, /duplicate|constraint|incidents_pkey|channel/);
    const id = /error ([0-9a-f]{8})/.exec(told)?.[1];
    assert.ok(id, told);
    const logged = lines.find((l) => l.errorId === id);
    assert.ok(logged, 'the log names it by the same id');
    assert.match(JSON.stringify(logged.err), /duplicate key value/);
  });
});
