// The clinician window of the Rounds desktop app (src-tauri). Everything it shows comes
// from the app's controller through the generated, typed commands and its events.
import "../styles/provider.css";
import { start } from "./app";

const root = document.querySelector<HTMLElement>("#app");
if (root) {
  start(root).catch((e: unknown) => console.error(e));
}
