/**
 * `npm run prepare`: builds dist/ (JavaScript and .d.ts) from src/ with the pinned
 * TypeScript. npm runs it after `npm ci` / `npm install` in this folder, before
 * `npm pack` and `npm publish`, and when an application installs this folder by
 * its path with `npm install --install-links <path>`. In that last case npm has
 * not installed this package's devDependencies (the compiler and the types it
 * checks against), so they are installed here first, exactly as package-lock.json
 * pins them (`npm ci --ignore-scripts`: no scripts of theirs, no recursion).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.env.npm_execpath;
/** Runs npm (the one running this script, when known) in the package folder. */
function runNpm(args) {
  const [command, prefix] = npm ? [process.execPath, [npm]] : ["npm", []];
  execFileSync(command, [...prefix, ...args], { cwd: root, stdio: "inherit" });
}

if (!existsSync(join(root, "node_modules", "typescript", "package.json"))) {
  console.error("@imagegate/client-stubs: installing its build tools (package-lock.json) to build dist/");
  runNpm(["ci", "--ignore-scripts", "--include=dev", "--no-audit", "--no-fund", "--loglevel=error"]);
}
runNpm(["run", "--silent", "build"]);
