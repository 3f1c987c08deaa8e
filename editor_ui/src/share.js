// The share panel: who has access to a document and with which role; for the owner also inviting
// by username, changing roles, removing people, and share links (create, copy once, revoke).

import { ApiError, callApi, documentPath } from "./api.js";
import { button, element } from "./dom.js";
import { colorOf } from "./identity.js";
import { timeAgo, timeUntil } from "./time.js";

/** @typedef {"owner" | "editor" | "commenter" | "viewer"} Role */
/** @typedef {{username: string, role: Role, added_at: string}} Member */
/**
 * @typedef {{id: string | number, role: Role, created_at: string, expires_at: string | null,
 *            revoked: boolean, expired: boolean}} ShareLink
 */

/** @type {Record<Role, string>} */
export const ROLE_LABELS = { owner: "Owner", editor: "Can edit", commenter: "Can comment", viewer: "Can view" };

const COPIED_MS = 2_000;

/**
 * What to tell the owner when a share request fails.
 * @param {unknown} exc
 * @param {string} [username] the person the request was about
 */
function explain(exc, username) {
  if (!(exc instanceof ApiError)) return String(exc);
  switch (exc.code) {
    case "no_such_user":
      return username ? `No account is called “${username}”.` : exc.message;
    case "forbidden":
      return "Only the owner can change who has access.";
    case "not_found":
      return "This document is not shared with you any more.";
    default:
      return exc.message;
  }
}

/**
 * A role picker for editor / commenter / viewer.
 * @param {Role} value
 * @param {string} label for assistive technology
 */
function roleSelect(value, label) {
  const select = document.createElement("select");
  select.className = "select";
  select.setAttribute("aria-label", label);
  for (const role of /** @type {Role[]} */ (["editor", "commenter", "viewer"])) {
    const option = new Option(ROLE_LABELS[role], role, false, role === value);
    select.append(option);
  }
  return select;
}

/**
 * Put `text` on the clipboard; falls back to the selection for pages the Clipboard API refuses.
 * @param {string} text
 * @param {HTMLInputElement} field an input holding the same text
 */
async function copy(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    field.focus();
    field.select();
    return document.execCommand("copy");
  }
}

export class SharePanel {
  /**
   * @param {HTMLElement} panel the #share-panel element of editor.html
   * @param {string} docId
   * @param {{role: Role, username: string}} me this writer
   */
  constructor(panel, docId, me) {
    this.panel = panel;
    this.path = documentPath(docId);
    this.me = me;
    /** Answers can arrive out of order; only the newest refresh may draw. */
    this.generation = 0;
    const find = (/** @type {string} */ testid) => {
      const found = panel.querySelector(`[data-testid="${testid}"]`);
      if (!found) throw new Error(`editor.html's share panel lacks [data-testid=${testid}]`);
      return /** @type {any} */ (found);
    };
    /** @type {HTMLElement} */
    this.error = find("share-error");
    /** @type {HTMLUListElement} */
    this.members = find("member-list");
    /** @type {HTMLUListElement} */
    this.links = find("link-list");
    /** @type {HTMLElement} */
    this.newLink = find("new-link");
    /** @type {HTMLInputElement} */
    this.linkUrl = find("link-url");
    /** @type {HTMLButtonElement} */
    this.copyButton = find("link-copy");

    const owner = me.role === "owner";
    panel.dataset.owner = String(owner);
    for (const part of panel.querySelectorAll(".owner-only")) /** @type {HTMLElement} */ (part).hidden = !owner;
    for (const part of panel.querySelectorAll(".member-only")) /** @type {HTMLElement} */ (part).hidden = owner;
    /** @type {HTMLElement} */
    this.ownerName = find("owner-name");
    if (owner) this.bindOwnerForms(find("invite-form"), find("link-form"));
  }

  /** Read members (and, for the owner, links) afresh; called each time the panel opens. */
  async refresh() {
    const generation = ++this.generation;
    this.panel.setAttribute("aria-busy", "true");
    try {
      const [members, links] = await Promise.all([
        callApi("GET", `${this.path}/members`),
        this.me.role === "owner" ? callApi("GET", `${this.path}/links`) : Promise.resolve(null),
      ]);
      if (generation !== this.generation) return;
      this.renderMembers(members.members);
      if (links) this.renderLinks(links.links);
    } catch (exc) {
      if (generation === this.generation) this.showError(explain(exc));
    } finally {
      if (generation === this.generation) this.panel.removeAttribute("aria-busy");
    }
  }

  /** @param {string} message */
  showError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  clearError() {
    this.error.hidden = true;
    this.error.textContent = "";
  }

  /**
   * Run one change against the API; its failure is shown in the panel, and the lists are read
   * again either way, so the panel never shows a change that did not happen.
   * @param {() => Promise<unknown>} change
   * @param {string} [username]
   * @returns {Promise<boolean>} whether it worked
   */
  async apply(change, username) {
    let worked = false;
    try {
      await change();
      this.clearError();
      worked = true;
    } catch (exc) {
      this.showError(explain(exc, username));
    }
    await this.refresh();
    return worked;
  }

  /**
   * @param {HTMLFormElement} inviteForm
   * @param {HTMLFormElement} linkForm
   */
  bindOwnerForms(inviteForm, linkForm) {
    const username = /** @type {HTMLInputElement} */ (inviteForm.querySelector("[data-testid=invite-username]"));
    const inviteRole = /** @type {HTMLSelectElement} */ (inviteForm.querySelector("[data-testid=invite-role]"));
    inviteForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = username.value.trim().toLowerCase();
      if (!name) {
        this.showError("Type the username of the person to invite.");
        return;
      }
      if (name === this.me.username) {
        this.showError("You own this document already.");
        return;
      }
      const submit = /** @type {HTMLButtonElement} */ (inviteForm.querySelector("button"));
      submit.disabled = true;
      const body = { username: name, role: inviteRole.value };
      const worked = await this.apply(() => callApi("POST", `${this.path}/members`, body), name);
      submit.disabled = false;
      if (worked) username.value = "";
      username.focus();
    });

    const linkRole = /** @type {HTMLSelectElement} */ (linkForm.querySelector("[data-testid=link-role]"));
    const expiry = /** @type {HTMLSelectElement} */ (linkForm.querySelector("[data-testid=link-expiry]"));
    linkForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const submit = /** @type {HTMLButtonElement} */ (linkForm.querySelector("button"));
      submit.disabled = true;
      const body = { role: linkRole.value, expires_in_days: expiry.value ? Number(expiry.value) : null };
      /** @type {{url: string, role: Role} | null} */
      let created = null;
      await this.apply(async () => {
        created = await callApi("POST", `${this.path}/links`, body);
      });
      submit.disabled = false;
      if (created) this.showNewLink(created);
    });

    this.copyButton.addEventListener("click", async () => {
      const copied = await copy(this.linkUrl.value, this.linkUrl);
      this.copyButton.textContent = copied ? "Copied" : "Press Ctrl+C";
      setTimeout(() => {
        this.copyButton.textContent = "Copy";
      }, COPIED_MS);
    });
    this.linkUrl.addEventListener("focus", () => this.linkUrl.select());
  }

  /**
   * The link's token is in its URL, which the server shows this once; keep it on screen until
   * the page closes, so it can still be copied after another change in the panel.
   * @param {{url: string, role: Role}} created
   */
  showNewLink(created) {
    this.linkUrl.value = new URL(created.url, location.origin).href;
    const role = /** @type {HTMLElement} */ (this.newLink.querySelector("[data-testid=link-role-note]"));
    role.textContent = { editor: "edit", commenter: "comment on" }[created.role] || "view";
    this.newLink.hidden = false;
    this.linkUrl.focus();
  }

  /** @param {Member[]} members */
  renderMembers(members) {
    const owner = this.me.role === "owner";
    const owning = members.find((member) => member.role === "owner");
    this.ownerName.textContent = owning ? owning.username : "its owner";
    this.members.replaceChildren(
      ...members.map((member) => {
        const row = element("li", "member");
        row.dataset.testid = "member";
        row.dataset.role = member.role;
        row.dataset.username = member.username;

        const avatar = element("span", "member-avatar", member.username.slice(0, 1).toUpperCase());
        avatar.style.setProperty("--peer", colorOf(member.username));
        avatar.setAttribute("aria-hidden", "true");
        const name = element("span", "member-name", member.username);
        if (member.username === this.me.username) name.append(element("span", "muted", " (you)"));
        row.append(avatar, name);

        if (owner && member !== owning) {
          const select = roleSelect(member.role, `Role of ${member.username}`);
          select.dataset.testid = "member-role";
          select.addEventListener("change", () =>
            this.apply(
              () => callApi("PATCH", `${this.path}/members/${encodeURIComponent(member.username)}`, { role: select.value }),
              member.username,
            ),
          );
          const remove = button(
            "Remove",
            "member-remove",
            () =>
              this.apply(
                () => callApi("DELETE", `${this.path}/members/${encodeURIComponent(member.username)}`),
                member.username,
              ),
            "button quiet danger",
          );
          remove.title = `Take away ${member.username}'s access`;
          row.append(select, remove);
        } else {
          row.append(element("span", `badge badge-role badge-${member.role}`, ROLE_LABELS[member.role] || member.role));
        }
        return row;
      }),
    );
  }

  /** @param {ShareLink[]} links */
  renderLinks(links) {
    const live = (/** @type {ShareLink} */ link) => !link.revoked && !link.expired;
    // Working links first, newest first within each group.
    const sorted = links
      .slice()
      .sort((a, b) => Number(live(b)) - Number(live(a)) || Date.parse(b.created_at) - Date.parse(a.created_at));
    if (!sorted.length) {
      const empty = element("li", "link-empty muted", "No links yet.");
      this.links.replaceChildren(empty);
      return;
    }
    this.links.replaceChildren(
      ...sorted.map((link) => {
        const row = element("li", "link-row");
        row.dataset.testid = "link-row";
        row.dataset.id = String(link.id);
        row.dataset.state = link.revoked ? "revoked" : link.expired ? "expired" : "active";
        const badge = element("span", "badge badge-role", ROLE_LABELS[link.role] || link.role);
        /** @type {string[]} */
        const details = [`created ${timeAgo(link.created_at)}`];
        if (link.revoked) details.push("revoked");
        else if (link.expired) details.push("expired");
        else details.push(link.expires_at ? `expires ${timeUntil(link.expires_at)}` : "never expires");
        const detail = element("span", "link-detail muted", details.join(" · "));
        if (link.expires_at) detail.title = `Expires ${new Date(link.expires_at).toLocaleString()}`;
        row.append(badge, detail);
        if (live(link)) {
          const revoke = button(
            "Revoke",
            "link-revoke",
            () => this.apply(() => callApi("DELETE", `${this.path}/links/${encodeURIComponent(String(link.id))}`)),
            "button quiet danger",
          );
          revoke.title = "Stop this link from letting anyone else in (people who joined keep their access)";
          row.append(revoke);
        }
        return row;
      }),
    );
  }
}
