// What a person reads on a challenge: scopes in words, authorization details (RFC 9396) as
// labelled rows, and the time left. Everything is built with textContent: nothing from a
// challenge is ever parsed as HTML.

const SCOPE_WORDS = {
  openid: "Confirm that it is you",
  email: "Your email address",
  profile: "Your name and profile",
  phone: "Your phone number",
  address: "Your postal address",
  offline_access: "Stay signed in on your behalf",
};

const TYPE_WORDS = {
  payment_initiation: "Payment",
  account_information: "Account access",
  openid_credential: "Digital credential",
};

/// One line per scope, in words (an unknown scope is named as it is).
export function scopeWords(scope) {
  return String(scope || "")
    .split(/\s+/)
    .filter(Boolean)
    .map((s) => SCOPE_WORDS[s] || `Access to “${s}”`);
}

/// camelCase or snake_case as words: instructedAmount → "Instructed amount".
export function humanize(key) {
  const words = String(key)
    .replace(/_/g, " ")
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function isAmount(v) {
  return (
    v &&
    typeof v === "object" &&
    !Array.isArray(v) &&
    typeof v.currency === "string" &&
    (typeof v.amount === "string" || typeof v.amount === "number") &&
    Object.keys(v).length === 2
  );
}

/// Rows [label, text] for one value, nested objects flattened as "Outer › inner".
function rows(value, label, out) {
  if (isAmount(value)) {
    out.push([label, `${value.currency} ${value.amount}`]);
  } else if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) {
      out.push([label, value.join(", ")]);
    } else {
      value.forEach((v, i) => rows(v, `${label} ${i + 1}`, out));
    }
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      rows(v, label ? `${label} › ${humanize(k)}` : humanize(k), out);
    }
  } else {
    out.push([label, value === null ? "—" : String(value)]);
  }
  return out;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/// The authorization details as one titled block per entry.
export function detailsBlock(details) {
  const list = Array.isArray(details) ? details : [details];
  const box = el("div", "details");
  for (const entry of list) {
    if (!entry || typeof entry !== "object") continue;
    const { type, ...rest } = entry;
    const section = el("section", "detail");
    section.append(el("h4", null, TYPE_WORDS[type] || humanize(type || "Details")));
    const dl = el("dl");
    for (const [label, text] of rows(rest, "", [])) {
      dl.append(el("dt", null, label), el("dd", null, text));
    }
    section.append(dl);
    box.append(section);
  }
  return box;
}

/// "4:05 left" (or "1 h 2 min left"); "Expired" at or after `exp` (Unix seconds).
export function timeLeft(exp, nowMs) {
  const secs = Math.ceil(exp - nowMs / 1000);
  if (secs <= 0) return "Expired";
  if (secs >= 3600) {
    return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min left`;
  }
  return `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")} left`;
}

export { el };
