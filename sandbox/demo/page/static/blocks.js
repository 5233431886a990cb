/* Block Kit and mrkdwn rendering for the demo page: enough of Slack's look to work an incident.
 *
 * BlockKit.blocks(blocks, ctx) → DOM nodes for message blocks (header, section with text, fields
 * and accessory, context, divider, actions with buttons, image, markdown, rich_text);
 * BlockKit.inputs(blocks, ctx) → the modal's form; BlockKit.mrkdwn(text, ctx) → HTML of Slack's
 * mrkdwn (*bold*, _italic_, ~strike~, `code`, ```blocks```, > quotes, <@U…>, <#C…|name>, links,
 * :emoji:); BlockKit.markdown(text) → HTML of a Markdown file (the post-mortem).
 * ctx: {users: {id: {name}}, channels: {id: name}, me, onAction(element, blockId, button)}.
 */
(function () {
  "use strict";

  const EMOJI = {
    red_circle: "🔴", large_orange_circle: "🟠", large_yellow_circle: "🟡", large_green_circle: "🟢",
    white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️", rotating_light: "🚨",
    fire: "🔥", mag: "🔍", hourglass: "⌛", hourglass_flowing_sand: "⏳", memo: "📝", pushpin: "📌",
    bell: "🔔", no_entry: "⛔", question: "❓", information_source: "ℹ️", arrow_right: "➡️", stopwatch: "⏱️",
    construction: "🚧", lock: "🔒", unlock: "🔓", clipboard: "📋", page_facing_up: "📄", tada: "🎉",
    thumbsup: "👍", "+1": "👍", eyes: "👀", sos: "🆘", satellite: "📡", wrench: "🔧", hammer_and_wrench: "🛠️",
    large_blue_circle: "🔵", black_circle: "⚫", white_circle: "⚪", chart_with_upwards_trend: "📈",
    green_heart: "💚", broken_heart: "💔", boom: "💥", zap: "⚡", gear: "⚙️", speech_balloon: "💬",
    loudspeaker: "📢", mega: "📣", calendar: "📆", clock1: "🕐", alarm_clock: "⏰", skull: "💀",
    ok: "🆗", new: "🆕", repeat: "🔁", arrows_counterclockwise: "🔄", stop_sign: "🛑", checkered_flag: "🏁",
  };

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  /* Slack escapes only &, < and > in message text. */
  function unslack(text) {
    return String(text).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  /* Coloured circles (severity) as CSS dots, so they show even without an emoji font. */
  const DOTS = {
    red_circle: "#e01e5a", large_orange_circle: "#e8912d", large_yellow_circle: "#ecb22e",
    large_green_circle: "#2eb67d", large_blue_circle: "#1264a3", black_circle: "#1d1c1d", white_circle: "#fff",
  };

  /* Status emoji as coloured text symbols every font has (the page must read well without an emoji font). */
  const GLYPHS = {
    white_check_mark: ["✔", "#2eb67d"], heavy_check_mark: ["✔", "#2eb67d"], x: ["✖", "#e01e5a"],
    no_entry: ["⊘", "#e01e5a"], no_entry_sign: ["⊘", "#e01e5a"], octagonal_sign: ["⬣", "#e01e5a"],
    warning: ["⚠", "#d58a00"], exclamation: ["!", "#e01e5a"], question: ["?", "#1264a3"],
    heavy_minus_sign: ["−", "#616061"], rotating_light: ["◉", "#e01e5a"], sos: ["SOS", "#e01e5a"],
    hourglass: ["⧗", "#616061"], hourglass_flowing_sand: ["⧗", "#616061"], mag: ["⌕", "#616061"],
    gear: ["⚙", "#616061"], zzz: ["z", "#616061"], memo: ["✎", "#1264a3"], pager: ["☏", "#e01e5a"],
    inbox_tray: ["⇩", "#1264a3"], page_facing_up: ["▤", "#616061"],
  };

  function emoji(html) {
    return html.replace(/:([a-z0-9_+\-]+):/g, (m, name) => {
      if (DOTS[name]) return `<span class="dot" title=":${name}:" style="background:${DOTS[name]}"></span>`;
      if (GLYPHS[name]) {
        const [glyph, color] = GLYPHS[name];
        return `<span class="glyph" title=":${name}:" style="color:${color}">${glyph}</span>`;
      }
      return EMOJI[name] ? `<span class="emoji" title=":${name}:">${EMOJI[name]}</span>` : m;
    });
  }

  function special(inner, ctx) {
    const [target, label] = inner.split("|", 2);
    if (target.startsWith("@")) {
      const id = target.slice(1);
      const user = (ctx.users || {})[id];
      const name = label || (user ? user.name : id);
      const me = id === ctx.me ? " me" : "";
      return `<span class="mention${me}" data-user-id="${esc(id)}">@${esc(unslack(name))}</span>`;
    }
    if (target.startsWith("#")) {
      const id = target.slice(1);
      const name = label || (ctx.channels || {})[id] || id;
      return `<a href="#" class="mention channel-link" data-channel-id="${esc(id)}">#${esc(unslack(name))}</a>`;
    }
    if (target.startsWith("!subteam^")) {
      return `<span class="mention">${esc(unslack(label || "@group"))}</span>`;
    }
    if (target.startsWith("!")) {
      const word = target.slice(1).split("^")[0];
      return `<span class="mention">@${esc(label || word)}</span>`;
    }
    const url = unslack(target);
    if (/^(https?:|mailto:)/i.test(url)) {
      return `<a href="${esc(url)}" target="_blank" rel="noopener">${esc(unslack(label || url))}</a>`;
    }
    return esc(`<${unslack(inner)}>`);
  }

  function mrkdwn(source, ctx) {
    ctx = ctx || {};
    const stash = [];
    const keep = (html) => `\u0000${stash.push(html) - 1}\u0000`;
    let s = String(source == null ? "" : source);
    s = s.replace(/```([\s\S]*?)```/g, (_, code) => keep(`<pre>${esc(unslack(code.replace(/^\n/, "")))}</pre>`));
    s = s.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${esc(unslack(code))}</code>`));
    s = s.replace(/<([^<>\n]+)>/g, (_, inner) => keep(special(inner, ctx)));
    s = esc(unslack(s));
    const open = "(^|[\\s(\\[{\"'\\u0000])";
    const close = "(?=$|[\\s).,;:!?\\]}\"'\\u0000-])";
    s = s.replace(new RegExp(`${open}\\*(?!\\s)([^*\\n]*?[^*\\s])\\*${close}`, "g"), "$1<strong>$2</strong>");
    s = s.replace(new RegExp(`${open}_(?!\\s)([^_\\n]*?[^_\\s])_${close}`, "g"), "$1<em>$2</em>");
    s = s.replace(new RegExp(`${open}~(?!\\s)([^~\\n]*?[^~\\s])~${close}`, "g"), "$1<del>$2</del>");
    s = s.replace(/(^|\n)&gt; ?([^\n]*)/g, "$1<blockquote>$2</blockquote>");
    s = emoji(s);
    s = s.replace(/<\/blockquote>\n/g, "</blockquote>").replace(/\n/g, "<br>");
    return s.replace(/\u0000(\d+)\u0000/g, (_, i) => stash[Number(i)]);
  }

  function text(obj, ctx) {
    if (!obj) return "";
    if (typeof obj === "string") return mrkdwn(obj, ctx);
    if (obj.type === "plain_text") return emoji(esc(obj.text || "")).replace(/\n/g, "<br>");
    return mrkdwn(obj.text || "", ctx);
  }

  function el(tag, cls, html) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (html != null) node.innerHTML = html;
    return node;
  }

  function button(element, blockId, ctx) {
    const node = el("button", `bk-button ${element.style || ""}`.trim(), text(element.text, ctx));
    node.type = "button";
    node.dataset.testid = "block-button";
    node.dataset.actionId = element.action_id || "";
    node.dataset.blockId = blockId || "";
    if (element.url) {
      node.addEventListener("click", () => window.open(element.url, "_blank", "noopener"));
    }
    if (ctx.onAction) node.addEventListener("click", () => ctx.onAction(element, blockId, node));
    return node;
  }

  function interactive(element, blockId, ctx) {
    if (!element) return null;
    if (element.type === "button") return button(element, blockId, ctx);
    if (element.type === "image") {
      const img = el("img");
      img.src = element.image_url;
      img.alt = element.alt_text || "";
      img.width = 64;
      return img;
    }
    if (element.type === "static_select" || element.type === "overflow") {
      const select = el("select", "bk-select");
      select.disabled = true;
      select.title = "selects are shown but not interactive in the demo page";
      const placeholder = element.placeholder ? element.placeholder.text : "…";
      select.appendChild(new Option(placeholder, ""));
      for (const option of element.options || []) select.appendChild(new Option(option.text.text, option.value));
      return select;
    }
    return el("span", "block-unknown", esc(`[${element.type}]`));
  }

  function richText(block, ctx) {
    const parts = [];
    const walk = (node) => {
      if (!node) return;
      if (node.type === "text") {
        let html = esc(node.text || "").replace(/\n/g, "<br>");
        const style = node.style || {};
        if (style.code) html = `<code>${html}</code>`;
        if (style.bold) html = `<strong>${html}</strong>`;
        if (style.italic) html = `<em>${html}</em>`;
        if (style.strike) html = `<del>${html}</del>`;
        parts.push(html);
      } else if (node.type === "link") {
        parts.push(`<a href="${esc(node.url)}" target="_blank" rel="noopener">${esc(node.text || node.url)}</a>`);
      } else if (node.type === "user") {
        parts.push(special(`@${node.user_id}`, ctx));
      } else if (node.type === "channel") {
        parts.push(special(`#${node.channel_id}`, ctx));
      } else if (node.type === "emoji") {
        parts.push(EMOJI[node.name] || `:${esc(node.name)}:`);
      } else if (node.type === "rich_text_preformatted") {
        const inner = [];
        (node.elements || []).forEach((child) => inner.push(esc(child.text || "")));
        parts.push(`<pre>${inner.join("")}</pre>`);
      } else if (node.type === "rich_text_list") {
        parts.push("<ul>");
        (node.elements || []).forEach((item) => { parts.push("<li>"); walk(item); parts.push("</li>"); });
        parts.push("</ul>");
      } else {
        (node.elements || []).forEach(walk);
      }
    };
    walk(block);
    return el("div", "block mrkdwn", parts.join(""));
  }

  function block(b, ctx) {
    const blockId = b.block_id || "";
    switch (b.type) {
      case "header":
        return el("div", "block block-header", text(b.text, ctx));
      case "divider":
        return el("hr", "block-divider");
      case "section": {
        const node = el("div", "block block-section");
        const main = el("div", "section-main");
        if (b.text) main.appendChild(el("div", "mrkdwn", text(b.text, ctx)));
        if (b.fields && b.fields.length) {
          const fields = el("div", "fields");
          b.fields.forEach((f) => fields.appendChild(el("div", "mrkdwn", text(f, ctx))));
          main.appendChild(fields);
        }
        node.appendChild(main);
        const accessory = interactive(b.accessory, blockId, ctx);
        if (accessory) node.appendChild(accessory);
        return node;
      }
      case "context": {
        const node = el("div", "block block-context");
        for (const e of b.elements || []) {
          if (e.type === "image") {
            const img = el("img");
            img.src = e.image_url;
            img.alt = e.alt_text || "";
            node.appendChild(img);
          } else {
            node.appendChild(el("span", "mrkdwn", text(e, ctx)));
          }
        }
        return node;
      }
      case "actions": {
        const node = el("div", "block block-actions");
        node.dataset.blockId = blockId;
        for (const e of b.elements || []) {
          const child = interactive(e, blockId, ctx);
          if (child) node.appendChild(child);
        }
        return node;
      }
      case "image": {
        const node = el("div", "block block-image");
        if (b.title) node.appendChild(el("div", "mrkdwn", text(b.title, ctx)));
        const img = el("img");
        img.src = b.image_url;
        img.alt = b.alt_text || "";
        node.appendChild(img);
        return node;
      }
      case "markdown":
        return el("div", "block markdown-file", markdown(b.text || ""));
      case "rich_text":
        return richText(b, ctx);
      default:
        return el("div", "block block-unknown", esc(`[${b.type} block]`));
    }
  }

  function blocks(list, ctx) {
    const frag = document.createDocumentFragment();
    (list || []).forEach((b) => frag.appendChild(block(b, ctx || {})));
    return frag;
  }

  /* A modal's blocks: input blocks become form fields named block_id/action_id; others render as usual. */
  function inputs(list, ctx, errors) {
    const frag = document.createDocumentFragment();
    (list || []).forEach((b, index) => {
      if (b.type !== "input") {
        frag.appendChild(block(b, ctx || {}));
        return;
      }
      const element = b.element || {};
      const blockId = b.block_id || `input-${index}`;
      const wrap = el("div", "input-block");
      const id = `field-${blockId}-${element.action_id}`;
      const label = el("label", null, text(b.label, ctx) + (b.optional ? ' <span class="optional">(optional)</span>' : ""));
      label.htmlFor = id;
      wrap.appendChild(label);
      let field;
      if (element.type === "plain_text_input" && element.multiline) {
        field = el("textarea");
      } else if (element.type === "static_select") {
        field = el("select");
        field.appendChild(new Option(element.placeholder ? element.placeholder.text : "Choose…", ""));
        for (const option of element.options || []) field.appendChild(new Option(option.text.text, option.value));
      } else {
        field = el("input");
        field.type = element.type === "number_input" ? "number" : "text";
      }
      field.id = id;
      field.dataset.testid = `modal-input-${blockId}`;
      field.dataset.blockId = blockId;
      field.dataset.actionId = element.action_id || "";
      field.dataset.kind = element.type || "plain_text_input";
      if (element.initial_value) field.value = element.initial_value;
      if (element.placeholder && field.tagName !== "SELECT") field.placeholder = element.placeholder.text;
      if (element.max_length) field.maxLength = element.max_length;
      wrap.appendChild(field);
      if (b.hint) wrap.appendChild(el("div", "hint", text(b.hint, ctx)));
      if (errors && errors[blockId]) wrap.appendChild(el("div", "error", esc(errors[blockId])));
      frag.appendChild(wrap);
    });
    return frag;
  }

  /* Markdown files (the post-mortem draft): headings, lists, tables, code, emphasis, links. */
  function markdown(source) {
    const lines = String(source).replace(/\r\n/g, "\n").split("\n");
    const out = [];
    let list = null;
    let table = null;
    let code = null;
    const inline = (s) => esc(s)
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|\W)\*(\S(?:.*?\S)?)\*(?=\W|$)/g, "$1<em>$2</em>")
      .replace(/(^|\W)_(\S(?:.*?\S)?)_(?=\W|$)/g, "$1<em>$2</em>")
      .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener">$1</a>');
    let paragraph = [];
    const closeParagraph = () => { if (paragraph.length) { out.push(`<p>${inline(paragraph.join(" "))}</p>`); paragraph = []; } };
    const closeList = () => { closeParagraph(); if (list) { out.push(`</${list}>`); list = null; } };
    const closeTable = () => { if (table) { out.push("</table>"); table = null; } };
    for (const line of lines) {
      if (code !== null) {
        if (/^```/.test(line)) { out.push(`<pre>${esc(code.join("\n"))}</pre>`); code = null; } else code.push(line);
        continue;
      }
      if (/^```/.test(line)) { closeList(); closeTable(); code = []; continue; }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
      const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
      if (/^\s*\|.*\|\s*$/.test(line)) {
        closeList();
        const cells = line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
        if (cells.every((c) => /^:?-{2,}:?$/.test(c))) continue;
        if (!table) { out.push("<table>"); table = "open"; out.push(`<tr>${cells.map((c) => `<th>${inline(c)}</th>`).join("")}</tr>`); }
        else out.push(`<tr>${cells.map((c) => `<td>${inline(c)}</td>`).join("")}</tr>`);
        continue;
      }
      closeTable();
      if (heading) { closeList(); out.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`); }
      else if (bullet || numbered) {
        const kind = bullet ? "ul" : "ol";
        if (list !== kind) { closeList(); out.push(`<${kind}>`); list = kind; }
        out.push(`<li>${inline((bullet || numbered)[1])}</li>`);
      } else if (/^\s*>\s?/.test(line)) { closeList(); out.push(`<blockquote>${inline(line.replace(/^\s*>\s?/, ""))}</blockquote>`); }
      else if (/^\s*(---|\*\*\*)\s*$/.test(line)) { closeList(); out.push("<hr>"); }
      else if (!line.trim()) { closeList(); }
      else { if (list) closeList(); paragraph.push(line.trim()); }
    }
    if (code !== null) out.push(`<pre>${esc(code.join("\n"))}</pre>`);
    closeList();
    closeTable();
    return out.join("\n");
  }

  window.BlockKit = { blocks, inputs, mrkdwn, markdown, text, esc };
})();
