// Entry point of the search page (loaded with <script type="module">; no build step).
import { SearchPage } from "./search/page.js";
import { readConfig } from "./lib/util.js";

const root = document.getElementById("search");
if (root) new SearchPage(root, readConfig("search-config")).start();
