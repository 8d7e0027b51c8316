// Builds the native addon with cargo (release unless POLYLOCK_NODE_PROFILE
// is "debug") and copies it next to index.js as polylock.node. Run by
// `npm install` (the package's install script) and `npm run build`.
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const here = path.resolve(__dirname, "..");
const profile = process.env.POLYLOCK_NODE_PROFILE === "debug" ? "debug" : "release";
const args = ["build", "-p", "polylock-node", "--manifest-path", path.join(here, "Cargo.toml")];
if (profile === "release") args.push("--release");
execFileSync("cargo", args, { stdio: "inherit", cwd: here });
const metadata = JSON.parse(
  execFileSync("cargo", ["metadata", "--format-version", "1", "--no-deps"], { cwd: here }).toString(),
);
const names = { linux: "libpolylock_node.so", darwin: "libpolylock_node.dylib", win32: "polylock_node.dll" };
const built = path.join(metadata.target_directory, profile, names[process.platform]);
fs.copyFileSync(built, path.join(here, "polylock.node"));
console.log(`polylock: built ${path.relative(process.cwd(), path.join(here, "polylock.node"))} (${profile})`);
