() => {
  // Citation chips. Desktop: hovering or focusing `[n]` shows a popover (document, section, the cited
  // sentence with a little context, 查看原文); clicking it rings passage n in the sources. Narrow screens:
  // tapping opens a bottom sheet with the same card and 展开全文, instead of jumping down the page.
  // Passages are read from the page (the sources panel, or the folded list under an answer in /embed);
  // text is copied with textContent, never as HTML.
  if (window.__coopbotCites) return;
  window.__coopbotCites = true;
  const NARROW = 640;
  const CONTEXT = 40;
  let hideTimer = null;

  const chipOf = (event) => {
    const path = event.composedPath ? event.composedPath() : [event.target];
    return path.find((el) => el && el.tagName === 'A' && (el.getAttribute('href') || '').startsWith('#coopbot-src-'));
  };
  const passageOf = (chip) => {
    const root = chip.getRootNode ? chip.getRootNode() : document;
    const id = chip.getAttribute('href').slice(1);
    return (root.getElementById && root.getElementById(id)) || document.getElementById(id);
  };
  const ring = (chip, target) => {
    const root = chip.getRootNode && chip.getRootNode().querySelectorAll ? chip.getRootNode() : document;
    root.querySelectorAll('.coopbot-active').forEach((node) => node.classList.remove('coopbot-active'));
    const fold = target.closest('details');
    if (fold) fold.open = true;
    target.classList.add('coopbot-active');
    target.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  };
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  };

  const card = (chip, target, sheet) => {
    const box = element('div', sheet ? 'coopbot-sheet' : 'coopbot-popover');
    box.setAttribute('role', 'dialog');
    box.setAttribute('aria-label', '引用来源 ' + chip.textContent);
    const head = target.querySelector('.coopbot-src-head');
    box.appendChild(element('div', 'coopbot-card-head', head ? head.textContent.trim() : ''));
    const passage = target.querySelector('.coopbot-passage');
    const whole = passage ? passage.textContent : '';
    const mark = passage ? passage.querySelector('mark') : null;
    const quote = mark ? mark.textContent : whole.slice(0, 120);
    const at = Math.max(0, whole.indexOf(quote));
    const excerpt = element('div', 'coopbot-card-quote');
    const before = whole.slice(Math.max(0, at - CONTEXT), at);
    const after = whole.slice(at + quote.length, at + quote.length + CONTEXT);
    excerpt.append((at > CONTEXT ? '…' : '') + before, element('mark', '', quote), after + (after.length === CONTEXT ? '…' : ''));
    box.appendChild(excerpt);
    const actions = element('div', 'coopbot-card-actions');
    if (sheet) {
      const full = element('button', 'coopbot-card-button', '展开全文');
      full.addEventListener('click', () => {
        excerpt.replaceChildren(whole.slice(0, at), element('mark', '', quote), whole.slice(at + quote.length));
        full.remove();
      });
      actions.appendChild(full);
    } else {
      const open = element('button', 'coopbot-card-button', '查看原文');
      open.addEventListener('click', () => { close(); ring(chip, target); });
      actions.appendChild(open);
    }
    const shut = element('button', 'coopbot-card-button', '关闭');
    shut.addEventListener('click', () => close());
    actions.appendChild(shut);
    box.appendChild(actions);
    return box;
  };

  let current = null;
  const close = () => { if (current) { current.remove(); current = null; } };
  const show = (chip, sheet) => {
    const target = passageOf(chip);
    if (!target) return;
    close();
    current = card(chip, target, sheet);
    (chip.closest('.gradio-container') || document.body).appendChild(current);
    if (!sheet) {
      const at = chip.getBoundingClientRect();
      const width = Math.min(360, window.innerWidth - 16);
      current.style.left = Math.max(8, Math.min(at.left, window.innerWidth - width - 8)) + 'px';
      current.style.top = (at.bottom + 6) + 'px';
      current.style.width = width + 'px';
      current.addEventListener('mouseenter', () => clearTimeout(hideTimer));
      current.addEventListener('mouseleave', () => { hideTimer = setTimeout(close, 300); });
    }
  };

  document.addEventListener('click', (event) => {
    const chip = chipOf(event);
    if (!chip) return;
    event.preventDefault();
    event.stopPropagation();
    if (window.innerWidth < NARROW) { show(chip, true); return; }
    close();
    const target = passageOf(chip);
    if (target) ring(chip, target);
  }, true);
  const hover = (event) => {
    const chip = chipOf(event);
    if (!chip || window.innerWidth < NARROW) return;
    clearTimeout(hideTimer);
    show(chip, false);
  };
  document.addEventListener('mouseover', hover, true);
  document.addEventListener('focusin', hover, true);
  document.addEventListener('mouseout', (event) => {
    if (chipOf(event) && current && !current.classList.contains('coopbot-sheet')) hideTimer = setTimeout(close, 300);
  }, true);
  document.addEventListener('keydown', (event) => { if (event.key === 'Escape') close(); }, true);

  // Screen readers: Gradio labels each message with its raw content ("bot's message: …<a class=…>[1]</a>");
  // the label becomes what the message shows, in Chinese.
  const MESSAGE = /^(bot|user)'s message: /;
  const relabel = () => {
    document.querySelectorAll('[aria-label]').forEach((el) => {
      const label = el.getAttribute('aria-label');
      if (el.__coopbotLabel !== label) {  // Gradio set a label of its own (ours may hold '<' shown as text)
        const kind = MESSAGE.exec(label);
        if (!kind && !label.includes('<')) return;
        el.__coopbotKind = kind && kind[1] === 'user' ? '提问：' : '回答：';
      } else if (!el.__coopbotKind) {
        return;
      }
      // Ours: follow what the message shows now (it streams), whether or not Gradio relabels it.
      const next = el.__coopbotKind + (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 600);
      if (next !== label) {
        el.__coopbotLabel = next;
        el.setAttribute('aria-label', next);
      }
    });
  };
  new MutationObserver(relabel).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['aria-label'],
  });
}
