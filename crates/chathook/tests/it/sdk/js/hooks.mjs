// Node loader hooks for wukongimjssdk 1.0.4: its lib/ files are ES modules with extension-less
// relative imports (and "." for the index) in a package that does not say "type": "module".
export async function resolve(specifier, context, next) {
  if (specifier.startsWith(".") && context.parentURL?.includes("/wukongimjssdk/lib/") && !specifier.endsWith(".js")) {
    const file = specifier === "." || specifier === "./" ? "./index.js" : specifier + ".js";
    return next(file, context);
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.includes("/wukongimjssdk/lib/") && url.endsWith(".js")) {
    return next(url, { ...context, format: "module" });
  }
  return next(url, context);
}
