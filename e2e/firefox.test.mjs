// The console's whole suite in Debian's Firefox ESR over WebDriver BiDi (console.suite.mjs).
import { consoleSuite } from "./console.suite.mjs";

consoleSuite("firefox");
