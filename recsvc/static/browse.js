// PosterRec browse page: details with similar posters, region switch, watch history with live
// recommendations, before/after comparison. Plain JavaScript, no build step; every request goes to
// the public /v1 API (and /thumbs for small images). The grid itself is rendered by the server.
"use strict";

const config = JSON.parse(document.getElementById("posterrec-config").textContent);
const HISTORY_KEY = "posterrec.history";

const $ = (id) => document.getElementById(id);
const regionSelect = $("region");
const dialog = $("details");
const cardTemplate = $("card-template");

const state = {
  region: regionSelect.value || null,
  history: loadHistory(),
  openId: null,
  variants: [],      // variants of the poster open in the dialog
  compared: null,    // the region compared in the before/after view
  watching: Promise.resolve(), // history additions, one after another
  recsRequest: 0,    // answers to older requests are dropped
  detailsRequest: 0,
};

// --- talking to /v1 ---------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(config.apiRoot + path, {
    headers: { Accept: "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) },
    ...options,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

const posterPath = (id) => `/posters/${encodeURIComponent(id)}`;
const regionQuery = (prefix) => (state.region ? `${prefix}region=${state.region}` : "");

function thumbUrl(id, shown) {
  return `${config.thumbRoot}/${encodeURIComponent(id)}${shown ? `?region=${shown}` : ""}`;
}

// --- cards: the server's markup (cloned from <template>), one rule for which image is shown ------

function variantsOf(card) {
  return card.dataset.variants.split(" ").filter(Boolean);
}

/** Show the card's regional variant for the selected region, or its original with a marker. */
function showRegion(card) {
  const shown = variantsOf(card).includes(state.region) ? state.region : null;
  const img = card.querySelector("img.poster");
  const src = thumbUrl(card.dataset.id, shown);
  if (img.getAttribute("src") !== src) img.src = src;
  img.alt = `${card.dataset.title} — ${shown ? `${shown} poster` : "original poster"}`;
  const badge = card.querySelector(".badge");
  badge.hidden = !state.region;
  badge.textContent = shown || "Original";
  badge.classList.toggle("badge-variant", Boolean(shown));
  card.dataset.shown = shown || "original";
}

function makeCard({ id, title, year, variants = [], score = null }) {
  const card = cardTemplate.content.firstElementChild.cloneNode(true);
  Object.assign(card.dataset, { id, title, year: year ?? "", variants: variants.join(" ") });
  const label = year ? `${title} (${year})` : title;
  card.querySelector(".card-open").setAttribute("aria-label", `Details of ${label}`);
  card.querySelector(".watch").setAttribute("aria-label", `Add ${title} to watch history`);
  card.querySelector(".card-title").textContent = title;
  card.querySelector(".card-year").textContent = year ?? "";
  if (score !== null) {
    const scoreEl = card.querySelector(".score");
    scoreEl.hidden = false;
    scoreEl.textContent = `score ${score.toFixed(3)}`;
  }
  showRegion(card);
  return card;
}

/** Results of /similar and /recommendations; a result's ``region`` is set when its variant is shown. */
function renderResults(list, results) {
  list.replaceChildren(
    ...results.map((r) => makeCard({ id: r.id, title: r.title, variants: r.region ? [r.region] : [], score: r.score })),
  );
}

// --- details dialog: metadata, before/after, similar posters ----------------------------------

async function openDetails(id) {
  state.openId = id;
  const request = ++state.detailsRequest;
  if (!dialog.open) dialog.showModal();
  $("details-status").textContent = "Loading…";
  try {
    const [poster, variants, similar] = await Promise.all([
      api(posterPath(id)),
      api(`${posterPath(id)}/variants`),
      api(`${posterPath(id)}/similar?k=${config.k}${regionQuery("&")}`),
    ]);
    if (request !== state.detailsRequest) return;
    $("details-title").textContent = poster.title;
    const regions = poster.variant_regions.length ? poster.variant_regions.join(", ") : "none yet";
    $("details-meta").textContent =
      `${poster.year ?? "year unknown"} · ${poster.genres.join(", ") || "no genre"} · variants: ${regions}`;
    $("details-status").textContent = "";
    state.variants = variants.variants;
    showComparison(poster, state.variants.some((v) => v.region === state.region) ? state.region : null);
    renderResults($("similar"), similar.results);
  } catch (error) {
    if (request === state.detailsRequest) $("details-status").textContent = `Could not load this poster: ${error.message}`;
  }
}

function showComparison(poster, preferred) {
  const before = $("compare-before");
  before.src = poster.image_url;
  before.alt = `${poster.title} — original poster`;
  const none = state.variants.length === 0;
  $("compare-none").hidden = !none;
  document.querySelector(".compare-stage").classList.toggle("single", none);
  $("compare-slider").disabled = none;
  $("variant-picker").replaceChildren(
    ...state.variants.map((v) => {
      const label = document.createElement("label");
      const radio = document.createElement("input");
      Object.assign(radio, { type: "radio", name: "compare-variant", value: v.region });
      const name = document.createElement("span");
      name.textContent = `${v.region} · ${v.title}`;
      name.lang = v.language;
      label.append(radio, name);
      return label;
    }),
  );
  compareWith(none ? null : preferred || state.variants[0].region);
}

function compareWith(region) {
  state.compared = region;
  const variant = state.variants.find((v) => v.region === region);
  const after = $("compare-after");
  after.hidden = !variant;
  $("compare-after-label").textContent = variant ? `${variant.region} variant` : "";
  if (variant) {
    after.src = variant.image_url;
    after.alt = `${$("details-title").textContent} — ${variant.region} poster, titled “${variant.title}”`;
  }
  for (const radio of $("variant-picker").querySelectorAll("input")) radio.checked = radio.value === region;
}

function revealVariant() {
  document.querySelector(".compare-stage").style.setProperty("--reveal", `${$("compare-slider").value}%`);
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

function saveHistory() {
  localStorage.setItem(HISTORY_KEY, JSON.stringify(state.history));
}

/** Add a poster to the history; clicks are applied in the order they were made, however the answers arrive. */
function watch(id) {
  state.watching = state.watching.then(() => addToHistory(id));
}

async function addToHistory(id) {
  try {
    const poster = await api(posterPath(id));
    const entry = { id, title: poster.title, year: poster.year, variants: poster.variant_regions };
    state.history = [...state.history.filter((item) => item.id !== id), entry].slice(-config.historyLimit);
    saveHistory();
    renderHistory();
    refreshRecommendations();
  } catch (error) {
    $("recs-status").textContent = `Could not add this poster: ${error.message}`;
  }
}

function forget(id) {
  state.history = state.history.filter((item) => item.id !== id);
  saveHistory();
  renderHistory();
  refreshRecommendations();
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren(
    ...state.history.map((item) => {
      const li = document.createElement("li");
      li.className = "history-item";
      Object.assign(li.dataset, { id: item.id, title: item.title, variants: (item.variants || []).join(" ") });
      const img = document.createElement("img");
      img.className = "poster";
      img.width = 40;
      img.height = 60;
      const name = document.createElement("span");
      name.textContent = item.title;
      const badge = document.createElement("span");
      badge.className = "badge";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.dataset.action = "forget";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${item.title} from watch history`);
      li.append(img, badge, name, remove);
      showRegion(li);
      return li;
    }),
  );
  $("history-empty").hidden = state.history.length > 0;
  $("history-clear").hidden = state.history.length === 0;
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
    status.textContent = `${answer.results.length} recommendations from ${n} watched poster${n === 1 ? "" : "s"} (${answer.aggregation}).`;
  } catch (error) {
    if (request === state.recsRequest) status.textContent = `No recommendations: ${error.message}`;
  }
}

// --- the region switch -------------------------------------------------------------------------

function withRegion(href) {
  const url = new URL(href, window.location.href);
  if (state.region) url.searchParams.set("region", state.region);
  else url.searchParams.delete("region");
  return url.toString();
}

/** Every poster on the page follows the region; links and the address keep it for the next page. */
function switchRegion(region) {
  state.region = region || null;
  document.querySelectorAll("#grid .card, #history .history-item").forEach(showRegion);
  document.querySelectorAll(".pager a").forEach((a) => { a.href = withRegion(a.href); });
  window.history.replaceState(null, "", withRegion(window.location.href));
  refreshRecommendations();
  if (dialog.open && state.openId) openDetails(state.openId);
}

// --- wiring ------------------------------------------------------------------------------------

/** The backdrop of a modal dialog reports clicks as the dialog's own; its padding does too, so compare positions. */
function outside(element, event) {
  const box = element.getBoundingClientRect();
  return event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom;
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-action]");
  if (!target) {
    if (event.target === dialog && outside(dialog, event)) dialog.close(); // a click on the backdrop
    return;
  }
  const holder = target.closest("[data-id]");
  switch (target.dataset.action) {
    case "open": openDetails(holder.dataset.id); break;
    case "watch": watch(holder.dataset.id); break;
    case "watch-open": watch(state.openId); break;
    case "forget": forget(holder.dataset.id); break;
    case "close": dialog.close(); break;
  }
});

regionSelect.addEventListener("change", () => switchRegion(regionSelect.value));
$("compare-slider").addEventListener("input", revealVariant);
$("variant-picker").addEventListener("change", (event) => compareWith(event.target.value));
$("history-clear").addEventListener("click", () => {
  state.history = [];
  saveHistory();
  renderHistory();
  refreshRecommendations();
});
dialog.addEventListener("close", () => {
  state.openId = null;
  state.detailsRequest++;
});

revealVariant();
renderHistory();
refreshRecommendations();
