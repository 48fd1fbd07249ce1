import type { App } from '@slack/bolt';

/**
 * A stand-in for Bolt's App that only records what is registered on it: the names of slash
 * commands and events, the action_id / callback_id constraints of actions, views, shortcuts and
 * options, and message patterns. registerListeners(app, deps) runs against it unchanged, so a test
 * can compare what the code really listens to with manifest.yml. Listeners are never called.
 *
 * A method it does not know (app.function, app.assistant, ...) throws, naming the method: teach
 * this recorder what that registration needs from the manifest rather than let it pass unseen.
 */

/** A string, a RegExp, or Bolt's constraint object reduced to the id it matches on. */
export type Matcher = string | RegExp;

export interface Registered {
  commands: Matcher[];
  events: Matcher[];
  /** action_id (or callback_id for legacy attachments and dialogs); undefined when matched by type or block only. */
  actions: Array<Matcher | undefined>;
  views: Array<Matcher | undefined>;
  shortcuts: Array<Matcher | undefined>;
  options: Array<Matcher | undefined>;
  /** app.message() calls: the string/RegExp patterns each one filters on (empty: every message). */
  messages: Matcher[][];
  /** Global middleware and error handlers: counted, nothing for the manifest. */
  middleware: number;
  errorHandlers: number;
}

const isMatcher = (value: unknown): value is Matcher => typeof value === 'string' || value instanceof RegExp;

/** The id a constraint matches on: the value itself, or its action_id / callback_id. */
function idOf(constraint: unknown, key: 'action_id' | 'callback_id'): Matcher | undefined {
  if (isMatcher(constraint)) return constraint;
  if (constraint !== null && typeof constraint === 'object') {
    const c = constraint as Record<string, unknown>;
    const id = c[key] ?? c.callback_id;
    return isMatcher(id) ? id : undefined;
  }
  return undefined;
}

export function recordingApp(): { app: App; registered: Registered } {
  const registered: Registered = {
    commands: [],
    events: [],
    actions: [],
    views: [],
    shortcuts: [],
    options: [],
    messages: [],
    middleware: 0,
    errorHandlers: 0,
  };
  const methods: Record<string, (...args: unknown[]) => void> = {
    command(name) {
      if (!isMatcher(name)) throw new TypeError('app.command() needs a command name');
      registered.commands.push(name);
    },
    event(name) {
      if (!isMatcher(name)) throw new TypeError('app.event() needs an event name');
      registered.events.push(name);
    },
    action: (constraint) => void registered.actions.push(idOf(constraint, 'action_id')),
    view: (constraint) => void registered.views.push(idOf(constraint, 'callback_id')),
    shortcut: (constraint) => void registered.shortcuts.push(idOf(constraint, 'callback_id')),
    options: (constraint) => void registered.options.push(idOf(constraint, 'action_id')),
    message: (...args) => void registered.messages.push(args.filter(isMatcher)),
    use: () => void registered.middleware++,
    error: () => void registered.errorHandlers++,
  };
  const app = new Proxy(methods, {
    get(target, property) {
      if (typeof property !== 'string') return undefined;
      if (property in target) return target[property];
      throw new Error(
        `the recording App does not know app.${String(property)}: add it to test/helpers/recording-app.ts`,
      );
    },
  });
  return { app: app as unknown as App, registered };
}
