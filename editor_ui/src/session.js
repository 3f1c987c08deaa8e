// The signed-in account: who it is (GET /api/auth/status) and the header's account corner, on the
// list and the editor page alike: the username, which opens the account panel (change the
// password), and the "Sign out" button.

import { ApiError, beginSigningOut, callApi, endSigningOut, goToSignIn, rememberAccount, renewingSession } from "./api.js";
import { deleteLocalCopies } from "./localcopy.js";

/** @typedef {{username: string, is_admin: boolean}} Account */

// The server's rules for a new password (POST /api/auth/password); checking first saves a round trip.
const MIN_PASSWORD = 8;
const MAX_PASSWORD = 1024;
/** How long the "Password changed" confirmation stays up, unless dismissed sooner. */
const DONE_VISIBLE_MS = 10_000;

/**
 * The account this page runs for. The server only serves these pages to a session, so a missing
 * one means it ended in between: the page leaves for the sign-in page and this never resolves.
 * @returns {Promise<Account>}
 */
export async function signedInAccount() {
  const status = await callApi("GET", "/api/auth/status");
  if (!status || !status.user) {
    goToSignIn();
    return new Promise(() => {});
  }
  rememberAccount(status.user.username);
  return status.user;
}

/**
 * Fill the header's account corner: the username (a button opening the account panel) and a
 * "Sign out" button.
 * @param {HTMLElement} corner an element holding [data-testid=account-button] (with
 *   [data-testid=account-name] inside) and [data-testid=sign-out]
 * @param {Account} account
 * @param {import("./panels.js").Panels} panels the page's popovers, so that one is open at a time
 * @param {string[]} [localCopies] local copies this page holds open (see localcopy.js); every
 *   copy of the account is deleted at sign-out anyway, these too where the browser cannot list them
 */
export function bindAccount(corner, account, panels, localCopies = []) {
  const name = /** @type {HTMLElement} */ (corner.querySelector("[data-testid=account-name]"));
  const button = /** @type {HTMLButtonElement} */ (corner.querySelector("[data-testid=account-button]"));
  const signOut = /** @type {HTMLButtonElement} */ (corner.querySelector("[data-testid=sign-out]"));
  name.textContent = account.username;
  const who = account.is_admin ? `Signed in as ${account.username} (administrator)` : `Signed in as ${account.username}`;
  button.title = `${who}. Change your password`;
  // The name is hidden on narrow screens; the button keeps its accessible name there.
  button.setAttribute("aria-label", `Account: ${account.username}`);
  button.setAttribute("aria-haspopup", "dialog");
  corner.hidden = false;
  new PasswordPanel(button, account, panels);
  signOut.addEventListener("click", async () => {
    signOut.disabled = true;
    beginSigningOut(); // the sockets this ends (4401) leave the navigating to this handler
    try {
      await callApi("POST", "/api/auth/signout");
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 0) {
        // Unreachable: the session still stands, so staying here is the honest answer.
        endSigningOut();
        signOut.disabled = false;
        signOut.title = `Signing out failed: ${exc.message}`;
        return;
      }
      // Any other answer means there is no session left to end.
    }
    // A shared computer keeps nothing of this account's documents once it has signed out.
    await deleteLocalCopies(account.username, localCopies);
    location.assign("/signin");
  });
}

// The panel's markup holds no data; the username is filled in as text.
const PANEL_HTML = `
  <h2 id="password-heading">Change password</h2>
  <p class="account-who"></p>
  <form class="password-form" novalidate>
    <input type="text" name="username" autocomplete="username" hidden readonly tabindex="-1">
    <div class="auth-field">
      <label for="password-current">Current password</label>
      <input type="password" id="password-current" name="current-password" data-testid="password-current"
             autocomplete="current-password" maxlength="${MAX_PASSWORD}" required>
    </div>
    <div class="auth-field">
      <label for="password-new">New password</label>
      <input type="password" id="password-new" name="new-password" data-testid="password-new"
             autocomplete="new-password" maxlength="${MAX_PASSWORD}" minlength="${MIN_PASSWORD}"
             aria-describedby="password-new-hint" required>
      <p class="hint" id="password-new-hint">At least ${MIN_PASSWORD} characters.</p>
    </div>
    <div class="auth-field">
      <label for="password-repeat">Repeat new password</label>
      <input type="password" id="password-repeat" name="repeat-password" data-testid="password-repeat"
             autocomplete="new-password" maxlength="${MAX_PASSWORD}" required>
    </div>
    <p class="error password-error" data-testid="password-error" role="alert" hidden></p>
    <p class="hint password-note">Your other devices will be signed out; this one stays signed in.</p>
    <div class="dialog-actions">
      <button type="button" class="button quiet" data-testid="password-cancel">Cancel</button>
      <button type="submit" class="button primary" data-testid="password-save">Save</button>
    </div>
  </form>`;

/**
 * The account panel under the username: change this account's password
 * (POST /api/auth/password). The server ends the account's other sessions and gives this browser
 * a fresh session cookie, so the page stays signed in.
 */
class PasswordPanel {
  /**
   * @param {HTMLButtonElement} button
   * @param {Account} account
   * @param {import("./panels.js").Panels} panels
   */
  constructor(button, account, panels) {
    this.button = button;
    this.panels = panels;
    this.panel = document.createElement("section");
    this.panel.id = "password-panel";
    this.panel.className = "popover account-panel";
    this.panel.setAttribute("role", "dialog");
    this.panel.setAttribute("aria-labelledby", "password-heading");
    this.panel.dataset.testid = "password-panel";
    this.panel.innerHTML = PANEL_HTML;
    /** @type {HTMLElement} */ (this.panel.querySelector(".account-who")).textContent =
      `Signed in as ${account.username}${account.is_admin ? " (administrator)" : ""}.`;
    this.form = /** @type {HTMLFormElement} */ (this.panel.querySelector("form"));
    /** @type {HTMLInputElement} */ (this.form.elements.namedItem("username")).defaultValue = account.username;
    this.current = this.input("password-current");
    this.fresh = this.input("password-new");
    this.repeat = this.input("password-repeat");
    this.error = this.byTestId("password-error");
    this.save = /** @type {HTMLButtonElement} */ (this.byTestId("password-save"));
    this.busy = false;
    /** While the server refuses attempts (rate_limited): when it will take them again, in ms. */
    this.blockedUntil = 0;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.countdown = undefined;

    this.done = document.createElement("p");
    this.done.className = "toast";
    this.done.dataset.testid = "password-done";
    this.done.setAttribute("role", "status");
    this.done.hidden = true;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.doneTimer = undefined;
    this.done.addEventListener("click", () => this.hideDone());

    document.body.append(this.panel, this.done);
    panels.register(
      button,
      this.panel,
      () => this.opened(),
      () => this.closed(),
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.byTestId("password-cancel").addEventListener("click", () => {
      panels.close();
      button.focus();
    });
    for (const field of [this.current, this.fresh, this.repeat]) {
      field.addEventListener("input", () => field.removeAttribute("aria-invalid"));
    }
  }

  /** @param {string} testid */
  byTestId(testid) {
    return /** @type {HTMLElement} */ (this.panel.querySelector(`[data-testid=${testid}]`));
  }

  /** @param {string} testid */
  input(testid) {
    return /** @type {HTMLInputElement} */ (this.byTestId(testid));
  }

  opened() {
    this.hideDone();
    this.form.reset();
    this.clearError();
    if (Date.now() < this.blockedUntil) this.tick();
    this.current.focus();
  }

  /** Passwords do not linger in a closed panel. */
  closed() {
    this.form.reset();
    for (const field of [this.current, this.fresh, this.repeat]) field.removeAttribute("aria-invalid");
  }

  /**
   * @param {string} message
   * @param {HTMLInputElement} [field] the field at fault: marked, focused and selected
   */
  showError(message, field) {
    this.error.textContent = message;
    this.error.hidden = false;
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.focus();
      field.select();
    }
  }

  clearError() {
    this.error.hidden = true;
    this.error.textContent = "";
    for (const field of [this.current, this.fresh, this.repeat]) field.removeAttribute("aria-invalid");
  }

  /** What is wrong with the form before asking the server, or null. */
  problem() {
    if (!this.current.value) return { message: "Type your current password.", field: this.current };
    const fresh = this.fresh.value;
    if (!fresh) return { message: "Choose a new password.", field: this.fresh };
    if (fresh.length < MIN_PASSWORD) {
      return { message: `The new password needs at least ${MIN_PASSWORD} characters.`, field: this.fresh };
    }
    if (fresh.length > MAX_PASSWORD) {
      return { message: `The new password can have at most ${MAX_PASSWORD} characters.`, field: this.fresh };
    }
    if (this.repeat.value !== fresh) {
      return { message: "The repeated password does not match the new one.", field: this.repeat };
    }
    return null;
  }

  async submit() {
    if (this.busy || Date.now() < this.blockedUntil) return;
    const wrong = this.problem();
    if (wrong) {
      this.clearError();
      this.showError(wrong.message, wrong.field);
      return;
    }
    this.clearError();
    this.busy = true;
    this.save.disabled = true;
    this.form.setAttribute("aria-busy", "true");
    try {
      await renewingSession(
        callApi("POST", "/api/auth/password", {
          current_password: this.current.value,
          new_password: this.fresh.value,
        }),
      );
    } catch (exc) {
      this.failed(exc);
      return;
    } finally {
      this.busy = false;
      this.form.removeAttribute("aria-busy");
      if (Date.now() >= this.blockedUntil) this.save.disabled = false;
    }
    const returnFocus = this.panels.isOpen(this.panel);
    this.panels.close();
    if (returnFocus) this.button.focus();
    this.showDone();
  }

  /** @param {unknown} exc */
  failed(exc) {
    if (!(exc instanceof ApiError)) {
      this.showError(String(exc));
      return;
    }
    switch (exc.code) {
      case "bad_credentials":
        this.showError("The current password is wrong.", this.current);
        return;
      case "invalid":
        this.showError(
          `The server refused the new password: it needs ${MIN_PASSWORD} to ${MAX_PASSWORD} characters.`,
          this.fresh,
        );
        return;
      case "rate_limited":
        this.waitOut(exc.retryAfterS ?? 1);
        return;
      case "csrf":
        this.showError("The server refused the request as coming from another site. Reload this page and try again.");
        return;
      case "network":
        this.showError("The server could not be reached. Check the connection and try again.");
        return;
      default:
        this.showError(`The password was not changed: ${exc.message}`);
    }
  }

  /**
   * Too many attempts: say how long to wait, counting down, with Save off until then.
   * @param {number} seconds
   */
  waitOut(seconds) {
    clearInterval(this.countdown);
    this.blockedUntil = Date.now() + Math.max(1, seconds) * 1000;
    this.save.disabled = true;
    this.tick();
    this.countdown = setInterval(() => this.tick(), 1000);
  }

  tick() {
    const left = Math.ceil((this.blockedUntil - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(this.countdown);
      this.countdown = undefined;
      this.clearError();
      this.save.disabled = false;
      return;
    }
    this.save.disabled = true;
    this.error.textContent = `Too many attempts with a wrong password. Try again in ${left} s.`;
    this.error.hidden = false;
  }

  showDone() {
    clearTimeout(this.doneTimer);
    this.done.textContent = "Password changed. Other devices were signed out.";
    this.done.hidden = false;
    this.doneTimer = setTimeout(() => this.hideDone(), DONE_VISIBLE_MS);
  }

  hideDone() {
    clearTimeout(this.doneTimer);
    this.done.hidden = true;
  }
}
