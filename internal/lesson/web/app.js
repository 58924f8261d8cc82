// setpay's walkthrough in the browser: one purchase, one message at a time.
// Reads /api/attacks and /api/trace?attack=NAME (a lesson.Trace, docs/TRACE.md)
// from the page's own server and builds everything with DOM calls: no
// innerHTML, no inline script or style, nothing fetched from elsewhere.
"use strict";

(() => {
  const PARTIES = ["cardholder", "merchant", "gateway"];
  const LANES = ["cardholder", "merchant", "gateway", "issuer"];
  const NAMES = {
    cardholder: "Cardholder",
    merchant: "Merchant",
    gateway: "Payment gateway",
    issuer: "Issuer",
  };
  const LANE_NAMES = { cardholder: "Cardholder", merchant: "Merchant", gateway: "Gateway", issuer: "Issuer" };
  const ROLES = {
    sender: "sender",
    receiver: "receiver",
    absent: "absent",
  };
  const CURRENCIES = { 978: "EUR", 840: "USD", 826: "GBP", 392: "JPY", 756: "CHF" };
  const MARKS = { passed: "✓", failed: "✗", "not reached": "–" };

  const state = {
    attacks: [],
    attack: "",
    trace: null,
    step: 1,
    loading: 0,
  };

  const $ = (id) => document.getElementById(id);

  // el builds an element: attrs are attributes ("class" and "text" are
  // className and textContent); children are nodes or strings.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function partyName(p) {
    return NAMES[p] || p;
  }

  function partyTag(p) {
    return el("span", { class: "party-tag party-" + p }, partyName(p));
  }

  function money(currency, amount) {
    const cur = CURRENCIES[currency] || "currency " + currency;
    const neg = amount < 0;
    const a = Math.abs(amount);
    return `${neg ? "-" : ""}${cur} ${Math.trunc(a / 100)}.${String(a % 100).padStart(2, "0")}`;
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  // ---- the URL hash: #attack=NAME&step=N ----

  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    const n = parseInt(p.get("step") || "", 10);
    return { attack: p.get("attack") || "", step: Number.isFinite(n) ? n : null };
  }

  function writeHash() {
    const p = new URLSearchParams();
    if (state.attack) p.set("attack", state.attack);
    p.set("step", String(state.step));
    const h = "#" + p.toString();
    if (location.hash !== h) history.replaceState(null, "", h);
  }

  // ---- loading ----

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!r.ok) {
      const msg = (await r.text()).trim();
      throw new Error(msg || `${r.status} ${r.statusText}`);
    }
    return r.json();
  }

  async function loadAttacks() {
    try {
      state.attacks = await getJSON("/api/attacks");
    } catch (err) {
      state.attacks = [];
      showError("Cannot list the attacks: " + err.message);
    }
    renderAttacks();
    if (state.trace) renderOutcome();
  }

  async function loadTrace(attack, step) {
    const seq = ++state.loading;
    $("outcome").classList.add("loading");
    document.body.classList.add("busy");
    let trace;
    try {
      trace = await getJSON("/api/trace?attack=" + encodeURIComponent(attack));
    } catch (err) {
      if (seq === state.loading) {
        document.body.classList.remove("busy");
        showError(err.message);
      }
      return;
    }
    if (seq !== state.loading) return; // a later choice won
    document.body.classList.remove("busy");
    state.attack = attack;
    state.trace = trace;
    state.step = clampStep(step === null || step === undefined ? defaultStep(trace) : step);
    renderRun();
    renderAttacks();
    renderOutcome();
    renderSteps();
    showStep();
  }

  // defaultStep is where a run opens: for an attack, the step where it is
  // caught (or else made); for the honest run, the first.
  function defaultStep(trace) {
    const steps = trace.steps || [];
    const failed = steps.find((s) => (s.checks || []).some((c) => c.result === "failed"));
    if (failed) return failed.n;
    const attacked = steps.find((s) => s.attack);
    if (attacked) return attacked.n;
    return 1;
  }

  function clampStep(n) {
    const max = state.trace ? state.trace.steps.length : 1;
    return Math.min(Math.max(1, n), Math.max(1, max));
  }

  function currentStep() {
    return state.trace.steps[state.step - 1];
  }

  function go(n) {
    if (!state.trace) return;
    const m = clampStep(n);
    if (m === state.step) return;
    state.step = m;
    showStep();
  }

  function showError(msg) {
    const box = $("outcome");
    box.className = "outcome error";
    box.replaceChildren(el("strong", { class: "verdict" }, "Error"), " ", msg);
  }

  // ---- the header ----

  function renderRun() {
    const t = state.trace;
    const dl = $("run");
    dl.replaceChildren();
    const item = (k, v, cls) => dl.append(el("div", { class: cls }, el("dt", null, k), el("dd", null, v)));
    item("Suite", t.suite);
    item("Seed", String(t.seed));
    item("Order", t.order, "wide");
    item("Amount", money(t.currency, t.amount));
  }

  function renderAttacks() {
    const box = $("attacks");
    box.replaceChildren();
    const button = (name, label, title) => {
      const b = el("button", {
        type: "button",
        class: "toggle" + (name ? "" : " honest"),
        "data-attack": name,
        "aria-pressed": String(name === state.attack),
        title,
      }, label);
      b.addEventListener("click", () => {
        if (name !== state.attack || !state.trace) loadTrace(name, null);
      });
      box.append(b);
    };
    button("", "honest run", "No attack: the purchase as it should go");
    for (const a of state.attacks) {
      button(a.name, a.name, `${a.summary} (the ${a.party} must catch it: code ${a.code}, ${a.codeName})`);
    }
    const sum = $("attack-summary");
    const a = state.attacks.find((x) => x.name === state.attack);
    if (a) {
      sum.hidden = false;
      sum.replaceChildren(
        el("strong", null, a.name + ": "), a.summary + " ",
        el("span", { class: "expect" }, "Who must catch it: ", partyTag(a.party),
          ", with code ", el("code", null, `${a.code} ${a.codeName}`), "."));
    } else {
      sum.hidden = true;
      sum.replaceChildren();
    }
  }

  function renderOutcome() {
    const t = state.trace;
    const o = t.outcome || {};
    const box = $("outcome");
    box.className = "outcome " + (o.result || "unknown");
    box.dataset.result = o.result || "";
    box.dataset.attack = state.attack;
    box.replaceChildren();
    if (!state.attack) {
      box.append(el("strong", { class: "verdict" }, "Honest run: " + (o.result || "?")), " ", o.text || "");
      return;
    }
    const a = state.attacks.find((x) => x.name === state.attack);
    if (o.result === "caught") {
      box.append(el("strong", { class: "verdict" }, "Caught by the ", o.party || "?"));
    } else {
      box.append(el("strong", { class: "verdict" }, o.result === "missed" ? "Missed" : o.result || "?"));
      if (o.party) box.append(" by the ", o.party);
    }
    if (o.code) box.append(" with code ", el("code", { class: "code" }, `${o.code} ${o.codeName || ""}`.trim()));
    if (o.check) box.append(el("span", { class: "outcome-check" }, "Failed check: ", el("q", null, o.check)));
    if (o.result !== "caught" && o.text) box.append(el("span", { class: "outcome-text" }, o.text));
    if (o.result !== "caught" && a) {
      box.append(el("span", { class: "outcome-text" },
        `Expected: the ${a.party} rejects it with code ${a.code} ${a.codeName}.`));
    }
    const at = (t.steps || []).find((s) => (s.checks || []).some((c) => c.result === "failed"));
    if (at) {
      const b = el("button", { type: "button", class: "link", "data-goto": at.n }, `Show step ${at.n}, ${at.message}`);
      b.addEventListener("click", () => go(at.n));
      box.append(el("span", { class: "outcome-goto" }, b));
    }
  }

  // ---- the sequence ----

  function usedLanes() {
    const steps = state.trace.steps || [];
    return LANES.filter((p) => p !== "issuer" || steps.some((s) => s.from === p || s.to === p));
  }

  // lanesRow draws the lifelines and, for a step, its arrow. Lane i spans
  // grid columns 2i+1 and 2i+2; its lifeline is grid line 2i+2.
  function lanesRow(lanes, step, head) {
    const row = el("div", { class: "lanes cols-" + lanes.length, "aria-hidden": "true" });
    lanes.forEach((p, i) => {
      if (head) {
        row.append(el("span", { class: `lane-name gs-${2 * i + 1} ge-${2 * i + 3} party-${p}` }, LANE_NAMES[p] || p));
      } else {
        row.append(el("span", { class: `lifeline gs-${2 * i + 1} ge-${2 * i + 3}` }));
      }
    });
    if (step) {
      const a = lanes.indexOf(step.from);
      const b = lanes.indexOf(step.to);
      if (a >= 0 && b >= 0 && a !== b) {
        const lo = Math.min(a, b);
        const hi = Math.max(a, b);
        row.append(el("span", {
          class: `arrow gs-${2 * lo + 2} ge-${2 * hi + 2} ${a < b ? "right" : "left"} from-${step.from}`,
        }));
      }
    }
    return row;
  }

  function renderSteps() {
    const lanes = usedLanes();
    const head = lanesRow(lanes, null, true);
    head.id = "lanes";
    head.classList.add("lane-head");
    $("lanes").replaceWith(head);

    const ol = $("steps");
    ol.replaceChildren();
    for (const s of state.trace.steps) {
      const failed = (s.checks || []).some((c) => c.result === "failed");
      const li = el("li", {
        class: "step" + (s.attack ? " attacked" : "") + (failed ? " failed" : ""),
        "data-step": s.n,
      });
      const b = el("button", { type: "button", class: "step-button" },
        el("span", { class: "step-head" },
          el("span", { class: "num" }, s.n),
          el("span", { class: "msg" }, s.message),
          el("span", { class: "route" }, `${partyName(s.from)} → ${partyName(s.to)}`),
          s.attack ? el("span", { class: "badge attack" }, "attacked") : null,
          failed ? el("span", { class: "badge fail" }, "rejected") : null),
        lanesRow(lanes, s, false),
        el("span", { class: "step-sum" }, s.summary));
      b.addEventListener("click", () => go(s.n));
      li.append(b);
      ol.append(li);
    }
  }

  function showStep() {
    const n = state.step;
    for (const li of document.querySelectorAll("#steps > li")) {
      const cur = Number(li.dataset.step) === n;
      li.classList.toggle("current", cur);
      if (cur) {
        li.setAttribute("aria-current", "step");
        reveal(li);
      } else {
        li.removeAttribute("aria-current");
      }
    }
    const max = state.trace.steps.length;
    $("first").disabled = $("prev").disabled = n <= 1;
    $("next").disabled = $("last").disabled = n >= max;
    $("position").textContent = `step ${n} of ${max}`;
    renderStep();
    writeHash();
  }

  // reveal scrolls the list, and only the list, to show li with the step
  // before it.
  function reveal(li) {
    const ol = $("steps");
    if (ol.scrollHeight <= ol.clientHeight) return;
    const top = li.offsetTop; // .steps is positioned: offsets are within it
    const bottom = top + li.offsetHeight;
    if (top < ol.scrollTop || bottom > ol.scrollTop + ol.clientHeight) {
      const prev = li.previousElementSibling;
      ol.scrollTop = prev ? prev.offsetTop : 0;
    }
  }

  // ---- one step ----

  function renderStep() {
    const s = currentStep();
    $("step-title").replaceChildren(el("span", { class: "num" }, s.n), " ", s.message);
    $("step-route").replaceChildren(partyTag(s.from), " → ", partyTag(s.to));
    $("step-summary").textContent = s.summary || "";
    const att = $("step-attack");
    if (s.attack) {
      att.hidden = false;
      att.replaceChildren(el("strong", null, "The attack: "), s.attack);
    } else {
      att.hidden = true;
      att.replaceChildren();
    }
    $("views").replaceChildren(...PARTIES.map((p) => renderView(s, p)));
    renderChecks(s);
    $("fields").replaceChildren(...(s.fields || []).map((f) => fieldItem(f, 0, false, true)));
    if (!(s.fields || []).length) $("fields").append(el("li", { class: "muted" }, "No decoded fields."));
    renderDER(s.der || "");
  }

  function renderView(s, party) {
    const v = (s.views || []).find((x) => x.party === party) || { party, role: "absent" };
    const role = v.role || "absent";
    const sec = el("section", { class: `view party-${party} role-${role}`, "data-party": party, "data-role": role });
    sec.append(el("h4", { class: "view-head" },
      el("span", { class: "view-name" }, partyName(party)),
      el("span", { class: "role" }, ROLES[role] || role)));
    if (role === "absent") {
      sec.append(el("p", { class: "absent-note" }, "never receives this message"));
      return sec;
    }
    const readable = v.readable || [];
    const opaque = v.opaque || [];
    if (opaque.length) {
      sec.append(el("p", { class: "view-sub" }, "Holds but cannot read"));
      sec.append(el("ul", { class: "opaques" }, opaque.map((o) => el("li", {
        class: "opaque form-" + o.form,
        title: o.why,
      },
      el("span", { class: "opaque-what" }, o.what),
      el("span", { class: "opaque-how" }, `${o.form}, ${plural(o.bytes, "byte", "bytes")}, ${o.why}`)))));
    }
    sec.append(el("p", { class: "view-sub" }, role === "sender" ? "Built it, reads" : "Reads"));
    if (readable.length) {
      // One structure alone is unfolded; among several, those that hold
      // the card number or the order.
      const open = readable.length === 1;
      sec.append(el("ul", { class: "fields compact" }, readable.map((f) => fieldItem(f, 0, true, open))));
    } else {
      sec.append(el("p", { class: "muted" }, "nothing in plaintext"));
    }
    return sec;
  }

  // fieldItem is one field with its note and children. In a party's column
  // (compact) the note is a tooltip, and structures start folded unless
  // open says otherwise (at the top) or they hold the card number or the
  // order description, which are marked.
  function fieldItem(f, depth, compact, open) {
    const kids = f.fields || [];
    const li = el("li", { class: "field", title: f.note || null });
    const line = el("span", { class: "field-line" }, el("span", { class: "field-name" }, f.name));
    if (f.value) line.append(el("span", { class: "field-value" }, f.value));
    const t = state.trace;
    if (f.value && t.pan && f.value.includes(t.pan)) {
      li.classList.add("key-data");
      line.append(el("span", { class: "badge key" }, "card number"));
    } else if (f.value && t.order && f.value.includes(t.order)) {
      li.classList.add("key-data");
      line.append(el("span", { class: "badge key" }, "order"));
    }
    const note = f.note && !compact ? el("span", { class: "field-note" }, f.note) : null;
    if (!kids.length) {
      li.append(line);
      if (note) li.append(note);
      return li;
    }
    const sub = el("ul", { class: "fields" + (compact ? " compact" : "") }, kids.map((k) => fieldItem(k, depth + 1, compact, false)));
    const fold = el("details", { open: !compact || (depth === 0 && open) || hasKeyData(f) },
      el("summary", null, line, f.value ? null : el("span", { class: "field-count muted" }, plural(kids.length, "field", "fields"))),
      note, sub);
    li.append(fold);
    return li;
  }

  // hasKeyData reports whether the card number or the order is inside f:
  // such a structure is never folded.
  function hasKeyData(f) {
    const t = state.trace;
    if (f.value && ((t.pan && f.value.includes(t.pan)) || (t.order && f.value.includes(t.order)))) return true;
    return (f.fields || []).some(hasKeyData);
  }

  function renderChecks(s) {
    const checks = s.checks || [];
    const who = [...new Set(checks.map((c) => c.party))];
    $("checks-title").replaceChildren("Checks ");
    if (who.length) {
      $("checks-title").append(el("span", { class: "muted" }, "by the ", who.map(partyName).join(", ").toLowerCase(), ", in order"));
    }
    const ol = $("checks");
    ol.replaceChildren();
    if (!checks.length) {
      ol.append(el("li", { class: "check none" }, s.to === "issuer" ?
        "None here: the issuer is the bank network behind the gateway, outside the protocol's checks." :
        "No checks recorded for this message."));
      return;
    }
    for (const c of checks) {
      const cls = c.result.replace(/\s+/g, "-");
      const li = el("li", { class: "check " + cls, "data-result": c.result },
        el("span", { class: "mark", "aria-hidden": "true" }, MARKS[c.result] || "?"),
        el("span", { class: "check-body" },
          el("span", { class: "check-line" },
            el("span", { class: "check-name" }, c.name),
            el("span", { class: "check-party" }, c.party),
            el("span", { class: "check-result" }, c.result)),
          c.result === "failed" && c.code ? el("span", { class: "check-code" }, `code ${c.code} ${c.codeName || ""}`.trim()) : null,
          c.detail ? el("span", { class: "check-detail" }, c.detail) : null));
      ol.append(li);
    }
  }

  function renderDER(hex) {
    const n = hex.length / 2;
    $("der-size").textContent = `(DER, ${plural(n, "byte", "bytes")})`;
    const lines = [];
    for (let off = 0; off < hex.length; off += 32) {
      const chunk = hex.slice(off, off + 32).match(/../g) || [];
      lines.push((off / 2).toString(16).padStart(5, "0") + "  " + chunk.join(" "));
    }
    $("der").textContent = lines.join("\n");
  }

  // ---- controls ----

  function wire() {
    $("first").addEventListener("click", () => go(1));
    $("prev").addEventListener("click", () => go(state.step - 1));
    $("next").addEventListener("click", () => go(state.step + 1));
    $("last").addEventListener("click", () => go(state.trace ? state.trace.steps.length : 1));
    document.addEventListener("keydown", (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
      const t = e.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      if (e.key === "ArrowRight") {
        go(state.step + 1);
        e.preventDefault();
      } else if (e.key === "ArrowLeft") {
        go(state.step - 1);
        e.preventDefault();
      }
    });
    window.addEventListener("hashchange", () => {
      const h = readHash();
      if (!state.trace || h.attack !== state.attack) loadTrace(h.attack, h.step);
      else if (h.step !== null) go(h.step);
    });
  }

  wire();
  const h = readHash();
  loadAttacks();
  loadTrace(h.attack, h.step);
})();
