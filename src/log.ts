/**
 * The gateway's log lines: one JSON object per line on the console (Workers Logs and
 * `wrangler tail` show them deployed, the `npm start` terminal locally), or a readable line with
 * `LOG_FORMAT=pretty`. `LOG_LEVEL` drops the lines below it (`none`: every line). Callers pass fields that never hold a
 * credential or a message body; URLs go through `redactUrl` first.
 */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  log(level: LogLevel, event: string, fields?: LogFields): void;
}

/** The part of an environment (the Worker's, or a route object's) that says how to log. */
export interface LoggingEnv {
  LOG_LEVEL?: unknown;
  LOG_FORMAT?: unknown;
}

/** A logger for the Worker's (or the object's) environment. */
export const createLogger = (env: LoggingEnv): Logger => {
  const levelName = typeof env.LOG_LEVEL === "string" ? env.LOG_LEVEL.toLowerCase() : "info";
  // `none` writes nothing; an unknown level is taken as the default, not as "everything".
  const threshold =
    levelName === "none" ? LOG_LEVELS.length : LOG_LEVELS.includes(levelName as LogLevel) ? LOG_LEVELS.indexOf(levelName as LogLevel) : 1;
  const pretty = env.LOG_FORMAT === "pretty";
  return {
    log(level, event, fields = {}) {
      if (LOG_LEVELS.indexOf(level) < threshold) return;
      const line = pretty ? prettyLine(level, event, fields) : JSON.stringify({ time: new Date().toISOString(), level, event, ...fields });
      if (level === "error") console.error(line);
      else if (level === "warn") console.warn(line);
      else console.log(line);
    },
  };
};

const prettyLine = (level: LogLevel, event: string, fields: LogFields): string => {
  const rest = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === "string" && /\s/.test(value) ? JSON.stringify(value) : String(value)}`)
    .join(" ");
  return `${new Date().toISOString().slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${event} ${rest}`.trimEnd();
};
