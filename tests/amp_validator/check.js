// Reads a JSON list of documents on stdin; prints a JSON list of {status, errors}.
const path = require("path");
const amphtmlValidator = require("amphtml-validator");
const wasm = process.argv[2];
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", async () => {
  const docs = JSON.parse(input);
  const validator = await amphtmlValidator.getInstance(path.resolve(wasm));
  const out = docs.map((html) => {
    const r = validator.validateString(html, "AMP4EMAIL");
    return { status: r.status, errors: r.errors.filter((e) => e.severity === "ERROR").map((e) => `${e.line}: ${e.message}`) };
  });
  process.stdout.write(JSON.stringify(out));
});
