// The writer's suggestion settings: kept in localStorage, edited in the settings panel.

const STORAGE_KEY = "cowrite.settings";

/**
 * @typedef {object} Settings
 * @property {number} maxTokens   suggestion length, in tokens
 * @property {number} temperature creativity; 0 is greedy
 * @property {number} n           alternatives per suggestion
 * @property {number} pauseMs     how long a typing pause lasts before asking
 * @property {boolean} autoSuggest ask on every pause, not only on Ctrl+Space
 */

/** Bounds of each numeric setting: [min, max, step, default]. */
const RANGES = {
  maxTokens: [8, 64, 1, 24],
  temperature: [0, 1.5, 0.05, 0.3], // default by measurement: docs/benchmarks.md
  n: [1, 4, 1, 1],
  pauseMs: [150, 1500, 50, 300],
};

/** @returns {Settings} */
function defaults() {
  return {
    maxTokens: RANGES.maxTokens[3],
    temperature: RANGES.temperature[3],
    n: RANGES.n[3],
    pauseMs: RANGES.pauseMs[3],
    autoSuggest: true,
  };
}

/**
 * @param {keyof typeof RANGES} name
 * @param {unknown} value
 */
function clamp(name, value) {
  const [min, max, , fallback] = RANGES[name];
  const number = Number(value);
  if (typeof value === "boolean" || !Number.isFinite(number)) return fallback;
  return Math.min(max, Math.max(min, number));
}

export class SettingsStore {
  constructor() {
    /** @type {Settings} */
    this.value = this.load();
    /** @type {Array<(settings: Settings) => void>} */
    this.listeners = [];
  }

  /** @returns {Settings} */
  load() {
    const settings = defaults();
    try {
      const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
      for (const name of /** @type {Array<keyof typeof RANGES>} */ (Object.keys(RANGES))) {
        if (name in stored) settings[name] = clamp(name, stored[name]);
      }
      if (typeof stored.autoSuggest === "boolean") settings.autoSuggest = stored.autoSuggest;
    } catch {
      // Unreadable or unavailable storage: the defaults are a fine start.
    }
    settings.n = Math.round(settings.n);
    settings.maxTokens = Math.round(settings.maxTokens);
    return settings;
  }

  /** @param {Partial<Settings>} change */
  update(change) {
    this.value = { ...this.value, ...change };
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(this.value));
    } catch {
      // Settings still apply to this page when storage is refused.
    }
    for (const listener of this.listeners) listener(this.value);
  }

  /** @param {(settings: Settings) => void} listener */
  subscribe(listener) {
    this.listeners.push(listener);
  }
}

/**
 * Wire the settings panel's range inputs and the auto-suggest checkbox to the store.
 * Each range input is named after its setting and has an <output for=...> showing its value.
 * @param {HTMLElement} panel
 * @param {HTMLInputElement} autoSuggest
 * @param {SettingsStore} store
 */
export function bindSettings(panel, autoSuggest, store) {
  /** @type {Record<string, (value: number) => string>} */
  const formats = {
    maxTokens: (value) => `${value} tokens`,
    temperature: (value) => value.toFixed(2),
    n: (value) => String(value),
    pauseMs: (value) => `${value} ms`,
  };
  for (const name of /** @type {Array<keyof typeof RANGES>} */ (Object.keys(RANGES))) {
    const input = /** @type {HTMLInputElement} */ (panel.querySelector(`input[name="${name}"]`));
    const output = panel.querySelector(`output[for="${input.id}"]`);
    const [min, max, step] = RANGES[name];
    Object.assign(input, { min: String(min), max: String(max), step: String(step) });
    input.value = String(store.value[name]);
    const show = () => {
      if (output) output.textContent = formats[name](Number(input.value));
    };
    show();
    input.addEventListener("input", () => {
      show();
      store.update({ [name]: clamp(name, input.value) });
    });
  }
  autoSuggest.checked = store.value.autoSuggest;
  autoSuggest.addEventListener("change", () => store.update({ autoSuggest: autoSuggest.checked }));
}
