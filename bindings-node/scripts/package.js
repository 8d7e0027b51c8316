// npm pack's prepack step (postpack runs it with --clean). Puts into the
// package directory what the tarball carries besides the JavaScript:
//   polylock.<platform>.node  the release addon for this machine's platform
//                             (e.g. polylock.linux-x64-gnu.node, stripped),
//                             napi-rs's per-platform file next to index.js
//   rust/                     the crate tree scripts/build.js builds from
//                             when no prebuilt addon loads: this crate and
//                             the core (sources, build scripts, proto), their
//                             manifests rewritten to stand alone (workspace
//                             fields filled in, the core by path "core", no
//                             dev-dependencies, tests, benches or examples)
//                             and a Cargo.lock pruned from the workspace's
// --clean removes both again, so the source tree keeps loading the addon
// `npm run build` makes (polylock.node).
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { platformName, prebuiltFile } = require("../platform.js");

const here = path.resolve(__dirname, "..");
const root = path.resolve(here, "..");
const stage = path.join(here, "rust");
const prebuilt = path.join(here, prebuiltFile(platformName()));

/** @param {string[]} args @param {object} [options] */
const cargo = (args, options = {}) => execFileSync("cargo", args, { cwd: root, ...options });

/** The release addon, built and copied (stripped) to polylock.<platform>.node. */
function buildPrebuilt() {
  cargo(["build", "-q", "-p", "polylock-node", "--release", "--locked"], { stdio: ["ignore", "inherit", "inherit"] });
  const metadata = JSON.parse(cargo(["metadata", "--format-version", "1", "--no-deps"]).toString());
  const names = { linux: "libpolylock_node.so", darwin: "libpolylock_node.dylib", win32: "polylock_node.dll" };
  fs.copyFileSync(path.join(metadata.target_directory, "release", names[/** @type {keyof names} */ (process.platform)]), prebuilt);
  if (process.platform === "linux") {
    try {
      execFileSync("strip", ["--strip-unneeded", prebuilt]);
    } catch (error) {
      console.error(`polylock: strip failed (${/** @type {Error} */ (error).message}); the addon keeps its symbols`);
    }
  }
  console.error(`polylock: prebuilt ${path.basename(prebuilt)} (${fs.statSync(prebuilt).size} bytes)`);
}

/** `[workspace.package]` of the workspace's Cargo.toml: key → TOML value text. */
function workspacePackage() {
  const values = new Map();
  let inside = false;
  for (const line of fs.readFileSync(path.join(root, "Cargo.toml"), "utf8").split("\n")) {
    if (/^\s*\[/.test(line)) inside = line.trim() === "[workspace.package]";
    const m = inside && line.match(/^([\w-]+)\s*=\s*(.+)$/);
    if (m) values.set(m[1], m[2].trim());
  }
  return values;
}

/**
 * A member's manifest made standalone: `key.workspace = true` replaced by the
 * workspace's value, the tables named in `drop` left out, `replace` applied.
 * @param {string} file
 * @param {string[]} drop table headers, such as "[dev-dependencies]" or "[[test]]"
 * @param {[string, string][]} replace
 * @returns {string}
 */
function standaloneManifest(file, drop, replace) {
  const inherited = workspacePackage();
  const out = [];
  let dropping = false;
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (/^\s*\[/.test(line)) dropping = drop.includes(line.trim());
    if (dropping) continue;
    const m = line.match(/^([\w-]+)\.workspace\s*=\s*true\s*$/);
    if (m) {
      if (!inherited.has(m[1])) throw new Error(`${file}: ${m[1]} is not in [workspace.package]`);
      out.push(`${m[1]} = ${inherited.get(m[1])}`);
    } else out.push(line);
  }
  let text = out.join("\n").replace(/\n{3,}/g, "\n\n");
  for (const [from, to] of replace) {
    if (!text.includes(from)) throw new Error(`${file}: expected ${from}`);
    text = text.replace(from, to);
  }
  return text;
}

/** Copies the files and directories `names` of `from` into `to`. */
function copy(from, to, names) {
  for (const name of names) fs.cpSync(path.join(from, name), path.join(to, name), { recursive: true });
}

/** Writes rust/: the crate tree the install script builds from source. */
function stageCrateTree() {
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(path.join(stage, "core"), { recursive: true });
  copy(here, stage, ["build.rs", "src"]);
  copy(path.join(root, "core"), path.join(stage, "core"), ["build.rs", "src", "proto"]);
  const node = standaloneManifest(path.join(here, "Cargo.toml"), [], [['path = "../core"', 'path = "core"']]);
  fs.writeFileSync(
    path.join(stage, "Cargo.toml"),
    `${node.trimEnd()}\n\n# Standalone: not part of any workspace around node_modules (the core is\n# a member by path).\n[workspace]\n\n[profile.release]\nstrip = true\n`,
  );
  const core = standaloneManifest(path.join(root, "core", "Cargo.toml"), ["[dev-dependencies]", "[[example]]", "[[test]]", "[[bench]]"], []);
  fs.writeFileSync(path.join(stage, "core", "Cargo.toml"), `${core.trimEnd()}\n`);
  // The workspace's lock, pruned to this tree's packages (same versions;
  // cargo resolves offline from it), then checked with --locked.
  fs.copyFileSync(path.join(root, "Cargo.lock"), path.join(stage, "Cargo.lock"));
  const manifest = ["--manifest-path", path.join(stage, "Cargo.toml")];
  cargo(["metadata", "-q", "--format-version", "1", "--offline", ...manifest], { stdio: ["ignore", "ignore", "inherit"] });
  cargo(["metadata", "-q", "--format-version", "1", "--locked", "--offline", ...manifest], { stdio: ["ignore", "ignore", "inherit"] });
  console.error(`polylock: staged the crate tree in ${path.relative(root, stage)}/`);
}

if (process.argv.includes("--clean")) {
  fs.rmSync(stage, { recursive: true, force: true });
  fs.rmSync(prebuilt, { force: true });
} else {
  buildPrebuilt();
  stageCrateTree();
}
