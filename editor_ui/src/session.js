// The signed-in account: who it is (GET /api/auth/status) and the header's name and "Sign out"
// button, on the list and the editor page alike.

import { ApiError, callApi, goToSignIn } from "./api.js";

/** @typedef {{username: string, is_admin: boolean}} Account */

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
  return status.user;
}

/**
 * Fill the header's account corner: the username and a "Sign out" button.
 * @param {HTMLElement} corner an element holding [data-testid=account-name] and [data-testid=sign-out]
 * @param {Account} account
 */
export function bindAccount(corner, account) {
  const name = /** @type {HTMLElement} */ (corner.querySelector("[data-testid=account-name]"));
  const signOut = /** @type {HTMLButtonElement} */ (corner.querySelector("[data-testid=sign-out]"));
  name.textContent = account.username;
  name.title = account.is_admin ? `Signed in as ${account.username} (administrator)` : `Signed in as ${account.username}`;
  corner.hidden = false;
  signOut.addEventListener("click", async () => {
    signOut.disabled = true;
    try {
      await callApi("POST", "/api/auth/signout");
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 0) {
        // Unreachable: the session still stands, so staying here is the honest answer.
        signOut.disabled = false;
        signOut.title = `Signing out failed: ${exc.message}`;
        return;
      }
      // Any other answer means there is no session left to end.
    }
    location.assign("/signin");
  });
}
