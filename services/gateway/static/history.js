// The shopper's own viewing history, kept in this browser only (localStorage), for "Based on
// what you viewed": the products opened or asked "more like this" for, with when, and the ones
// marked "not for me". The server is sent the list with each strip query and keeps none of it.

/** The most products the API takes as viewed, and as "not for me" (more: 422). */
export const MAX_VIEWED = 50;

/** One history per shop scope: another shop's product ids would be refused by a scoped query. */
function storageKey(shop) {
  return `lookalike-viewed:${shop ?? "*"}`;
}

function validId(value) {
  return Number.isSafeInteger(value) && value > 0;
}

/** The stored history, `{viewed: [{product_id, seen_at}], not_for_me: [id]}`, newest first. */
export function readHistory(shop) {
  let stored = null;
  try {
    stored = JSON.parse(localStorage.getItem(storageKey(shop)) ?? "null");
  } catch {
    stored = null; // storage unavailable, or not ours: start afresh
  }
  // What the API refuses never leaves here: odd entries, repeats, a product both viewed and not.
  const seen = new Set();
  const viewed = (Array.isArray(stored?.viewed) ? stored.viewed : []).filter((view) => {
    const id = view?.product_id;
    if (!validId(id) || seen.has(id) || Number.isNaN(Date.parse(view.seen_at))) return false;
    seen.add(id);
    return true;
  });
  const notForMe = (Array.isArray(stored?.not_for_me) ? stored.not_for_me : []).filter((id) => {
    if (!validId(id) || seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  return {
    viewed: viewed.slice(0, MAX_VIEWED).map(({ product_id, seen_at }) => ({ product_id, seen_at })),
    not_for_me: notForMe.slice(0, MAX_VIEWED),
  };
}

function writeHistory(shop, history) {
  try {
    localStorage.setItem(storageKey(shop), JSON.stringify(history));
  } catch {
    // Storage full or off (private mode): the strip simply has no history.
  }
}

/** `id` was viewed now: first in the list (once), and no longer "not for me". */
export function recordView(shop, id, now = new Date()) {
  if (!validId(id)) return readHistory(shop);
  const history = readHistory(shop);
  const viewed = [{ product_id: id, seen_at: now.toISOString() }, ...history.viewed.filter((view) => view.product_id !== id)];
  const next = { viewed: viewed.slice(0, MAX_VIEWED), not_for_me: history.not_for_me.filter((other) => other !== id) };
  writeHistory(shop, next);
  return next;
}

/** `id` is "not for me": out of the viewed products, into the ones to stay away from. */
export function recordNotForMe(shop, id) {
  if (!validId(id)) return readHistory(shop);
  const history = readHistory(shop);
  const notForMe = [id, ...history.not_for_me.filter((other) => other !== id)];
  const next = { viewed: history.viewed.filter((view) => view.product_id !== id), not_for_me: notForMe.slice(0, MAX_VIEWED) };
  writeHistory(shop, next);
  return next;
}

/** Products the catalog no longer has (named in a 422) leave the history. */
export function forget(shop, ids) {
  const gone = new Set(ids);
  const history = readHistory(shop);
  const next = {
    viewed: history.viewed.filter((view) => !gone.has(view.product_id)),
    not_for_me: history.not_for_me.filter((id) => !gone.has(id)),
  };
  writeHistory(shop, next);
  return next;
}

export function clearHistory(shop) {
  try {
    localStorage.removeItem(storageKey(shop));
  } catch {
    // Nothing stored, nothing to clear.
  }
  return { viewed: [], not_for_me: [] };
}

/** The 422's "no product 12, 40" ids, to forget them; [] for any other refusal. */
export function unknownIds(detail) {
  const match = /no product ([\d, ]+)/.exec(String(detail ?? ""));
  return match ? match[1].split(",").map((id) => Number.parseInt(id, 10)).filter(validId) : [];
}
