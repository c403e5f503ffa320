// Draws I420 frames from the app's native decoder on a canvas with WebGL: the three planes
// go up as textures and a shader converts to RGB, so no pixel is touched in JavaScript.
// Frames arrive already scaled to the canvas's size (the app is told the size it draws at).

const VERTEX = `
attribute vec2 pos;
varying vec2 uv;
void main() {
  uv = vec2((pos.x + 1.0) / 2.0, (1.0 - pos.y) / 2.0);
  gl_Position = vec4(pos, 0.0, 1.0);
}`;

// BT.601 limited range, what libvpx decodes.
const FRAGMENT = `
precision mediump float;
varying vec2 uv;
uniform sampler2D y;
uniform sampler2D u;
uniform sampler2D v;
void main() {
  float Y = 1.1643 * (texture2D(y, uv).r - 0.0625);
  float U = texture2D(u, uv).r - 0.5;
  float V = texture2D(v, uv).r - 0.5;
  gl_FragColor = vec4(Y + 1.5958 * V, Y - 0.39173 * U - 0.81290 * V, Y + 2.017 * U, 1.0);
}`;

/** One decoded frame, as the app sends it. */
export interface Frame {
  participant: string;
  width: number;
  height: number;
  data: Uint8Array;
}

/** Parses the app's frame message: u16 id length, id, u32 width, u32 height, I420. */
export function parseFrame(buffer: ArrayBuffer): Frame | null {
  if (buffer.byteLength < 10) return null;
  const view = new DataView(buffer);
  const idLen = view.getUint16(0, true);
  if (buffer.byteLength < 2 + idLen + 8) return null;
  const participant = new TextDecoder().decode(new Uint8Array(buffer, 2, idLen));
  const width = view.getUint32(2 + idLen, true);
  const height = view.getUint32(6 + idLen, true);
  const data = new Uint8Array(buffer, 10 + idLen);
  const chroma = Math.ceil(width / 2) * Math.ceil(height / 2);
  if (width === 0 || height === 0 || data.byteLength < width * height + 2 * chroma) return null;
  return { participant, width, height, data };
}

export class YuvCanvas {
  readonly canvas: HTMLCanvasElement;
  private gl: WebGLRenderingContext | null;
  private textures: WebGLTexture[] = [];
  private ctx2d: CanvasRenderingContext2D | null = null;

  constructor(canvas: HTMLCanvasElement) {
    this.canvas = canvas;
    this.gl = canvas.getContext("webgl", { preserveDrawingBuffer: true });
    if (!this.gl) {
      this.ctx2d = canvas.getContext("2d");
      return;
    }
    const gl = this.gl;
    const program = gl.createProgram();
    const shader = (type: number, src: string): WebGLShader | null => {
      const s = gl.createShader(type);
      if (!s) return null;
      gl.shaderSource(s, src);
      gl.compileShader(s);
      return s;
    };
    const vs = shader(gl.VERTEX_SHADER, VERTEX);
    const fs = shader(gl.FRAGMENT_SHADER, FRAGMENT);
    if (!program || !vs || !fs) {
      this.gl = null;
      this.ctx2d = canvas.getContext("2d");
      return;
    }
    gl.attachShader(program, vs);
    gl.attachShader(program, fs);
    gl.linkProgram(program);
    gl.useProgram(program);
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const pos = gl.getAttribLocation(program, "pos");
    gl.enableVertexAttribArray(pos);
    gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);
    ["y", "u", "v"].forEach((name, i) => {
      const t = gl.createTexture();
      if (!t) return;
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.uniform1i(gl.getUniformLocation(program, name), i);
      this.textures.push(t);
    });
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  }

  draw(frame: Frame): void {
    const { width, height, data } = frame;
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const cw = Math.ceil(width / 2);
    const ch = Math.ceil(height / 2);
    const yP = data.subarray(0, width * height);
    const uP = data.subarray(width * height, width * height + cw * ch);
    const vP = data.subarray(width * height + cw * ch, width * height + 2 * cw * ch);
    const planes: [Uint8Array, number, number][] = [
      [yP, width, height],
      [uP, cw, ch],
      [vP, cw, ch],
    ];
    const gl = this.gl;
    if (gl && this.textures.length === 3) {
      gl.viewport(0, 0, width, height);
      planes.forEach(([plane, w, h], i) => {
        gl.activeTexture(gl.TEXTURE0 + i);
        gl.bindTexture(gl.TEXTURE_2D, this.textures[i] ?? null);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, w, h, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, plane);
      });
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      return;
    }
    // No WebGL (a software-only session): convert on the CPU, still at display size.
    if (!this.ctx2d) return;
    const image = this.ctx2d.createImageData(width, height);
    for (let row = 0; row < height; row++) {
      for (let col = 0; col < width; col++) {
        const Y = 1.1643 * ((yP[row * width + col] ?? 16) - 16);
        const c = (row >> 1) * cw + (col >> 1);
        const U = (uP[c] ?? 128) - 128;
        const V = (vP[c] ?? 128) - 128;
        const o = (row * width + col) * 4;
        image.data[o] = Y + 1.5958 * V;
        image.data[o + 1] = Y - 0.39173 * U - 0.8129 * V;
        image.data[o + 2] = Y + 2.017 * U;
        image.data[o + 3] = 255;
      }
    }
    this.ctx2d.putImageData(image, 0, 0);
  }
}
