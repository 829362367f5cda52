// Drive the `remove.bg` npm client (1.3.0) against a Cutout server.
//
// The client hard-codes https://api.remove.bg/v1.0/removebg; the only change made here is
// the base URL (unirest.post is wrapped to swap the origin), as a user switching services
// would. Everything else - the request bodies, the X-Api-Key header, Accept: application/json,
// the parsing of the answer - is the library's own code.
//
// usage: node drive.js BASE_URL API_KEY IMAGE_PATH IMAGE_URL
// prints one JSON object: {name: {ok, result | errors}} per call.
"use strict";
const fs = require("fs");
const unirest = require("unirest");

const [base, apiKey, imagePath, imageUrl] = process.argv.slice(2);
const post = unirest.post;
unirest.post = (url, ...rest) => post(url.replace("https://api.remove.bg", base), ...rest);

const removebg = require("remove.bg");

function settle(promise) {
  return promise.then(
    (result) => ({ ok: true, result }),
    (errors) => ({ ok: false, errors }),
  );
}

async function main() {
  const out = {};
  out.file = await settle(removebg.removeBackgroundFromImageFile({
    path: imagePath, apiKey, size: "regular", type: "product", crop: true,
  }));
  out.base64 = await settle(removebg.removeBackgroundFromImageBase64({
    base64img: fs.readFileSync(imagePath, { encoding: "base64" }), apiKey, size: "medium",
    bg_color: "81d4fa", scale: "50%",
  }));
  out.url = await settle(removebg.removeBackgroundFromImageUrl({
    url: imageUrl, apiKey, size: "auto", channels: "alpha",
  }));
  out.bad_size = await settle(removebg.removeBackgroundFromImageFile({
    path: imagePath, apiKey, size: "gigantic",
  }));
  out.bad_key = await settle(removebg.removeBackgroundFromImageFile({
    path: imagePath, apiKey: "not-a-key",
  }));
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => { console.error(err); process.exit(1); });
