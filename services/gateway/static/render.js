// Building the page's pieces from API data. Every string from the API goes in as text
// (textContent / attributes), never as HTML; links and pictures must be http(s).

/** An element with attributes (`on*` functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "style") {
      Object.assign(node.style, value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** `value` as an absolute http(s) URL, or null (no javascript:, data: or odd schemes). */
export function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function titleCase(text) {
  const words = String(text ?? "").replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "";
}

/** "87%": for the details only, never a badge. */
export function percent(probability) {
  if (probability === null || probability === undefined || probability === "") return "";
  const p = Number(probability);
  return Number.isFinite(p) ? `${Math.round(p * 100)}%` : "";
}

export function formatPrice(price, currency, { whole = false } = {}) {
  const amount = Number(price);
  if (price === null || price === undefined || price === "" || !Number.isFinite(amount)) return "";
  if (currency) {
    try {
      const digits = whole ? { minimumFractionDigits: 0, maximumFractionDigits: 0 } : {};
      return new Intl.NumberFormat(undefined, { style: "currency", currency, ...digits }).format(amount);
    } catch {
      // An unknown currency code: show it beside the number instead.
    }
  }
  const number = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(amount);
  return currency ? `${number} ${currency}` : number;
}

export function productId(product) {
  return product.id ?? product.product_id;
}

/** Shop and classifier categories in the words a shopper uses ("pants" -> "Trousers"). */
const PLAIN_NAMES = {
  top: "Top",
  tops: "Top",
  "t-shirt": "T-shirt",
  shirt: "Shirt",
  sweater: "Sweater",
  bottom: "Bottoms",
  pants: "Trousers",
  trousers: "Trousers",
  jeans: "Jeans",
  shorts: "Shorts",
  leggings: "Leggings",
  skirt: "Skirt",
  skirts: "Skirt",
  dress: "Dress",
  dresses: "Dress",
  outerwear: "Coat or jacket",
  coat: "Coat",
  jacket: "Jacket",
  footwear: "Shoes",
  boots: "Boots",
  sandals: "Sandals",
  bag: "Bag",
  bags: "Bag",
  hat: "Hat",
  hats: "Hat",
  eyewear: "Glasses",
  legwear: "Socks and tights",
  accessory: "Accessory",
  belt: "Belt",
  jewellery: "Jewellery",
  innerwear: "Underwear",
};

/** A category in plain words: "Trousers", "Bag"; "" for none. */
export function plainName(category) {
  const key = String(category ?? "").trim().toLowerCase();
  return PLAIN_NAMES[key] ?? titleCase(key);
}

/** A garment's heading, as on its box and chip and above its results: "Trousers". */
export function garmentLabel(group) {
  return plainName(group.category) || "Garment";
}

/** The results heading: the garment in plain words, "Similar products" when it has no category. */
export function resultsTitle(group) {
  return plainName(group.category) || "Similar products";
}

/** A swatch for each shopper colour name (`colours` of the config), for the cards' dots. */
const SWATCHES = {
  black: "#1c1c1c",
  white: "#ffffff",
  grey: "#9a9a9a",
  navy: "#1f2a4d",
  blue: "#3b6fd1",
  burgundy: "#6d1a2b",
  red: "#c8302b",
  olive: "#6b6b2a",
  green: "#3f8f4a",
  yellow: "#e8c530",
  orange: "#e27a24",
  pink: "#e98bb0",
  purple: "#7c4fa8",
  beige: "#d9c6a5",
  brown: "#7a4f2e",
};

/** A colour name as a small dot and `label` (the name), for a card or a heading; null for none. */
export function colourTag(name, className, attrs = {}, label = name) {
  if (typeof name !== "string" || !name) return null;
  const dot = h("span", { class: "colour-dot", "aria-hidden": "true" });
  dot.style.setProperty("--swatch", SWATCHES[name] ?? "transparent");
  return h("span", { class: `colour-tag ${className}`, ...attrs }, dot, label);
}

/** The colour a group saw, for its heading's tooltip: "Seen as navy (71% sure)". */
export function seenColourText(colour) {
  if (!colour || typeof colour.name !== "string") return "";
  const sure = percent(colour.probability);
  return `Seen as ${colour.name}${sure ? ` (${sure} sure)` : ""}`;
}

/** The API's calibrated match label as a word for the shopper; nothing for a loose match. */
export function matchLabel(match) {
  if (match === "very close") return "Very close";
  if (match === "close") return "Close";
  return "";
}

/** Hues for the garments' boxes and chips, in order; chosen to stay readable on photos. */
const HUES = ["#e4572e", "#17bebb", "#ffc914", "#76b041", "#b07bff", "#ff6f91", "#2e86ff", "#f2f2f2"];

export function hueOf(index) {
  return HUES[index % HUES.length];
}

/**
 * One button per garment over the photo. Boxes are in pixels of the image the API saw
 * (`width` x `height`, its natural size); percentages keep them on the garment at any
 * displayed size.
 */
export function renderBoxes(container, groups, size, selected, onSelect) {
  container.replaceChildren();
  if (!size || !size.width || !size.height) return;
  groups.forEach((group, index) => {
    if (!Array.isArray(group.box) || group.box.length !== 4) return;
    const [x1, y1, x2, y2] = group.box.map(Number);
    const clamp = (v, max) => Math.min(Math.max(v, 0), max);
    const left = clamp(x1, size.width) / size.width;
    const top = clamp(y1, size.height) / size.height;
    const width = clamp(x2, size.width) / size.width - left;
    const height = clamp(y2, size.height) / size.height - top;
    if (!(width > 0 && height > 0)) return;
    const label = garmentLabel(group);
    const box = h(
      "button",
      {
        type: "button",
        class: "box",
        "aria-pressed": index === selected ? "true" : "false",
        "aria-label": `${label}: show similar products`,
        style: {
          left: `${left * 100}%`,
          top: `${top * 100}%`,
          width: `${width * 100}%`,
          height: `${height * 100}%`,
        },
        onclick: () => onSelect(index),
      },
      h("span", { class: "box-label", "aria-hidden": "true" }, label),
    );
    box.style.setProperty("--hue", hueOf(index));
    // Smaller boxes above larger ones, so a garment inside another stays clickable.
    box.style.zIndex = String(1 + Math.round((1 - width * height) * 100));
    container.append(box);
  });
}

export function renderChips(list, groups, selected, onSelect) {
  list.replaceChildren(
    ...groups.map((group, index) => {
      const count = Array.isArray(group.recommendations) ? group.recommendations.length : 0;
      const button = h(
        "button",
        {
          type: "button",
          class: "chip",
          "aria-pressed": index === selected ? "true" : "false",
          onclick: () => onSelect(index),
        },
        h("span", { class: "swatch", "aria-hidden": "true" }),
        h("span", { class: "chip-name" }, garmentLabel(group)),
        h("span", { class: "visually-hidden" }, `, ${count} ${count === 1 ? "match" : "matches"}`),
      );
      button.style.setProperty("--hue", hueOf(index));
      return h("li", {}, button);
    }),
  );
}

/** The most other shops a card lists by name; the rest are counted ("+2 more shops"). */
const OFFERS_SHOWN = 2;

/**
 * "Also at SHOP · price" links to the same product at other shops (the API's `offers`,
 * cheapest first); null when there are none.
 */
function offerLinks(offers) {
  const usable = (Array.isArray(offers) ? offers : []).filter((offer) => offer && safeUrl(offer.url));
  if (usable.length === 0) return null;
  const items = usable.slice(0, OFFERS_SHOWN).map((offer) => {
    const shop = String(offer.shop ?? "").trim() || "another shop";
    const price = formatPrice(offer.price, offer.currency);
    const title = String(offer.title ?? "").trim();
    return h(
      "li",
      {},
      h(
        "a",
        { href: safeUrl(offer.url), rel: "noopener", target: "_blank", title: title ? `${title} at ${shop}` : null },
        h("span", { class: "offer-at" }, "Also at "),
        h("span", { class: "offer-shop" }, shop),
        price ? h("span", { class: "offer-price" }, ` · ${price}`) : null,
      ),
    );
  });
  const more = usable.length - OFFERS_SHOWN;
  if (more > 0) items.push(h("li", { class: "offer-more" }, `+${more} more ${more === 1 ? "shop" : "shops"}`));
  return h("ul", { class: "card-offers", "aria-label": "Also at other shops" }, items);
}

/**
 * One product: picture, brand and colour, title, price and match word, the other shops that
 * sell it ("also at"), and its actions: "more like this", for a product whose colour is known
 * "similar, in another colour", and "not for me" (when `onNotForMe` is given).
 */
function productCard(product, position, { onMoreLike, onOtherColour, onOpen, onNotForMe, heading: level = "h3" }) {
  const title = String(product.title ?? "").trim() || "Untitled product";
  const link = safeUrl(product.url);
  const picture = safeUrl(product.image_url);
  const price = formatPrice(product.price, product.currency);
  const match = matchLabel(product.match);
  const image = picture
    ? h("img", { src: picture, alt: title, loading: "lazy", decoding: "async" })
    : h("div", { class: "no-image", role: "img", "aria-label": `${title}: no picture` });
  const open = () => onOpen(product, position);
  const heading = h(level, { class: "card-title" }, link ? h("a", { href: link, rel: "noopener", target: "_blank", onclick: open }, title) : title);
  return h(
    "li",
    { class: "card", "data-product-id": productId(product) },
    h(
      "div",
      { class: "card-media" },
      image,
      onNotForMe && productId(product) != null
        ? h(
            "button",
            {
              type: "button",
              class: "not-for-me",
              "aria-label": `Not for me: ${title}`,
              title: "Not for me: show fewer like this",
              onclick: () => onNotForMe(product, position),
            },
            h("span", { "aria-hidden": "true" }, "×"),
          )
        : null,
    ),
    h(
      "div",
      { class: "card-body" },
      product.brand || product.colour
        ? h(
            "p",
            { class: "card-top" },
            product.brand ? h("span", { class: "card-brand" }, product.brand) : null,
            colourTag(product.colour, "card-colour"),
          )
        : null,
      heading,
      h(
        "p",
        { class: "card-meta" },
        price ? h("span", { class: "card-price" }, price) : null,
        match ? h("span", { class: `card-match ${match === "Very close" ? "very-close" : "close"}` }, match) : null,
      ),
      offerLinks(product.offers),
      productId(product) != null
        ? h(
            "div",
            { class: "card-actions" },
            h(
              "button",
              {
                type: "button",
                class: "button subtle more",
                "aria-label": `More like this: ${title}`,
                onclick: () => onMoreLike(product, position),
              },
              "More like this",
            ),
            product.colour
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "button subtle more other-colour",
                    "aria-label": `Similar, in another colour: ${title}`,
                    title: `Similar, in another colour than ${product.colour}`,
                    onclick: () => onOtherColour(product, position),
                  },
                  "Other colours",
                )
              : null,
          )
        : null,
    ),
  );
}

/**
 * The products as cards; `actions`: `{onMoreLike, onOtherColour, onOpen, onNotForMe?}`, and
 * `heading`, the titles' level ("h3"; "h4" under a heading of their own).
 */
export function renderGrid(list, recommendations, actions) {
  list.replaceChildren(...recommendations.map((product, index) => productCard(product, index, actions)));
}

/** "detect 12 ms · embed 30 ms · … · model v3": the small print of the details. */
export function timingsText(timings, modelVersion) {
  const parts = [];
  if (timings && typeof timings === "object") {
    for (const [stage, ms] of Object.entries(timings)) {
      const value = Number(ms);
      if (Number.isFinite(value)) parts.push(`${stage.replace(/_ms$/, "").replace(/_/g, " ")} ${value < 10 ? value.toFixed(1) : Math.round(value)} ms`);
    }
  }
  if (modelVersion) parts.push(`model ${modelVersion}`);
  return parts.join(" · ");
}

/** "pants, jeans or shorts"; "every category" when the search was not narrowed. */
function searchedText(searched) {
  const names = (Array.isArray(searched) ? searched : []).map((name) => String(name).replace(/[_-]+/g, " "));
  if (names.length === 0) return "every category";
  return names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

/** The garment the words named, in a shopper's words ("t-shirt", "coat or jacket"); "". */
function intentGarment(intent) {
  return intent?.garment ? plainName(intent.garment).toLowerCase() : "";
}

/**
 * What the words were understood as, colour then garment: "blue · t-shirt", "red", "dress";
 * "" when neither was read (or there were no words).
 */
export function understoodText(intent) {
  if (!intent || typeof intent !== "object") return "";
  const colour = typeof intent.colour === "string" ? intent.colour.trim() : "";
  return [colour, intentGarment(intent)].filter(Boolean).join(" · ");
}

/** The parsed intent in full, for the details: "colour blue, garment t-shirt (a top)". */
function intentText(intent) {
  const parts = [];
  if (typeof intent.colour === "string" && intent.colour) parts.push(`colour ${intent.colour}`);
  const garment = intentGarment(intent);
  if (garment) {
    const parent = intent.garment_parent && intent.garment_parent !== intent.garment ? plainName(intent.garment_parent).toLowerCase() : "";
    parts.push(parent ? `garment ${garment} (${parent})` : `garment ${garment}`);
  }
  return parts.length ? parts.join(", ") : "no garment or colour we know";
}

const ANSWERED_BY = {
  pictures: "the pictures",
  text: "the words (the products' titles and attributes)",
  both: "the pictures, refined by the words",
};

/** Words alone: which path answered them. */
const WORDS_ANSWERED_BY = {
  pictures: "the pictures (the words read as what the garments look like)",
  text: "the products' titles and attributes",
  both: "the products' titles and attributes, and the pictures",
};

/**
 * The details behind the toggle: per garment, what the classifier called it and how sure it
 * was, the categories searched, which path answered (`answered_by`) and what the words were
 * read as (`intent`); then the timings and the model. `wordsAlone`: the search was words only.
 */
export function renderDetails(list, timingsNode, groups, timings, modelVersion, wordsAlone = false) {
  const paths = wordsAlone ? WORDS_ANSWERED_BY : ANSWERED_BY;
  list.replaceChildren(
    ...groups.map((group) => {
      const parts = [];
      if (!wordsAlone) {
        const sure = percent(group.probability);
        parts.push([group.category ? `classified as ${group.category}` : "not classified", sure ? `${sure} sure` : ""].filter(Boolean).join(", "));
      }
      parts.push(`searched ${searchedText(group.searched)}`);
      parts.push(`answered by ${paths[group.answered_by] ?? paths.pictures}`);
      if (group.colour && typeof group.colour.name === "string") {
        const sure = percent(group.colour.probability);
        parts.push(`colour seen ${group.colour.name}${sure ? `, ${sure} sure` : ""}`);
      }
      if (group.intent && typeof group.intent === "object") parts.push(`words read as ${intentText(group.intent)}`);
      const name = wordsAlone && !group.category ? "Your words" : garmentLabel(group);
      return h("li", {}, h("strong", {}, name), `: ${parts.join("; ")}.`);
    }),
  );
  timingsNode.textContent = timingsText(timings, modelVersion);
}
