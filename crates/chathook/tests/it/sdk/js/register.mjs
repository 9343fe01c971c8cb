// Registers hooks.mjs (run as `node --import ./register.mjs client.mjs`).
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
