// The spawn page's image picker: a combobox (ARIA 1.2 pattern: the input owns a listbox, arrow
// keys move, Enter chooses, Escape closes) over the page's one catalogue document (format in
// gpulab/spawner/picker.py). Only the slice that matches what was typed is rendered. The
// profile's select stays the form field: choosing an image sets it, so what is posted is the
// same as without JavaScript, and admission checks it either way.
(function () {
  'use strict';
  const SHOWN = 60; // options rendered at once; typing narrows the rest
  const SECTION_RECENT = 'Your recent images';
  const SECTION_RECOMMENDED = 'Recommended';

  function loadCatalogue() {
    const node = document.getElementById('gpulab-image-catalogue');
    if (!node) return null;
    const doc = JSON.parse(node.textContent);
    const s = doc.s;
    const items = [];
    for (const run of doc.r) {
      const [prefix, tags, namePrefix, nameSuffix, group, fw, cuda, desc, flags] = run;
      for (const tag of tags.split(' ')) {
        const item = {
          ref: prefix + tag,
          name: nameSuffix === null ? namePrefix : namePrefix + tag + nameSuffix,
          group: s[group],
          framework: s[fw],
          cuda: s[cuda],
          description: s[desc],
          gpu: (flags & 1) === 1,
          recommended: (flags & 2) === 2,
        };
        item.meta = [item.framework, item.cuda ? 'CUDA ' + item.cuda : '', item.description]
          .filter(Boolean).join(' · ');
        item.haystack = [item.name, item.ref, item.group, item.framework,
          item.cuda ? 'cuda ' + item.cuda + ' cuda' + item.cuda : '', item.description]
          .join(' ').toLowerCase();
        items.push(item);
      }
    }
    return { items: items, recent: doc.recent || [] };
  }

  // The profile's images in the picker's order: recent, recommended, then by group (catalogue
  // order of groups; inside a group the profile's order: CPU images first on CPU profiles).
  function ordered(catalogue, gpuOnly) {
    const offered = gpuOnly
      ? catalogue.items.filter((i) => i.gpu)
      : catalogue.items.filter((i) => !i.gpu).concat(catalogue.items.filter((i) => i.gpu));
    const byRef = new Map(offered.map((i) => [i.ref, i]));
    const taken = new Set();
    const out = [];
    for (const ref of catalogue.recent) {
      const item = byRef.get(ref);
      if (item && !taken.has(ref)) { taken.add(ref); out.push({ item: item, section: SECTION_RECENT }); }
    }
    for (const item of offered) {
      if (item.recommended && !taken.has(item.ref)) {
        taken.add(item.ref); out.push({ item: item, section: SECTION_RECOMMENDED });
      }
    }
    const groups = new Map();
    for (const item of offered) {
      if (taken.has(item.ref)) continue;
      const name = item.group || 'Other images';
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push({ item: item, section: name });
    }
    for (const rows of groups.values()) out.push(...rows);
    return { rows: out, byRef: byRef };
  }

  function matches(row, words) {
    for (const w of words) if (!row.item.haystack.includes(w)) return false;
    return true;
  }

  function setUp(root, catalogue) {
    const select = root.querySelector('select');
    const box = root.querySelector('.gpulab-combobox');
    const input = box.querySelector('[role="combobox"]');
    const listbox = box.querySelector('[role="listbox"]');
    const status = box.querySelector('.gpulab-picker-status');
    const details = root.querySelector('.gpulab-image-details');
    const label = root.querySelector('label');
    const profileLabel = root.closest('.js-profile-label');
    const model = ordered(catalogue, root.dataset.gpuOnly === 'true');
    let shown = []; // rows rendered now
    let active = -1;

    function chosen() {
      return model.byRef.get(select.value) || null;
    }
    function showChoice() {
      const item = chosen();
      const option = select.selectedOptions[0];
      input.value = item ? item.name : (option ? option.textContent : '');
      details.textContent = item ? item.meta : (option ? option.dataset.details : '');
    }
    function checkProfile() {
      const radio = profileLabel && profileLabel.querySelector('input[type=radio]');
      if (radio) radio.checked = true;
    }
    function open() {
      listbox.hidden = false;
      input.setAttribute('aria-expanded', 'true');
    }
    function close() {
      listbox.hidden = true;
      input.setAttribute('aria-expanded', 'false');
      input.removeAttribute('aria-activedescendant');
      active = -1;
    }
    function setActive(i) {
      const options = listbox.querySelectorAll('[role="option"]');
      if (active >= 0 && options[active]) options[active].setAttribute('aria-selected', 'false');
      active = Math.max(0, Math.min(i, options.length - 1));
      const option = options[active];
      if (!option) { active = -1; return; }
      option.setAttribute('aria-selected', 'true');
      input.setAttribute('aria-activedescendant', option.id);
      option.scrollIntoView({ block: 'nearest' });
    }
    function render(query) {
      const words = query.toLowerCase().split(/\s+/).filter(Boolean);
      const hits = words.length ? model.rows.filter((r) => matches(r, words)) : model.rows;
      shown = hits.slice(0, SHOWN);
      listbox.textContent = '';
      let group = null;
      let section = null;
      shown.forEach((row, n) => {
        if (row.section !== section) {
          section = row.section;
          group = document.createElement('div');
          group.setAttribute('role', 'group');
          const name = document.createElement('div');
          name.className = 'gpulab-group-name';
          name.id = `${input.id}-g${n}`;
          name.setAttribute('role', 'presentation');
          name.textContent = section;
          group.setAttribute('aria-labelledby', name.id);
          group.appendChild(name);
          listbox.appendChild(group);
        }
        const option = document.createElement('div');
        option.setAttribute('role', 'option');
        option.setAttribute('aria-selected', 'false');
        option.id = `${input.id}-o${n}`;
        option.dataset.ref = row.item.ref;
        option.textContent = row.item.name;
        const meta = document.createElement('span');
        meta.className = 'gpulab-option-meta';
        meta.textContent = row.item.meta ? `${row.item.meta} — ${row.item.ref}` : row.item.ref;
        option.appendChild(meta);
        group.appendChild(option);
      });
      const total = model.rows.length;
      if (!words.length) {
        status.textContent = total > shown.length
          ? `${total} images; the first ${shown.length} are listed: type to search.`
          : `${total} images.`;
      } else if (!hits.length) status.textContent = `No image matches "${query}".`;
      else if (hits.length > shown.length) {
        status.textContent = `${hits.length} of ${total} images match; the first ${shown.length} ` +
          'are listed: type more to narrow.';
      } else status.textContent = `${hits.length} of ${total} images match.`;
      active = -1;
      input.removeAttribute('aria-activedescendant');
    }
    function choose(ref) {
      const item = model.byRef.get(ref);
      if (!item) return;
      let option = Array.from(select.options).find((o) => o.value === ref);
      if (!option) {
        option = new Option(item.name, ref);
        option.dataset.details = item.meta;
        select.appendChild(option);
      }
      select.value = ref;
      select.dispatchEvent(new Event('change', { bubbles: true }));
      checkProfile();
      showChoice();
      close();
    }

    input.addEventListener('input', () => { checkProfile(); render(input.value); open(); if (shown.length) setActive(0); });
    input.addEventListener('focus', () => { checkProfile(); input.select(); }); // typing replaces the name
    input.addEventListener('click', () => {
      if (listbox.hidden) { render(''); open(); }
    });
    input.addEventListener('keydown', (event) => {
      const count = shown.length;
      switch (event.key) {
        case 'ArrowDown':
          event.preventDefault();
          if (listbox.hidden) { render(input.value === (chosen() || {}).name ? '' : input.value); open(); setActive(0); }
          else setActive(active + 1);
          break;
        case 'ArrowUp':
          event.preventDefault();
          if (listbox.hidden) { render(''); open(); setActive(count - 1); }
          else setActive(active - 1);
          break;
        case 'Home':
        case 'End':
          if (!listbox.hidden && count) {
            event.preventDefault();
            setActive(event.key === 'Home' ? 0 : count - 1);
          }
          break;
        case 'Enter':
          event.preventDefault(); // never submit the form from the search field
          if (!listbox.hidden && active >= 0) choose(shown[active].item.ref);
          break;
        case 'Escape':
          if (!listbox.hidden) { event.preventDefault(); close(); showChoice(); }
          break;
        case 'Tab':
          close(); showChoice();
          break;
        default:
      }
    });
    input.addEventListener('blur', () => {
      if (!listbox.hidden) { close(); showChoice(); }
    });
    // Options are chosen on mousedown so the input keeps focus; the click must not reach the
    // profile's <label>, which would move focus to its radio.
    listbox.addEventListener('mousedown', (event) => {
      const option = event.target.closest('[role="option"]');
      event.preventDefault();
      if (option) choose(option.dataset.ref);
    });
    listbox.addEventListener('click', (event) => { event.preventDefault(); event.stopPropagation(); });
    select.addEventListener('change', showChoice); // the last start's options, set by form.html

    select.hidden = true;
    box.hidden = false;
    label.htmlFor = input.id;
    showChoice();
  }

  function plainSelects() {
    // Small catalogues: the selected image's framework, CUDA version and description.
    document.querySelectorAll('.gpulab-image-choice:not([data-image-picker]) select').forEach((select) => {
      const details = select.closest('.gpulab-image-choice').querySelector('.gpulab-image-details');
      const update = () => {
        const option = select.selectedOptions[0];
        details.textContent = option ? option.dataset.details || '' : '';
      };
      select.addEventListener('change', update);
      update();
    });
  }

  function start() {
    plainSelects();
    const pickers = document.querySelectorAll('[data-image-picker]');
    if (!pickers.length) return;
    const catalogue = loadCatalogue();
    if (!catalogue) return;
    pickers.forEach((root) => setUp(root, catalogue));
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
