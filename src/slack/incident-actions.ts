import { randomUUID } from 'node:crypto';
import { asCodedError, ErrorCode } from '../errors.ts';
import {
  getIncident,
  type Incident,
  incidentByThread,
  openIncidentByHand,
  setStatus,
  timeline,
} from '../incidents/incidents.ts';
import type { Db } from '../store/db.ts';
import { unresolvedIncidentIds } from '../store/fleet.ts';
import { statusChangeKey } from '../store/message-keys.ts';
import { queueThreadMessage } from '../store/records.ts';
import { statusReply, summaryMarkdown } from './blocks/incident.ts';
import { md, mentionUser, mrkdwnSection } from './blocks/mrkdwn.ts';
import { INVESTIGATE_HELP, type IncidentCommand } from './commands.ts';
import type { ListenerDeps } from './deps.ts';
import { markRelatedStale, summaryFacts } from './fleet.ts';

/**
 * What a parsed command does, shared by `/investigate` and an @-mention in a thread. Returns the
 * text to answer the asker with, as mrkdwn (hosts, titles and the asker's own words escaped); thread
 * replies go through the outbox so they are posted once.
 */

async function onlyOpenIncident(db: Db): Promise<Incident | string> {
  const ids = await unresolvedIncidentIds(db);
  if (ids.length === 1) return (await getIncident(db, ids[0]!))!;
  if (ids.length === 0) return md`There is no open incident.`.text;
  return `There are ${ids.length} open incidents (${ids.map((id) => `#${id}`).join(', ')}): say which, e.g. \`status #${ids[0]}\`.`;
}

export async function resolveIncident(
  deps: ListenerDeps,
  id: number | undefined,
  thread?: { channel: string; ts: string },
): Promise<Incident | string> {
  if (id !== undefined) return (await getIncident(deps.db, id)) ?? md`There is no incident #${id}.`.text;
  if (thread) {
    const here = await incidentByThread(deps.db, thread.channel, thread.ts);
    if (here) return here;
  }
  return onlyOpenIncident(deps.db);
}

async function replyInThread(
  deps: ListenerDeps,
  incident: Incident,
  key: string,
  message: { text: string; blocks: unknown[] },
) {
  await queueThreadMessage(deps.db, {
    incidentId: incident.id,
    key,
    fallbackChannel: deps.channel,
    body: { type: 'text', text: message.text, blocks: message.blocks },
  });
  deps.kick();
}

type CommandContext = {
  user: string;
  channel: string;
  thread?: { channel: string; ts: string };
  requestId: string;
};

export async function runIncidentCommand(
  deps: ListenerDeps,
  command: IncidentCommand,
  context: CommandContext,
): Promise<string> {
  if (command.kind === 'help')
    return command.problem ? `${md`${command.problem}`.text}.\n${INVESTIGATE_HELP}` : INVESTIGATE_HELP;
  if (command.kind === 'open') return openByHand(deps, command, context);
  const found = await resolveIncident(deps, command.incident, context.thread);
  if (typeof found === 'string') return found;
  const incident = found;
  if (command.kind === 'status') {
    return md`#${incident.id} ${incident.title}: ${incident.status}, severity ${incident.severity}, commander ${incident.commander ? mentionUser(incident.commander) : 'nobody yet'}.`
      .text;
  }
  if (command.kind === 'summary') return queueSummary(deps, incident, context);
  return changeStatus(deps, incident, command.status, context);
}

/** `/investigate <host> [note]`: opens an incident for the host, or joins its open one. */
async function openByHand(
  deps: ListenerDeps,
  command: Extract<IncidentCommand, { kind: 'open' }>,
  context: CommandContext,
): Promise<string> {
  const { incident, opened } = await openIncidentByHand(deps.db, {
    host: command.host,
    note: command.note,
    user: context.user,
    channel: deps.channel,
  });
  deps.kick();
  if (!opened) {
    if (command.note) {
      const said = md`${mentionUser(context.user)} joined with /investigate: ${command.note}`;
      await replyInThread(deps, incident, `investigate:${incident.id}:${context.requestId}`, {
        text: said.text,
        blocks: [mrkdwnSection(said)],
      });
    }
    return md`${incident.host} already has incident #${incident.id} (${incident.status}); joined it${command.note ? ', your note is in its thread' : ''}.`
      .text;
  }
  // The same collection a disk alert starts; its job says in the thread what it collects and
  // what it found. Not started here means the sweeper queues it within minutes.
  const collecting = deps.startCollection
    ? await deps.startCollection(incident.id, incident.host).then(
        () => true,
        (error: unknown) => {
          deps.log.error(
            { err: error, incident: incident.id },
            'could not start collection; the sweeper will retry',
          );
          return true;
        },
      )
    : false;
  return md`Opened incident #${incident.id} for ${incident.host} in ${deps.channel}${collecting ? `; collecting on ${incident.host} over SSH, as for a disk alert (in its thread)` : ''}.`
    .text;
}

/** `/investigate summary`: the postmortem-ready summary, queued for the thread as a file. */
async function queueSummary(
  deps: ListenerDeps,
  incident: Incident,
  context: CommandContext,
): Promise<string> {
  const markdown = summaryMarkdown(
    incident,
    await timeline(deps.db, incident.id),
    deps.now(),
    await summaryFacts(deps.db, incident.id),
  );
  // As a file: a timeline is long, and a snippet reads (and copies into a postmortem) on a phone.
  await queueThreadMessage(deps.db, {
    incidentId: incident.id,
    key: `summary:${incident.id}:${context.requestId}`,
    fallbackChannel: deps.channel,
    body: {
      type: 'file',
      content: markdown,
      filename: `incident-${incident.id}-summary.md`,
      title: `Incident #${incident.id} summary`,
      comment: `Postmortem-ready summary of #${incident.id}, from the database.`,
    },
  });
  deps.kick();
  return md`The summary of #${incident.id} is in its thread, as a file.`.text;
}

/** `/investigate investigating|mitigated|resolve`: moves the incident, says so in its thread. */
async function changeStatus(
  deps: ListenerDeps,
  incident: Incident,
  status: Extract<IncidentCommand, { kind: 'set' }>['status'],
  context: CommandContext,
): Promise<string> {
  try {
    const updated = await setStatus(deps.db, incident.id, status, context.user);
    // The incidents with the same crash name this one while it is not resolved.
    await markRelatedStale(deps.db, updated.id);
    await replyInThread(
      deps,
      updated,
      statusChangeKey(incident.id, context.requestId),
      statusReply(updated, context.user),
    );
    await deps.refresh(updated.id).catch(() => {});
    return md`#${updated.id} is now ${updated.status}.`.text;
  } catch (error) {
    return refusalOrGeneric(deps, error);
  }
}

/**
 * What a person is told when a command could not be done: the reason for what the code decides
 * (no such incident, a change the states do not allow), said as it is; anything else, a database
 * error say, as a short line with an id that names it in the log, never its raw text.
 */
export function refusalOrGeneric(deps: Pick<ListenerDeps, 'log'>, error: unknown): string {
  const coded = asCodedError(error);
  if (coded.code === ErrorCode.InvalidTransition || coded.code === ErrorCode.NotFound)
    return md`${coded.message}`.text;
  const id = randomUUID().slice(0, 8);
  deps.log.error({ err: error, errorId: id }, 'an incident command failed');
  return md`That did not work (error ${id}; the bot's log has the details).`.text;
}
