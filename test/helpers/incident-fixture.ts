import type { Incident } from '../../src/incidents/incidents.ts';

/**
 * Incident #12 as the pure Slack renderers get it: a disk incident on web-1, opened by an
 * Alertmanager alert at 23:01 UTC, investigating, its root posted, no commander and no earlier
 * incident unless `overrides` gives them.
 */
export const diskIncident = (overrides: Partial<Incident> = {}): Incident => ({
  id: 12,
  groupKey: 'web-1:disk',
  host: 'web-1',
  problem: 'disk',
  title: 'Disk / filling on web-1',
  status: 'investigating',
  severity: 'critical',
  commander: null,
  channel: 'C1',
  rootTs: '1.2',
  previousIncidentId: null,
  openedBy: 'alert:alertmanager',
  openedAt: new Date('2026-11-25T23:01:00Z'),
  resolvedAt: null,
  ...overrides,
});
