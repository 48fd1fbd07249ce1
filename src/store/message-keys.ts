/**
 * The dedup keys of the messages queued for an incident's thread (and its root), made in one place:
 * the writer of a message and whoever reads it back (the agent reads a run's reply, the outbox
 * finds a message by its key's prefix) build the key with the same function.
 */

/** `result`: the run's reply; `late`: a reply after the sweeper failed the run; `file`: its whole output. */
export type RunMessagePart = 'result' | 'late' | 'file';

export const runMessageKey = (runId: number, part: RunMessagePart): string => `run:${runId}:${part}`;

/** The incident's root message in the channel. */
export const rootMessageKey = (incidentId: number): string => `incident:${incidentId}:root`;

/** A reply about one alert of the incident (its grouping key). */
export const alertMessageKey = (alertKey: string): string => `alert:${alertKey}`;

/** The incident's status message, edited in place. */
export const statusMessageKey = (incidentId: number): string => `status:${incidentId}`;

/** A reply to a status change (a button or command), once per request. */
export const statusChangeKey = (incidentId: number, requestId: string): string =>
  `status:${incidentId}:${requestId}`;

/** A proposal's message (edited as it is decided); `file`: the proposal's whole text. */
export const proposalMessageKey = (proposalId: number, part?: 'file'): string =>
  part ? `proposal:${proposalId}:${part}` : `proposal:${proposalId}`;

/** The agent's notices: off (no key), its budget spent, a turn that failed (by job). */
export const agentNoticeKey = (incidentId: number, notice: 'off' | 'budget' | `error:${string}`): string =>
  `agent:${incidentId}:${notice}`;

/** The agent's reply to one thread message. */
export const agentTurnKey = (incidentId: number, messageId: number): string =>
  `agent:${incidentId}:turn:${messageId}`;

/** A job's replies: `part` names which (a phase, `findings:<i>`). */
export const jobMessageKey = (queueJobId: string, part: string): string => `job:${queueJobId}:${part}`;
