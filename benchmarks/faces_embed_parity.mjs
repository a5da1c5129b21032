// face-api's own descriptors for benchmarks/faces_embed_parity.py (which runs this file).
//
//   node faces_embed_parity.mjs NODE_PROJECT INPUTS.f32 COUNT OUT.f32
//
// NODE_PROJECT: a folder where `npm install @vladmandic/face-api@1.7.15
// @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0` was run (face-api's Node
// bundle without a native binary is face-api.node-wasm.js; it needs the wasm package
// installed, but the computation runs on tfjs's plain JavaScript CPU backend).
// INPUTS.f32: COUNT images of 150x150x3 (HWC, RGB, 0..255) as raw little-endian float32.
// OUT.f32: COUNT descriptors of 128 float32, in the same order.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [project, inputs, countArg, out] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(project), 'package.json'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const { tf } = faceapi;

await tf.setBackend('cpu');
await tf.ready();
const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')),
  'model');
await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);

const count = Number(countArg);
const side = 150 * 150 * 3;
const buf = fs.readFileSync(inputs);
const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
if (all.length !== count * side) throw new Error(`${inputs}: ${all.length} floats, want ${count * side}`);
const result = new Float32Array(count * 128);
for (let i = 0; i < count; i += 1) {
  const image = tf.tensor3d(all.slice(i * side, (i + 1) * side), [150, 150, 3], 'float32');
  const descriptor = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(image);
  result.set(descriptor, i * 128);
  image.dispose();
}
fs.writeFileSync(out, Buffer.from(result.buffer));
console.log(`face-api ${faceapi.version} tfjs ${tf.version_core} backend ${tf.getBackend()}: ${count} descriptors`);
