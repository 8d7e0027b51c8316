// Loads the native addon: the prebuilt one for this platform
// (`polylock.<platform>.node`, e.g. polylock.linux-x64-gnu.node, shipped in
// the npm tarball), else the one the install script built from source
// (`polylock.node`). A file that is there but does not load (another libc,
// an older glibc) falls through to the next; when none loads, the error
// names every file looked for and why each was passed over.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { platformName, prebuiltFile, SOURCE_BUILT_FILE } = require("./platform.js");

/**
 * The addon's exports, from the first candidate file that loads.
 * @returns {any}
 */
function loadAddon() {
  const platform = platformName();
  const candidates = [
    [prebuiltFile(platform), "prebuilt"],
    [SOURCE_BUILT_FILE, "built from source"],
  ];
  const passedOver = [];
  for (const [file, kind] of candidates) {
    const full = path.join(__dirname, file);
    if (!fs.existsSync(full)) {
      passedOver.push(`  ${file} (${kind}): not found`);
      continue;
    }
    try {
      return require(full);
    } catch (error) {
      passedOver.push(`  ${file} (${kind}): does not load: ${/** @type {Error} */ (error).message}`);
    }
  }
  throw new Error(
    `polylock: no native addon loads on ${platform} (Node ${process.version}). Looked in ${__dirname} for:\n` +
      `${passedOver.join("\n")}\n` +
      "Reinstall polylock with Rust's cargo on PATH (https://rustup.rs) to build it from source " +
      "(POLYLOCK_NODE_BUILD_FROM_SOURCE=1 forces that), or run `npm run build` in the package directory.",
  );
}

module.exports = loadAddon();
