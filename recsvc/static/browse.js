// PosterRec browse page: poster details (similar posters, original beside each variant, all regions side by
// side, downloads), watch history with live recommendations, search by an uploaded image. Plain JavaScript,
// no build step; every request goes to the public /v1 API (and /thumbs for small images). The grid itself is
// rendered by the server, and every filter is a server round trip, so the address always says what is shown.
//
// The details dialog is a view with its own address: ?poster=<id> opens it, &compare=<region> picks the
// variant beside the original, &view=regions shows every region. Opening or changing it pushes a history
// entry, so Back and Forward move through the views and a copied address opens the same one.
"use strict";

const config = JSON.parse(document.getElementById("posterrec-config").textContent);
const HISTORY_KEY = "posterrec.history";
const FILTER_DELAY_MS = 500; // a select's changes within this time (arrow keys) make one request
const TOAST_MS = 6000;
const VIEW_PARAMS = ["poster", "compare", "view"];

const $ = (id) => document.getElementById(id);
const dialog = $("details");
const cardTemplate = $("card-template");
const regionNames = new Intl.DisplayNames(["en"], { type: "region" });
const languageNames = new Intl.DisplayNames(["en"], { type: "language" });

const state = {
  region: new URL(window.location.href).searchParams.get("region")?.toUpperCase() || null,
  history: loadHistory(),
  poster: null,      // the poster loaded in the dialog: {id, title, image_url, ...}
  variants: [],      // its variants
  watching: Promise.resolve(), // history changes, one after another
  recsRequest: 0,    // answers to older requests are dropped
  detailsRequest: 0,
  searchRequest: 0,
};

// --- talking to /v1 ---------------------------------------------------------------------------

async function api(path, options = {}) {
  const json = typeof options.body === "string";
  const response = await fetch(config.apiRoot + path, {
    headers: { Accept: "application/json", ...(json ? { "Content-Type": "application/json" } : {}) },
    ...options,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

const posterPath = (id) => `/posters/${encodeURIComponent(id)}`;

function thumbUrl(id, shown) {
  return `${config.thumbRoot}/${encodeURIComponent(id)}${shown ? `?region=${shown}` : ""}`;
}

const regionLabel = (region) => `${region} · ${regionNames.of(region) ?? region}`;

// --- the address: which details view is open ---------------------------------------------------

function viewFromUrl(href = window.location.href) {
  const params = new URL(href, window.location.href).searchParams;
  return {
    poster: params.get("poster") || null,
    compare: params.get("compare")?.toUpperCase() || null,
    regions: params.get("view") === "regions",
  };
}

function urlOf(view) {
  const url = new URL(window.location.href);
  VIEW_PARAMS.forEach((name) => url.searchParams.delete(name));
  if (view.poster) {
    url.searchParams.set("poster", view.poster);
    if (view.regions) url.searchParams.set("view", "regions");
    else if (view.compare) url.searchParams.set("compare", view.compare);
  }
  return url.toString();
}

/** Show ``view`` and give it a history entry; ``depth`` counts the entries since the listing's own. */
function go(view) {
  const depth = (window.history.state?.depth ?? 0) + 1;
  window.history.pushState({ depth }, "", urlOf(view));
  render(viewFromUrl());
}

function render(view) {
  if (view.poster) showDetails(view);
  else if (dialog.open) dialog.close();
}

/** Closing the dialog returns to the listing's history entry (Forward reopens it); a deep link has none, so it is replaced. */
function leaveDetails() {
  if (!viewFromUrl().poster) return; // closed because the address already left it
  const depth = window.history.state?.depth ?? 0;
  if (depth > 0) window.history.go(-depth);
  else window.history.replaceState(null, "", urlOf({}));
}

// --- cards: the server's markup (cloned from <template>) ----------------------------------------

function setWatchedMark(card) {
  const watched = state.history.some((item) => item.id === card.dataset.id);
  card.classList.toggle("is-watched", watched);
  const button = card.querySelector(".watch");
  if (!button) return;
  button.setAttribute("aria-pressed", String(watched));
  button.textContent = watched ? "✓ Watched" : "+ Watched";
}

function makeCard({ id, title, year = null, shown = null, rank = null, score = null }) {
  const card = cardTemplate.content.firstElementChild.cloneNode(true);
  Object.assign(card.dataset, { id, title, year: year ?? "", variants: shown ?? "", shown: shown ?? "original" });
  const label = year ? `${title} (${year})` : title;
  const open = card.querySelector(".card-open");
  open.setAttribute("aria-label", `Details of ${label}`);
  open.href = urlOf({ poster: id });
  card.querySelector(".watch").setAttribute("aria-label", `Watched ${title}`);
  card.querySelector(".card-title").textContent = title;
  card.querySelector(".card-year").textContent = year ?? "";
  const img = card.querySelector("img.poster");
  img.src = thumbUrl(id, shown);
  img.alt = `${title} — ${shown ? `${shown} poster` : "original poster"}`;
  const badge = card.querySelector(".badge");
  badge.hidden = !state.region;
  badge.textContent = shown ? `${shown} variant` : "Original";
  badge.classList.toggle("badge-variant", Boolean(shown));
  if (rank !== null) {
    const rankEl = card.querySelector(".rank");
    rankEl.hidden = false;
    rankEl.textContent = `#${rank}`;
    rankEl.title = `${rank === 1 ? "The closest" : `Number ${rank} by closeness`}: cosine similarity ${score.toFixed(3)}`;
  }
  setWatchedMark(card);
  return card;
}

/** Results of /similar, /recommendations and /search, numbered from the closest; ``region`` is set when its variant is shown. */
function renderResults(list, results) {
  list.replaceChildren(
    ...results.map((r, i) => makeCard({ id: r.id, title: r.title, shown: r.region, rank: i + 1, score: r.score })),
  );
}

// --- details dialog: metadata, original beside a variant, all regions, similar posters ----------

async function showDetails(view) {
  if (!dialog.open) dialog.showModal();
  if (state.poster?.id !== view.poster) {
    const loaded = await loadPoster(view.poster);
    if (!loaded) return;
  }
  showView(view);
}

async function loadPoster(id) {
  const request = ++state.detailsRequest;
  state.poster = null;
  $("details-status").textContent = "Loading…";
  try {
    const [poster, variants, similar] = await Promise.all([
      api(posterPath(id)),
      api(`${posterPath(id)}/variants`),
      api(`${posterPath(id)}/similar?k=${config.k}${state.region ? `&region=${state.region}` : ""}`),
    ]);
    if (request !== state.detailsRequest) return false;
    state.poster = poster;
    state.variants = variants.variants;
    $("details-title").textContent = poster.title;
    const regions = poster.variant_regions.length ? poster.variant_regions.join(", ") : "none yet";
    $("details-meta").textContent =
      `${poster.year ?? "year unknown"} · ${poster.genres.join(", ") || "no genre"} · variants: ${regions}`;
    $("details-status").textContent = "";
    renderVariantPicker();
    renderRegionStrip();
    renderResults($("similar"), similar.results);
    updateDetailsWatch();
    return true;
  } catch (error) {
    if (request === state.detailsRequest) $("details-status").textContent = `Could not load this poster: ${error.message}`;
    return false;
  }
}

function showView(view) {
  const has = (region) => state.variants.some((v) => v.region === region);
  const compared = [view.compare, state.region].find(has) ?? state.variants[0]?.region ?? null;
  $("compare").hidden = view.regions;
  $("regions").hidden = !view.regions;
  document.querySelector(".details-body").classList.toggle("wide", view.regions);
  for (const [tab, regions] of [[$("tab-compare"), false], [$("tab-regions"), true]]) {
    tab.href = urlOf({ poster: state.poster.id, regions, compare: compared });
    if (regions === view.regions) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  compareWith(compared);
}

/** A link that saves the full image (the server names the file ``<id>-<region or original>.<extension>``). */
function downloadLink(id, region, text) {
  const link = document.createElement("a");
  link.href = `${config.downloadRoot}/${encodeURIComponent(id)}${region ? `?region=${region}` : ""}`;
  link.download = "";
  link.textContent = text;
  return link;
}

const originalDownload = (poster) => downloadLink(poster.id, null, "Download original");
const variantDownload = (poster, v) => downloadLink(poster.id, v.region, `Download ${v.region} variant`);

function renderVariantPicker() {
  const none = state.variants.length === 0;
  $("compare-none").hidden = !none;
  $("variant-picker-set").hidden = none;
  document.querySelector(".compare-stage").classList.toggle("single", none);
  document.querySelector(".compare-slider").hidden = none;
  $("variant-picker").replaceChildren(
    ...state.variants.map((v) => {
      const label = document.createElement("label");
      const radio = document.createElement("input");
      Object.assign(radio, { type: "radio", name: "compare-variant", value: v.region });
      label.append(radio, ` ${regionLabel(v.region)}`);
      label.title = `${languageNames.of(v.language) ?? v.language} title`;
      return label;
    }),
  );
}

/** Every region's poster in a row: the original first, then each variant, each with its download. */
function renderRegionStrip() {
  const poster = state.poster;
  const figure = (src, alt, caption, download) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    Object.assign(img, { src, alt, width: 160, height: 240, loading: "lazy", decoding: "async" });
    const text = document.createElement("p");
    text.className = "region-caption";
    text.textContent = caption;
    li.append(img, text, download);
    return li;
  };
  $("region-strip").replaceChildren(
    figure(poster.image_url, `${poster.title} — original poster`, "Original", originalDownload(poster)),
    ...state.variants.map((v) => {
      const item = figure(v.image_url, `${poster.title} — ${v.region} poster`, regionLabel(v.region), variantDownload(poster, v));
      item.dataset.region = v.region;
      return item;
    }),
  );
}

function compareWith(region) {
  const poster = state.poster;
  const variant = state.variants.find((v) => v.region === region);
  const before = $("compare-before");
  if (before.getAttribute("src") !== poster.image_url) before.src = poster.image_url;
  before.alt = `${poster.title} — original poster`;
  const after = $("compare-after");
  after.hidden = !variant;
  $("compare-heading").textContent = variant ? `Original and ${variant.region} variant` : "Original poster";
  $("compare-after-label").textContent = variant ? `${variant.region} variant` : "";
  if (variant) {
    if (after.getAttribute("src") !== variant.image_url) after.src = variant.image_url;
    after.alt = `${poster.title} — ${variant.region} poster`;
  }
  for (const radio of $("variant-picker").querySelectorAll("input")) radio.checked = radio.value === region;
  $("compare-downloads").replaceChildren(originalDownload(poster), ...(variant ? [variantDownload(poster, variant)] : []));
  revealVariant();
}

/** The slider places the divider: the original left of it, the variant right of it; a label hides with its image. */
function revealVariant() {
  const value = Number($("compare-slider").value);
  document.querySelector(".compare-stage").style.setProperty("--reveal", `${value}%`);
  $("compare-before-label").hidden = value === 0;
  $("compare-after-label").hidden = value === 100;
}

// --- watch history and live recommendations ---------------------------------------------------

function loadHistory() {
  try {
    const saved = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((item) => item && typeof item.id === "string") : [];
  } catch {
    return [];
  }
}

const isWatched = (id) => state.history.some((item) => item.id === id);

/** Change the history; changes are applied in the order they were made, however the answers arrive. */
function changeHistory(change) {
  state.watching = state.watching.then(change).catch((error) => toast(`Could not change the watch history: ${error.message}`));
}

async function addToHistory(id) {
  const poster = await api(posterPath(id));
  const entry = { id, title: poster.title, year: poster.year, variants: poster.variant_regions };
  setHistory([...state.history.filter((item) => item.id !== id), entry].slice(-config.historyLimit));
  toast(`Added “${poster.title}” to your watch history.`, () => changeHistory(() => removeFromHistory(id, false)));
}

function removeFromHistory(id, confirm = true) {
  const removed = state.history.find((item) => item.id === id);
  if (!removed) return;
  const before = state.history;
  setHistory(state.history.filter((item) => item.id !== id));
  if (confirm) toast(`Removed “${removed.title}” from your watch history.`, () => changeHistory(() => setHistory(before)));
}

const toggleWatched = (id) => changeHistory(() => (isWatched(id) ? removeFromHistory(id) : addToHistory(id)));

function setHistory(history) {
  state.history = history;
  localStorage.setItem(HISTORY_KEY, JSON.stringify(history));
  renderHistory();
  document.querySelectorAll(".card").forEach(setWatchedMark);
  updateDetailsWatch();
  refreshRecommendations();
}

function updateDetailsWatch() {
  if (!state.poster) return;
  const watched = isWatched(state.poster.id);
  const button = $("details-watch");
  button.setAttribute("aria-pressed", String(watched));
  button.textContent = watched ? "✓ In your watch history" : "+ Add to watch history";
}

function renderHistory() {
  $("history").replaceChildren(
    ...state.history.map((item) => {
      const li = document.createElement("li");
      li.className = "history-item";
      li.dataset.id = item.id;
      li.dataset.title = item.title;
      const shown = (item.variants || []).includes(state.region) ? state.region : null;
      const open = document.createElement("a");
      open.className = "history-open";
      open.dataset.action = "open";
      open.href = urlOf({ poster: item.id });
      const img = document.createElement("img");
      Object.assign(img, { className: "poster", width: 40, height: 60, alt: "", src: thumbUrl(item.id, shown) });
      const name = document.createElement("span");
      name.textContent = item.title;
      open.append(img, name);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.dataset.action = "forget";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${item.title} from watch history`);
      li.append(open, remove);
      return li;
    }),
  );
  $("history-empty").hidden = state.history.length > 0;
  $("history-clear").hidden = state.history.length === 0;
  $("history-count").textContent = state.history.length;
}

async function refreshRecommendations() {
  const list = $("recommendations");
  const status = $("recs-status");
  const request = ++state.recsRequest;
  if (state.history.length === 0) {
    list.replaceChildren();
    status.textContent = "";
    return;
  }
  status.textContent = "Updating recommendations…";
  try {
    const body = { history: state.history.map((item) => item.id), k: config.k };
    if (state.region) body.region = state.region;
    const answer = await api("/recommendations", { method: "POST", body: JSON.stringify(body) });
    if (request !== state.recsRequest) return;
    renderResults(list, answer.results);
    const n = state.history.length;
    status.textContent = `${answer.results.length} recommendations from ${n} watched poster${n === 1 ? "" : "s"}, closest first.`;
  } catch (error) {
    if (request === state.recsRequest) status.textContent = `No recommendations: ${error.message}`;
  }
}

// --- confirmation toast ------------------------------------------------------------------------

let toastTimer = 0;
let toastUndo = null;

/** A short message at the bottom of the screen (on a phone the history is far below), with an optional undo. */
function toast(text, undo = null) {
  $("toast-text").textContent = text;
  toastUndo = undo;
  $("toast-undo").hidden = !undo;
  (dialog.open ? dialog : document.body).append($("toast")); // outside an open modal dialog it would be inert, beneath it
  $("toast").hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { $("toast").hidden = true; }, TOAST_MS);
}

// --- search by an uploaded image ---------------------------------------------------------------

async function searchByImage(file) {
  const request = ++state.searchRequest;
  const section = $("image-search");
  section.hidden = false;
  const reader = new FileReader(); // a data: URL, which the page's Content-Security-Policy allows for images
  reader.addEventListener("load", () => { $("image-search-preview").src = reader.result; });
  reader.readAsDataURL(file);
  $("image-results").replaceChildren();
  $("image-search-status").textContent = `Searching for posters like ${file.name}…`;
  section.scrollIntoView({ block: "start" });
  const form = new FormData();
  form.append("image", file);
  form.append("k", String(config.k));
  if (state.region) form.append("region", state.region);
  try {
    const answer = await api("/search", { method: "POST", body: form });
    if (request !== state.searchRequest) return;
    renderResults($("image-results"), answer.results);
    $("image-search-status").textContent = `${answer.results.length} posters closest to ${file.name}, closest first.`;
  } catch (error) {
    if (request === state.searchRequest) $("image-search-status").textContent = `Search by image failed: ${error.message}`;
  }
}

// --- filters: every change is one request for the page, the title on Enter or Search ------------

let filterTimer = 0;

function applyFilters() {
  const form = $("filters");
  const region = form.elements.region.value;
  form.elements.has_variant.disabled = !region;
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => form.requestSubmit(), FILTER_DELAY_MS);
}

// --- wiring ------------------------------------------------------------------------------------

/** The backdrop of a modal dialog reports clicks as the dialog's own; its padding does too, so compare positions. */
function outside(element, event) {
  const box = element.getBoundingClientRect();
  return event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom;
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-action], [data-view]");
  if (!target) {
    if (event.target === dialog && outside(dialog, event)) dialog.close(); // a click on the backdrop
    return;
  }
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return; // a new tab keeps the link
  const holder = target.closest("[data-id]");
  if (target.dataset.view) {
    event.preventDefault();
    go(viewFromUrl(target.href));
    return;
  }
  switch (target.dataset.action) {
    case "open": event.preventDefault(); go({ poster: holder.dataset.id }); break;
    case "watch": toggleWatched(holder.dataset.id); break;
    case "watch-open": toggleWatched(state.poster.id); break;
    case "forget": changeHistory(() => removeFromHistory(holder.dataset.id)); break;
    case "close": dialog.close(); break;
  }
});

document.querySelectorAll("#filters [data-apply]").forEach((select) => select.addEventListener("change", applyFilters));
$("compare-slider").addEventListener("input", revealVariant);
$("variant-picker").addEventListener("change", (event) => go({ poster: state.poster.id, compare: event.target.value }));
$("history-clear").addEventListener("click", () => {
  const before = state.history;
  changeHistory(() => setHistory([]));
  toast("Cleared your watch history.", () => changeHistory(() => setHistory(before)));
});
$("toast-undo").addEventListener("click", () => {
  $("toast").hidden = true;
  toastUndo?.();
});
$("image-search-button").hidden = false;
$("image-search-file").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) searchByImage(file);
  event.target.value = ""; // the same file again is a new search
});
$("image-search-close").addEventListener("click", () => {
  state.searchRequest++;
  $("image-search").hidden = true;
});
dialog.addEventListener("close", () => {
  state.detailsRequest++;
  leaveDetails();
});
window.addEventListener("popstate", () => render(viewFromUrl()));

revealVariant();
renderHistory();
document.querySelectorAll("#grid .card").forEach(setWatchedMark);
refreshRecommendations();
render(viewFromUrl());
