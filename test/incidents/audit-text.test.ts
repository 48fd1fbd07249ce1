import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeAudit } from '../../src/incidents/audit-text.ts';

const SHA = '23a0b8cfaa34412f10a9930f14342d78210af62b3c1d86823da85501503288dd';

describe('audit entries in the timeline', () => {
  it('say who approved which proposal, and how', () => {
    assert.equal(
      describeAudit({
        action: 'proposal.approved',
        actor: 'U0APPROVER',
        subject: { via: 'button', sha256: SHA, proposal: 1, required: 1, approvals: 1 },
      }),
      'proposal.approved by U0APPROVER: proposal #1, via button, approval 1 of 1, sha256 23a0b8cfaa34',
    );
  });

  it('say what a refused decision asked for, how, and why it was refused', () => {
    assert.equal(
      describeAudit({
        action: 'proposal.decision_refused',
        actor: 'U0STRANGER',
        subject: { via: 'reaction', reason: 'not_approver', sha256: SHA, decision: 'approved', proposal: 1 },
      }),
      'proposal.decision_refused by U0STRANGER: proposal #1, to approve, via reaction, reason: not_approver, sha256 23a0b8cfaa34',
    );
  });

  it('say where a proposal runs and how its run ended', () => {
    assert.equal(
      describeAudit({
        action: 'proposal.created',
        actor: 'agent',
        subject: {
          kind: 'sql',
          sha256: SHA,
          target: 'crm',
          proposal: 1,
          toolUse: 'toolu_01',
          text: 'SELECT 1\n  FROM t',
        },
      }),
      'proposal.created by agent: proposal #1, sql on crm, sha256 23a0b8cfaa34, text: SELECT 1 FROM t',
    );
    assert.equal(
      describeAudit({
        action: 'run.finished',
        actor: 'nightshift',
        subject: { ok: false, run: 2, exitCode: null, proposal: 1, durationMs: 12, error: 'refused' },
      }),
      'run.finished by nightshift: proposal #1, run 2, failed, 12 ms, error: refused',
    );
    assert.equal(
      describeAudit({
        action: 'run.result_posted',
        actor: 'nightshift',
        subject: { run: 1, file: 'run-1-crm.csv', bytes: 212, proposal: 1, fileBytes: 88 },
      }),
      'run.result_posted by nightshift: proposal #1, run 1, file run-1-crm.csv (88 bytes), a reply of 212 characters',
    );
  });

  it('show keys it does not know as they are, and nothing for an empty subject', () => {
    assert.equal(
      describeAudit({
        action: 'job.finished',
        actor: 'nightshift',
        subject: {
          job: '39eda13c-f6fb-4758-9a7c-9b6089679661',
          dumps: 8,
          queue: 'analyze-evidence',
          gone: null,
        },
      }),
      'job.finished by nightshift: job 39eda13c, dumps 8, queue analyze-evidence',
    );
    assert.equal(
      describeAudit({ action: 'incident.status', actor: 'U1', subject: { from: 'open', to: 'resolved' } }),
      'incident.status by U1: from open, to resolved',
    );
    assert.equal(describeAudit({ action: 'x.y', actor: 'a', subject: {} }), 'x.y by a');
  });
});
