// The JSON API client every page uses: one place that turns HTTP failures into ApiError, and
// sends a writer whose session has ended back to the sign-in page.

/** An API call that failed: the server's error code and message, or a network failure. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, or 0 when the server could not be reached
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    /** For code "rate_limited": how many seconds to wait before trying again. */
    /** @type {number | undefined} */
    this.retryAfterS = undefined;
  }
}

/**
 * Call the JSON API; resolves to the parsed body, or null for an empty answer (204).
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {{keepalive?: boolean}} [options]
 * @returns {Promise<any>}
 */
export async function callApi(method, path, body, options = {}) {
  /** @type {RequestInit} */
  const init = { method, headers: { Accept: "application/json" }, keepalive: options.keepalive };
  if (body !== undefined) {
    init.headers = { ...init.headers, "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const error = payload && payload.error;
    const code = (error && error.code) || `http_${response.status}`;
    if (response.status === 401 && code === "unauthenticated") {
      goToSignIn();
      // The page is leaving; settling would only flash an error on it first.
      return new Promise(() => {});
    }
    const failure = new ApiError(
      response.status,
      code,
      (error && error.message) || `The server answered ${response.status} ${response.statusText}.`,
    );
    if (error && typeof error.retry_after_s === "number") failure.retryAfterS = error.retry_after_s;
    else if (response.headers.has("Retry-After")) failure.retryAfterS = Number(response.headers.get("Retry-After"));
    throw failure;
  }
  return payload;
}

/**
 * Where to go after signing in: a path of this site ("/d/abc"), never another site. `next` is
 * read the way the browser will read it (the URL parser drops tabs and newlines, turns "\\"
 * into "/", and takes "//host" or "https:host" as another host), and kept only when it lands on
 * this origin; anything else, or nothing, is "/".
 * @param {string | null} value
 */
export function safeNext(value) {
  if (!value) return "/";
  let target;
  try {
    target = new URL(value, location.origin);
  } catch {
    return "/";
  }
  if (target.origin !== location.origin) return "/";
  // A path of this origin may still start with "//" ("/a/..//elsewhere"); said again as a
  // relative URL, that would name a host.
  return target.pathname.replace(/^\/+/, "/") + target.search + target.hash;
}

/**
 * The sign-in (or sign-up) page, coming back to `next` afterwards.
 * @param {"signin" | "signup"} [mode]
 * @param {string} [next] defaults to this page
 */
export function authPath(mode = "signin", next = location.pathname + location.search) {
  const target = safeNext(next);
  return target === "/" ? `/${mode}` : `/${mode}?next=${encodeURIComponent(target)}`;
}

/** The session ended (or never began): sign in again, then come back here. */
export function goToSignIn() {
  location.assign(authPath("signin"));
}

/** The account this page was opened for (see session.js), once known. */
let pageAccount = "";
/** Set while this page signs out: its own sign-out navigates, once its local copies are gone. */
let signingOut = false;

/** This page is signing out: sockets that close now (4401) must not navigate away first. */
export function beginSigningOut() {
  signingOut = true;
}

/** Signing out failed (the server could not be reached): the page stays and goes on. */
export function endSigningOut() {
  signingOut = false;
}
/** When each socket last resumed after its session ended, so that a loop of 4401s cannot spin. */
const lastResume = new Map();
const RESUME_AGAIN_AFTER_MS = 10_000;

/** @param {string} username */
export function rememberAccount(username) {
  pageAccount = username;
}

/** A request in flight that gives this browser a new session (a password change), if any. */
let renewal = Promise.resolve();

/**
 * Note a request that replaces this browser's session: the server closes the old session's
 * sockets (4401) before its answer brings the new cookie, so they wait for it (see below).
 * @template T
 * @param {Promise<T>} request
 * @returns {Promise<T>}
 */
export function renewingSession(request) {
  renewal = request.then(
    () => undefined,
    () => undefined,
  );
  return request;
}

/**
 * A socket was closed (4401) because the session it was opened under ended. This browser may
 * already hold a newer session of the same account (changing the password here gives it one at
 * once, and ends the old one): then `resume` reopens the socket. Otherwise, sign in again.
 * @param {string} socket which socket ("document", "suggestions")
 * @param {() => void} resume
 */
export async function afterSessionEnded(socket, resume) {
  if (signingOut) return; // the sign-out itself goes to the sign-in page, after deleting local copies
  await renewal;
  let status = null;
  try {
    status = await callApi("GET", "/api/auth/status");
  } catch {
    status = null;
  }
  const same = status && status.user && pageAccount !== "" && status.user.username === pageAccount;
  if (same && Date.now() - (lastResume.get(socket) || 0) > RESUME_AGAIN_AFTER_MS) {
    lastResume.set(socket, Date.now());
    resume();
    return;
  }
  if (!signingOut) goToSignIn();
}

/** @param {string} id */
export function documentPath(id) {
  return `/api/documents/${encodeURIComponent(id)}`;
}
