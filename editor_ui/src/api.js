// The JSON API client both pages use: one place that turns HTTP failures into ApiError.

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
    throw new ApiError(
      response.status,
      (error && error.code) || `http_${response.status}`,
      (error && error.message) || `The server answered ${response.status} ${response.statusText}.`,
    );
  }
  return payload;
}

/** @param {string} id */
export function documentPath(id) {
  return `/api/documents/${encodeURIComponent(id)}`;
}
