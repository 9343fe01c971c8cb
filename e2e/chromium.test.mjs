// The console's whole suite in Debian's Chromium (console.suite.mjs).
import { consoleSuite } from "./console.suite.mjs";

consoleSuite("chromium");
