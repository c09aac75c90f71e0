// The tfvae explorer page (python -m tfvae.explore). Plain JavaScript, no libraries.
//
// The latent map (codes, 2-D positions, density grids) comes from the explorer server
// (/explore/<i>/map.json and map.bin); log p(z) and log q(z) of a hovered code from
// /explore/<i>/density. Every image, and the codes of random samples, come from the exported
// SavedModel through TF Serving's REST API (:predict on decode, decode_z0,
// generate_with_temperature, encode): from the explorer's own dev server, or from
// ?server=http://host:8501&model=<name>[&model2=<name>].
"use strict";

const params = new URLSearchParams(window.location.search);
const SERVER = (params.get("server") || "").replace(/\/+$/, "");
const MODEL_NAMES = [params.get("model"), params.get("model2")];
const MAP_SIZE = 360; // canvas pixels per side
const SNAP_PIXELS = 6; // hovering this close to a test point decodes its own code
const STRIP_STEPS = 10;
const NUM_SAMPLES = 16;
const SLIDER_RANGE = 4;
const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];
const PRIOR_RGB = [70, 130, 220];
const POSTERIOR_RGB = [240, 150, 40];

// What tests and curious users read: the cards, and how long things took (ms).
const explorer = { cards: [], ready: false, timings: { mapLoad: null, decode: [] }, errors: [] };
window.explorer = explorer;

function showStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function fail(error) {
  explorer.errors.push(String(error));
  showStatus(String(error), true);
  console.error(error);
}

async function fetchJSON(url, body) {
  // A POST without a Content-Type header goes as text/plain: a "simple" cross-origin request
  // that needs no preflight. TF Serving and tfvae read the body as JSON whatever its type.
  const init = body === undefined ? {} : { method: "POST", body: JSON.stringify(body) };
  const response = await fetch(url, init);
  const payload = await response.json();
  if (!response.ok) throw new Error(`${url}: ${payload.error || response.statusText}`);
  return payload;
}

// Calls fn(arg) for the latest arg only: while a call runs, newer args replace each other.
function latestOnly(fn) {
  let busy = false;
  let pending = null;
  function run(arg) {
    if (busy) {
      pending = { arg };
      return;
    }
    busy = true;
    Promise.resolve()
      .then(() => fn(arg))
      .catch(fail)
      .finally(() => {
        busy = false;
        if (pending) {
          const next = pending.arg;
          pending = null;
          run(next);
        }
      });
  }
  return run;
}

// Draws images [n][H][W][C] (values in [0, 1]) side by side, `columns` per row.
function drawImages(canvas, images, columns) {
  const n = images.length;
  const h = images[0].length;
  const w = images[0][0].length;
  const cols = Math.min(columns || n, n);
  const rows = Math.ceil(n / cols);
  canvas.width = cols * w;
  canvas.height = rows * h;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(canvas.width, canvas.height);
  images.forEach((image, k) => {
    const x0 = (k % cols) * w;
    const y0 = Math.floor(k / cols) * h;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const pixel = image[y][x];
        const i = 4 * ((y0 + y) * canvas.width + x0 + x);
        for (let c = 0; c < 3; c++) {
          const v = pixel.length === 1 ? pixel[0] : pixel[c];
          data.data[i + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
        }
        data.data[i + 3] = 255;
      }
    }
  });
  ctx.putImageData(data, 0, 0);
  // Displayed at 4 (hover) or 2 (strips) screen pixels per image pixel.
  const scale = canvas.classList.contains("decoded") || canvas.classList.contains("slider-image")
    ? 4 : 2;
  canvas.style.width = `${canvas.width * scale}px`;
  canvas.style.height = `${canvas.height * scale}px`;
}

function mix(rgb, target, weight) {
  return rgb.map((v, i) => v + (target[i] - v) * weight);
}

function fmt(v) {
  return v === null || v === undefined ? "n/a" : v.toFixed(2);
}

// One 2-D view of a latent space ("z" or "z0") of one model.
class MapPanel {
  constructor(card, space, info, arrays) {
    this.card = card;
    this.space = space;
    this.info = info;
    this.positions = arrays[`${space}_positions`];
    this.codes = arrays[`${space}_codes`];
    this.lp = arrays[`${space}_lp_positions`] || null;
    this.hp = arrays[`${space}_hp_positions`] || null;
    this.labels = arrays.labels;
    this.d = card.map.latent_dim;
    this.extent = info.extent;
    this.highlight = -1;
    this.cursor = null;
    this.line = null;
    this.slider = null;
    this.samples = null; // codes of the last random samples (circles)
    const figure = document.createElement("figure");
    this.canvas = document.createElement("canvas");
    this.canvas.className = "map";
    this.canvas.dataset.space = space;
    this.canvas.width = MAP_SIZE;
    this.canvas.height = MAP_SIZE;
    const caption = document.createElement("figcaption");
    const pca = this.d > 2
      ? `PCA of ${this.d} dims, ${(100 * (info.explained_variance[0] + info.explained_variance[1])).toFixed(0)} % of the variance`
      : "the latent space";
    caption.textContent = `${space}: ${pca}`;
    figure.append(this.canvas, caption);
    card.element.querySelector(".maps").append(figure);
    this.base = document.createElement("canvas");
    this.base.width = MAP_SIZE;
    this.base.height = MAP_SIZE;
    this.attachEvents();
  }

  // Plane coordinates -> canvas pixels, and back (y points up on the plane).
  toCanvas(px, py) {
    const [x0, x1, y0, y1] = this.extent;
    return [((px - x0) / (x1 - x0)) * MAP_SIZE, ((y1 - py) / (y1 - y0)) * MAP_SIZE];
  }

  toPlane(cx, cy) {
    const [x0, x1, y0, y1] = this.extent;
    return [x0 + (cx / MAP_SIZE) * (x1 - x0), y1 - (cy / MAP_SIZE) * (y1 - y0)];
  }

  // Where test point i is, in the page's CSS pixels (for tests and the compare link).
  pointOnPage(i) {
    const [cx, cy] = this.toCanvas(this.positions[2 * i], this.positions[2 * i + 1]);
    const rect = this.canvas.getBoundingClientRect();
    return [rect.left + (cx * rect.width) / MAP_SIZE, rect.top + (cy * rect.height) / MAP_SIZE];
  }

  nearest(cx, cy) {
    let best = -1;
    let bestDist = SNAP_PIXELS * SNAP_PIXELS;
    const n = this.positions.length / 2;
    for (let i = 0; i < n; i++) {
      const [x, y] = this.toCanvas(this.positions[2 * i], this.positions[2 * i + 1]);
      const dist = (x - cx) ** 2 + (y - cy) ** 2;
      if (dist <= bestDist) {
        bestDist = dist;
        best = i;
      }
    }
    return best;
  }

  codeOf(i) {
    return Array.from(this.codes.subarray(i * this.d, (i + 1) * this.d));
  }

  // The full code under canvas pixel (cx, cy): a near test point's own code, else the plane's
  // point mapped back: mean + p @ components.
  codeAt(cx, cy) {
    const index = this.nearest(cx, cy);
    if (index >= 0) return { index, code: this.codeOf(index) };
    const [px, py] = this.toPlane(cx, cy);
    const { mean, components } = this.info;
    const code = mean.map((m, j) => m + px * components[0][j] + py * components[1][j]);
    return { index: -1, code };
  }

  project(code) {
    const { mean, components } = this.info;
    let px = 0;
    let py = 0;
    for (let j = 0; j < this.d; j++) {
      px += (code[j] - mean[j]) * components[0][j];
      py += (code[j] - mean[j]) * components[1][j];
    }
    return this.toCanvas(px, py);
  }

  eventPixel(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) * MAP_SIZE) / rect.width,
      ((event.clientY - rect.top) * MAP_SIZE) / rect.height,
    ];
  }

  attachEvents() {
    let dragFrom = null;
    this.canvas.addEventListener("mousedown", (event) => {
      dragFrom = this.eventPixel(event);
    });
    this.canvas.addEventListener("mousemove", (event) => {
      const [cx, cy] = this.eventPixel(event);
      this.cursor = [cx, cy];
      if (dragFrom) this.line = [dragFrom, [cx, cy]];
      this.drawOverlay();
      this.card.hover(this, this.codeAt(cx, cy));
    });
    this.canvas.addEventListener("mouseup", (event) => {
      const to = this.eventPixel(event);
      const from = dragFrom;
      dragFrom = null;
      if (from && Math.hypot(to[0] - from[0], to[1] - from[1]) > 5) {
        this.line = [from, to];
        this.drawOverlay();
        this.card.interpolate(this, this.codeAt(...from).code, this.codeAt(...to).code);
      } else {
        this.card.pick(this, this.codeAt(...to));
      }
    });
  }

  // The densities, regions, test points and LP/HP samples: drawn once per layer toggle.
  drawBase() {
    const ctx = this.base.getContext("2d");
    const g = this.card.map.grid_size;
    const showPrior = document.getElementById("show-prior").checked;
    const showPosterior = document.getElementById("show-posterior").checked;
    const showRegions = document.getElementById("show-regions").checked;
    const grid = document.createElement("canvas");
    grid.width = g;
    grid.height = g;
    const gctx = grid.getContext("2d");
    const image = gctx.createImageData(g, g);
    const logP = this.info.log_p;
    const logQ = this.info.log_q;
    const maxP = Math.max(...logP);
    const maxQ = logQ ? Math.max(...logQ) : 0;
    for (let k = 0; k < g * g; k++) {
      let rgb = [255, 255, 255];
      if (showPrior) rgb = mix(rgb, PRIOR_RGB, 0.8 * Math.sqrt(Math.exp(logP[k] - maxP)));
      if (showPosterior && logQ) {
        rgb = mix(rgb, POSTERIOR_RGB, 0.5 * Math.sqrt(Math.exp(logQ[k] - maxQ)));
      }
      image.data.set([...rgb.map(Math.round), 255], 4 * k);
    }
    gctx.putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.clearRect(0, 0, MAP_SIZE, MAP_SIZE);
    ctx.drawImage(grid, 0, 0, MAP_SIZE, MAP_SIZE);
    const cell = MAP_SIZE / g;
    if (showRegions && this.info.pocket) {
      for (let k = 0; k < g * g; k++) {
        const x = (k % g) * cell;
        const y = Math.floor(k / g) * cell;
        if (this.info.pocket[k]) {
          ctx.fillStyle = "rgba(128, 0, 160, 0.35)";
          ctx.fillRect(x, y, cell, cell);
        }
        if (this.info.leak[k]) {
          ctx.fillStyle = "rgba(220, 0, 0, 0.35)";
          ctx.fillRect(x, y, cell, cell);
        }
      }
    }
    const n = this.positions.length / 2;
    ctx.globalAlpha = 0.75;
    for (let i = 0; i < n; i++) {
      const [x, y] = this.toCanvas(this.positions[2 * i], this.positions[2 * i + 1]);
      ctx.fillStyle = PALETTE[this.labels[i] % PALETTE.length];
      ctx.fillRect(x - 1, y - 1, 2, 2);
    }
    ctx.globalAlpha = 1;
    if (showRegions) {
      this.drawMarks(ctx, this.lp, "rgb(110, 0, 140)", true);
      this.drawMarks(ctx, this.hp, "rgb(200, 0, 0)", false);
    }
  }

  drawMarks(ctx, positions, color, cross) {
    if (!positions) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let i = 0; i < positions.length / 2; i++) {
      const [x, y] = this.toCanvas(positions[2 * i], positions[2 * i + 1]);
      if (cross) {
        ctx.moveTo(x - 3, y - 3);
        ctx.lineTo(x + 3, y + 3);
        ctx.moveTo(x - 3, y + 3);
        ctx.lineTo(x + 3, y - 3);
      } else {
        ctx.moveTo(x - 3, y);
        ctx.lineTo(x + 3, y);
        ctx.moveTo(x, y - 3);
        ctx.lineTo(x, y + 3);
      }
    }
    ctx.stroke();
  }

  // The base plus what moves: the cursor, the highlighted test point, the line, the slider code.
  drawOverlay() {
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, MAP_SIZE, MAP_SIZE);
    ctx.drawImage(this.base, 0, 0);
    ctx.lineWidth = 2;
    if (this.highlight >= 0) {
      const [x, y] = this.toCanvas(
        this.positions[2 * this.highlight], this.positions[2 * this.highlight + 1]);
      ctx.strokeStyle = "#000";
      ctx.strokeRect(x - 5, y - 5, 10, 10);
    }
    if (this.line) {
      ctx.strokeStyle = "#000";
      ctx.beginPath();
      ctx.moveTo(...this.line[0]);
      ctx.lineTo(...this.line[1]);
      ctx.stroke();
    }
    if (this.samples) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1.5;
      for (const code of this.samples) {
        const [x, y] = this.project(code);
        ctx.beginPath();
        ctx.arc(x, y, 3, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.lineWidth = 2;
    }
    if (this.slider) {
      const [x, y] = this.project(this.slider);
      ctx.fillStyle = "#000";
      ctx.beginPath();
      ctx.arc(x, y, 4, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  draw() {
    this.drawBase();
    this.drawOverlay();
  }
}

// One model: its maps, the decoded image, the interpolation strip, sliders and samples.
class Card {
  constructor(index, info, map, arrays) {
    this.index = index;
    this.info = info;
    this.map = map;
    this.element = document.getElementById("card-template").content.firstElementChild
      .cloneNode(true);
    document.getElementById("cards").append(this.element);
    this.$ = (selector) => this.element.querySelector(selector);
    this.$(".title").textContent = `${info.name} (version ${info.version})`;
    this.$(".meta").textContent = `${map.objective}, ${map.prior} prior, ${map.dataset}, ` +
      `step ${map.step}, latent size ${map.latent_dim}, ${map.num_points} test examples`;
    this.panels = Object.keys(map.spaces).map((s) => new MapPanel(this, s, map.spaces[s], arrays));
    // Sliders and interpolations work in z0 for a decoupled prior, as evaluation does.
    this.sliderSpace = map.decoupled ? "z0" : "z";
    this.$(".slider-space").textContent = `(${this.sliderSpace})`;
    this.$(".strip-space").textContent = `(linear in ${this.sliderSpace})`;
    this.lastHover = null;
    this.hoverRun = latestOnly((request) => this.decodeHover(request));
    this.sliderRun = latestOnly((code) => this.decodeSlider(code));
    this.buildSliders();
    const temperature = this.$(".temperature");
    temperature.addEventListener("input", () => {
      this.$(".temperature-value").textContent = Number(temperature.value).toFixed(2);
    });
    this.$(".sample").addEventListener("click", () => this.sample().catch(fail));
  }

  predictUrl() {
    if (SERVER) {
      const name = MODEL_NAMES[this.index] || this.info.name;
      return `${SERVER}/v1/models/${encodeURIComponent(name)}:predict`;
    }
    const { name, version } = this.info;
    return `/v1/models/${encodeURIComponent(name)}/versions/${version}:predict`;
  }

  async predict(signature, inputs) {
    const out = await fetchJSON(this.predictUrl(), { signature_name: signature, inputs });
    return out.outputs;
  }

  // Images for codes in `space`: decode (z) or decode_z0 (z0).
  decode(space, codes) {
    const inputs = { [space]: codes };
    if (this.map.autoregressive) inputs.seed = codes.map(() => 0);
    return this.predict(space === "z0" ? "decode_z0" : "decode", inputs);
  }

  density(space, codes) {
    return fetchJSON(`/explore/${this.index}/density`, { [space]: codes });
  }

  hover(panel, target, linked) {
    for (const p of this.panels) p.highlight = p === panel || linked ? target.index : -1;
    if (!linked && target.index >= 0) {
      for (const other of explorer.cards) if (other !== this) other.showIndex(target.index);
    }
    this.hoverRun({ space: panel.space, ...target });
  }

  // The same test example on this model's maps (the compared model's hover).
  showIndex(index) {
    const panel = this.panels[0];
    this.hover(panel, { index, code: panel.codeOf(index) }, true);
    for (const p of this.panels) p.drawOverlay();
  }

  async decodeHover(request) {
    const start = performance.now();
    const [images, dens] = await Promise.all([
      this.decode(request.space, [request.code]),
      this.density(request.space, [request.code]),
    ]);
    drawImages(this.$(".decoded"), images);
    explorer.timings.decode.push(performance.now() - start);
    const example = request.index >= 0 ? `test example ${request.index}\n` : "";
    this.$(".readout").textContent = `${example}log q(z) = ${fmt(dens.log_q && dens.log_q[0])}\n` +
      `log p(z) = ${fmt(dens.log_p[0])}\n${request.space} = [${request.code.slice(0, 4)
        .map((v) => v.toFixed(2)).join(", ")}${request.code.length > 4 ? ", ..." : ""}]`;
    this.lastHover = { ...request, logQ: dens.log_q && dens.log_q[0], logP: dens.log_p[0] };
  }

  // A click sets the sliders to the clicked code (in z0 for a decoupled prior).
  async pick(panel, target) {
    const dens = await this.density(panel.space, [target.code]);
    this.setSliders(dens[this.sliderSpace][0]);
  }

  async interpolate(panel, from, to) {
    let ends = [from, to];
    if (panel.space !== this.sliderSpace) {
      const dens = await this.density(panel.space, ends);
      ends = dens[this.sliderSpace];
    }
    const codes = [];
    for (let k = 0; k < STRIP_STEPS; k++) {
      const t = k / (STRIP_STEPS - 1);
      codes.push(ends[0].map((a, j) => (1 - t) * a + t * ends[1][j]));
    }
    const images = await this.decode(this.sliderSpace, codes);
    drawImages(this.$(".strip"), images, STRIP_STEPS);
    this.lastInterpolation = { space: this.sliderSpace, codes };
  }

  buildSliders() {
    const box = this.$(".sliders");
    this.sliders = [];
    for (let j = 0; j < this.map.latent_dim; j++) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min: -SLIDER_RANGE, max: SLIDER_RANGE, step: 0.01 });
      input.value = 0;
      input.dataset.dim = j;
      const output = document.createElement("output");
      output.textContent = "0.00";
      input.addEventListener("input", () => {
        output.textContent = Number(input.value).toFixed(2);
        this.sliderRun(this.sliderCode());
      });
      label.append(`${this.sliderSpace}[${j}]`, input, output);
      box.append(label);
      this.sliders.push({ input, output });
    }
  }

  sliderCode() {
    return this.sliders.map((s) => Number(s.input.value));
  }

  setSliders(code) {
    code.forEach((v, j) => {
      this.sliders[j].input.value = v;
      this.sliders[j].output.textContent = Number(this.sliders[j].input.value).toFixed(2);
    });
    this.sliderRun(this.sliderCode());
  }

  async decodeSlider(code) {
    const [images, dens] = await Promise.all([
      this.decode(this.sliderSpace, [code]),
      this.density(this.sliderSpace, [code]),
    ]);
    drawImages(this.$(".slider-image"), images);
    this.$(".slider-readout").textContent =
      `log q(z) = ${fmt(dens.log_q && dens.log_q[0])}\nlog p(z) = ${fmt(dens.log_p[0])}`;
    for (const panel of this.panels) {
      panel.slider = dens[panel.space][0];
      panel.drawOverlay();
    }
    this.lastSlider = { space: this.sliderSpace, code };
  }

  // Random samples through generate_with_temperature: z0 ~ N(0, t^2 I) for random seeds.
  async sample() {
    const t = Number(this.$(".temperature").value);
    const seed = Array.from({ length: NUM_SAMPLES }, () => Math.floor(Math.random() * 2 ** 31));
    const images = await this.predict("generate_with_temperature", {
      seed,
      temperature: seed.map(() => t),
    });
    drawImages(this.$(".samples"), images, 8);
    // Where the samples land: encode them (the export's encode signature) and mark their codes.
    const codes = await this.predict("encode", { images });
    const z = codes.z_mean || codes.z;
    for (const panel of this.panels) {
      panel.samples = panel.space === "z0" ? codes.z0 : z;
      panel.drawOverlay();
    }
    this.lastSamples = { seed, temperature: t, z, z0: codes.z0 || null };
  }
}

async function loadMap(index) {
  const [map, buffer] = await Promise.all([
    fetchJSON(`/explore/${index}/map.json`),
    fetch(`/explore/${index}/map.bin`).then((r) => r.arrayBuffer()),
  ]);
  const arrays = {};
  for (const [name, place] of Object.entries(map.arrays)) {
    const count = place.shape.reduce((a, b) => a * b, 1);
    const Type = place.dtype === "uint8" ? Uint8Array : Float32Array;
    arrays[name] = new Type(buffer, place.offset, count);
  }
  return { map, arrays };
}

async function main() {
  const models = await fetchJSON("/explore/models");
  const maps = await Promise.all(models.map((_, i) => loadMap(i)));
  maps.forEach(({ map, arrays }, i) => explorer.cards.push(new Card(i, models[i], map, arrays)));
  const redraw = () => explorer.cards.forEach((card) => card.panels.forEach((p) => p.draw()));
  for (const id of ["show-prior", "show-posterior", "show-regions"]) {
    document.getElementById(id).addEventListener("change", redraw);
  }
  redraw();
  explorer.timings.mapLoad = performance.now();
  const where = SERVER ? ` (decoding on ${SERVER})` : "";
  showStatus(`${models.map((m) => m.name).join(" and ")}: map drawn in ` +
    `${(explorer.timings.mapLoad / 1000).toFixed(2)} s${where}.`);
  explorer.ready = true;
}

main().catch(fail);
