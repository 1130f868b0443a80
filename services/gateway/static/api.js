// Talking to the gateway: POST /recommend and the page's config, with errors turned into
// messages a shopper can act on.

/**
 * An answer the page cannot use: `title` is for the shopper, `detail` says what happened;
 * `aboutWords` when it was the shopper's words that were refused (not the photo).
 */
export class RequestError extends Error {
  constructor(title, detail, status = 0, { aboutWords = false } = {}) {
    super(title);
    this.name = "RequestError";
    this.title = title;
    this.detail = detail;
    this.status = status;
    this.aboutWords = aboutWords;
  }
}

const FRIENDLY = {
  400: "Something about that request didn't work.",
  404: "We couldn't find that product any more.",
  413: "That photo is too large.",
  415: "That file doesn't look like a photo.",
  422: "We couldn't use that.",
  429: "You're going a little fast.",
  503: "The lookalike finder is taking a break.",
};

const HINT = {
  413: "Please choose a smaller photo (a phone picture or a screenshot works well).",
  415: "Please choose a JPEG, PNG or WebP image.",
  429: "Please wait a moment, then try again.",
  503: "Please try again in a minute.",
};

/** What to do about words the server refused, or an empty search box. */
export const WORDS_HINT = "Try a few plain words, such as “navy tee” or “black boots”.";

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

export function formatBytes(bytes) {
  if (bytes >= 1024 * 1024) return `${Math.round(bytes / (1024 * 1024))} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return plural(bytes, "byte", "bytes");
}

/** The server's own explanation, from `{"error", "detail"}` or FastAPI's validation list. */
function serverDetail(body) {
  if (!body || typeof body !== "object") return "";
  const { detail } = body;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        if (!item || typeof item !== "object") return String(item);
        const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body" && p !== "query").join(".") : "";
        return where ? `${where}: ${item.msg}` : String(item.msg ?? "");
      })
      .filter(Boolean)
      .join("; ");
  }
  return typeof body.error === "string" ? body.error : "";
}

async function errorFor(response, source) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): the status alone has to do.
  }
  const status = response.status;
  let title = FRIENDLY[status] ?? (status >= 500 ? FRIENDLY[503] : FRIENDLY[400]);
  if (status === 422 && source.kind === "url") title = "We couldn't use the picture at that link.";
  const parts = [];
  // For 429 and 5xx the server's words are for operators; the shopper gets the hint alone.
  let said = status === 429 || status >= 500 ? "" : serverDetail(body);
  // The words were refused (empty, no letter, too long): the photo, if any, was not at fault.
  const aboutWords = status === 422 && said.startsWith("text: ");
  if (aboutWords) {
    title = "We couldn't search for those words.";
    said = said.slice("text: ".length);
  } else if (status === 422 && /^colour(_mode)?[:= ]/.test(said)) {
    title = "We couldn't search by that colour.";
    if (said.startsWith("colour: ")) said = said.slice("colour: ".length);
  }
  if (said) {
    const sentence = said[0].toUpperCase() + said.slice(1);
    parts.push(/[.!?]$/.test(sentence) ? sentence : `${sentence}.`);
  }
  if (status === 429) {
    const wait = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    parts.push(Number.isFinite(wait) && wait > 0 ? `Please try again in ${plural(wait, "second", "seconds")}.` : HINT[429]);
  } else if (HINT[status]) {
    parts.push(HINT[status]);
  } else if (status >= 500) {
    parts.push(HINT[503]);
  } else if (aboutWords) {
    parts.push(WORDS_HINT);
  }
  return new RequestError(title, parts.join(" "), status, { aboutWords });
}

/** Query string of the non-empty search parameters. */
function queryString(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** The JSON body of a source that is not a file: its link, product or words alone. */
function jsonBody(source, text) {
  if (source.kind === "url") return { image_url: source.url, text };
  if (source.kind === "product") return { product_id: source.productId, text };
  if (source.kind === "viewed") {
    return { viewed: source.viewed, not_for_me: source.notForMe.length ? source.notForMe : undefined };
  }
  return { text };
}

/**
 * POST /recommend for a source: `{kind: "file", file}`, `{kind: "url", url}`,
 * `{kind: "product", productId}`, `{kind: "words"}` or `{kind: "viewed", viewed, notForMe}`
 * (the shopper's history: "based on what you viewed"). `text`, the shopper's words, goes in
 * the body (never the URL, which logs keep): alone it searches by words, with a picture it
 * refines the picture's matches. Resolves to `{answer, requestId}`; rejects with RequestError
 * (or an AbortError when `signal` fires).
 */
export async function recommend(source, params, signal, text = null) {
  const init = { method: "POST", signal, headers: { Accept: "application/json" } };
  const words = typeof text === "string" && text ? text : undefined;
  if (source.kind === "file") {
    const form = new FormData();
    form.append("image", source.file, source.file.name || "photo");
    if (words) form.append("text", words);
    init.body = form;
  } else {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(jsonBody(source, words));
  }
  let response;
  try {
    response = await fetch(`/recommend${queryString(params)}`, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new RequestError(
      "We couldn't reach the shop.",
      "Please check your connection and try again.",
    );
  }
  if (!response.ok) throw await errorFor(response, source);
  try {
    const answer = await response.json();
    return { answer, requestId: response.headers.get("X-Request-ID") };
  } catch {
    throw new RequestError(FRIENDLY[503], "The answer was garbled. " + HINT[503], response.status);
  }
}

/**
 * The shop the page was started for (`/?shop=NAME`, or several: `?shop=a,b`); null: every
 * shop. The server checks the names: it answers an unknown shop with a 422 that says which.
 */
export const SHOP = new URLSearchParams(window.location.search).get("shop")?.trim() || null;

/**
 * The page's config (categories of the active model, upload limit; of the page's shop only
 * when it has one); null if unavailable. Rejects with RequestError when the server refuses the
 * page's shop (unknown, or malformed).
 */
export async function loadConfig() {
  let response;
  try {
    response = await fetch(`/storefront/config.json${queryString({ shop: SHOP })}`, { headers: { Accept: "application/json" } });
    if (response.ok) return await response.json();
  } catch {
    return null;
  }
  if (response.status === 422) throw await errorFor(response, { kind: "shop" });
  return null;
}

/** POST /feedback, fire and forget (it must not hold up the shopper's click). */
export function sendFeedback(event) {
  fetch("/feedback", {
    method: "POST",
    keepalive: true,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(event),
  }).catch(() => {
    // Measurement is best effort; the shopper's click already went through.
  });
}

/** The example photos a visitor can try (`[{url, alt, width, height}]`); [] if unavailable. */
export async function loadExamples() {
  try {
    const response = await fetch("/storefront/examples", { headers: { Accept: "application/json" } });
    const examples = response.ok ? await response.json() : [];
    return Array.isArray(examples) ? examples : [];
  } catch {
    return [];
  }
}

/** An example photo's bytes as a File, to upload like the shopper's own photo. */
export async function fetchExample(example, number) {
  let response;
  try {
    response = await fetch(example.url);
  } catch {
    throw new RequestError("We couldn't reach the shop.", "Please check your connection and try again.");
  }
  if (!response.ok) throw await errorFor(response, { kind: "example" });
  const blob = await response.blob();
  return new File([blob], `example-${number}.jpg`, { type: blob.type || "image/jpeg" });
}
