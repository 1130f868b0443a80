// The storefront page: search by words, or pick, drop, paste or link a photo (words with it
// refine its matches); see its garments boxed; pick one to see similar products; refine with
// filters (the garment's own colour first, any colour, another colour; one colour only); "more
// like this" and "similar, in another colour" on any product; "based on what you viewed", from
// this browser's own history, with "not for me" on any product.

import { RequestError, SHOP, WORDS_HINT, fetchExample, formatBytes, loadConfig, loadExamples, recommend, sendFeedback } from "./api.js";
import { clearHistory, forget, readHistory, recordNotForMe, recordView, unknownIds } from "./history.js";
import {
  colourTag,
  formatPrice,
  garmentLabel,
  h,
  productId,
  renderBoxes,
  renderChips,
  renderDetails,
  renderGrid,
  resultsTitle,
  safeUrl,
  seenColourText,
  titleCase,
  understoodText,
} from "./render.js";

const $ = (id) => document.getElementById(id);

const ui = {
  query: $("query"),
  shopScope: $("shop-scope"),
  wordsForm: $("words-form"),
  wordsInput: $("words-input"),
  wordsClear: $("words-clear"),
  fileInput: $("file-input"),
  urlForm: $("url-form"),
  urlInput: $("url-input"),
  photo: $("photo"),
  photoImg: $("photo-img"),
  photoCaption: $("photo-caption"),
  boxes: $("boxes"),
  garments: $("garments"),
  chips: $("chips"),
  clear: $("clear"),
  results: $("results"),
  resultsTitle: $("results-title"),
  status: $("status"),
  error: $("error"),
  errorTitle: $("error-title"),
  errorDetail: $("error-detail"),
  filters: $("filters"),
  category: $("f-category"),
  brands: $("brands"),
  minPrice: $("f-min-price"),
  maxPrice: $("f-max-price"),
  priceCurrency: $("price-currency"),
  colourMode: $("f-colour-mode"),
  colourOther: $("f-colour-other"),
  colour: $("f-colour"),
  colorWeight: $("f-color-weight"),
  colorWeightValue: $("color-weight-value"),
  diversity: $("f-diversity"),
  diversityValue: $("diversity-value"),
  empty: $("empty"),
  grid: $("grid"),
  timings: $("timings"),
  details: $("details"),
  detailsList: $("details-list"),
  groupNotice: $("group-notice"),
  understood: $("understood"),
  understoodLabel: $("understood-label"),
  understoodWords: $("understood-words"),
  examples: $("examples"),
  exampleList: $("example-list"),
  indexing: $("indexing"),
  viewed: $("viewed"),
  viewedClear: $("viewed-clear"),
  viewedStatus: $("viewed-status"),
  viewedGroups: $("viewed-groups"),
};

const state = {
  source: null, // {kind: "file", file} | {kind: "url", url} | {kind: "product", productId, title} | {kind: "words"}
  words: null, // the words of the answer on screen (alone, or refining its picture)
  objectUrl: null, // the shown photo's blob: URL, revoked when replaced
  size: null, // natural size of the shown photo: the API's boxes are in its pixels
  answer: null,
  requestId: null, // X-Request-ID of the answer on screen, for feedback
  colourMode: "same", // colour_mode of the answer on screen
  selected: 0,
  controller: null,
  maxUploadBytes: null,
  currency: null,
  brands: new Set(),
  categories: new Set(),
  feedback: false, // may clicks be recorded (POST /feedback is open)?
  catalog: null, // {products, images_indexed, images_total, indexing} from the config
  sessionId: newSessionId(),
};

function newSessionId() {
  try {
    const stored = sessionStorage.getItem("lookalike-session");
    if (stored) return stored;
    const id = crypto.randomUUID();
    sessionStorage.setItem("lookalike-session", id);
    return id;
  } catch {
    return null; // storage or randomUUID unavailable (a non-secure origin): no session id
  }
}

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
// One column (a phone): the results sit under the photo, out of sight unless scrolled to.
const narrow = window.matchMedia("(max-width: 52rem)");

// ------------------------------------------------------------------------------ messages

/** The status line; `spoken` is for screen readers only (what the page shows elsewhere). */
function announce(text, spoken = "") {
  ui.status.replaceChildren(text, spoken ? h("span", { class: "visually-hidden" }, ` ${spoken}`) : "");
}

function showError(error) {
  ui.errorTitle.textContent = error.title ?? "Something went wrong.";
  ui.errorDetail.textContent = error.detail ?? "";
  ui.error.hidden = false;
  announce("");
  // On a phone the message can sit below the search box the shopper is looking at.
  ui.error.scrollIntoView({ block: "nearest", behavior: reducedMotion.matches ? "auto" : "smooth" });
}

function clearError() {
  ui.error.hidden = true;
  ui.errorTitle.textContent = "";
  ui.errorDetail.textContent = "";
}

function setBusy(busy) {
  document.body.classList.toggle("is-loading", busy);
  ui.results.setAttribute("aria-busy", busy ? "true" : "false");
}

// ------------------------------------------------------------------------------ the photo

function showPhoto(src, caption) {
  if (state.objectUrl && state.objectUrl !== src) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = src && src.startsWith("blob:") ? src : null;
  state.size = null;
  ui.boxes.replaceChildren();
  ui.photoImg.removeAttribute("src");
  ui.photo.classList.remove("broken");
  if (src) ui.photoImg.src = src;
  else ui.photo.classList.add("broken");
  ui.photoImg.alt = caption;
  ui.photoCaption.textContent = caption;
  ui.photo.hidden = false;
  ui.clear.hidden = false;
  ui.query.classList.add("has-photo");
}

function hidePhoto() {
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = null;
  state.size = null;
  ui.photoImg.removeAttribute("src");
  ui.photo.hidden = true;
  ui.boxes.replaceChildren();
  ui.garments.hidden = true;
  ui.chips.replaceChildren();
  ui.query.classList.remove("has-photo");
}

ui.photoImg.addEventListener("load", () => {
  state.size = { width: ui.photoImg.naturalWidth, height: ui.photoImg.naturalHeight };
  drawBoxes();
});

ui.photoImg.addEventListener("error", () => {
  if (ui.photoImg.getAttribute("src")) ui.photo.classList.add("broken");
});

function drawBoxes() {
  const groups = state.answer?.groups ?? [];
  // A product's "more like this" answer is about the catalog picture, not a photo the
  // shopper gave us; its garments are listed as chips only.
  const boxed = state.source && state.source.kind !== "product" ? groups : [];
  renderBoxes(ui.boxes, boxed, state.size, state.selected, select);
}

// ------------------------------------------------------------------------------ filters

function numberOrEmpty(input) {
  const value = input.value.trim();
  return value === "" || !Number.isFinite(Number(value)) ? "" : value;
}

/** same (the garment's own colour first), any (shape alone) or other (another colour only). */
function colourMode() {
  return ui.filters.elements.colour_mode.value || "same";
}

/** The colour controls that fit the source: "other" needs a garment's colour (a picture, not
 * words alone), and the colour vs. shape slider weighs that colour (so only with "same"). */
function syncColourControls() {
  const wordsAlone = state.source?.kind === "words";
  ui.colourOther.disabled = wordsAlone;
  if (wordsAlone && ui.colourOther.checked) ui.filters.elements.colour_mode.value = "same";
  ui.colorWeight.disabled = colourMode() !== "same";
}

function searchParams() {
  const form = ui.filters.elements;
  const mode = colourMode();
  const minPrice = numberOrEmpty(ui.minPrice);
  const maxPrice = numberOrEmpty(ui.maxPrice);
  // The API takes a category override or a search across all of them, not both.
  const category = ui.category.value;
  return {
    category,
    brand: form.brand.value.trim(),
    min_price: minPrice,
    max_price: maxPrice,
    // A price range means the shop's currency, as shown beside "Price".
    currency: minPrice !== "" || maxPrice !== "" ? state.currency ?? "" : "",
    metric: form.metric.value,
    // The API takes one colour to keep or the garment's to avoid (other), not both; the
    // controls keep them apart.
    colour: mode === "other" ? "" : ui.colour.value,
    colour_mode: mode === "same" ? "" : mode,
    color_weight: mode === "same" ? ui.colorWeight.value : "",
    diversity: ui.diversity.value,
    cross_category: !category && form.cross_category.checked ? "true" : "",
    // The page's shop (`/?shop=NAME`): every search is scoped to it.
    shop: SHOP ?? "",
  };
}

function describeSliders() {
  const colour = Number(ui.colorWeight.value);
  ui.colorWeightValue.textContent =
    colour === 0 ? "shape only" : colour === 1 ? "colour only" : `${Math.round(colour * 100)}% colour`;
  const variety = Number(ui.diversity.value);
  ui.diversityValue.textContent = variety === 0 ? "off" : `${Math.round(variety * 100)}%`;
}

function priceRangeIsValid() {
  const min = numberOrEmpty(ui.minPrice);
  const max = numberOrEmpty(ui.maxPrice);
  const valid = min === "" || max === "" || Number(min) <= Number(max);
  ui.maxPrice.setCustomValidity(valid ? "" : "The highest price must be at least the lowest.");
  if (!valid) ui.maxPrice.reportValidity();
  return valid;
}

let requeryTimer = 0;

function requery(delay = 250) {
  window.clearTimeout(requeryTimer);
  if (!state.source) return;
  requeryTimer = window.setTimeout(() => {
    if (priceRangeIsValid()) search(state.source, { requery: true });
  }, delay);
}

function addCategories(names) {
  for (const name of names) {
    if (typeof name !== "string" || !name || state.categories.has(name)) continue;
    state.categories.add(name);
    ui.category.append(h("option", { value: name }, titleCase(name)));
  }
}

/** The colour filter's names (the API's shopper colours, from the config). */
function addColours(names) {
  const known = new Set(Array.from(ui.colour.options, (option) => option.value));
  for (const name of names) {
    if (typeof name !== "string" || !name || known.has(name)) continue;
    known.add(name);
    ui.colour.append(h("option", { value: name }, titleCase(name)));
  }
}

function addBrands(names) {
  for (const name of names) {
    const brand = typeof name === "string" ? name.trim() : "";
    if (!brand || state.brands.has(brand) || state.brands.size >= 1000) continue;
    state.brands.add(brand);
    ui.brands.append(h("option", { value: brand }));
  }
}

function setCurrency(currency) {
  if (state.currency || typeof currency !== "string" || !currency) return;
  state.currency = currency;
  ui.priceCurrency.textContent = `(${currency})`;
}

/** Brands and the currency of products on screen, when the config did not have them. */
function rememberFromAnswer(groups) {
  const products = groups.flatMap((group) => group.recommendations ?? []);
  addBrands(products.map((product) => product.brand));
  for (const product of products) setCurrency(product.currency);
}

// ------------------------------------------------------------------------------ searching

function loadingMessage(source, words) {
  if (source.kind === "words") return `Searching for “${words}”…`;
  if (source.kind === "product" && colourMode() === "other") return `Finding ${source.title} in other colours…`;
  if (source.kind === "product") return `Finding more like ${source.title}…`;
  return "Looking for the pieces in your photo…";
}

/**
 * Ask for `source`'s matches with `words` (by default the words of the answer on screen). A
 * requery (new filters, words added to a photo) keeps what is on screen if it fails.
 */
async function search(source, { requery = false, words = state.words, message = null } = {}) {
  state.controller?.abort();
  const controller = new AbortController();
  state.controller = controller;
  clearError();
  setBusy(true);
  announce(message ?? (requery ? "Updating matches…" : loadingMessage(source, words)));
  try {
    const params = searchParams();
    const { answer, requestId } = await recommend(source, params, controller.signal, words);
    if (state.controller !== controller) return;
    state.requestId = requestId;
    state.colourMode = params.colour_mode || "same";
    state.words = words;
    syncWordsClear();
    showAnswer(answer, requery);
  } catch (error) {
    if (error.name === "AbortError" || state.controller !== controller) return;
    if (!requery) {
      // The new search failed: the results on screen belong to the previous one.
      state.answer = null;
      state.words = null;
      ui.garments.hidden = true;
      ui.chips.replaceChildren();
      clearDetails();
      showUnderstood(null);
      drawBoxes();
      const pictureRefused = error.status === 413 || error.status === 415 || (source.kind === "url" && !error.aboutWords);
      if (pictureRefused || source.kind === "words") {
        // The photo itself was refused (or the link gave none), or a search by words alone
        // was: nothing on screen is its. Refused words stay in the box to be corrected.
        state.source = null;
        hidePhoto();
        ui.clear.hidden = true;
      }
      showGrid([]);
      syncWordsClear();
    }
    showError(error instanceof RequestError ? error : new RequestError("Something went wrong.", String(error.message ?? error)));
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
  }
}

function startSearch(source, src, caption) {
  window.clearTimeout(requeryTimer);
  state.source = source;
  syncColourControls();
  state.answer = null;
  state.selected = 0;
  showPhoto(src, caption);
  ui.garments.hidden = true;
  ui.chips.replaceChildren();
  showGroupNotice(null);
  // Words in the box go with the picture: they refine its matches.
  search(source, { words: ui.wordsInput.value.trim() || null });
}

/** A search by words alone: no photo on screen (a previous one is put away). */
function startWords(words) {
  window.clearTimeout(requeryTimer);
  state.source = { kind: "words" };
  syncColourControls();
  state.answer = null;
  state.selected = 0;
  hidePhoto();
  ui.clear.hidden = false;
  showGroupNotice(null);
  search(state.source, { words });
}

/** The search box's words: alone they search by words; with a picture on screen they refine it. */
function searchWords() {
  const words = ui.wordsInput.value.trim();
  if (!words) {
    ui.wordsInput.value = "";
    syncWordsClear();
    clearError();
    showError(new RequestError("Type what you are looking for.", WORDS_HINT, 0, { aboutWords: true }));
    ui.wordsInput.focus();
    return;
  }
  if (state.source && state.source.kind !== "words") {
    window.clearTimeout(requeryTimer);
    search(state.source, { requery: true, words, message: "Refining the matches with your words…" });
    return;
  }
  startWords(words);
}

/** Empty the search box; the answer on screen loses the words too (a photo's matches are asked
 * again without them; a search by words alone is put away). */
function clearWords() {
  const had = state.words;
  ui.wordsInput.value = "";
  syncWordsClear();
  ui.wordsInput.focus();
  if (!had) {
    clearError();
    return;
  }
  if (state.source?.kind === "words") {
    startOver({ focus: ui.wordsInput });
    announce("Words cleared.");
    return;
  }
  if (state.source) {
    window.clearTimeout(requeryTimer);
    search(state.source, { requery: true, words: null, message: "Showing the photo's matches without the words…" });
  }
}

/** The clear button shows while there are words to clear: in the box or in the answer. */
function syncWordsClear() {
  ui.wordsClear.hidden = !ui.wordsInput.value && !state.words;
}

function searchFile(file, caption = file?.name ? `Your photo: ${file.name}` : "Your photo") {
  if (!file) return;
  clearError();
  if (state.maxUploadBytes && file.size > state.maxUploadBytes) {
    showError(
      new RequestError(
        "That photo is too large.",
        `It is ${formatBytes(file.size)}; photos up to ${formatBytes(state.maxUploadBytes)} work. Please choose a smaller one.`,
        413,
      ),
    );
    return;
  }
  startSearch({ kind: "file", file }, URL.createObjectURL(file), caption);
}

function searchUrl(value) {
  const url = safeUrl(value.trim());
  if (!url) {
    clearError();
    showError(new RequestError("That link doesn't look right.", "Please paste a full web address starting with http:// or https://."));
    return;
  }
  startSearch({ kind: "url", url }, url, "Your picture from the web");
}

/** "More like this": the product's lookalikes, its own colour first unless "any" is chosen. */
function moreLike(product) {
  if (colourMode() === "other") ui.filters.elements.colour_mode.value = "same";
  searchProduct(product, "More like");
}

/** "Similar, in another colour": the product's lookalikes in any colour but its own. */
function otherColour(product) {
  ui.filters.elements.colour_mode.value = "other";
  ui.colour.value = "";
  searchProduct(product, "In another colour");
}

function searchProduct(product, label) {
  const id = productId(product);
  if (id === undefined || id === null) return;
  noteView(product);
  const title = String(product.title ?? "").trim() || "this product";
  startSearch({ kind: "product", productId: id, title }, safeUrl(product.image_url), `${label}: ${title}`);
  ui.results.scrollIntoView({ block: "start", behavior: reducedMotion.matches ? "auto" : "smooth" });
  ui.results.focus({ preventScroll: true });
}

// ------------------------------------------------------------------------------ answers

function showAnswer(answer, requery) {
  const groups = Array.isArray(answer?.groups) ? answer.groups : [];
  state.answer = { ...answer, groups };
  state.selected = requery ? Math.min(state.selected, Math.max(groups.length - 1, 0)) : 0;
  addCategories(groups.map((group) => group.category));
  rememberFromAnswer(groups);
  renderDetails(
    ui.detailsList,
    ui.timings,
    groups,
    answer?.timings_ms,
    answer?.model_version,
    state.source?.kind === "words",
  );
  ui.details.hidden = false;
  const byWords = state.source.kind === "words";
  // A search by words has one group and no photo: no garments to pick between.
  ui.garments.hidden = groups.length === 0 || byWords;
  if (groups.length === 0) {
    ui.chips.replaceChildren();
    drawBoxes();
    showGrid([]);
    setTitle("Similar products"); // not the previous search's heading
    showGroupNotice(null);
    showUnderstood(null);
    const notice = typeof answer?.notice === "string" && answer.notice.trim() ? answer.notice.trim() : "We couldn't find any clothing in this picture.";
    ui.empty.textContent = byWords ? `${notice} ${WORDS_HINT}` : `${notice} Try a photo where the outfit is clearly visible.`;
    announce(byWords ? "No matches for these words." : "No pieces found in the picture.");
  } else {
    const found = `Found ${groups.length} ${groups.length === 1 ? "piece" : "pieces"}. `;
    showGroup(requery ? "Matches updated. " : state.source.kind === "product" || byWords ? "" : found);
  }
  if (!requery && state.source.kind !== "product") bringResultsIntoView();
}

/** On a phone, a new answer scrolls into sight: the garments' chips, then their products. */
function bringResultsIntoView() {
  if (!narrow.matches) return;
  const target = ui.garments.hidden ? ui.results : ui.garments;
  target.scrollIntoView({ block: "start", behavior: reducedMotion.matches ? "auto" : "smooth" });
}

/** The API's word about one garment ("No close match in this shop"), under its heading. */
function showGroupNotice(notice) {
  const text = typeof notice === "string" ? notice.trim() : "";
  ui.groupNotice.textContent = text;
  ui.groupNotice.hidden = !text;
}

function understoodLabel() {
  return state.source?.kind === "words" ? "Understood:" : "Refined by your words:";
}

/** What the words were read as ("blue · t-shirt"), under the heading; hidden when nothing was. */
function showUnderstood(group) {
  const text = understoodText(group?.intent);
  ui.understoodLabel.textContent = understoodLabel();
  ui.understoodWords.textContent = text;
  ui.understood.hidden = !text;
}

function clearDetails() {
  ui.details.hidden = true;
  ui.detailsList.replaceChildren();
  ui.timings.textContent = "";
}

function select(index) {
  if (!state.answer || index === state.selected) return;
  state.selected = index;
  showGroup("");
}

function showGroup(prefix) {
  const groups = state.answer.groups;
  const group = groups[state.selected];
  renderChips(ui.chips, groups, state.selected, select);
  drawBoxes();
  const products = Array.isArray(group.recommendations) ? group.recommendations : [];
  const byWords = state.source?.kind === "words";
  setTitle(byWords ? `Results for “${state.words}”` : resultsTitle(group), byWords ? null : group.colour);
  showGroupNotice(group.notice);
  showUnderstood(group);
  showGrid(products);
  // A garment the API explained ("This shop sells no footwear") needs no second message.
  if (products.length === 0) {
    ui.empty.textContent = noMatchesMessage();
    ui.empty.hidden = !ui.groupNotice.hidden;
  }
  const name = byWords ? `“${state.words}”` : group.category ? garmentLabel(group).toLowerCase() : "this piece";
  // What the words were read as is shown under the heading (and spoken here); words that read
  // as nothing known still refined a picture, and the status says so.
  const understood = understoodText(group.intent);
  const refined = !byWords && state.words && !understood ? ", refined by your words" : "";
  const seen = typeof group.colour?.name === "string" ? group.colour.name : "";
  const colour = !seen || byWords ? "" : state.colourMode === "other" ? ` in colours other than ${seen}` : ` (${seen})`;
  announce(
    `${prefix}Showing ${products.length} ${products.length === 1 ? "match" : "matches"} for ${name}${colour}${refined}.`,
    understood ? `${understoodLabel(group)} ${understood}.` : "",
  );
}

/**
 * The results heading, with the colour the search saw for the garment ("navy", or "not navy"
 * when it looks for other colours); how sure, in its tooltip and the details.
 */
function setTitle(text, colour = null) {
  const name = typeof colour?.name === "string" ? colour.name : "";
  const other = state.colourMode === "other";
  const tip = `${seenColourText(colour)}${other ? "; showing other colours" : ""}`;
  const tag = colourTag(name, other ? "seen-colour avoided" : "seen-colour", { title: tip }, other ? `not ${name}` : name);
  ui.resultsTitle.replaceChildren(text, tag ? " " : "", tag ?? "");
}

/** Why a search found nothing: a catalog still being indexed is not the shopper's filters. */
function noMatchesMessage() {
  const catalog = state.catalog;
  if (catalog && catalog.images_total === 0) {
    return "The shop's catalog is still being loaded. Please try again in a minute.";
  }
  if (catalog?.indexing) {
    return `We're still indexing the catalog (${catalog.images_indexed} of ${catalog.images_total} pictures ready). Matches will appear as it finishes.`;
  }
  if (state.source?.kind === "words") {
    return "No products match these words and filters. Try other words, fewer filters, or a photo.";
  }
  return "No products match these filters. Try a wider price range, another brand, or all categories.";
}

function showCatalogProgress(catalog) {
  state.catalog = catalog;
  const indexing = Boolean(catalog?.indexing || catalog?.images_total === 0);
  ui.indexing.hidden = !indexing;
  if (!indexing) return;
  ui.indexing.textContent =
    catalog.images_total === 0
      ? "Indexing the catalog: the shop's products are on their way."
      : `Indexing the catalog: ${catalog.images_indexed} of ${catalog.images_total} pictures ready. Searches cover what is ready.`;
}

/** A click on a product's link, for the answer that showed it (`requestId`, `modelVersion`). */
function recordClick(product, position, requestId = state.requestId, modelVersion = state.answer?.model_version) {
  noteView(product);
  const id = Number(productId(product));
  if (!state.feedback || !Number.isInteger(id)) return;
  const score = Number(product.score);
  sendFeedback({
    kind: "click",
    product_id: id,
    request_id: requestId ?? undefined,
    session_id: state.sessionId ?? undefined,
    position,
    score: Number.isFinite(score) ? score : undefined,
    model_version: modelVersion ?? undefined,
  });
}

function showGrid(products) {
  renderGrid(ui.grid, products, { onMoreLike: moreLike, onOtherColour: otherColour, onOpen: recordClick, onNotForMe: notForMe });
  ui.empty.hidden = products.length > 0;
  if (products.length === 0 && !state.source) {
    setTitle("Similar products");
    ui.empty.textContent = "Your matches will appear here.";
  }
}

function startOver({ focus = ui.fileInput } = {}) {
  state.controller?.abort();
  state.controller = null;
  window.clearTimeout(requeryTimer);
  state.source = null;
  state.answer = null;
  state.words = null;
  syncColourControls();
  setBusy(false);
  clearError();
  hidePhoto();
  ui.clear.hidden = true;
  ui.fileInput.value = "";
  ui.urlInput.value = "";
  ui.wordsInput.value = "";
  syncWordsClear();
  clearDetails();
  showGroupNotice(null);
  showUnderstood(null);
  showGrid([]);
  announce("");
  focus.focus();
}

// ------------------------------------------------------------------------------ based on what you viewed

/** The strip's last answer, for its cards' feedback. */
const strip = { controller: null, requestId: null, modelVersion: null, timer: 0, note: "" };

/** The filters the strip shares with the page: its shop, brand, prices and "only in" colour
 * (the category, colour mode and ranking sliders are about one picture's matches). */
const VIEWED_FILTERS = new Set(["brand", "min_price", "max_price", "colour"]);
const VIEWED_K = 12;

function viewedParams() {
  const all = searchParams();
  const params = { k: VIEWED_K, shop: all.shop, currency: all.currency };
  for (const name of VIEWED_FILTERS) params[name] = all[name];
  return params;
}

/** The shopper looked at `product` (opened it, or asked for more like it): the strip follows. */
function noteView(product) {
  recordView(SHOP, Number(productId(product)));
  refreshViewed(300);
}

/** "Not for me": the product leaves the screen and pushes the strip away from its like. */
function notForMe(product) {
  const id = Number(productId(product));
  const title = String(product.title ?? "").trim() || "this product";
  recordNotForMe(SHOP, id);
  for (const card of document.querySelectorAll(".card[data-product-id]")) {
    if (Number(card.dataset.productId) === id) card.remove();
  }
  strip.note = `Noted: fewer like ${title}.`;
  refreshViewed(0);
}

function refreshViewed(delay = 0) {
  window.clearTimeout(strip.timer);
  strip.timer = window.setTimeout(loadViewed, delay);
}

function hideViewed() {
  strip.controller?.abort();
  strip.controller = null;
  ui.viewed.hidden = true;
  ui.viewed.removeAttribute("aria-busy");
  ui.viewedGroups.replaceChildren();
  ui.viewedStatus.textContent = "";
}

/** Ask for products like the history's (none: no strip); products the catalog lost are forgotten. */
async function loadViewed() {
  const history = readHistory(SHOP);
  if (history.viewed.length === 0) {
    hideViewed();
    return;
  }
  strip.controller?.abort();
  const controller = new AbortController();
  strip.controller = controller;
  ui.viewed.setAttribute("aria-busy", "true");
  try {
    const source = { kind: "viewed", viewed: history.viewed, notForMe: history.not_for_me };
    const { answer, requestId } = await recommend(source, viewedParams(), controller.signal);
    if (strip.controller !== controller) return;
    strip.requestId = requestId;
    strip.modelVersion = answer?.model_version ?? null;
    showViewed(Array.isArray(answer?.groups) ? answer.groups : []);
  } catch (error) {
    if (error.name === "AbortError" || strip.controller !== controller) return;
    const gone = error.status === 422 ? unknownIds(error.detail) : [];
    const before = history.viewed.length + history.not_for_me.length;
    const after = gone.length ? forget(SHOP, gone) : history;
    if (after.viewed.length + after.not_for_me.length < before) {
      strip.controller = null;
      loadViewed();
      return;
    }
    ui.viewedStatus.textContent = `${error.title ?? "Something went wrong."} ${error.detail ?? ""}`.trim();
    ui.viewed.hidden = false;
  } finally {
    if (strip.controller === controller) {
      strip.controller = null;
      ui.viewed.removeAttribute("aria-busy");
    }
  }
}

/** One row of cards per kind of garment viewed, under its name. */
function showViewed(groups) {
  const shown = groups.filter((group) => Array.isArray(group.recommendations) && group.recommendations.length);
  ui.viewedGroups.replaceChildren(
    ...shown.map((group, index) => {
      const list = h("ul", { class: "strip", "aria-labelledby": `viewed-group-${index}` });
      renderGrid(list, group.recommendations, {
        onMoreLike: moreLike,
        onOtherColour: otherColour,
        onOpen: (product, position) => recordClick(product, position, strip.requestId, strip.modelVersion),
        onNotForMe: notForMe,
        heading: "h4",
      });
      return h("section", { class: "viewed-group" }, h("h3", { id: `viewed-group-${index}` }, resultsTitle(group)), list);
    }),
  );
  ui.viewedStatus.textContent = shown.length ? strip.note : "Nothing new to suggest yet: view a few more products.";
  strip.note = "";
  ui.viewed.hidden = false;
}

ui.viewedClear.addEventListener("click", () => {
  clearHistory(SHOP);
  hideViewed();
  announce("Your viewing history is cleared.");
});

// ------------------------------------------------------------------------------ wiring

ui.fileInput.addEventListener("change", () => {
  const [file] = ui.fileInput.files ?? [];
  searchFile(file);
  ui.fileInput.value = ""; // choosing the same file again searches again
});

ui.urlForm.addEventListener("submit", (event) => {
  event.preventDefault();
  searchUrl(ui.urlInput.value);
});

ui.clear.addEventListener("click", () => startOver());

ui.wordsForm.addEventListener("submit", (event) => {
  event.preventDefault();
  searchWords();
});
ui.wordsInput.addEventListener("input", syncWordsClear);
ui.wordsClear.addEventListener("click", clearWords);

// Drop a photo anywhere on the page; the query panel shows where it lands.
let dragDepth = 0;
function hasFiles(event) {
  return Array.from(event.dataTransfer?.types ?? []).some((type) => type === "Files" || type === "text/uri-list");
}
window.addEventListener("dragenter", (event) => {
  if (!hasFiles(event)) return;
  dragDepth += 1;
  ui.query.classList.add("dragging");
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) ui.query.classList.remove("dragging");
});
window.addEventListener("dragover", (event) => {
  if (hasFiles(event)) event.preventDefault();
});
window.addEventListener("drop", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  ui.query.classList.remove("dragging");
  const [file] = event.dataTransfer.files;
  if (file) {
    searchFile(file);
    return;
  }
  const link = event.dataTransfer.getData("text/uri-list").split(/\r?\n/).find((line) => line && !line.startsWith("#"));
  if (link) searchUrl(link);
});

document.addEventListener("paste", (event) => {
  const file = Array.from(event.clipboardData?.files ?? []).find((item) => item.type.startsWith("image/"));
  if (!file) return; // ordinary text pastes keep working in the inputs
  event.preventDefault();
  searchFile(file);
});

function syncCrossCategory() {
  const cross = ui.filters.elements.cross_category;
  cross.disabled = ui.category.value !== "";
  if (cross.disabled) cross.checked = false;
}

ui.category.addEventListener("change", syncCrossCategory);
// One colour to keep, or the garment's to avoid: choosing either sets the other aside.
ui.colour.addEventListener("change", () => {
  if (ui.colour.value && colourMode() === "other") ui.filters.elements.colour_mode.value = "same";
  syncColourControls();
});
ui.colourMode.addEventListener("change", () => {
  if (colourMode() === "other") ui.colour.value = "";
  syncColourControls();
});

ui.filters.addEventListener("input", (event) => {
  if (event.target.type === "range") describeSliders();
});
ui.filters.addEventListener("change", (event) => {
  // Text and number fields re-query when they are committed (Enter or leaving the field).
  requery(event.target.type === "range" ? 350 : 150);
  if (VIEWED_FILTERS.has(event.target.name)) refreshViewed(350);
});
ui.filters.addEventListener("submit", (event) => {
  event.preventDefault();
  requery(0);
});
ui.filters.addEventListener("reset", () => {
  window.setTimeout(() => {
    ui.maxPrice.setCustomValidity("");
    syncCrossCategory();
    syncColourControls();
    describeSliders();
    requery(0);
    refreshViewed(0);
  });
});

describeSliders();
syncColourControls();
// On a phone the filters start folded so that the photo and the products come first.
if (narrow.matches) $("refine").open = false;
/** Say which shop the page shows: the one it was started for, or every shop. */
function showShopScope(shops) {
  if (!SHOP) return;
  const names = Array.isArray(shops) && shops.length ? shops.join(", ") : SHOP;
  ui.shopScope.replaceChildren(
    "Showing products of ",
    h("strong", {}, names),
    " only · ",
    h("a", { href: "/" }, "all shops"),
  );
  ui.shopScope.hidden = false;
}

showShopScope(null);
loadConfig().catch((error) => {
  showError(error);
  return null;
}).then((config) => {
  if (!config) return;
  showShopScope(config.shop);
  if (Number.isFinite(config.max_upload_bytes)) state.maxUploadBytes = config.max_upload_bytes;
  if (Number.isFinite(config.color_weight)) {
    // The shop's default, also what "Reset" returns to.
    ui.colorWeight.defaultValue = String(config.color_weight);
    ui.colorWeight.value = String(config.color_weight);
    describeSliders();
  }
  if (Array.isArray(config.categories)) addCategories(config.categories);
  if (Array.isArray(config.brands)) addBrands(config.brands);
  if (Array.isArray(config.colours)) addColours(config.colours);
  setCurrency(config.currency);
  if (Number.isFinite(config.min_price) && Number.isFinite(config.max_price)) {
    const low = formatPrice(Math.floor(config.min_price), config.currency, { whole: true });
    const high = formatPrice(Math.ceil(config.max_price), config.currency, { whole: true });
    $("price-range").textContent = `${low} – ${high} in this shop`;
  }
  state.feedback = config.feedback === true;
  showCatalogProgress(config.catalog);
  if (config.catalog?.indexing || config.catalog?.images_total === 0) followIndexing();
});

/** While the catalog is being indexed, refresh its progress (and new categories) now and then. */
function followIndexing() {
  window.setTimeout(async () => {
    const config = await loadConfig().catch(() => null);
    if (!config) return followIndexing();
    if (Array.isArray(config.categories)) addCategories(config.categories);
    if (Array.isArray(config.brands)) addBrands(config.brands);
    showCatalogProgress(config.catalog);
    if (config.catalog?.indexing || config.catalog?.images_total === 0) followIndexing();
  }, 5000);
}

// ------------------------------------------------------------------------------ examples

async function tryExample(example, number) {
  clearError();
  announce("Loading the example photo…");
  try {
    const file = await fetchExample(example, number);
    searchFile(file, `Example photo ${number}: ${example.alt ?? "an outfit"}`);
  } catch (error) {
    showError(error instanceof RequestError ? error : new RequestError("Something went wrong.", String(error.message ?? error)));
  }
}

loadExamples().then((examples) => {
  // Only this gateway's own pictures (the page uploads their bytes as the shopper's photo).
  const usable = examples.filter((example) => safeUrl(example?.url)?.startsWith(`${window.location.origin}/`));
  if (usable.length === 0) return;
  ui.exampleList.replaceChildren(
    ...usable.map((example, index) => {
      const number = index + 1;
      const alt = typeof example.alt === "string" && example.alt ? example.alt : `Example outfit ${number}`;
      return h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "example", "aria-label": `Try this photo: ${alt}`, onclick: () => tryExample(example, number) },
          h("img", { src: example.url, alt: "", width: example.width, height: example.height, loading: "lazy", decoding: "async" }),
        ),
      );
    }),
  );
  ui.examples.hidden = false;
});

refreshViewed(0);
document.body.classList.add("ready");
