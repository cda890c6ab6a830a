// What Pix2Pix does to an image before its generator and after it, in JavaScript, equal to the Python package's
// pix2pix_hub.inference.processor (size rules, size_mode "pad") and pix2pix_hub.images.arrays (the conversions):
//   uint8 -> float32: x / 127.5 - 1 (each step rounded to float32, as numpy's and torch's float32 arithmetic)
//   float32 -> uint8: round-half-to-even((y + 1) * 127.5), clamped to 0..255
//   pad: centred, reflect (torch's "reflect": the edge pixel is not repeated), or edge-replicate where a side is
//   too small to reflect; the output is cropped back to the input's size.

const f32 = Math.fround;

/** pad_box: [top, bottom, left, right, reflect] making height and width multiples of `multiple`, >= minSize. */
export function padBox(height, width, multiple, minSize = 1) {
  const floor = Math.max(multiple, minSize);
  const padH = Math.max(floor, height + ((multiple - (height % multiple)) % multiple)) - height;
  const padW = Math.max(floor, width + ((multiple - (width % multiple)) % multiple)) - width;
  const top = Math.floor(padH / 2);
  const left = Math.floor(padW / 2);
  const bottom = padH - top;
  const right = padW - left;
  return [top, bottom, left, right, Math.max(left, right) < width && Math.max(top, bottom) < height];
}

/** The source index of padded position `i` (offset `start` into a side of `n` pixels). */
function sourceIndex(i, n, reflect) {
  if (reflect) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
  }
  return Math.min(Math.max(i, 0), n - 1);
}

/** Round half to even, as numpy's rint and torch's round. */
export function roundHalfEven(value) {
  const floor = Math.floor(value);
  const rest = value - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** uint8 level -> the model's float32 value in [-1, 1] (uint8_to_model, bit for bit). */
export function toModel(level) {
  return f32(f32(level / 127.5) - 1);
}

/** The model's value -> a uint8 level (model_to_uint8 / tensor_to_uint8). */
export function toLevel(value) {
  const scaled = f32(f32(value + 1) * 127.5);
  return Math.min(255, Math.max(0, roundHalfEven(scaled)));
}

/**
 * Channels of an RGBA image as the model's input: RGB, or L (PIL's "L" conversion), with transparent pixels
 * composited on white (convert_image). Returns {planes: Uint8Array[channels], width, height}.
 */
export function imageChannels(rgba, width, height, channels) {
  const count = width * height;
  const planes = Array.from({ length: channels }, () => new Uint8Array(count));
  for (let p = 0; p < count; p++) {
    const a = rgba[4 * p + 3];
    let rgb = [rgba[4 * p], rgba[4 * p + 1], rgba[4 * p + 2]];
    if (a < 255 && channels !== 4) {
      rgb = rgb.map((c) => Math.floor((c * a + 255 * (255 - a) + 127) / 255));
    }
    if (channels === 1) {
      planes[0][p] = (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16;
    } else {
      for (let c = 0; c < 3; c++) planes[c][p] = rgb[c];
      if (channels === 4) planes[3][p] = a;
    }
  }
  return planes;
}

/**
 * The generator's input (1, C, H', W') as a Float32Array: `planes` (C planes of `height` x `width`; uint8 levels,
 * or float32 values already in [-1, 1] when `levels` is false) padded as Pix2Pix pads. Returns {data, dims, box}.
 */
export function padInput(planes, width, height, multiple, minSize, levels = true) {
  const [top, bottom, left, right, reflect] = padBox(height, width, multiple, minSize);
  const H = height + top + bottom;
  const W = width + left + right;
  const data = new Float32Array(planes.length * H * W);
  const rows = Int32Array.from({ length: H }, (_, y) => sourceIndex(y - top, height, reflect));
  const cols = Int32Array.from({ length: W }, (_, x) => sourceIndex(x - left, width, reflect));
  planes.forEach((plane, c) => {
    const base = c * H * W;
    for (let y = 0; y < H; y++) {
      const row = rows[y] * width;
      for (let x = 0; x < W; x++) {
        const v = plane[row + cols[x]];
        data[base + y * W + x] = levels ? toModel(v) : v;
      }
    }
  });
  return { data, dims: [1, planes.length, H, W], box: { top, left, height, width } };
}

/** The generator's output (1, C, H', W') -> RGBA pixels of the input's size (cropped back; 1 channel as gray). */
export function outputPixels(output, dims, box) {
  const [, channels, H, W] = dims;
  const { top, left, height, width } = box;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const source = (y + top) * W + (x + left);
      const p = 4 * (y * width + x);
      for (let c = 0; c < 3; c++) {
        const plane = channels === 1 ? 0 : c;
        rgba[p + c] = toLevel(output[plane * H * W + source]);
      }
      rgba[p + 3] = channels === 4 ? toLevel(output[3 * H * W + source]) : 255;
    }
  }
  return rgba;
}

/**
 * A label-map model's input: class indices from an RGBA image whose pixels are all exactly the model's class
 * colours (labels.label_indices), or else all gray (r = g = b: the index itself, as a grayscale index PNG reads;
 * with `dontcare`, index label_nc or 255 is the don't-care class, as labels.dontcare_to_index reads it).
 * Throws an Error saying which rule failed. Returns an Int32Array of indices.
 */
export function classIndices(rgba, width, height, colors, dontcare = false) {
  const count = width * height;
  const lookup = new Map(colors.map(([r, g, b], k) => [(r << 16) | (g << 8) | b, k]));
  const indices = new Int32Array(count);
  let byColor = true;
  for (let p = 0; p < count && byColor; p++) {
    const k = lookup.get((rgba[4 * p] << 16) | (rgba[4 * p + 1] << 8) | rgba[4 * p + 2]);
    if (k === undefined) byColor = false;
    else indices[p] = k;
  }
  if (byColor) return indices;
  for (let p = 0; p < count; p++) {
    const v = rgba[4 * p];
    if (rgba[4 * p + 1] !== v || rgba[4 * p + 2] !== v) {
      throw new Error(
        `This model takes a class-index map (${colors.length} classes): a grayscale PNG of class indices, or an ` +
          "image painted in the model's class colours only.",
      );
    }
    const last = colors.length - (dontcare ? 0 : 1);
    if (v > last && !(dontcare && v === 255)) {
      throw new Error(`The class-index map holds ${v}; this model has classes 0..${last}.`);
    }
    indices[p] = v === 255 && dontcare ? colors.length : v;
  }
  return indices;
}

/**
 * One-hot planes (`classes` = label_nc [+ 1 don't-care], then with `instance` the boundary channel, as
 * labels.encode_label_map with no instance map: the class boundaries serve) as float32 planes in {0, 1}.
 */
export function oneHotPlanes(indices, width, height, classes, instance) {
  const count = width * height;
  const planes = Array.from({ length: classes + (instance ? 1 : 0) }, () => new Float32Array(count));
  for (let p = 0; p < count; p++) planes[indices[p]][p] = 1;
  if (instance) {
    const edges = planes[classes];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = y * width + x;
        if (x + 1 < width && indices[p] !== indices[p + 1]) edges[p] = edges[p + 1] = 1;
        if (y + 1 < height && indices[p] !== indices[p + width]) edges[p] = edges[p + width] = 1;
      }
    }
  }
  return planes;
}

/** Every pixel of an RGBA image mapped to the nearest of `colors` (snap_to_palette); transparent -> `fill`. */
export function snapToColors(rgba, colors, fill) {
  const out = new Uint8ClampedArray(rgba.length);
  for (let p = 0; p < rgba.length; p += 4) {
    let best = fill;
    if (rgba[p + 3] >= 128) {
      let bestDistance = Infinity;
      colors.forEach(([r, g, b], k) => {
        const d = (rgba[p] - r) ** 2 + (rgba[p + 1] - g) ** 2 + (rgba[p + 2] - b) ** 2;
        if (d < bestDistance) [best, bestDistance] = [k, d];
      });
    }
    [out[p], out[p + 1], out[p + 2]] = colors[best];
    out[p + 3] = 255;
  }
  return out;
}

/** "12.3 MB" */
export function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** WebAssembly SIMD: whether this browser validates a module whose one function returns a v128 constant. */
export function hasWasmSimd() {
  const bytes = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12];
  const module = Uint8Array.from([...bytes, ...new Array(16).fill(0), 11]);
  return typeof WebAssembly === "object" && WebAssembly.validate(module);
}
