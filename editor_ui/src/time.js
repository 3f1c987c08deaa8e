// Short, human times ("5 min ago", "in 3 days") for the list, the history and the share panel.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * @param {string} iso an ISO-8601 time
 * @param {number} [now] milliseconds since the epoch
 */
export function timeAgo(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  // Clocks drift between server and browser; a time slightly in the future is "just now".
  const age = Math.max(0, now - then);
  if (age < MINUTE) return "just now";
  if (age < HOUR) return `${Math.floor(age / MINUTE)} min ago`;
  if (age < DAY) return `${Math.floor(age / HOUR)} h ago`;
  if (age < 2 * DAY) return "yesterday";
  if (age < 7 * DAY) return `${Math.floor(age / DAY)} days ago`;
  const sameYear = new Date(then).getFullYear() === new Date(now).getFullYear();
  return new Date(then).toLocaleDateString(undefined, {
    day: "numeric",
    month: "short",
    year: sameYear ? undefined : "numeric",
  });
}

/**
 * How long until a time in the future ("in 3 days"); "now" once it has passed.
 * @param {string} iso an ISO-8601 time
 * @param {number} [now] milliseconds since the epoch
 */
export function timeUntil(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const left = then - now;
  if (left < MINUTE) return "now";
  if (left < HOUR) return `in ${Math.floor(left / MINUTE)} min`;
  if (left < DAY) return `in ${Math.floor(left / HOUR)} h`;
  // Rounded: a link made to last 7 days says so, not "6 days" a moment later.
  const days = Math.round(left / DAY);
  return days === 1 ? "in 1 day" : `in ${days} days`;
}
