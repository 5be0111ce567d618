// The API key: asked for when the server has keys configured, kept in memory for this page's
// life only (not localStorage, not sessionStorage: another script of this origin or a shared
// machine's next user could read those), sent as `Authorization: Bearer`.
import { ApiError, getJson, onUnauthorized, setKey } from "./api.js";
import { busy, byId, clear, el } from "./dom.js";

let config = null;

/** The server's /web/config.json: limits, whether auth is on, the key's scopes. */
export function currentConfig() {
  return config;
}

export function canWrite() {
  if (!config) return false;
  if (!config.auth_required) return true;
  const scopes = config.key ? config.key.scopes : [];
  return scopes.includes("write") || scopes.includes("admin");
}

/**
 * Loads the configuration and, when the server needs a key, asks for one until the server
 * accepts it. `changed` runs whenever the key (so what it may do) changes.
 */
export async function start(changed) {
  config = await getJson("/web/config.json");
  onUnauthorized(() => {
    // The key stopped working (rotated, removed): ask again.
    if (config.auth_required) ask(changed, "The server refused the key. Enter a valid one.");
  });
  render(changed);
  if (config.auth_required) await ask(changed);
  else changed();
}

let asking = null; // the open question, so two 401s at once do not ask twice

function ask(changed, message = "") {
  if (asking) return asking;
  asking = askOnce(changed, message).finally(() => {
    asking = null;
  });
  return asking;
}

function askOnce(changed, message) {
  const dialog = byId("login");
  const form = byId("login-form");
  const input = byId("login-key");
  const error = byId("login-error");
  error.textContent = message;
  input.value = "";
  return new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) {
        error.textContent = "Enter a key.";
        return;
      }
      setKey(key);
      try {
        const checked = await busy(error, getJson("/web/config.json"), "Checking the key…");
        if (!checked.key) throw new ApiError(401, "Unauthorized", "The key was not accepted.");
        config = checked;
      } catch (failure) {
        setKey(null);
        error.textContent = failure.detail || "The key was not accepted.";
        input.focus();
        return;
      }
      dialog.close();
    };
    // Accepted or dismissed (Escape), the question ends the same way; without a key the
    // page shows what it can (the controls a key would enable stay off) and offers
    // "Sign in" in the header.
    const closed = () => {
      form.removeEventListener("submit", submit);
      render(changed);
      changed();
      resolve();
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("close", closed, { once: true });
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

function render(changed) {
  const status = clear(byId("auth-status"));
  if (!config.auth_required) return;
  if (!config.key) {
    status.append(
      el("span", { text: "Not signed in" }),
      el("button", { type: "button", text: "Sign in", onclick: () => ask(changed) }),
    );
    return;
  }
  const scopes = config.key.scopes.join(", ");
  status.append(
    el("span", { text: `Key “${config.key.name}” (${scopes})` }),
    el("button", {
      type: "button",
      text: "Forget key",
      onclick: () => {
        setKey(null);
        // What that key's holder asked and started is not left for the next person here.
        sessionStorage.removeItem("mmrag.job");
        document.dispatchEvent(new Event("mmrag:signed-out"));
        config = { ...config, key: null };
        render(changed);
        ask(changed);
      },
    }),
  );
}
