// The patient and guest pages: the entry point `/join/{code}` loads.

import "../styles/patient.css";
import { App } from "./app";

const root = document.getElementById("app");
if (root) {
  void new App(root).start();
}
