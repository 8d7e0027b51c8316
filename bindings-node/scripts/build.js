// Builds the native addon from source with cargo and copies it next to
// index.js as polylock.node, the loader's fallback (native.js). Run by
// `npm run build` and, when no prebuilt addon loads, by the install script.
//
// In the source tree it builds the workspace's polylock-node crate. In an
// installed package (no workspace around it) it builds the self-contained
// crate tree the tarball carries in rust/ (written by scripts/package.js),
// with --locked, into CARGO_TARGET_DIR if set, else into rust/target, which
// is removed afterwards. Release unless POLYLOCK_NODE_PROFILE is "debug".
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { SOURCE_BUILT_FILE } = require("../platform.js");

const here = path.resolve(__dirname, "..");
const LIBRARY = { linux: "libpolylock_node.so", darwin: "libpolylock_node.dylib", win32: "polylock_node.dll" };

/**
 * Runs cargo with `args`, or exits with a clear message when cargo is not
 * on PATH.
 * @param {string[]} args
 * @param {import("node:child_process").ExecFileSyncOptions} options
 * @returns {Buffer}
 */
function cargo(args, options) {
  try {
    return /** @type {Buffer} */ (execFileSync("cargo", args, options));
  } catch (error) {
    if (/** @type {NodeJS.ErrnoException} */ (error).code === "ENOENT") {
      console.error(
        "polylock: building the native addon from source needs Rust's cargo on PATH (https://rustup.rs), " +
          "and none was found.",
      );
      process.exit(1);
    }
    throw error;
  }
}

/**
 * Builds the addon and copies it to polylock.node next to index.js.
 * @returns {string} the path of polylock.node
 */
function buildFromSource() {
  const profile = process.env.POLYLOCK_NODE_PROFILE === "debug" ? "debug" : "release";
  const staged = path.join(here, "rust", "Cargo.toml");
  const installed = fs.existsSync(staged);
  const manifest = installed ? staged : path.join(here, "Cargo.toml");
  const env = { ...process.env };
  const ownTarget = installed && !env.CARGO_TARGET_DIR;
  if (ownTarget) env.CARGO_TARGET_DIR = path.join(here, "rust", "target");
  const args = ["build", "-p", "polylock-node", "--manifest-path", manifest];
  if (installed) args.push("--locked");
  if (profile === "release") args.push("--release");
  console.log(`polylock: building the native addon from source (${path.relative(here, manifest)}, ${profile}) with cargo`);
  cargo(args, { stdio: "inherit", cwd: here, env });
  const metadata = JSON.parse(
    cargo(["metadata", "--format-version", "1", "--no-deps", "--manifest-path", manifest], { cwd: here, env }).toString(),
  );
  const library = LIBRARY[/** @type {keyof LIBRARY} */ (process.platform)] ?? "libpolylock_node.so";
  const built = path.join(metadata.target_directory, profile, library);
  const out = path.join(here, SOURCE_BUILT_FILE);
  fs.copyFileSync(built, out);
  if (ownTarget) fs.rmSync(env.CARGO_TARGET_DIR, { recursive: true, force: true });
  console.log(`polylock: built ${path.relative(process.cwd(), out) || out} (${profile})`);
  return out;
}

module.exports = { buildFromSource };

if (require.main === module) buildFromSource();
