// The package's install script. When the prebuilt addon for this platform
// (polylock.<platform>.node, see platform.js) is in the package and loads,
// there is nothing to do, and no Rust toolchain is needed. Otherwise (another
// platform, another libc, a glibc older than the prebuilt needs, or
// POLYLOCK_NODE_BUILD_FROM_SOURCE=1) it builds the addon from source with
// cargo (scripts/build.js).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { platformName, prebuiltFile } = require("../platform.js");

const here = path.resolve(__dirname, "..");

/**
 * Why the prebuilt addon cannot be used, or null when it loads.
 * @returns {string | null}
 */
function prebuiltProblem() {
  if (process.env.POLYLOCK_NODE_BUILD_FROM_SOURCE === "1") return "POLYLOCK_NODE_BUILD_FROM_SOURCE=1";
  const file = prebuiltFile(platformName());
  const full = path.join(here, file);
  if (!fs.existsSync(full)) return `no prebuilt addon for ${platformName()} (${file})`;
  try {
    require(full);
    return null;
  } catch (error) {
    return `the prebuilt ${file} does not load: ${/** @type {Error} */ (error).message}`;
  }
}

const problem = prebuiltProblem();
if (problem === null) {
  console.log(`polylock: using the prebuilt ${prebuiltFile(platformName())}`);
} else {
  console.log(`polylock: ${problem}; building from source`);
  require("./build.js").buildFromSource();
}
