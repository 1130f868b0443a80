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

/**
 * The results heading: what was searched, "Similar dresses, skirts or tops" when the
 * classifier was unsure, "Similar products" when every category was.
 */
export function resultsTitle(group) {
  const searched = Array.isArray(group.searched) ? group.searched : [];
  const names = searched.map((name) => String(name).replace(/[_-]+/g, " "));
  if (names.length === 0) return "Similar products";
  if (names.length === 1) return `Similar ${names[0]}`;
  const shown = names.slice(0, 3);
  const tail = names.length > 3 ? `${shown.join(", ")} and more` : `${shown.slice(0, -1).join(", ")} or ${shown.at(-1)}`;
  return `Similar ${tail}`;
}

/** A garment's label, as on its box and chip: "Tops 92%". */
export function garmentLabel(group) {
  return [titleCase(group.category) || "Garment", percent(group.probability)].filter(Boolean).join(" ");
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
        h("span", { class: "chip-name" }, titleCase(group.category) || "Garment"),
        h("span", { class: "chip-prob" }, percent(group.probability)),
        h("span", { class: "visually-hidden" }, `, ${count} ${count === 1 ? "match" : "matches"}`),
      );
      button.style.setProperty("--hue", hueOf(index));
      return h("li", {}, button);
    }),
  );
}

/** Scores are similarities in 0..1 (higher is closer): shown as "93% match". */
function scoreText(score) {
  return score >= 0 && score <= 1 ? `${Math.round(score * 100)}% match` : `score ${score.toFixed(2)}`;
}

function productCard(product, position, onMoreLike, onOpen) {
  const title = String(product.title ?? "").trim() || "Untitled product";
  const link = safeUrl(product.url);
  const picture = safeUrl(product.image_url);
  const price = formatPrice(product.price, product.currency);
  const score = Number(product.score);
  const image = picture
    ? h("img", { src: picture, alt: title, loading: "lazy", decoding: "async" })
    : h("div", { class: "no-image", role: "img", "aria-label": `${title}: no picture` });
  const open = () => onOpen(product, position);
  const heading = h("h3", { class: "card-title" }, link ? h("a", { href: link, rel: "noopener", target: "_blank", onclick: open }, title) : title);
  return h(
    "li",
    { class: "card", "data-product-id": productId(product) },
    h("div", { class: "card-media" }, image),
    h(
      "div",
      { class: "card-body" },
      product.brand ? h("p", { class: "card-brand" }, product.brand) : null,
      heading,
      h(
        "p",
        { class: "card-meta" },
        price ? h("span", { class: "card-price" }, price) : null,
        Number.isFinite(score) ? h("span", { class: "card-score", title: `Similarity score ${score.toFixed(3)}` }, scoreText(score)) : null,
      ),
      productId(product) != null
        ? h(
            "button",
            {
              type: "button",
              class: "button subtle more",
              "aria-label": `More like this: ${title}`,
              onclick: () => onMoreLike(product, position),
            },
            "More like this",
          )
        : null,
    ),
  );
}

export function renderGrid(list, recommendations, onMoreLike, onOpen) {
  list.replaceChildren(...recommendations.map((product, index) => productCard(product, index, onMoreLike, onOpen)));
}

/** "detect 12 ms · embed 30 ms · … · model v3", small print under the grid. */
export function renderTimings(node, timings, modelVersion) {
  const parts = [];
  if (timings && typeof timings === "object") {
    for (const [stage, ms] of Object.entries(timings)) {
      const value = Number(ms);
      if (Number.isFinite(value)) parts.push(`${stage.replace(/_ms$/, "").replace(/_/g, " ")} ${value < 10 ? value.toFixed(1) : Math.round(value)} ms`);
    }
  }
  if (modelVersion) parts.push(`model ${modelVersion}`);
  node.textContent = parts.join(" · ");
}
