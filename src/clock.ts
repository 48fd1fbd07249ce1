/**
 * What time it is, passed in wherever time decides something (an approval window, a heartbeat's
 * age, a message's "x minutes ago"): tests drive it, and only the composition root reads the
 * wall clock (systemClock).
 */
export type Clock = () => Date;

/** The wall clock: main.ts and the CLI commands use it; nothing else defaults to it. */
export const systemClock: Clock = () => new Date();
