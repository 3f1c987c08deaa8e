// The sign-in and sign-up page (/signin, /signup): one form, worded for the mode and for the
// server's state (first account, sign-up closed), then on to ?next= once signed in.

import { ApiError, authPath, callApi, safeNext } from "./api.js";
import { byId } from "./dom.js";
import { bindThemeToggle } from "./theme.js";

/** @typedef {"signin" | "signup" | "first" | "closed"} Mode */

// The server's rules (it lowercases the username); checking here first saves a round trip.
const USERNAME = /^[a-z0-9][a-z0-9_.-]{1,31}$/;
const MIN_PASSWORD = 8;
const MAX_PASSWORD = 1024;

const form = /** @type {HTMLFormElement} */ (byId("auth-form"));
const username = /** @type {HTMLInputElement} */ (byId("auth-username"));
const password = /** @type {HTMLInputElement} */ (byId("auth-password"));
const submit = /** @type {HTMLButtonElement} */ (byId("auth-submit"));
const errorBox = byId("auth-error");
const next = safeNext(new URLSearchParams(location.search).get("next"));
const signingUp = location.pathname.replace(/\/+$/, "") === "/signup";

/** @type {Record<Mode, {heading: string, note: string, submit: string}>} */
const WORDING = {
  signin: { heading: "Sign in", note: "Welcome back. Sign in to write.", submit: "Sign in" },
  signup: {
    heading: "Create an account",
    note: "Your username is what the others see next to your cursor.",
    submit: "Create account",
  },
  first: {
    heading: "Create the first account",
    note: "No one has an account here yet. The first account is the administrator's.",
    submit: "Create the first account",
  },
  closed: {
    heading: "Sign-up is closed",
    note: "New accounts are not open to everyone here. Ask an admin of this Cowrite to create one for you.",
    submit: "Create account",
  },
};

/**
 * @param {Mode} mode
 * @param {"open" | "closed"} signup
 */
function show(mode, signup) {
  const words = WORDING[mode];
  document.body.dataset.mode = mode;
  byId("auth-heading").textContent = words.heading;
  byId("auth-heading").dataset.mode = mode;
  byId("auth-note").textContent = words.note;
  submit.textContent = words.submit;
  document.title = `${words.heading} — Cowrite`;
  const creating = mode === "signup" || mode === "first";
  form.hidden = mode === "closed";
  password.autocomplete = creating ? "new-password" : "current-password";
  byId("username-hint").hidden = !creating;
  byId("password-hint").hidden = !creating;

  const switcher = byId("auth-switch");
  switcher.replaceChildren();
  if (mode === "first") return; // no account exists to sign in to
  if (mode === "signin" && signup === "closed") {
    switcher.textContent = "No account? Ask an admin of this Cowrite for one.";
    return;
  }
  const link = document.createElement("a");
  if (mode === "signin") {
    switcher.append("New here? ");
    link.href = authPath("signup", next);
    link.textContent = "Create an account";
  } else {
    switcher.append("Already have an account? ");
    link.href = authPath("signin", next);
    link.textContent = "Sign in";
  }
  switcher.append(link);
}

/** @param {string} message */
function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

/** @type {ReturnType<typeof setInterval> | undefined} */
let countdown;

/**
 * Too many attempts: say how long to wait, counting down, and keep the button off until then.
 * @param {number} seconds
 */
function waitOut(seconds) {
  clearInterval(countdown);
  const until = Date.now() + Math.max(1, seconds) * 1000;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(countdown);
      clearError();
      submit.disabled = false;
      return;
    }
    showError(`Too many attempts, try again in ${left} s.`);
  };
  submit.disabled = true;
  tick();
  countdown = setInterval(tick, 1000);
}

/**
 * @param {ApiError | unknown} exc
 * @param {string} name the username tried
 */
function explain(exc, name) {
  if (!(exc instanceof ApiError)) return String(exc);
  switch (exc.code) {
    case "bad_credentials":
      return "Wrong username or password.";
    case "username_taken":
      return `The username “${name}” is taken. Pick another, or sign in.`;
    case "signup_closed":
      return "Sign-up is closed. Ask an admin of this Cowrite to create an account for you.";
    case "csrf":
      return "The server refused the request as coming from another site. Reload this page and try again.";
    case "network":
      return "The server could not be reached. Check the connection and try again.";
    default:
      return exc.message;
  }
}

/**
 * What is wrong with the form before asking the server, or "".
 * @param {boolean} creating
 * @param {string} name lowercased
 */
function problem(creating, name) {
  if (!name) return "Type your username.";
  if (!password.value) return creating ? "Choose a password." : "Type your password.";
  if (!creating) return "";
  if (!USERNAME.test(name)) {
    return "Usernames are 2–32 characters: letters, digits and _ . -, starting with a letter or digit.";
  }
  if (password.value.length < MIN_PASSWORD) return `Passwords need at least ${MIN_PASSWORD} characters.`;
  if (password.value.length > MAX_PASSWORD) return `Passwords are at most ${MAX_PASSWORD} characters.`;
  return "";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const creating = document.body.dataset.mode === "signup" || document.body.dataset.mode === "first";
  const name = username.value.trim().toLowerCase();
  const wrong = problem(creating, name);
  if (wrong) {
    showError(wrong);
    (name ? password : username).focus();
    return;
  }
  submit.disabled = true;
  clearError();
  try {
    await callApi("POST", creating ? "/api/auth/signup" : "/api/auth/signin", {
      username: name,
      password: password.value,
    });
    location.assign(next);
  } catch (exc) {
    if (exc instanceof ApiError && exc.code === "rate_limited") {
      waitOut(exc.retryAfterS ?? 1);
      return;
    }
    showError(explain(exc, name));
    submit.disabled = false;
    if (exc instanceof ApiError && exc.code === "bad_credentials") {
      password.select();
      password.focus();
    }
  }
});

const reveal = /** @type {HTMLButtonElement} */ (byId("show-password"));
reveal.addEventListener("click", () => {
  const visible = password.type === "password";
  password.type = visible ? "text" : "password";
  reveal.textContent = visible ? "Hide" : "Show";
  reveal.setAttribute("aria-pressed", String(visible));
  password.focus();
});

async function main() {
  bindThemeToggle(/** @type {HTMLButtonElement} */ (byId("theme-toggle")));
  /** @type {{user: unknown, signup: "open" | "closed", first_run: boolean} | null} */
  let status = null;
  try {
    status = await callApi("GET", "/api/auth/status");
  } catch (exc) {
    // Still offer the form; submitting says what is wrong if the server stays away.
    showError(explain(exc, ""));
  }
  if (status && status.user) {
    location.replace(next);
    return;
  }
  if (status && status.first_run && !signingUp) {
    // Nobody can sign in yet: the page to be on is the one that creates the first account.
    location.replace(authPath("signup", next));
    return;
  }
  const signup = status ? status.signup : "open";
  /** @type {Mode} */
  let mode = "signin";
  if (signingUp) mode = status && status.first_run ? "first" : signup === "closed" ? "closed" : "signup";
  show(mode, signup);
  document.body.dataset.state = "ready";
  if (!form.hidden) username.focus();
}

main();
