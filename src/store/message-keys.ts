/**
 * The dedup keys of the messages a run queues for its incident's thread, made in one place: the
 * runner writes them and the agent reads a run's reply back by the same key.
 */

/** `result`: the run's reply; `late`: a reply after the sweeper failed the run; `file`: its whole output. */
export type RunMessagePart = 'result' | 'late' | 'file';

export const runMessageKey = (runId: number, part: RunMessagePart): string => `run:${runId}:${part}`;
