// The static Space's page: loads space.json (written by `pix2pix-hub space build --static`), downloads the model's
// ONNX graph once (kept in Cache Storage), runs it with onnxruntime-web (WebGPU, else WebAssembly SIMD) on
// uploaded or painted images, and shows the result beside its input.
import {
  classIndices,
  hasWasmSimd,
  imageChannels,
  megabytes,
  oneHotPlanes,
  outputPixels,
  padInput,
  snapToColors,
} from "./pix2pix.js";

const CACHE_NAME = "pix2pix-hub-models";
const $ = (id) => document.getElementById(id);
// What the page did, for people and for tests: engine, threads, graph, where the model came from, timings.
const state = (window.pix2pixState = { ready: false, runs: 0 });
let config;
let session;
let ort;

function status(text, name) {
  $("status").textContent = text;
  if (name) $("status").dataset.state = name;
}

function showError(text) {
  $("message").textContent = text;
  $("message").hidden = false;
  state.error = text;
}

function clearError() {
  $("message").hidden = true;
  $("message").textContent = "";
  delete state.error;
}

function describeDirection(info) {
  if (!info.direction) return "not recorded with the model";
  if (info.input && info.output) return `${info.direction}: ${info.input} → ${info.output}`;
  return `${info.direction} (${info.direction === "AtoB" ? "A → B" : "B → A"})`;
}

function describeInput(info, generator) {
  if (info.label_nc) {
    const boundaries = info.instance ? ", with instance boundaries" : "";
    return `a class-index map, ${info.label_nc} classes${boundaries}`;
  }
  const kind = generator.in_channels === 1 ? "a grayscale image" : "an RGB image";
  return info.input ? `${info.input} (${kind})` : kind;
}

function chosenGraph() {
  const asked = new URLSearchParams(location.search).get("graph");
  return config.graphs[asked] ? asked : config.default_graph;
}

function showFacts() {
  const { info, generator } = config;
  $("model-name").textContent = config.model_id.split("/").pop();
  $("model-link").textContent = config.model_id;
  $("model-link").href = `https://huggingface.co/${config.model_id}`;
  $("direction").textContent = describeDirection(info);
  $("input-kind").textContent = describeInput(info, generator);
  $("ort-version").textContent = config.onnxruntime_web.version;
  const names = Object.keys(config.graphs);
  if (names.length > 1) {
    const select = $("graph");
    for (const name of names) {
      const graph = config.graphs[name];
      const gate = graph.psnr_db ? `, ${graph.psnr_db.toFixed(1)} dB from fp32` : "";
      select.add(new Option(`${name}: ${graph.file} (${megabytes(graph.bytes)}${gate})`, name));
    }
    select.value = state.graph;
    select.onchange = () => {
      const url = new URL(location.href);
      url.searchParams.set("graph", select.value);
      location.href = url.href;
    };
    $("graph-choice").hidden = false;
  }
}

/** The model's bytes: from Cache Storage, or downloaded with a progress bar (and then cached). */
async function modelBytes(url, expected) {
  const cache = "caches" in window ? await caches.open(CACHE_NAME).catch(() => null) : null;
  const cached = cache && (await cache.match(url));
  if (cached) {
    state.fromCache = true;
    return new Uint8Array(await cached.arrayBuffer());
  }
  state.fromCache = false;
  let response;
  try {
    response = await fetch(url, { mode: "cors" });
  } catch (error) {
    throw new Error(`could not reach ${url} (${error.message})`);
  }
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  const total = Number(response.headers.get("content-length")) || expected;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    $("progress").value = Math.min(1, received / total);
    status(`Downloading the model: ${megabytes(received)} of ${megabytes(total)}`, "downloading");
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  if (cache) await cache.put(url, new Response(bytes)).catch(() => {}); // a full disk only costs the next visit
  return bytes;
}

async function webgpuAdapter() {
  if (!navigator.gpu) return null;
  try {
    return await navigator.gpu.requestAdapter();
  } catch {
    return null;
  }
}

/** An inference session on WebGPU where the browser has an adapter, else on WebAssembly (threads if isolated). */
async function createSession(bytes) {
  const base = new URL("ort/", location.href).href;
  if (await webgpuAdapter()) {
    try {
      ort = await import("./ort/ort.webgpu.min.mjs");
      ort.env.wasm.wasmPaths = base;
      const webgpu = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
      state.engine = "WebGPU";
      return webgpu;
    } catch (error) {
      console.warn("WebGPU failed, using WebAssembly", error);
    }
  }
  ort = await import("./ort/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = base;
  const threads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.numThreads = threads;
  state.engine = `WebAssembly SIMD, ${threads} thread${threads > 1 ? "s" : ""}`;
  state.threads = threads;
  return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
}

async function loadModel() {
  const graph = config.graphs[state.graph];
  const url = `${config.model_base}/${graph.file}`;
  $("model-file").textContent = `${graph.file}, ${megabytes(graph.bytes)} (downloaded once, then cached)`;
  let bytes;
  try {
    const start = performance.now();
    bytes = await modelBytes(url, graph.bytes);
    state.downloadMs = performance.now() - start;
  } catch (error) {
    status("The model could not be loaded.", "failed");
    showError(
      `The model download failed: ${error.message}. Check your connection and reload the page ` +
        `(${graph.file} is ${megabytes(graph.bytes)}).`,
    );
    return;
  }
  status(state.fromCache ? "Loaded the model from this browser's cache." : "Downloaded; starting…", "starting");
  $("progress").value = 1;
  const start = performance.now();
  session = await createSession(bytes);
  state.sessionMs = performance.now() - start;
  $("engine").textContent = state.engine;
  state.ready = true;
  state.readyAt = performance.now();
  const source = state.fromCache ? "from this browser's cache" : "downloaded";
  status(`Ready (${graph.file} ${source}).`, "ready");
  $("upload").disabled = false;
  $("translate-drawing").disabled = false;
}

/** The model's input planes for an RGBA image, as Pix2Pix prepares them. */
function modelInput(rgba, width, height) {
  const { generator, info } = config;
  if (info.label_nc) {
    const colors = config.painter.classes.map((c) => c.color);
    const dontcare = Boolean(info.contain_dontcare_label);
    const indices = classIndices(rgba, width, height, colors, dontcare);
    const classes = info.label_nc + (dontcare ? 1 : 0);
    const planes = oneHotPlanes(indices, width, height, classes, Boolean(info.instance));
    return padInput(planes, width, height, generator.size_multiple, generator.min_size, false);
  }
  const planes = imageChannels(rgba, width, height, generator.in_channels);
  return padInput(planes, width, height, generator.size_multiple, generator.min_size);
}

function drawInto(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
}

async function translate(rgba, width, height, preview) {
  if (!session) return;
  clearError();
  let input;
  try {
    input = modelInput(rgba, width, height);
  } catch (error) {
    showError(error.message);
    return;
  }
  status("Translating…", "running");
  const start = performance.now();
  let output;
  try {
    const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", input.data, input.dims) };
    const styleDim = config.generator.style_dim || 0;
    if (session.inputNames.length > 1 && styleDim) {
      // A style encoder's generator: the zero code, the prior's mean, as Pix2Pix uses without style= or seed=.
      feeds[session.inputNames[1]] = new ort.Tensor("float32", new Float32Array(styleDim), [1, styleDim]);
    }
    output = (await session.run(feeds))[session.outputNames[0]];
  } catch (error) {
    status("Ready.", "ready");
    showError(`The translation failed (${error.message}); a smaller image may fit this device's memory.`);
    return;
  }
  state.runMs = performance.now() - start;
  const pixels = outputPixels(output.data, output.dims, input.box);
  drawInto($("output-canvas"), pixels, width, height);
  drawInto($("input-canvas"), preview || rgba, width, height);
  state.runs += 1;
  state.lastSize = [width, height];
  if (state.firstImageAt === undefined) state.firstImageAt = performance.now();
  $("timing").textContent =
    `${width}×${height} in ${state.runMs.toFixed(0)} ms on ${state.engine}` +
    (input.dims[2] !== height || input.dims[3] !== width ? ` (padded to ${input.dims[3]}×${input.dims[2]})` : "");
  $("slider-label").hidden = false;
  $("download").hidden = false;
  status("Done.", "done");
}

/** An uploaded file's RGBA pixels, refused before decoding when it is no image or too large. */
async function readUpload(file) {
  const url = URL.createObjectURL(file);
  try {
    const image = new Image();
    const loaded = new Promise((resolve, reject) => {
      image.onload = resolve;
      image.onerror = reject;
    });
    image.src = url;
    try {
      await loaded;
    } catch {
      throw new Error(`${file.name} is not an image this browser can read: upload a PNG, JPEG, WebP, GIF or BMP.`);
    }
    const [width, height] = [image.naturalWidth, image.naturalHeight];
    if (width * height > config.max_pixels) {
      throw new Error(
        `${file.name} is ${width}×${height} = ${width * height} pixels, above this page's limit of ` +
          `${config.max_pixels} (e.g. 4096×4096): downscale it first.`,
      );
    }
    const bitmap = await createImageBitmap(file, {
      imageOrientation: "from-image",
      premultiplyAlpha: "none",
      colorSpaceConversion: "none",
    }).catch(() => {
      throw new Error(`${file.name} could not be decoded as a bitmap: upload a PNG, JPEG, WebP, GIF or BMP.`);
    });
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    const data = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
    return { rgba: data, width: bitmap.width, height: bitmap.height };
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function onUpload(event) {
  const file = event.target.files[0];
  if (!file) return;
  clearError();
  try {
    const { rgba, width, height } = await readUpload(file);
    await translate(rgba, width, height);
  } catch (error) {
    status("Ready.", "ready");
    showError(error.message);
  }
  event.target.value = "";
}

function setUpPainter() {
  const painter = config.painter;
  if (!painter) return;
  $("paint-tab").hidden = false;
  const canvas = $("paint");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const colors = painter.classes.map((c) => c.color);
  let current = painter.kind === "facades" ? 1 : Math.min(1, colors.length - 1);
  const fill = () => {
    context.fillStyle = `rgb(${colors[painter.fill].join(",")})`;
    context.fillRect(0, 0, canvas.width, canvas.height);
  };
  fill();
  painter.classes.forEach((item, k) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "swatch" + (k === current ? " active" : "");
    button.innerHTML = `<i style="background: rgb(${item.color.join(",")})"></i>`;
    button.append(item.name);
    button.onclick = () => {
      current = k;
      document.querySelectorAll(".swatch").forEach((b) => b.classList.remove("active"));
      button.classList.add("active");
    };
    $("palette").append(button);
  });
  let drawing = false;
  const paint = (event) => {
    const box = canvas.getBoundingClientRect();
    const size = Number($("brush").value);
    const x = Math.floor(((event.clientX - box.left) / box.width) * canvas.width - size / 2);
    const y = Math.floor(((event.clientY - box.top) / box.height) * canvas.height - size / 2);
    context.fillStyle = `rgb(${colors[current].join(",")})`;
    context.fillRect(x, y, size, size); // whole pixels: no blended edges that are no class
  };
  canvas.onpointerdown = (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    paint(event);
  };
  canvas.onpointermove = (event) => drawing && paint(event);
  canvas.onpointerup = () => (drawing = false);
  $("clear").onclick = fill;
  $("translate-drawing").onclick = () => {
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    translate(snapToColors(data, colors, painter.fill), canvas.width, canvas.height);
  };
}

function setUpTabs() {
  document.querySelectorAll(".tab").forEach((tab) => {
    tab.onclick = () => {
      document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
      document.querySelectorAll(".panel").forEach((p) => (p.hidden = p.id !== tab.dataset.tab));
    };
  });
  $("slider").oninput = (event) => {
    $("input-canvas").style.clipPath = `inset(0 ${100 - event.target.value}% 0 0)`;
  };
  $("download").onclick = (event) => {
    event.preventDefault();
    $("output-canvas").toBlob((blob) => {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "pix2pix.png";
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    }, "image/png");
  };
  $("upload").onchange = onUpload;
}

async function main() {
  try {
    config = await (await fetch("space.json")).json();
  } catch (error) {
    showError(`This Space's space.json could not be read (${error.message}); rebuild the Space.`);
    return;
  }
  state.graph = chosenGraph();
  showFacts();
  setUpTabs();
  setUpPainter();
  if (!hasWasmSimd()) {
    status("This browser cannot run the model.", "unsupported");
    showError(
      "This browser has no WebAssembly SIMD, which the model's runtime (onnxruntime-web) needs: open the page in " +
        "a recent Chrome, Edge, Firefox or Safari (16.4 or later).",
    );
    $("engine").textContent = "none (no WebAssembly SIMD)";
    return;
  }
  await loadModel();
}

main().catch((error) => {
  status("Failed.", "failed");
  showError(`The page failed: ${error.message}`);
});
