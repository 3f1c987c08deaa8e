// The text around the cursor that a suggestion request carries.
// `before` starts at a point that moves in jumps of CUT_STEP, so consecutive requests share their
// beginning and the server can reuse the model state it keeps for that shared part.

export const MAX_BEFORE = 12_000;
export const CUT_STEP = 3_000;
export const MAX_AFTER = 5_000;

/**
 * Never split a UTF-16 surrogate pair: half a character is not valid text on the server.
 * @param {string} text
 * @param {number} index
 */
function isInsidePair(text, index) {
  const code = text.charCodeAt(index);
  return index > 0 && index < text.length && code >= 0xdc00 && code <= 0xdfff;
}

/**
 * @param {string} text the whole document
 * @param {number} head the cursor position
 * @returns {{before: string, after: string}}
 */
export function suggestionContext(text, head) {
  const cut = head > MAX_BEFORE ? Math.ceil((head - MAX_BEFORE) / CUT_STEP) * CUT_STEP : 0;
  const start = isInsidePair(text, cut) ? cut + 1 : cut;
  let end = Math.min(text.length, head + MAX_AFTER);
  if (isInsidePair(text, end)) end -= 1;
  return { before: text.slice(start, head), after: text.slice(head, end) };
}
