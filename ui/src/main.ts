// Placeholder entry so `vite build` has something to bundle. The clinician window and the
// patient pages replace it with their own entry points.
const app = document.querySelector<HTMLElement>("#app");
if (app) {
  app.textContent = "Rounds";
}
