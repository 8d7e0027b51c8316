// Which prebuilt addon fits this process: napi-rs's platform names
// (`linux-x64-gnu`, `linux-x64-musl`, `darwin-arm64`, `win32-x64-msvc`, ...),
// the part of a prebuilt file's name `polylock.<platform>.node`. The loader
// (native.js), the install script and the packaging script share it.
"use strict";
const fs = require("node:fs");

/**
 * Whether this Linux process runs on musl rather than glibc, decided as
 * napi-rs's loaders decide it: the text of /usr/bin/ldd first, then the
 * process report (glibc reports its runtime version; musl shows among the
 * shared objects), then `ldd --version`; glibc when nothing tells.
 * @returns {boolean}
 */
function isMusl() {
  try {
    return fs.readFileSync("/usr/bin/ldd", "utf8").includes("musl");
  } catch {
    // No readable ldd script: ask the process report.
  }
  if (typeof process.report?.getReport === "function") {
    process.report.excludeNetwork = true;
    const report = /** @type {any} */ (process.report.getReport());
    if (report?.header?.glibcVersionRuntime) return false;
    const objects = report?.sharedObjects;
    if (Array.isArray(objects)) return objects.some((file) => file.includes("libc.musl-") || file.includes("ld-musl-"));
  }
  try {
    return require("node:child_process").execSync("ldd --version", { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).includes("musl");
  } catch {
    return false;
  }
}

/**
 * The C library / ABI suffix of a platform name: `gnu` or `musl` on Linux
 * (`gnueabihf` / `musleabihf` on 32-bit ARM), `msvc` on Windows, `eabi` on
 * 32-bit Android ARM, none elsewhere.
 * @param {string} platform process.platform
 * @param {string} arch process.arch
 * @returns {string}
 */
function abiOf(platform, arch) {
  if (platform === "linux") {
    const libc = isMusl() ? "musl" : "gnu";
    return arch === "arm" ? `${libc}eabihf` : libc;
  }
  if (platform === "win32") return "msvc";
  if (platform === "android" && arch === "arm") return "eabi";
  return "";
}

/**
 * This process's napi-rs platform name, such as `linux-x64-gnu`.
 * @param {string} [platform] defaults to process.platform
 * @param {string} [arch] defaults to process.arch
 * @returns {string}
 */
function platformName(platform = process.platform, arch = process.arch) {
  const abi = abiOf(platform, arch);
  return abi ? `${platform}-${arch}-${abi}` : `${platform}-${arch}`;
}

/**
 * The file name of the prebuilt addon for a platform name.
 * @param {string} [name] defaults to platformName()
 * @returns {string}
 */
function prebuiltFile(name = platformName()) {
  return `polylock.${name}.node`;
}

/** The file name of the addon built from source by the install script. */
const SOURCE_BUILT_FILE = "polylock.node";

module.exports = { isMusl, platformName, prebuiltFile, SOURCE_BUILT_FILE };
