/* The demo page's client: polls /ui/api/state about once a second and acts through the JSON API.
 *
 * Every action goes to the emulator, which plays Slack toward the bot with signed requests:
 * slash commands, plain messages, button clicks (with Block Kit confirm dialogs), modal
 * submissions. Nothing here changes the bot's side; what the bot does shows up on the next poll.
 */
(function () {
  "use strict";
  const { blocks, inputs, mrkdwn, markdown, esc } = window.BlockKit;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1000;

  const ui = {
    user: localStorage.getItem("demo.user") || "U_ONCALL",
    channel: localStorage.getItem("demo.channel") || null,
    thread: null,
    cluster: null,  // whose scenario panel is shown (the first cluster until a tab is clicked)
    data: null,
    keys: {},
    knownChannels: null,
    lastSeen: {},
    modal: null,          // {id, hash}
    closedViews: new Set(),
    timer: null,
  };

  // --- talking to the emulator ---------------------------------------------------------------
  async function api(path, body) {
    const options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await fetch(`api/${path}`, options);
    const answer = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
    if (!answer.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    return answer;
  }

  async function act(path, body) {
    try {
      const answer = await api(path, body);
      if (answer.problem) toast(answer.problem, true);
      return answer;
    } catch (error) {
      toast(error.message, true);
      return null;
    } finally {
      refresh();
    }
  }

  function toast(message, isError) {
    const node = document.createElement("div");
    node.className = `toast${isError ? " error" : ""}`;
    node.dataset.testid = isError ? "toast-error" : "toast";
    node.textContent = message;
    $("toasts").appendChild(node);
    setTimeout(() => node.remove(), isError ? 8000 : 4000);
  }

  async function refresh() {
    clearTimeout(ui.timer);
    const query = new URLSearchParams({ user: ui.user });
    if (ui.channel) query.set("channel", ui.channel);
    if (ui.thread) query.set("thread", ui.thread);
    try {
      const data = await api(`state?${query}`);
      ui.data = data;
      render(data);
      $("connection").textContent = `live · ${data.channels.length} channels`;
      $("connection").className = "sidebar-foot";
    } catch (error) {
      $("connection").textContent = `offline: ${error.message}`;
      $("connection").className = "sidebar-foot offline";
    } finally {
      ui.timer = setTimeout(refresh, POLL_MS);
    }
  }

  /* Re-render a region only when what it shows changed (keeps focus, selection and scroll). */
  function changed(region, value) {
    const key = JSON.stringify(value);
    if (ui.keys[region] === key) return false;
    ui.keys[region] = key;
    return true;
  }

  function context(data) {
    const channels = {};
    data.channels.forEach((c) => { channels[c.id] = c.name; });
    return { users: data.users, channels, me: ui.user };
  }

  // --- rendering -----------------------------------------------------------------------------
  function render(data) {
    if (!data.users[ui.user] || data.users[ui.user].is_bot) {
      const person = Object.keys(data.users).find((id) => !data.users[id].is_bot);
      if (person) { ui.user = person; localStorage.setItem("demo.user", person); }
    }
    if (!data.channel && data.channels.length) {
      const general = data.channels.find((c) => c.name === "general") || data.channels[0];
      selectChannel(general.id);
      return;
    }
    renderUsers(data);
    renderChannels(data);
    renderHeader(data);
    renderMessages(data);
    renderThread(data);
    renderModal(data);
    renderPanel(data);
  }

  function renderUsers(data) {
    const people = Object.entries(data.users).filter(([, u]) => !u.is_bot);
    if (!changed("users", [people, ui.user])) return;
    const select = $("user-switcher");
    select.innerHTML = "";
    for (const [id, user] of people) select.appendChild(new Option(`@${user.name}`, id, false, id === ui.user));
    $("workspace-name").textContent = `${data.team.name} · sandbox`;
  }

  function renderChannels(data) {
    const channels = [...data.channels].sort((a, b) => a.name.localeCompare(b.name));
    const fresh = new Set();
    if (ui.knownChannels === null) ui.knownChannels = new Set(channels.map((c) => c.id));
    for (const c of channels) if (!ui.knownChannels.has(c.id)) { fresh.add(c.id); ui.knownChannels.add(c.id); }
    if (data.channel) ui.lastSeen[data.channel] = (data.channels.find((c) => c.id === data.channel) || {}).latest;
    const view = channels.map((c) => [c.id, c.name, c.is_member, c.is_archived, c.is_private,
      c.id !== data.channel && c.latest && c.latest !== (ui.lastSeen[c.id] || "") && ui.lastSeen[c.id] !== undefined]);
    if (!changed("channels", [view, data.channel]) && !fresh.size) return;
    const list = $("channel-list");
    list.innerHTML = "";
    for (const c of channels) {
      const li = document.createElement("li");
      li.textContent = `${c.is_private ? "◦" : "#"} ${c.name}`;
      li.dataset.testid = `channel-${c.name}`;
      li.dataset.channelId = c.id;
      li.title = c.topic || c.purpose || c.name;
      if (c.id === data.channel) li.classList.add("active");
      if (!c.is_member) li.classList.add("not-member");
      if (c.is_archived) li.classList.add("archived");
      if (fresh.has(c.id)) li.classList.add("new-channel");
      if (c.id !== data.channel && ui.lastSeen[c.id] !== undefined && c.latest && c.latest !== ui.lastSeen[c.id]) {
        li.classList.add("unread");
      }
      li.addEventListener("click", () => selectChannel(c.id));
      list.appendChild(li);
    }
  }

  function renderHeader(data) {
    const channel = data.channels.find((c) => c.id === data.channel);
    if (!changed("header", channel || null)) return;
    $("channel-title").textContent = channel ? `${channel.is_private ? "◦" : "#"} ${channel.name}` : "";
    $("channel-topic").innerHTML = channel ? mrkdwn(channel.topic || channel.purpose || "", context(data)) : "";
    $("composer").placeholder = channel
      ? `Message #${channel.name}, or /k8s help — Enter sends, Shift+Enter for a new line` : "";
  }

  function isNearBottom(node) {
    return node.scrollHeight - node.scrollTop - node.clientHeight < 80;
  }

  function renderMessages(data) {
    const items = [...data.messages, ...data.ephemeral].sort((a, b) => compareTs(a.ts, b.ts));
    if (!changed("messages", [items, data.users, data.channel, ui.user])) return;
    const box = $("messages");
    const stick = isNearBottom(box) || ui.keys.scrolledFor !== data.channel;
    ui.keys.scrolledFor = data.channel;
    box.innerHTML = "";
    if (!items.length) box.appendChild(Object.assign(document.createElement("div"),
      { className: "empty", textContent: "No messages yet. Try /k8s help or /k8s incident open sev1 API down." }));
    for (const m of items) box.appendChild(messageNode(m, data, false));
    if (stick) box.scrollTop = box.scrollHeight;
  }

  function renderThread(data) {
    const pane = $("thread");
    if (!ui.thread) { pane.classList.add("hidden"); return; }
    pane.classList.remove("hidden");
    if (!changed("thread", [data.thread, data.users])) return;
    const box = $("thread-messages");
    const stick = isNearBottom(box);
    box.innerHTML = "";
    for (const m of data.thread) box.appendChild(messageNode(m, data, true));
    if (stick) box.scrollTop = box.scrollHeight;
  }

  function compareTs(a, b) {
    const [as, af = "0"] = String(a).split(".");
    const [bs, bf = "0"] = String(b).split(".");
    return Number(as) - Number(bs) || Number(af.padEnd(6, "0")) - Number(bf.padEnd(6, "0"));
  }

  function avatarColor(id) {
    let hash = 0;
    for (const ch of id) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    return `hsl(${hash % 360}, 45%, 42%)`;
  }

  function formatTime(ts) {
    const date = new Date(Number(String(ts).split(".")[0]) * 1000);
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function messageNode(m, data, inThread) {
    const ctx = context(data);
    const node = document.createElement("div");
    node.dataset.testid = m.is_ephemeral ? "ephemeral-message" : "message";
    node.dataset.ts = m.ts;
    if (m.is_system) {
      node.className = "message system";
      node.innerHTML = mrkdwn(m.text, ctx);
      return node;
    }
    node.className = `message${m.is_ephemeral ? " ephemeral" : ""}`;
    const userId = m.is_ephemeral ? data.team.bot_user_id : m.user;
    const user = data.users[userId] || { name: userId };
    const isBot = Boolean(m.bot_id) || m.is_ephemeral || user.is_bot;
    const avatar = Object.assign(document.createElement("div"), { className: "avatar", textContent: (user.name || "?")[0].toUpperCase() });
    avatar.style.background = isBot ? "#4a154b" : avatarColor(userId);
    node.appendChild(avatar);
    const body = document.createElement("div");
    body.className = "body";
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.innerHTML = `<span class="author">${esc(user.name)}</span>${isBot ? '<span class="app-badge">APP</span>' : ""}`
      + `<span class="time" title="${esc(m.ts)}">${formatTime(m.ts)}</span>${m.edited ? '<span class="edited">(edited)</span>' : ""}`;
    body.appendChild(meta);
    if (m.is_ephemeral) {
      body.appendChild(Object.assign(document.createElement("div"), { className: "ephemeral-note", textContent: "Only visible to you" }));
    }
    const actionCtx = { ...ctx, onAction: (element, blockId, button) => clickElement(m, element, blockId, button) };
    if (m.blocks && m.blocks.length) body.appendChild(blocks(m.blocks, actionCtx));
    else if (m.text) body.appendChild(Object.assign(document.createElement("div"), { className: "mrkdwn", innerHTML: mrkdwn(m.text, ctx) }));
    for (const f of m.files || []) body.appendChild(fileCard(f));
    if (m.reactions && m.reactions.length) {
      const row = document.createElement("div");
      row.className = "reactions";
      for (const r of m.reactions) row.appendChild(Object.assign(document.createElement("span"), { className: "reaction", textContent: `:${r.name}: ${r.count}` }));
      body.appendChild(row);
    }
    if (!inThread && m.reply_count) {
      const link = Object.assign(document.createElement("button"), {
        className: "replies-link", type: "button",
        textContent: `${m.reply_count} ${m.reply_count === 1 ? "reply" : "replies"}`,
      });
      link.dataset.testid = "replies";
      link.addEventListener("click", () => openThread(m.ts));
      body.appendChild(link);
    }
    node.appendChild(body);
    if (!inThread && !m.is_ephemeral) {
      const hover = document.createElement("div");
      hover.className = "hover-actions";
      const reply = Object.assign(document.createElement("button"), { type: "button", textContent: "Reply in thread" });
      reply.addEventListener("click", () => openThread(m.ts));
      hover.appendChild(reply);
      node.appendChild(hover);
    }
    return node;
  }

  function fileCard(f) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "file-card";
    card.dataset.testid = "file";
    card.dataset.fileId = f.id;
    const kind = (f.filetype || (f.name || "").split(".").pop() || "file").toUpperCase().slice(0, 4);
    card.innerHTML = `<span class="file-icon">${esc(kind)}</span><span><div class="file-name">${esc(f.title || f.name)}</div>`
      + `<div class="file-size">${esc(f.name)} · ${Math.max(1, Math.round((f.size || 0) / 1024))} KB</div></span>`;
    card.addEventListener("click", () => openFile(f.id, f.title || f.name, f.name));
    return card;
  }

  // --- acting --------------------------------------------------------------------------------
  function selectChannel(id) {
    ui.channel = id;
    ui.thread = null;
    localStorage.setItem("demo.channel", id);
    refresh();
  }

  function openThread(ts) {
    ui.thread = ts;
    ui.keys.thread = null;
    refresh();
  }

  async function clickElement(message, element, blockId, button) {
    if (element.url && !element.action_id) return;
    if (element.confirm && !(await confirmDialog(element.confirm))) return;
    button.disabled = true;
    const answer = await act("click", {
      user: ui.user, channel: message.channel || ui.channel, ts: message.ts, action_id: element.action_id,
      block_id: blockId || undefined, value: element.value,
    });
    button.disabled = false;
    if (answer) toast(`${element.text ? element.text.text : element.action_id}: sent to the app`);
  }

  function confirmDialog(confirm) {
    const overlay = $("confirm-dialog");
    const ctx = ui.data ? context(ui.data) : {};
    overlay.innerHTML = `<div class="dialog"><div class="dialog-header">${esc(confirm.title ? confirm.title.text : "Are you sure?")}</div>`
      + `<div class="dialog-body mrkdwn">${confirm.text ? window.BlockKit.text(confirm.text, ctx) : ""}</div>`
      + `<div class="dialog-footer"><button type="button" class="bk-button" data-testid="confirm-deny">${esc(confirm.deny ? confirm.deny.text : "Cancel")}</button>`
      + `<button type="button" class="bk-button ${confirm.style === "danger" ? "danger" : "primary"}" data-testid="confirm-ok">${esc(confirm.confirm ? confirm.confirm.text : "Yes")}</button></div></div>`;
    overlay.classList.remove("hidden");
    return new Promise((resolve) => {
      const done = (value) => { overlay.classList.add("hidden"); overlay.innerHTML = ""; resolve(value); };
      overlay.querySelector('[data-testid="confirm-ok"]').addEventListener("click", () => done(true));
      overlay.querySelector('[data-testid="confirm-deny"]').addEventListener("click", () => done(false));
    });
  }

  async function send(textarea, threadTs) {
    const text = textarea.value.trim();
    if (!text || !ui.channel) return;
    if (text.startsWith("/")) {
      const [command, ...rest] = text.split(/\s+/);
      if (command !== "/k8s") {
        toast(`${command} is not a valid command. In the sandbox only /k8s is installed.`, true);
        return;
      }
      textarea.value = "";
      const commandText = text.slice(command.length).trim();
      const answer = await act("command", { user: ui.user, channel: ui.channel, text: commandText });
      if (answer && !answer.problem) toast(`${command} ${commandText}`.trim());
      return;
    }
    textarea.value = "";
    await act("message", { user: ui.user, channel: ui.channel, text, thread_ts: threadTs || undefined });
  }

  function wireComposer(textarea, form, threadTs) {
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send(textarea, threadTs());
      }
    });
    form.addEventListener("submit", (event) => { event.preventDefault(); send(textarea, threadTs()); });
  }

  // --- modals --------------------------------------------------------------------------------
  function renderModal(data) {
    const view = data.views.find((v) => !ui.closedViews.has(`${v.id}:${v.hash}`));
    const overlay = $("modal");
    if (!view) {
      if (ui.modal) { overlay.classList.add("hidden"); overlay.innerHTML = ""; ui.modal = null; }
      return;
    }
    if (ui.modal && ui.modal.id === view.id && ui.modal.hash === view.hash && ui.modal.blocks === JSON.stringify(view.blocks)) return;
    showModal(view, data, {});
  }

  function showModal(view, data, errors) {
    const overlay = $("modal");
    ui.modal = { id: view.id, hash: view.hash, blocks: JSON.stringify(view.blocks) };
    const plain = (obj, fallback) => esc(obj && obj.text ? obj.text : fallback);
    overlay.innerHTML = `<form class="dialog" data-testid="modal-form"><div class="dialog-header"><span data-testid="modal-title">${plain(view.title, "")}</span>`
      + '<button type="button" class="close" data-testid="modal-x" aria-label="Close">×</button></div>'
      + '<div class="dialog-body"></div><div class="dialog-footer">'
      + `<button type="button" class="bk-button" data-testid="modal-cancel">${plain(view.close, "Cancel")}</button>`
      + (view.submit ? `<button type="submit" class="bk-button primary" data-testid="modal-submit">${plain(view.submit, "Submit")}</button>` : "")
      + "</div></form>";
    overlay.querySelector(".dialog-body").appendChild(inputs(view.blocks, context(data), errors));
    overlay.classList.remove("hidden");
    const form = overlay.querySelector("form");
    const first = form.querySelector("textarea, input, select");
    if (first) first.focus();
    const cancel = () => {
      ui.closedViews.add(`${view.id}:${view.hash}`);
      overlay.classList.add("hidden");
      overlay.innerHTML = "";
      ui.modal = null;
      act("close", { user: ui.user, view_id: view.id });
    };
    form.querySelector('[data-testid="modal-cancel"]').addEventListener("click", cancel);
    form.querySelector('[data-testid="modal-x"]').addEventListener("click", cancel);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {};
      for (const field of form.querySelectorAll("[data-block-id][data-action-id]")) {
        const entry = field.dataset.kind === "static_select"
          ? { type: "static_select", selected_option: field.value ? { value: field.value, text: { type: "plain_text", text: field.selectedOptions[0].text } } : null }
          : field.value;
        (values[field.dataset.blockId] = values[field.dataset.blockId] || {})[field.dataset.actionId] = entry;
      }
      const submit = form.querySelector('[data-testid="modal-submit"]');
      if (submit) submit.disabled = true;
      const answer = await act("submit", { user: ui.user, view_id: view.id, values });
      if (submit) submit.disabled = false;
      let reply = null;
      try { reply = answer && answer.body ? JSON.parse(answer.body) : null; } catch (_) { reply = null; }
      if (reply && reply.response_action === "errors") {
        showModal(view, ui.data || data, reply.errors || {});
      } else if (answer && answer.closed) {
        ui.closedViews.add(`${view.id}:${view.hash}`);
        overlay.classList.add("hidden");
        overlay.innerHTML = "";
        ui.modal = null;
        toast(`${view.title ? view.title.text : "Form"}: submitted`);
      }
    });
  }

  // --- files ---------------------------------------------------------------------------------
  async function openFile(id, title, name) {
    const overlay = $("file-viewer");
    let content;
    try {
      const response = await fetch(`api/files/${encodeURIComponent(id)}`);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      content = await response.text();
    } catch (error) {
      toast(`cannot open ${name}: ${error.message}`, true);
      return;
    }
    const isMarkdown = /\.(md|markdown)$/i.test(name || "");
    overlay.innerHTML = `<div class="dialog wide"><div class="dialog-header"><span data-testid="file-title">${esc(title)}</span>`
      + '<button type="button" class="close" data-testid="file-close" aria-label="Close">×</button></div>'
      + `<div class="dialog-body ${isMarkdown ? "markdown-file" : ""}" data-testid="file-content"></div>`
      + `<div class="dialog-footer"><a class="bk-button" href="api/files/${encodeURIComponent(id)}" download="${esc(name)}">Download</a></div></div>`;
    const body = overlay.querySelector('[data-testid="file-content"]');
    if (isMarkdown) body.innerHTML = markdown(content);
    else body.appendChild(Object.assign(document.createElement("pre"), { textContent: content }));
    overlay.classList.remove("hidden");
    overlay.querySelector('[data-testid="file-close"]').addEventListener("click", () => { overlay.classList.add("hidden"); overlay.innerHTML = ""; });
  }

  function showChannelFiles() {
    const data = ui.data;
    if (!data) return;
    const files = data.files.filter((f) => f.channel === data.channel);
    if (!files.length) { toast("No files in this channel yet."); return; }
    const latest = files[files.length - 1];
    openFile(latest.id, latest.title, latest.name);
  }

  // --- scenario panel ------------------------------------------------------------------------
  function scenarioItem(cluster, s, busy) {
    const li = document.createElement("li");
    li.className = `scenario${s.active ? " active" : ""}`;
    li.dataset.testid = `scenario-${s.key}`;
    li.dataset.active = String(s.active);
    li.innerHTML = `<div class="scenario-label">${esc(s.label)}${s.active ? '<span class="scenario-state">active</span>' : ""}</div>`;
    const buttons = document.createElement("div");
    buttons.className = "scenario-buttons";
    for (const [op, label, style] of [["inject", "Inject", "danger"], ["undo", "Undo", ""], ["drill", "Start drill", "primary"]]) {
      const b = Object.assign(document.createElement("button"), { type: "button", className: `bk-button ${style}`, textContent: label });
      b.dataset.testid = `${op}-${s.key}`;
      b.disabled = (op === "undo" ? !s.active : s.active) || busy;
      b.addEventListener("click", () => act("scenario", { op, key: s.key, user: ui.user, cluster }));
      buttons.appendChild(b);
    }
    li.appendChild(buttons);
    if (s.alerts) {  // the Alerts part: what this cluster's Prometheus would fire, through the real Alertmanager
      const alertButtons = document.createElement("div");
      alertButtons.className = "scenario-buttons scenario-alerts";
      for (const [op, label] of [["alerts", `Fire ${s.alerts} alert${s.alerts > 1 ? "s" : ""}`], ["resolve-alerts", "Resolve alerts"]]) {
        const b = Object.assign(document.createElement("button"), { type: "button", className: "bk-button", textContent: label });
        b.dataset.testid = `${op}-${s.key}`;
        b.disabled = (op === "alerts" ? s.alerting : !s.alerting) || busy;
        b.addEventListener("click", () => act("scenario", { op, key: s.key, user: ui.user, cluster }));
        alertButtons.appendChild(b);
      }
      li.appendChild(alertButtons);
    }
    return li;
  }

  function renderPanel(data) {
    const panel = $("scenario-panel");
    if (!data.panel) { panel.classList.add("hidden"); return; }
    const busy = data.jobs.some((j) => j.state === "queued" || j.state === "running");
    if (!data.clusters.some((c) => c.name === ui.cluster)) ui.cluster = data.clusters.length ? data.clusters[0].name : null;
    if (changed("scenarios", [data.clusters, busy, ui.cluster])) {
      const list = $("scenarios");
      list.innerHTML = "";
      // One tab per cluster, each with its state, so every cluster is in sight; the chosen one's panel below.
      const tabs = document.createElement("li");
      tabs.className = "cluster-tabs";
      for (const c of data.clusters) {
        const broken = c.scenarios.filter((s) => s.active).length;
        const tab = Object.assign(document.createElement("button"), { type: "button",
          className: `cluster-tab${c.name === ui.cluster ? " selected" : ""}${broken ? " broken" : ""}` });
        tab.dataset.testid = `cluster-tab-${c.name}`;
        tab.innerHTML = `<span class="cluster-name">${esc(c.name)}</span>`
          + `<span class="cluster-state" data-testid="cluster-state-${esc(c.name)}">${broken ? `${broken} broken` : "healthy"}</span>`;
        tab.addEventListener("click", () => { ui.cluster = c.name; renderPanel(ui.data); });
        tabs.appendChild(tab);
      }
      list.appendChild(tabs);
      for (const c of data.clusters) {  // one panel per cluster: its scenarios break that cluster only
        const section = document.createElement("li");
        section.className = `cluster-panel ${c.mode}${c.name === ui.cluster ? "" : " hidden"}`;
        section.dataset.testid = `cluster-${c.name}`;
        section.dataset.mode = c.mode;
        const channel = c.channel_name ? ` · <span class="cluster-channel">#${esc(c.channel_name)}</span>` : "";
        section.innerHTML = `<div class="cluster-head"><span class="cluster-name">${esc(c.name)}</span>`
          + `<span class="cluster-mode">${esc(c.mode)}</span>${channel}</div>`
          + `<div class="cluster-description">${esc(c.description)}</div>`;
        const items = document.createElement("ul");
        items.className = "scenarios";
        for (const s of c.scenarios) items.appendChild(scenarioItem(c.name, s, busy));
        section.appendChild(items);
        list.appendChild(section);
      }
    }
    if (changed("jobs", data.jobs)) {
      const list = $("jobs");
      list.innerHTML = data.jobs.length ? "" : '<li class="job">Nothing yet.</li>';
      for (const j of data.jobs) {
        const li = document.createElement("li");
        li.className = `job ${j.state}`;
        li.dataset.testid = "job";
        li.dataset.state = j.state;
        const spin = j.state === "running" || j.state === "queued" ? '<span class="spinner"></span>' : "";
        const took = j.seconds != null ? ` · ${j.seconds}s` : "";
        li.innerHTML = `${spin}<span class="state">${esc(j.state)}</span>${esc(j.title)}${esc(took)}`
          + (j.message ? `<div class="job-message">${esc(j.message)}</div>` : "");
        list.appendChild(li);
      }
    }
  }

  // --- wiring --------------------------------------------------------------------------------
  $("user-switcher").addEventListener("change", (event) => {
    ui.user = event.target.value;
    localStorage.setItem("demo.user", ui.user);
    ui.keys = {};
    ui.modal = null;
    refresh();
  });
  $("thread-close").addEventListener("click", () => { ui.thread = null; refresh(); });
  $("files-button").addEventListener("click", showChannelFiles);
  document.addEventListener("click", (event) => {
    const link = event.target.closest(".channel-link");
    if (link) { event.preventDefault(); selectChannel(link.dataset.channelId); }
  });
  wireComposer($("composer"), $("composer-form"), () => null);
  wireComposer($("thread-composer"), $("thread-form"), () => ui.thread);
  refresh();
})();
