import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INVESTIGATE_HELP, INVESTIGATE_SUBCOMMANDS, parseIncidentCommand } from '../../src/slack/commands.ts';

describe('parseIncidentCommand', () => {
  it('opens an incident for a host, with an optional note', () => {
    assert.deepEqual(parseIncidentCommand('web-1 disk full again'), {
      kind: 'open',
      host: 'web-1',
      note: 'disk full again',
    });
    assert.deepEqual(parseIncidentCommand('  db-2.internal  '), {
      kind: 'open',
      host: 'db-2.internal',
      note: '',
    });
  });

  it('reads the verbs, with or without an incident number', () => {
    assert.deepEqual(parseIncidentCommand('status'), { kind: 'status' });
    assert.deepEqual(parseIncidentCommand('status #12'), { kind: 'status', incident: 12 });
    assert.deepEqual(parseIncidentCommand('Resolve 7'), { kind: 'set', status: 'resolved', incident: 7 });
    assert.deepEqual(parseIncidentCommand('mitigated'), { kind: 'set', status: 'mitigated' });
    assert.deepEqual(parseIncidentCommand('summary #3'), { kind: 'summary', incident: 3 });
  });

  it('answers bad usage with help that says what was wrong', () => {
    assert.deepEqual(parseIncidentCommand(''), { kind: 'help' });
    assert.deepEqual(parseIncidentCommand('help'), { kind: 'help' });
    assert.deepEqual(parseIncidentCommand('status web-1'), {
      kind: 'help',
      problem: '"web-1" is not an incident number like #12',
    });
    assert.deepEqual(parseIncidentCommand('resolve #1 now'), {
      kind: 'help',
      problem: 'unexpected words after resolve #1',
    });
    assert.deepEqual(parseIncidentCommand('`rm -rf /`'), {
      kind: 'help',
      problem: '"`rm" does not look like a host name',
    });
  });

  it('names every subcommand in its help', () => {
    for (const sub of INVESTIGATE_SUBCOMMANDS)
      assert.match(INVESTIGATE_HELP, new RegExp(`\\b${sub}\\b`), sub);
  });
});
