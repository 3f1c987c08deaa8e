// This browser's local copies of shared documents (IndexedDB, one database per account and
// document, written by y-indexeddb in collab.js): their names, and deleting them. Kept free of
// Yjs so that every page (sign-out lives in session.js) can use it.

/** Waiting longer than this for a deletion (another tab holding a copy open) is not worth it. */
const DELETE_WAIT_MS = 3_000;

/**
 * The prefix of every local copy of this account.
 * @param {string} username
 */
function accountPrefix(username) {
  return `cowrite:${encodeURIComponent(username)}:`;
}

/**
 * The IndexedDB database holding this account's local copy of a document.
 * @param {string} username
 * @param {string} docId
 */
export function localCopyName(username, docId) {
  return accountPrefix(username) + encodeURIComponent(docId);
}

/**
 * Delete one database. Pages holding it open close it when asked (see collab.js), so this normally
 * takes a moment; should one not, the request stays queued in the browser and completes once the
 * database is closed, and this gives up waiting after DELETE_WAIT_MS.
 * @param {string} name
 * @returns {Promise<void>}
 */
export function deleteDatabase(name) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, DELETE_WAIT_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      const request = indexedDB.deleteDatabase(name);
      request.onsuccess = done;
      request.onerror = done;
    } catch {
      done();
    }
  });
}

/**
 * Delete every local copy of this account (on sign-out): every `cowrite:<username>:*` database,
 * plus `also` (the open document's, for a browser that cannot list its databases).
 * @param {string} username
 * @param {string[]} [also]
 */
export async function deleteLocalCopies(username, also = []) {
  const prefix = accountPrefix(username);
  const names = new Set(also);
  try {
    for (const { name } of await indexedDB.databases()) {
      if (name && name.startsWith(prefix)) names.add(name);
    }
  } catch {
    // No IndexedDB (or no listing of it): nothing more to find.
  }
  await Promise.all([...names].map(deleteDatabase));
}
